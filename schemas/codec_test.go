package schemas

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hamba/avro/v2"
)

// TestSchemaFiles checks that every embedded .avsc file is the schema of
// exactly one codec, in namespace io.invroute.
func TestSchemaFiles(t *testing.T) {
	files, err := fs.Glob(avsc, "avro/*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	byText := map[string]string{}
	for _, f := range files {
		b, _ := avsc.ReadFile(f)
		byText[string(b)] = f
	}
	names := map[string]bool{}
	for _, c := range allCodecs() {
		if _, ok := byText[c.Schema()]; !ok {
			t.Errorf("%s: schema is not an embedded file", c.Name())
		}
		delete(byText, c.Schema())
		if !strings.HasPrefix(c.Name(), "io.invroute.") {
			t.Errorf("%s: not in namespace io.invroute", c.Name())
		}
		if names[c.Name()] {
			t.Errorf("%s: two codecs", c.Name())
		}
		names[c.Name()] = true
		var doc map[string]any
		if err := json.Unmarshal([]byte(c.Schema()), &doc); err != nil {
			t.Errorf("%s: %v", c.Name(), err)
		}
	}
	for _, f := range byText {
		t.Errorf("%s has no codec", f)
	}
}

// expanded prints s with every named type written out in full, so that a
// definition and a reference by name to the same definition print alike.
func expanded(s avro.Schema) string {
	switch s := s.(type) {
	case *avro.RefSchema:
		return expanded(s.Schema())
	case *avro.RecordSchema:
		var b strings.Builder
		b.WriteString("record " + s.FullName() + "{")
		for _, f := range s.Fields() {
			b.WriteString(f.Name() + ":" + expanded(f.Type()) + ";")
		}
		return b.String() + "}"
	case *avro.ArraySchema:
		return "array<" + expanded(s.Items()) + ">"
	case *avro.MapSchema:
		return "map<" + expanded(s.Values()) + ">"
	case *avro.UnionSchema:
		var parts []string
		for _, t := range s.Types() {
			parts = append(parts, expanded(t))
		}
		return "union(" + strings.Join(parts, ",") + ")"
	}
	return s.String()
}

// TestNamedTypesAgree checks that a named type defined in several files
// (NodeType, OrderLine, Address...) is defined the same way in each.
func TestNamedTypesAgree(t *testing.T) {
	seen := map[string]string{} // full name -> canonical form
	where := map[string]string{}
	var walk func(owner string, s avro.Schema)
	walk = func(owner string, s avro.Schema) {
		switch s := s.(type) {
		case *avro.RefSchema:
			return
		case avro.NamedSchema:
			form := expanded(s)
			if prev, ok := seen[s.FullName()]; ok && prev != form {
				t.Errorf("%s differs between %s and %s:\n%s\n%s", s.FullName(), where[s.FullName()], owner, prev, form)
			}
			seen[s.FullName()], where[s.FullName()] = form, owner
			if r, ok := s.(*avro.RecordSchema); ok {
				for _, f := range r.Fields() {
					walk(owner, f.Type())
				}
			}
		case *avro.ArraySchema:
			walk(owner, s.Items())
		case *avro.MapSchema:
			walk(owner, s.Values())
		case *avro.UnionSchema:
			for _, b := range s.Types() {
				walk(owner, b)
			}
		}
	}
	for _, c := range allCodecs() {
		walk(c.Name(), c.hamba())
	}
}

// TestTagsMatchSchema checks that the Go types and the schemas name the same
// fields, with Go types that fit the Avro types, all the way down.
func TestTagsMatchSchema(t *testing.T) {
	var match func(path string, s avro.Schema, typ reflect.Type)
	match = func(path string, s avro.Schema, typ reflect.Type) {
		if ref, ok := s.(*avro.RefSchema); ok {
			s = ref.Schema()
		}
		want := map[avro.Type]reflect.Kind{
			avro.String: reflect.String, avro.Enum: reflect.String, avro.Int: reflect.Int32,
			avro.Long: reflect.Int64, avro.Double: reflect.Float64, avro.Boolean: reflect.Bool,
			avro.Record: reflect.Struct, avro.Array: reflect.Slice, avro.Map: reflect.Map,
			avro.Union: reflect.Pointer,
		}[s.Type()]
		if typ.Kind() != want {
			t.Errorf("%s: Go %s for Avro %s", path, typ, s.Type())
			return
		}
		switch s := s.(type) {
		case *avro.RecordSchema:
			tags := map[string]reflect.Type{}
			for i := range typ.NumField() {
				if tag := typ.Field(i).Tag.Get("avro"); tag != "" {
					tags[tag] = typ.Field(i).Type
				} else {
					t.Errorf("%s.%s: no avro tag", path, typ.Field(i).Name)
				}
			}
			for _, f := range s.Fields() {
				ft, ok := tags[f.Name()]
				if !ok {
					t.Errorf("%s: no Go field for %s", path, f.Name())
					continue
				}
				delete(tags, f.Name())
				match(path+"."+f.Name(), f.Type(), ft)
			}
			for tag := range tags {
				t.Errorf("%s: Go field %s is not in the schema", path, tag)
			}
		case *avro.ArraySchema:
			match(path+"[]", s.Items(), typ.Elem())
		case *avro.MapSchema:
			match(path+"[]", s.Values(), typ.Elem())
		case *avro.UnionSchema:
			if len(s.Types()) != 2 || s.Types()[0].Type() != avro.Null {
				t.Errorf("%s: only [null, T] unions are used", path)
				return
			}
			match(path, s.Types()[1], typ.Elem())
		}
	}
	for _, c := range allCodecs() {
		match(c.Name(), c.hamba(), c.goType())
	}
}

// TestEnumSymbols checks that the Go constants of every enum type are its
// Avro symbols, in order.
func TestEnumSymbols(t *testing.T) {
	strs := func(v ...any) []string {
		var s []string
		for _, x := range v {
			s = append(s, reflect.ValueOf(x).String())
		}
		return s
	}
	want := map[string][]string{
		"io.invroute.MovementType":      strs(Receipt, Adjustment, Count, Shipment, TransferOut, TransferIn, ReturnRestock, Damage),
		"io.invroute.NodeType":          strs(Warehouse, ThreePL, Store),
		"io.invroute.OrderEventType":    strs(EventPlaced, EventCancelled, EventReleased, EventAddressChanged, EventReturnAuthorized),
		"io.invroute.CustomerTier":      strs(TierStandard, TierVIP),
		"io.invroute.Priority":          strs(PriorityStandard, PriorityRush),
		"io.invroute.DeliveryMethod":    strs(DeliveryShip, DeliveryPickup),
		"io.invroute.FulfillmentPolicy": strs(ShipComplete, ShipAvailable),
		"io.invroute.ReservationOp":     strs(Reserve, Release, Consume, Restock, Decrease),
		"io.invroute.DecisionStatus":    strs(DecisionRouted, DecisionPartiallyRouted, DecisionBackordered, DecisionRejected),
		"io.invroute.FulfillmentAction": strs(ActionShip, ActionHoldForPickup, ActionCancel),
		"io.invroute.FeedbackType":      strs(FeedbackShortPicked, FeedbackRejected),
		"io.invroute.OrderState": strs(StatePlaced, StateOnHold, StateRouted, StateBackordered, StateRejected,
			StateReadyForPickup, StatePartiallyShipped, StateShipped, StatePickedUp, StateCancelled,
			StateReturnPending, StateReturned),
	}
	got := map[string][]string{}
	var walk func(s avro.Schema)
	walk = func(s avro.Schema) {
		switch s := s.(type) {
		case *avro.EnumSchema:
			got[s.FullName()] = s.Symbols()
		case *avro.RecordSchema:
			for _, f := range s.Fields() {
				walk(f.Type())
			}
		case *avro.ArraySchema:
			walk(s.Items())
		case *avro.MapSchema:
			walk(s.Values())
		case *avro.UnionSchema:
			for _, b := range s.Types() {
				walk(b)
			}
		}
	}
	for _, c := range allCodecs() {
		walk(c.hamba())
	}
	for name, syms := range got {
		if !slices.Equal(syms, want[name]) {
			t.Errorf("%s: symbols %v, Go constants %v", name, syms, want[name])
		}
	}
	for name := range want {
		if got[name] == nil {
			t.Errorf("%s: in no schema", name)
		}
	}
}

// TestRoundTrip checks Decode(Encode(v)) == v and that encoding is stable.
func TestRoundTrip(t *testing.T) {
	forEachSample(t, func(t *testing.T, c anyCodec, v any) {
		b, err := c.encode(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.decode(b)
		if err != nil {
			t.Fatalf("%v\n% x", err, b)
		}
		if !equalValues(v, got) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, v)
		}
		b2, err := c.encode(got)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding: %v\n% x\n% x", err, b, b2)
		}
		if canonical, err := check(c.program(), b); !canonical || err != nil {
			t.Fatalf("Encode output not canonical: %v", err)
		}
		// DecodeInput takes plain Avro too.
		got, err = c.decodeInput(b, nil)
		if err != nil || !equalValues(v, got) {
			t.Fatalf("DecodeInput: %v", err)
		}
	})
}

func TestAppendKeepsPrefix(t *testing.T) {
	v := stockMovementSamples[1]
	want, _ := StockMovements.Encode(&v)
	dst := []byte("prefix")
	out, err := StockMovements.Append(dst, &v)
	if err != nil || string(out[:6]) != "prefix" || !bytes.Equal(out[6:], want) {
		t.Fatalf("Append: %v %q", err, out)
	}
	v.Type = "NOPE"
	out, err = StockMovements.Append(dst, &v)
	if err == nil || !bytes.Equal(out, dst) {
		t.Fatalf("failed Append: %v %q", err, out)
	}
}

// TestDecodeResets checks that Decode leaves nothing of the old value.
func TestDecodeResets(t *testing.T) {
	b, _ := Nodes.Encode(&nodeSamples[2])
	v := nodeSamples[1]
	v.SKUSafetyStock = map[string]int32{"stale": 1}
	if err := Nodes.Decode(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.SKUSafetyStock) != 1 || v.SKUSafetyStock["only"] != 3 || v.PickupEnabled {
		t.Fatalf("Decode kept old state: %+v", v)
	}
	b, _ = StockMovements.Encode(&stockMovementSamples[0])
	m := stockMovementSamples[1]
	if err := StockMovements.Decode(b, &m); err != nil || m.OrderID != nil || m.LineID != nil {
		t.Fatalf("Decode kept old union: %v %+v", err, m)
	}
}

// TestMapOrder checks that a map encodes with sorted keys whatever Go's map
// order, as goavro's map encodes it after sorting.
func TestMapOrder(t *testing.T) {
	want, err := Nodes.Encode(&nodeSamples[1])
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		b, err := Nodes.Encode(&nodeSamples[1])
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("unstable map encoding: %v\n% x\n% x", err, b, want)
		}
	}
}

func TestNameAndSchema(t *testing.T) {
	if got := StockMovements.Name(); got != "io.invroute.StockMovement" {
		t.Errorf("Name() = %q", got)
	}
	if !strings.Contains(StockMovements.Schema(), `"timestamp-millis"`) {
		t.Errorf("Schema() is not the .avsc text")
	}
}

// TestConcurrentUse runs encoders and decoders of all codecs at once, for
// the race detector.
func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				for _, c := range allCodecs() {
					for _, v := range c.samples() {
						b, err := c.encode(v)
						if err != nil {
							t.Error(err)
							return
						}
						got, err := c.decode(b)
						if err != nil || !equalValues(v, got) {
							t.Errorf("%s: %v", c.Name(), err)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
}

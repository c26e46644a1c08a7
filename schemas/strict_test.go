package schemas

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// enc builds Avro bytes by hand.
type enc []byte

func (e enc) long(v int64) enc     { return appendLong(e, v) }
func (e enc) str(s string) enc     { return append(appendLong(e, int64(len(s))), s...) }
func (e enc) raw(b ...byte) enc    { return append(e, b...) }
func (e enc) double(_ float64) enc { return append(e, make([]byte, 8)...) }

// movement returns StockMovement bytes with enum index typ and then the
// given tail after the type field (qty, order_id, line_id, occurred_at).
func movement(typ int64) enc {
	return enc{}.str("m-1").str("SKU-1").str("WH-1").long(typ)
}

func validMovement() enc { return movement(0).long(5).long(0).long(0).long(t0) }

// wantDecodeErr decodes b with c and checks the error wraps target.
func wantDecodeErr[T any](t *testing.T, c *Codec[T], b []byte, target error) *DecodeError {
	t.Helper()
	var v T
	err := c.Decode(b, &v)
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Decode(% x) = %v, want a *DecodeError", b, err)
	}
	if !errors.Is(err, target) {
		t.Fatalf("Decode(% x) = %v, want %v", b, err, target)
	}
	if de.Schema != c.Name() {
		t.Fatalf("DecodeError.Schema = %q", de.Schema)
	}
	return de
}

func TestHandMadeMovementIsValid(t *testing.T) {
	var v StockMovement
	if err := StockMovements.Decode(validMovement(), &v); err != nil {
		t.Fatal(err)
	}
	if v.MovementID != "m-1" || v.Type != Receipt || v.Qty != 5 || v.OccurredAt != t0 {
		t.Fatalf("%+v", v)
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	forEachSample(t, func(t *testing.T, c anyCodec, v any) {
		b, _ := c.encode(v)
		for i := range len(b) {
			_, err := c.decode(b[:i])
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut at %d of %d: %v", i, len(b), err)
			}
		}
	})
}

func TestTrailingBytes(t *testing.T) {
	forEachSample(t, func(t *testing.T, c anyCodec, v any) {
		b, _ := c.encode(v)
		for _, tail := range [][]byte{{0}, {2}, []byte("xyz"), b} {
			if _, err := c.decode(append(bytes.Clone(b), tail...)); !errors.Is(err, ErrTrailingBytes) {
				t.Fatalf("tail % x: %v", tail, err)
			}
		}
	})
}

func TestBadEnumIndex(t *testing.T) {
	tail := func(e enc) enc { return e.long(5).long(0).long(0).long(t0) }
	for _, i := range []int64{8, 9, 127, math.MaxInt32, -1, math.MinInt32} {
		de := wantDecodeErr(t, StockMovements, tail(movement(i)), ErrUnknownSymbol)
		if de.Field != "type" {
			t.Errorf("index %d: Field = %q, want type", i, de.Field)
		}
	}
	// An index over 32 bits is not even an int.
	wantDecodeErr(t, StockMovements, tail(movement(1<<40)), ErrMalformed)
	// The last symbol is fine.
	var v StockMovement
	if err := StockMovements.Decode(tail(movement(7)), &v); err != nil || v.Type != Damage {
		t.Fatalf("%v %+v", err, v)
	}
}

func TestNegativeLength(t *testing.T) {
	wantDecodeErr(t, StockMovements, enc{}.long(-1).raw('x'), ErrMalformed)
	wantDecodeErr(t, StockMovements, enc{}.str("m").long(math.MinInt64), ErrMalformed)
}

func TestHugeLengths(t *testing.T) {
	for _, n := range []int64{MaxStringBytes + 1, 1 << 31, 1 << 62, math.MaxInt64} {
		wantDecodeErr(t, StockMovements, enc{}.long(n).raw('x'), ErrTooLarge)
	}
	// A length within limits but past the end is truncation.
	wantDecodeErr(t, StockMovements, enc{}.long(MaxStringBytes).raw('x'), ErrTruncated)
	// The longest string is fine, one more byte is not, on both sides.
	v := stockMovementSamples[0]
	v.MovementID = strings.Repeat("m", MaxStringBytes)
	b, err := StockMovements.Encode(&v)
	if err != nil {
		t.Fatal(err)
	}
	var got StockMovement
	if err := StockMovements.Decode(b, &got); err != nil || got.MovementID != v.MovementID {
		t.Fatal(err)
	}
	v.MovementID += "m"
	if _, err := StockMovements.Encode(&v); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode of a too long string: %v", err)
	}
}

func TestHugeCounts(t *testing.T) {
	channel := func(count ...int64) enc {
		e := enc{}.str("c")
		for _, c := range count {
			e = e.long(c)
		}
		return e
	}
	wantDecodeErr(t, Channels, channel(MaxItems+1), ErrTooLarge)
	wantDecodeErr(t, Channels, channel(1<<60), ErrTooLarge)
	wantDecodeErr(t, Channels, channel(math.MaxInt64), ErrTooLarge)
	wantDecodeErr(t, Channels, channel(-(1<<60), 5), ErrMalformed) // size 5 > bytes left
	wantDecodeErr(t, Channels, channel(math.MinInt64, 0), ErrMalformed)
	// Several blocks add up.
	many := channel(MaxItems)
	for range MaxItems {
		many = many.str("")
	}
	many = many.long(1).str("").long(0)
	wantDecodeErr(t, Channels, many, ErrTooLarge)
	// A second count that would overflow the sum.
	wantDecodeErr(t, Channels, channel(1).str("a").long(math.MaxInt64), ErrTooLarge)
	wantDecodeErr(t, Channels, channel(1).str("a").long(-math.MaxInt64), ErrTruncated) // no size
	// A count the bytes cannot hold is refused before allocating.
	wantDecodeErr(t, Channels, channel(50_000).str("x"), ErrTruncated)
	wantDecodeErr(t, AtsUpdates, enc{}.str("s").long(1).long(1).long(0).long(MaxItems).raw(make([]byte, 64)...), ErrTruncated)
}

// TestHostileAllocation checks that small hostile inputs cannot make the
// decoder allocate much.
func TestHostileAllocation(t *testing.T) {
	inputs := [][]byte{
		enc{}.str("s").long(1).long(1).long(0).long(MaxItems).raw(make([]byte, 200)...), // AtsUpdate nodes
		enc{}.str("s").long(1).long(1).long(0).long(-MaxItems).long(200).raw(make([]byte, 200)...),
		enc{}.str("s").long(1).long(1).long(MaxItems).raw(make([]byte, 200)...), // channels
		enc{}.long(MaxStringBytes).raw(make([]byte, 100)...),
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		for _, b := range inputs {
			var v AtsUpdate
			if err := AtsUpdates.Decode(b, &v); err == nil {
				t.Fatalf("% x decoded", b)
			}
		}
	}
	runtime.ReadMemStats(&after)
	// About 300 bytes: the error messages.
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 400; perCall > 2048 {
		t.Fatalf("%d bytes allocated per hostile decode", perCall)
	}
}

func TestVarints(t *testing.T) {
	tail := func(qty ...byte) enc { return movement(0).raw(qty...).long(0).long(0).long(t0) }
	wantDecodeErr(t, StockMovements, tail(0x80, 0x00), ErrMalformed)                       // 0, two bytes
	wantDecodeErr(t, StockMovements, tail(0x82, 0x80, 0x00), ErrMalformed)                 // 1, three bytes
	wantDecodeErr(t, StockMovements, tail(bytes.Repeat([]byte{0xff}, 9)...), ErrMalformed) // ten bytes, the last 0x00
	wantDecodeErr(t, StockMovements, tail(append(bytes.Repeat([]byte{0xff}, 9), 0x02)...), ErrMalformed)
	wantDecodeErr(t, StockMovements, tail(bytes.Repeat([]byte{0xff}, 11)...), ErrMalformed)
	// The longest valid varints are fine.
	for _, q := range []int64{math.MinInt64, math.MaxInt64} {
		var v StockMovement
		if err := StockMovements.Decode(tail(appendLong(nil, q)...), &v); err != nil || v.Qty != q {
			t.Fatalf("qty %d: %v %d", q, err, v.Qty)
		}
	}
}

// node returns Node bytes up to and including the given tail fields.
func nodeBytes(active byte, capacity int64, keys ...string) enc {
	e := enc{}.str("n").long(0).str("DE").double(0).double(0).raw(active, 0, 0).long(capacity).long(0).long(0)
	if len(keys) > 0 {
		e = e.long(int64(len(keys)))
		for _, k := range keys {
			e = e.str(k).long(1)
		}
	}
	return e.long(0)
}

func TestIntBoolAndMap(t *testing.T) {
	var v Node
	if err := Nodes.Decode(nodeBytes(1, math.MaxInt32), &v); err != nil || v.DailyCapacity != math.MaxInt32 || !v.Active {
		t.Fatalf("%v %+v", err, v)
	}
	wantDecodeErr(t, Nodes, nodeBytes(1, math.MaxInt32+1), ErrMalformed)
	wantDecodeErr(t, Nodes, nodeBytes(1, math.MinInt32-1), ErrMalformed)
	de := wantDecodeErr(t, Nodes, nodeBytes(2, 0), ErrMalformed)
	if de.Field != "active" {
		t.Errorf("Field = %q", de.Field)
	}
	// Keys in any order are accepted; repeated keys are not.
	if err := Nodes.Decode(nodeBytes(0, 0, "b", "a", "c"), &v); err != nil || len(v.SKUSafetyStock) != 3 {
		t.Fatalf("%v %+v", err, v)
	}
	wantDecodeErr(t, Nodes, nodeBytes(0, 0, "a", "a"), ErrMalformed)
	wantDecodeErr(t, Nodes, nodeBytes(0, 0, "b", "a", "b"), ErrMalformed)
	wantDecodeErr(t, Nodes, nodeBytes(0, 0, "a", "b", "a"), ErrMalformed)
	wantDecodeErr(t, Nodes, nodeBytes(0, 0, "\xff"), ErrMalformed)
}

func TestUnionIndex(t *testing.T) {
	for _, i := range []int64{2, 3, -1, 1 << 40} {
		de := wantDecodeErr(t, StockMovements, movement(0).long(5).long(i).str("o"), ErrMalformed)
		if de.Field != "order_id" {
			t.Errorf("Field = %q", de.Field)
		}
	}
}

func TestUTF8(t *testing.T) {
	for _, s := range []string{"\xff", "a\xc3", "\xed\xa0\x80"} { // bad byte, cut rune, surrogate
		wantDecodeErr(t, StockMovements, enc{}.str("m").str(s).str("n").long(0).long(1).long(0).long(0).long(0), ErrMalformed)
		v := stockMovementSamples[0]
		v.SKU = s
		_, err := StockMovements.Encode(&v)
		var ee *EncodeError
		if !errors.As(err, &ee) || !errors.Is(err, ErrMalformed) || ee.Field != "sku" {
			t.Fatalf("Encode(%q): %v", s, err)
		}
	}
}

func TestEncodeBadEnum(t *testing.T) {
	v := stockMovementSamples[0]
	for _, typ := range []MovementType{"", "receipt", "NOPE"} {
		v.Type = typ
		_, err := StockMovements.Encode(&v)
		var ee *EncodeError
		if !errors.As(err, &ee) || !errors.Is(err, ErrUnknownSymbol) || ee.Schema != StockMovements.Name() {
			t.Fatalf("Encode with type %q: %v", typ, err)
		}
	}
}

func TestFieldPath(t *testing.T) {
	v := atsUpdateSamples[1]
	b, _ := AtsUpdates.Encode(&v)
	// Corrupt the first byte of the second node's id length.
	i := bytes.Index(b, []byte("WH-1")) - 1
	b[i] = 0x01 // length -1
	de := wantDecodeErr(t, AtsUpdates, b, ErrMalformed)
	if de.Field != "nodes[1].node_id" {
		t.Fatalf("Field = %q, error %v", de.Field, de)
	}
	if !strings.Contains(de.Error(), "io.invroute.AtsUpdate field nodes[1].node_id: schemas: malformed Avro") {
		t.Fatalf("Error() = %q", de.Error())
	}
}

// TestOtherWriters checks that sized, split blocks and unsorted maps, as
// other Avro writers produce them, decode and re-encode canonically.
func TestOtherWriters(t *testing.T) {
	hambaDefault := avro.Config{BlockLength: 7}.Freeze() // sized blocks of 7 items
	for _, c := range []struct {
		v    any
		conv func(b []byte) (any, []byte, error)
	}{
		{&channelSamples[2], func(b []byte) (any, []byte, error) {
			var v Channel
			err := Channels.Decode(b, &v)
			out, _ := Channels.Encode(&v)
			return &v, out, err
		}},
		{&atsUpdateSamples[1], func(b []byte) (any, []byte, error) {
			var v AtsUpdate
			err := AtsUpdates.Decode(b, &v)
			out, _ := AtsUpdates.Encode(&v)
			return &v, out, err
		}},
		{&nodeSamples[1], func(b []byte) (any, []byte, error) {
			var v Node
			err := Nodes.Decode(b, &v)
			out, _ := Nodes.Encode(&v)
			return &v, out, err
		}},
	} {
		var schema avro.Schema
		var want []byte
		switch v := c.v.(type) {
		case *Channel:
			schema, want = Channels.schema, must(Channels.Encode(v))
		case *AtsUpdate:
			schema, want = AtsUpdates.schema, must(AtsUpdates.Encode(v))
		case *Node:
			schema, want = Nodes.schema, must(Nodes.Encode(v))
		}
		b, err := hambaDefault.Marshal(schema, c.v)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(b, want) {
			t.Fatalf("%T: the other writer wrote canonical bytes; the test tests nothing", c.v)
		}
		got, out, err := c.conv(b)
		if err != nil {
			t.Fatalf("%T: %v", c.v, err)
		}
		if !equalValues(c.v, got) || !bytes.Equal(out, want) {
			t.Fatalf("%T: decoded %+v, re-encoded % x, want % x", c.v, got, out, want)
		}
	}
	// A sized block whose size does not match its items is refused.
	b := enc{}.str("c").long(-2).long(5).str("a").str("b").long(0).long(0).long(0).long(0).long(0).long(0)
	wantDecodeErr(t, Channels, b, ErrMalformed)
	// Split blocks are fine.
	var v Channel
	b = enc{}.str("c").long(1).str("a").long(1).str("b").long(0).long(0).long(0).long(0).long(0).long(0)
	if err := Channels.Decode(b, &v); err != nil || len(v.Nodes) != 2 || v.Nodes[1] != "b" {
		t.Fatalf("%v %+v", err, v)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestMaxRecordBytes(t *testing.T) {
	defer func(n int) { MaxRecordBytes = n }(MaxRecordBytes)
	v := skuStateSamples[1]
	b, _ := SKUStates.Encode(&v)
	MaxRecordBytes = len(b)
	var got SKUState
	if err := SKUStates.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	MaxRecordBytes = len(b) - 1
	wantDecodeErr(t, SKUStates, b, ErrTooLarge)
	if _, err := SKUStates.Encode(&v); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode: %v", err)
	}
}

func TestEmpty(t *testing.T) {
	for _, b := range [][]byte{nil, {}} {
		wantDecodeErr(t, StockMovements, b, ErrTruncated)
		var v StockMovement
		if err := StockMovements.DecodeInput(b, &v, SchemaIDs{1}); !errors.Is(err, ErrTruncated) {
			t.Fatalf("DecodeInput(%v): %v", b, err)
		}
	}
}

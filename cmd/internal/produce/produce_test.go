package produce

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

const sample = `{"kind": "node", "node_id": "W-PAR", "type": "WAREHOUSE", "country": "FR", "lat": 48.86, "lon": 2.35, "active": true, "ship_enabled": true, "daily_capacity": 100, "sku_safety_stock": {"SKU-1": 3}}
{"kind": "movement", "movement_id": "m1", "sku": "SKU-1", "node_id": "W-PAR", "type": "RECEIPT", "qty": 10, "occurred_at": "2026-11-27T10:00:00Z"}
{"kind": "order", "order_id": "o1", "type": "PLACED", "channel_id": "web", "policy": "SHIP_AVAILABLE", "priority": "RUSH",
 "ship_to": {"country": "FR", "postal_code": "75001", "lat": 48.86, "lon": 2.35}, "lines": [{"line_id": "1", "sku": "SKU-1", "qty": 2, "unit_price_cents": 1999}]}
`

// TestProduceReadBack produces a node, a movement and an order given in
// JSON through Main (flags as `invroute produce` takes them) and reads
// them back from the topics, decoded, with the keys the engine expects.
func TestProduceReadBack(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	o := app.Defaults()
	o.Brokers, o.TopicPrefix, o.Partitions, o.Replication = brokers, prefix, 3, 1
	if _, err := app.CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Main(context.Background(), []string{"--brokers", brokers, "--topic-prefix", prefix}, strings.NewReader(sample), &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], prefix+"nodes[") || !strings.Contains(lines[1], "key=SKU-1 (line 2)") ||
		!strings.Contains(lines[2], "key=o1 (line 3)") {
		t.Fatalf("output:\n%s", out.String())
	}
	t.Logf("output:\n%s", out.String())

	got := map[string]*kgo.Record{}
	testkit.ReadToEnd(t, brokers, func(r *kgo.Record) { got[strings.TrimPrefix(r.Topic, prefix)] = r },
		prefix+"nodes", prefix+"stock-movements", prefix+"orders")
	if len(got) != 3 {
		t.Fatalf("read back %d topics, want 3", len(got))
	}
	var n schemas.Node
	if err := schemas.Nodes.Decode(got["nodes"].Value, &n); err != nil {
		t.Fatal(err)
	}
	if string(got["nodes"].Key) != "W-PAR" || n.NodeID != "W-PAR" || n.Type != schemas.Warehouse || !n.Active || !n.ShipEnabled ||
		n.PickupEnabled || n.Lat != 48.86 || n.DailyCapacity != 100 || n.SKUSafetyStock["SKU-1"] != 3 {
		t.Errorf("node: key %s %+v", got["nodes"].Key, n)
	}
	var m schemas.StockMovement
	if err := schemas.StockMovements.Decode(got["stock-movements"].Value, &m); err != nil {
		t.Fatal(err)
	}
	if string(got["stock-movements"].Key) != "SKU-1" || m.MovementID != "m1" || m.Type != schemas.Receipt || m.Qty != 10 ||
		m.OccurredAt != time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli() || m.OrderID != nil {
		t.Errorf("movement: key %s %+v", got["stock-movements"].Key, m)
	}
	var ev schemas.OrderEvent
	if err := schemas.OrderEvents.Decode(got["orders"].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if string(got["orders"].Key) != "o1" || ev.Type != schemas.EventPlaced || ev.Priority != schemas.PriorityRush ||
		ev.CustomerTier != schemas.TierStandard || ev.DeliveryMethod != schemas.DeliveryShip || ev.Policy != schemas.ShipAvailable ||
		ev.ShipTo == nil || ev.ShipTo.PostalCode != "75001" || len(ev.Lines) != 1 || ev.Lines[0].UnitPriceCents != 1999 ||
		ev.PlacedAt == 0 || ev.PlacedAt != ev.OccurredAt {
		t.Errorf("order: key %s %+v", got["orders"].Key, ev)
	}

	// -q prints a summary; a JSON array works as well as lines; a node
	// deletion is a tombstone.
	out.Reset()
	arr := `[{"kind": "channels", "channel_id": "web", "node_types": ["WAREHOUSE"]},
	{"kind": "node", "node_id": "W-PAR", "delete": true}]`
	if err := Main(context.Background(), []string{"-q", "--brokers", brokers, "--topic-prefix", prefix}, strings.NewReader(arr), &out); err != nil {
		t.Fatal(err)
	}
	if want := "produced 2 records: " + prefix + "channels 1, " + prefix + "nodes 1\n"; out.String() != want {
		t.Errorf("-q output %q, want %q", out.String(), want)
	}
	var tomb *kgo.Record
	testkit.ReadToEnd(t, brokers, func(r *kgo.Record) { tomb = r }, prefix+"nodes")
	if tomb == nil || string(tomb.Key) != "W-PAR" || tomb.Value != nil {
		t.Errorf("last node record %+v, want a tombstone of W-PAR", tomb)
	}
}

// TestParseErrors: every kind of bad input is refused with a message that
// names the line (and the field).
func TestParseErrors(t *testing.T) {
	good := `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"RECEIPT","qty":1}`
	for _, c := range []struct{ name, in, want string }{
		{"empty", "  \n", "no events"},
		{"syntax", good + "\n{\"kind\": \"movement\",,}", "line 2: bad JSON"},
		{"truncated", good + "\n{\"kind\": \"movement\"", "line 2: bad JSON: unexpected end"},
		{"not an object", good + "\n42", "line 2: an event must be a JSON object"},
		{"no kind", `{"sku":"A"}`, `line 1: the event has no "kind"`},
		{"unknown kind", "\n\n" + `{"kind":"shipment"}`, `line 3: unknown kind "shipment"`},
		{"unknown field", good + "\n" + `{"kind":"movement","movement_id":"m2","sku":"A",` + "\n" + `"node":"W","type":"RECEIPT","qty":1}`,
			"line 3: movement: field node: unknown field"},
		{"unknown nested field", `{"kind":"order","order_id":"o","type":"PLACED","channel_id":"c","policy":"SHIP_COMPLETE","lines":[{"line_id":"1","sku":"A","qty":1,"price":3}],"ship_to":{"country":"FR","postal_code":"1","lat":1,"lon":1}}`,
			"field lines[0].price: unknown field"},
		{"unknown address field", `{"kind":"order","order_id":"o","type":"PLACED","channel_id":"c","policy":"SHIP_COMPLETE","lines":[{"line_id":"1","sku":"A","qty":1}],"ship_to":{"city":"Paris"}}`,
			"field ship_to.city: unknown field"},
		{"bad enum", `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"RECIEPT","qty":1}`,
			`field type: "RECIEPT" is not one of RECEIPT, ADJUSTMENT`},
		{"bad enum in list", `{"kind":"channel","channel_id":"c","node_types":["DEPOT"]}`, `field node_types[0]: "DEPOT" is not one of`},
		{"wrong type", `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"RECEIPT","qty":"1"}`,
			`field qty: expected an integer, got the string "1"`},
		{"fraction", `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"RECEIPT","qty":1.5}`, "field qty: 1.5 is not an integer"},
		{"int32 range", `{"kind":"node","node_id":"N","type":"STORE","daily_capacity":3000000000}`, "field daily_capacity: 3000000000 is not a 32-bit integer"},
		{"bad time", `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"RECEIPT","qty":1,"occurred_at":"yesterday"}`,
			`field occurred_at: "yesterday" is not an RFC 3339 time`},
		{"twice", `{"kind":"movement","movement_id":"m1","movement_id":"m2"}`, "field movement_id: set twice"},
		{"missing", `{"kind":"movement","movement_id":"m1","sku":"A","type":"RECEIPT"}`, "line 1: movement: missing field node_id, qty"},
		{"invalid qty", `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"SHIPMENT","qty":0}`, "SHIPMENT qty must be in [1, 1000000000], got 0"},
		{"placed without policy", `{"kind":"order","order_id":"o","type":"PLACED","channel_id":"c","lines":[{"line_id":"1","sku":"A","qty":1}],"ship_to":{"country":"FR","postal_code":"1","lat":1,"lon":1}}`,
			"a PLACED order needs policy"},
		{"ship without ship_to", `{"kind":"order","order_id":"o","type":"PLACED","channel_id":"c","policy":"SHIP_COMPLETE","lines":[{"line_id":"1","sku":"A","qty":1}]}`,
			"a SHIP order needs ship_to"},
		{"delete a movement", `{"kind":"movement","delete":true,"movement_id":"m1"}`, "movement events cannot be deleted"},
		{"delete with fields", `{"kind":"node","delete":true,"node_id":"N","type":"STORE"}`, "field type: a deletion has only kind, delete and node_id"},
		{"delete a string", `{"kind":"node","node_id":"W-PAR","type":"WAREHOUSE","delete":"true"}`, `field delete: expected a bool, got string`},
		{"delete a number", `{"kind":"node","node_id":"W-PAR","type":"WAREHOUSE","delete":1}`, `field delete: expected a bool, got number`},
		{"kind twice", `{"kind":"node","node_id":"W-PAR","type":"WAREHOUSE","kind":1}`, `field kind: set twice`},
		{"deletion id twice", `{"kind":"node","delete":true,"node_id":"W-PAR","node_id":"W-BER"}`, "field node_id: set twice"},
		{"delete twice", `{"kind":"node","delete":false,"delete":true,"node_id":"W-PAR"}`, "field delete: set twice"},
		{"after array", `[` + good + `] {}`, "more input after the JSON array"},
		{"feedback qty", `{"kind":"feedback","feedback_id":"f","order_id":"o","shipment_id":"o/1","node_id":"W","line_id":"1","type":"REJECTED","qty_short":0}`,
			"qty_short must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			evs, err := Parse([]byte(c.in), time.Now())
			if err == nil {
				t.Fatalf("no error; parsed %d events", len(evs))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestParseKinds: every kind parses to its topic and key, and an enum
// table entry is a symbol the codec accepts.
func TestParseKinds(t *testing.T) {
	in := `{"kind":"movement","movement_id":"m1","sku":"A","node_id":"W","type":"SHIPMENT","qty":1,"order_id":"o","line_id":"1","occurred_at":1700000000000}
{"kind":"node","node_id":"N","type":"STORE","pickup_enabled":true}
{"kind":"channel","channel_id":"c","ship_countries":["FR"],"buffer_percent":10}
{"kind":"order","order_id":"o","type":"CANCELLED","line_ids":["1"],"reason":"customer"}
{"kind":"fulfillment-feedback","feedback_id":"f","order_id":"o","shipment_id":"o/1","node_id":"W","line_id":"1","type":"SHORT_PICKED","qty_shipped":1,"qty_short":1}
{"kind":"order","order_id":"p","type":"PLACED","channel_id":"pos","policy":"SHIP_COMPLETE","delivery_method":"PICKUP","pickup_node_id":"N","placed_at":"2026-01-02T03:04:05.5Z","lines":[{"line_id":"1","sku":"A","qty":1}]}`
	evs, err := Parse([]byte(in), time.UnixMilli(1_800_000_000_000)) // after every time given (the engine refuses times over an hour past their record's)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ topic, key string }{{"stock-movements", "A"}, {"nodes", "N"}, {"channels", "c"}, {"orders", "o"},
		{"fulfillment-feedback", "o"}, {"orders", "p"}}
	if len(evs) != len(want) {
		t.Fatalf("%d events", len(evs))
	}
	for i, w := range want {
		if evs[i].Topic != w.topic || evs[i].Key != w.key || evs[i].Line != i+1 || len(evs[i].Value) == 0 {
			t.Errorf("event %d: %s %s line %d, want %s %s line %d", i, evs[i].Topic, evs[i].Key, evs[i].Line, w.topic, w.key, i+1)
		}
	}
	m := evs[0].Decoded.(*schemas.StockMovement)
	if m.OccurredAt != 1700000000000 || m.OrderID == nil || *m.OrderID != "o" {
		t.Errorf("movement %+v", m)
	}
	c := evs[3].Decoded.(*schemas.OrderEvent)
	if c.OccurredAt != 1_800_000_000_000 || c.Policy != schemas.ShipComplete || c.Reason != "customer" {
		t.Errorf("cancel %+v", c)
	}
	p := evs[5].Decoded.(*schemas.OrderEvent)
	if p.PlacedAt != time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC).UnixMilli() || p.PickupNodeID == nil || *p.PickupNodeID != "N" {
		t.Errorf("pickup order %+v", p)
	}
}

// TestEnumsMatchSchemas: the symbols produce accepts are those of the Avro
// schemas (every enum of every .avsc, by name).
func TestEnumsMatchSchemas(t *testing.T) {
	files, err := filepath.Glob("../../../schemas/avro/*.avsc")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	found := map[string][]string{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["type"] == "enum" {
				var syms []string
				for _, s := range v["symbols"].([]any) {
					syms = append(syms, s.(string))
				}
				found[v["name"].(string)] = syms
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		walk(v)
	}
	for typ, syms := range enums {
		if !slices.Equal(found[typ.Name()], syms) {
			t.Errorf("enum %s: produce accepts %v, the schemas say %v", typ.Name(), syms, found[typ.Name()])
		}
	}
	if len(enums) < 8 {
		t.Errorf("only %d enums known", len(enums))
	}
}

// TestProduceErrors: a bad file produces nothing, an unknown topic and a
// broker that does not answer fail within the timeout with a clear
// message.
func TestProduceErrors(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	var out bytes.Buffer

	// Bad JSON on line 2: nothing is produced (the topics do not even
	// exist, so a produce would fail differently).
	err := Main(context.Background(), []string{"--brokers", brokers, "--topic-prefix", prefix},
		strings.NewReader(sample[:strings.Index(sample, "\n")+1]+"{oops}\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "stdin: line 2: bad JSON") || !strings.Contains(err.Error(), "nothing was produced") {
		t.Errorf("bad JSON: %v", err)
	}
	// Unknown topic: the topics were not created.
	err = Main(context.Background(), []string{"--brokers", brokers, "--topic-prefix", prefix, "--timeout", "10s"}, strings.NewReader(sample), &out)
	if err == nil || !strings.Contains(err.Error(), "does not exist (create the topics with invroute topics create)") {
		t.Errorf("unknown topic: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("output %q after failures", out.String())
	}
	// No broker: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	t0 := time.Now()
	err = Main(context.Background(), []string{"--brokers", dead, "--timeout", "2s"}, strings.NewReader(sample), &out)
	if err == nil || !strings.Contains(err.Error(), "no broker of "+dead+" answered within 2s") {
		t.Errorf("broker down: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("broker down: gave up after %v, want about 2s", d)
	}
	// No brokers configured at all, and a missing file.
	t.Setenv("KAFKA_BROKERS", "")
	t.Setenv("INVROUTE_BROKERS", "")
	if err := Main(context.Background(), nil, strings.NewReader(sample), &out); err == nil || !strings.Contains(err.Error(), "no brokers set") {
		t.Errorf("no brokers: %v", err)
	}
	if err := Main(context.Background(), []string{"/nonexistent/events.json", "--brokers", brokers}, nil, &out); err == nil ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

// TestFileArgument: the file may come before, between or after the flags;
// two files are a usage error.
func TestFileArgument(t *testing.T) {
	f := t.TempDir() + "/events.jsonl"
	if err := os.WriteFile(f, []byte(`{"kind":"node","node_id":"N","type":"STORE"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{f, "--brokers", "127.0.0.1:1", "--timeout", "1s"}, {"-q", f, "--brokers", "127.0.0.1:1", "--timeout", "1s"},
		{"--brokers", "127.0.0.1:1", "--timeout", "1s", f}} {
		// The file was read and parsed: the failure is the broker's.
		if err := Main(context.Background(), args, strings.NewReader("not read"), io.Discard); err == nil || !strings.Contains(err.Error(), "no broker of 127.0.0.1:1") {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := Main(context.Background(), []string{f, "--brokers", "127.0.0.1:1", f}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "one file at most") {
		t.Errorf("two files: %v", err)
	}
}

// TestParseRefusesWhatTheEngineRefuses: values the engine dead-letters (or
// its catalog skips) are errors here, as the README promises, through the
// engine's own checks. Found by review: produce had copies of some of them
// and let these five through.
func TestParseRefusesWhatTheEngineRefuses(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for name, c := range map[string]struct{ in, want string }{
		"ship_to lat out of range": {`{"kind":"order","order_id":"o1","type":"PLACED","channel_id":"web","policy":"SHIP_AVAILABLE","ship_to":{"country":"FR","postal_code":"1","lat":200,"lon":2},"lines":[{"line_id":"1","sku":"S","qty":1}]}`, "lat"},
		"order_id control char":    {`{"kind":"order","order_id":"o\u0001x","type":"PLACED","channel_id":"web","policy":"SHIP_AVAILABLE","ship_to":{"country":"FR","postal_code":"1","lat":48,"lon":2},"lines":[{"line_id":"1","sku":"S","qty":1}]}`, "control character"},
		"line qty above 1e9":       {`{"kind":"order","order_id":"o2","type":"PLACED","channel_id":"web","policy":"SHIP_AVAILABLE","ship_to":{"country":"FR","postal_code":"1","lat":48,"lon":2},"lines":[{"line_id":"1","sku":"S","qty":2000000000}]}`, "qty must be in"},
		"movement occurred_at +2h": {`{"kind":"movement","movement_id":"m1","sku":"S","node_id":"N","type":"RECEIPT","qty":1,"occurred_at":"2026-11-27T12:00:01Z"}`, "after the record's timestamp"},
		"node sku_safety_stock<0":  {`{"kind":"node","node_id":"N","type":"WAREHOUSE","active":true,"sku_safety_stock":{"S":-5}}`, "sku_safety_stock"},
		"feedback qty_short >1e9":  {`{"kind":"feedback","feedback_id":"f1","order_id":"o1","shipment_id":"o1/1","node_id":"W","line_id":"1","type":"REJECTED","qty_short":2000000000}`, "qty_short must be in"},
		"feedback_id of 300 bytes": {`{"kind":"feedback","feedback_id":"` + strings.Repeat("x", 300) + `","order_id":"o1","shipment_id":"o1/1","node_id":"W","line_id":"1","type":"REJECTED","qty_short":1}`, "feedback_id of 300 bytes"},
		"CANCELLED line_id 300 B":  {`{"kind":"order","order_id":"o1","type":"CANCELLED","line_ids":["` + strings.Repeat("x", 300) + `"]}`, "a line_id of 300 bytes"},
		"CANCELLED 501 line_ids":   {`{"kind":"order","order_id":"o1","type":"CANCELLED","line_ids":[` + strings.Repeat(`"1",`, 500) + `"1"]}`, "501 line_ids"},
		"ADDRESS_CHANGED lon 500":  {`{"kind":"order","order_id":"o1","type":"ADDRESS_CHANGED","ship_to":{"country":"FR","postal_code":"1","lat":48,"lon":500}}`, "lon"},
	} {
		if _, err := Parse([]byte(c.in), now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, c.want)
		}
	}
}

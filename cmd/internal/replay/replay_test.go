package replay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	paris  = schemas.Address{Country: "FR", PostalCode: "75001", Lat: 48.86, Lon: 2.35}
	berlin = schemas.Address{Country: "DE", PostalCode: "10117", Lat: 52.52, Lon: 13.40}
)

type testOrder struct {
	id     string
	to     schemas.Address
	policy schemas.FulfillmentPolicy
	lines  map[string]int64 // sku -> qty, lines numbered in sku order
}

func (o testOrder) event() schemas.OrderEvent {
	ev := schemas.OrderEvent{OrderID: o.id, Type: schemas.EventPlaced, ChannelID: "web", CustomerID: "c", CustomerTier: schemas.TierStandard,
		Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, ShipTo: &o.to, Policy: o.policy, LineIDs: []string{}}
	for i, sku := range []string{"A", "B", "C"} {
		if q := o.lines[sku]; q > 0 {
			ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: string(rune('1' + i)), SKU: sku, Qty: q})
		}
	}
	return ev
}

// The scenario: A at Paris and Berlin, B only at Paris, C only at Berlin;
// six orders, five to Paris and one to Berlin.
var (
	scenarioStock = testkit.Stock{"A": {"W-PAR": 10, "W-BER": 10}, "B": {"W-PAR": 10}, "C": {"W-BER": 10}}
	scenario      = []testOrder{
		{"o1", paris, schemas.ShipAvailable, map[string]int64{"A": 1}},
		{"o2", paris, schemas.ShipAvailable, map[string]int64{"A": 1, "B": 1}},
		{"o3", paris, schemas.ShipAvailable, map[string]int64{"B": 1, "C": 1}},
		{"o4", paris, schemas.ShipComplete, map[string]int64{"C": 2}},
		{"o5", paris, schemas.ShipComplete, map[string]int64{"B": 2}},
		{"o6", berlin, schemas.ShipAvailable, map[string]int64{"A": 1, "C": 1}},
	}
)

// waitReserved waits (a minute at most) until the router's ats table shows,
// at every node, the units the decisions routed from it as reserved: the
// next order then plans on the stock these left.
func waitReserved(t *testing.T, eng *app.Engine, ds map[string][]schemas.RoutingDecision) {
	t.Helper()
	want := map[[2]string]int64{}
	for _, d := range ds {
		for _, s := range d[len(d)-1].Shipments {
			for _, l := range s.Lines {
				want[[2]string{l.SKU, s.NodeID}] += l.Qty
			}
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		behind := ""
		for k, n := range want {
			if st, _ := eng.Availability.Stock(k[0], k[1]); st.Reserved != n {
				behind = fmt.Sprintf("%s at %s: reserved %d, want %d", k[0], k[1], st.Reserved, n)
				break
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router's ats table never showed the decisions' reservations: %s", behind)
		}
	}
}

// TestReplayWhatIf records a history with the real engine (nodes, stock,
// six orders decided one after the other, so that no two plan on the same
// stock at once), then replays it with Paris deactivated. Under the
// current rules the replay agrees with every recorded decision; the
// alternative's split rate, backorders and distance are the ones worked
// out here by hand from the stock: without Paris, B cannot ship, A ships
// from Berlin, and no order splits.
func TestReplayWhatIf(t *testing.T) {
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix := testkit.Prefix(t)
	o := app.Defaults()
	o.Brokers, o.TopicPrefix, o.Group, o.InstanceID, o.StateDir = brokers, prefix, prefix+"inventory", "i1", t.TempDir()
	o.Partitions, o.Replication, o.CommitInterval = 3, 1, 50*time.Millisecond
	if _, err := app.CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	eng, err := app.NewEngine(o, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	cl := testkit.Client(t, brokers)
	testkit.SeedOrderNetwork(t, cl, prefix, scenarioStock)
	for deadline := time.Now().Add(60 * time.Second); ; {
		missing := 0
		for sku, nodes := range scenarioStock {
			for node, n := range nodes {
				if st, ok := eng.Availability.Stock(sku, node); !ok || st.OnHand != n {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router's ats table lacks %d stock records", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, so := range scenario {
		ev := so.event()
		testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "orders", Key: []byte(ev.OrderID), Value: testkit.Encode(t, schemas.OrderEvents, &ev)})
		waitReserved(t, eng, testkit.Decisions(t, brokers, prefix, i+1, time.Minute))
	}

	rules, err := ParseRules([]byte("nodes:\n  W-PAR: {active: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), o, rules, 10, 0, kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Print(&out, rep, "test rules"); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())

	// Worked out by hand. Paris -> Paris and Berlin -> Berlin are 0 km.
	d := math.Round(router.HaversineKm(52.52, 13.40, 48.86, 2.35)*10) / 10 // Berlin warehouse -> Paris
	costBer := 380 + int64(router.HaversineKm(52.52, 13.40, 48.86, 2.35)+0.5)
	// current: o1 PAR, o2 PAR, o3 PAR+BER (split), o4 BER, o5 PAR, o6 BER
	checkStats(t, "current", &rep.Current, statsWant{decided: 6, routed: 6, split: 1, shipments: 7, km: 2 * d,
		cost: 4*400 + 2*costBer + 380, backordered: 0, routedN: 6})
	checkStats(t, "recorded", &rep.Recorded, statsWant{decided: 6, routed: 6, split: 1, shipments: 7, km: 2 * d,
		cost: 4*400 + 2*costBer + 380, backordered: 0, routedN: 6})
	// alternative: o1 BER, o2 BER + B backordered, o3 BER + B backordered,
	// o4 BER, o5 backordered (2 x B), o6 BER
	checkStats(t, "alternative", &rep.Alternative, statsWant{decided: 6, routed: 5, split: 0, shipments: 5, km: 4 * d,
		cost: 4*costBer + 380, backordered: 4, routedN: 3, partial: 2, backorderedN: 1})
	if rep.Compared != 6 || rep.Agreed != 6 || rep.Agreement() != 1 {
		t.Errorf("agreement %d of %d, want 6 of 6; disagreements %+v", rep.Agreed, rep.Compared, rep.Disagreements)
	}
	if rep.Changed != 4 || len(rep.Changes) != 4 || rep.Changes[0].OrderID != "o1" || rep.Changes[3].OrderID != "o5" {
		t.Errorf("changed %d: %+v, want o1, o2, o3, o5", rep.Changed, rep.Changes)
	}
	if got, want := rep.Changes[3].Alternative, "BACKORDERED backordered[2x2]"; got != want {
		t.Errorf("o5 under the alternative: %q, want %q", got, want)
	}
	if n := rep.Alternative.PerNode["W-PAR"]; n != nil {
		t.Errorf("the alternative ships from the inactive W-PAR: %+v", n)
	}
	if n := rep.Current.PerNode["W-PAR"]; n == nil || n.Shipments != 4 || n.Units != 6 {
		t.Errorf("current W-PAR: %+v, want 4 shipments of 6 units", n)
	}
	for _, want := range []string{"split rate", "16.7%", "0.0%", "-16.7 pt", "agreement of the replay (current rules) with the recorded decisions: 6 of 6 orders (100.0%)",
		"orders decided differently under the alternative rules: 4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// The command: flags as `invroute replay` takes them.
	rf := t.TempDir() + "/rules.yaml"
	if err := writeFile(rf, "cents_per_km: 2\nnodes:\n  W-PAR:\n    active: false\n"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Main(context.Background(), []string{"--brokers", brokers, "--topic-prefix", prefix, "--rules", rf, "--top", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "cents_per_km 2,") || !strings.Contains(out.String(), "alternative rules: 4 (the first 2)") {
		t.Errorf("replay command output:\n%s", out.String())
	}
	out.Reset()
	if err := Main(context.Background(), []string{"--brokers", brokers, "--topic-prefix", "nosuch.", "--rules", rf}, &out); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing topics: %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

type statsWant struct {
	decided, routed, split, shipments int64
	km                                float64
	cost                              int64
	backordered                       int64
	routedN, partial, backorderedN    int64
}

func checkStats(t *testing.T, name string, s *Stats, w statsWant) {
	t.Helper()
	if s.Decided != w.decided || s.Routed != w.routed || s.Split != w.split || s.Shipments != w.shipments ||
		math.Abs(s.Km-w.km) > 0.01 || s.CostCents != w.cost || s.Backordered != w.backordered ||
		s.Status[schemas.DecisionRouted] != w.routedN || s.Status[schemas.DecisionPartiallyRouted] != w.partial ||
		s.Status[schemas.DecisionBackordered] != w.backorderedN {
		t.Errorf("%s: decided %d routed %d split %d shipments %d km %.1f cost %d backordered %d statuses %v;\nwant %+v",
			name, s.Decided, s.Routed, s.Split, s.Shipments, s.Km, s.CostCents, s.Backordered, s.Status, w)
	}
}

// TestReplayReadsAsTheEngine: the replay takes what the engine takes and
// skips what it skips: Confluent-framed records of the configured schema
// ids (schema_ids), and not a node its catalog refuses (negative
// sku_safety_stock). Found by review: the replay ignored schema_ids and
// counted every framed record as invalid.
func TestReplayReadsAsTheEngine(t *testing.T) {
	frame := func(id uint32, b []byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, b...)
	}
	ts := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	r := New(Settings{CentsPerKm: 1}, &Rules{}, 10)
	r.SetSchemaIDs(schemas.SchemaIDs{7})
	for i, id := range []uint32{7, 7, 8} { // 8: not configured
		m := schemas.StockMovement{MovementID: fmt.Sprint("m", i), SKU: "A", NodeID: "W", Type: schemas.Receipt, Qty: 1, OccurredAt: ts}
		b, err := schemas.StockMovements.Encode(&m)
		if err != nil {
			t.Fatal(err)
		}
		r.Record("stock-movements", []byte("A"), frame(id, b), ts)
	}
	n := schemas.Node{NodeID: "W", Type: schemas.Warehouse, Active: true, SKUSafetyStock: map[string]int32{"A": -5}}
	b, err := schemas.Nodes.Encode(&n)
	if err != nil {
		t.Fatal(err)
	}
	r.Record("nodes", []byte("W"), b, ts)
	// an order event the router refuses before it reads the order: more
	// line_ids than max_lines
	ev := testOrder{id: "o1", to: paris, policy: schemas.ShipAvailable, lines: map[string]int64{"A": 1}}.event()
	for i := range 501 {
		ev.LineIDs = append(ev.LineIDs, fmt.Sprint(i))
	}
	ob, err := schemas.OrderEvents.Encode(&ev)
	if err != nil {
		t.Fatal(err)
	}
	r.Record("orders", []byte("o1"), ob, ts)
	rep := r.Finish()
	if rep.Movements != 2 || rep.Invalid["stock-movements"] != 1 || rep.Invalid["nodes"] != 1 || rep.Invalid["orders"] != 1 {
		t.Errorf("movements %d, invalid %v; want 2 movements, 1 invalid movement (schema id 8), 1 invalid node, 1 invalid order", rep.Movements, rep.Invalid)
	}
	o := app.Defaults()
	o.SchemaIDs = "seven"
	if _, err := Run(context.Background(), o, &Rules{}, 10, 0); err == nil {
		t.Error("Run with bad schema_ids: no error")
	}
}

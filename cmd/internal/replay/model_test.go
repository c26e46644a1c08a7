package replay

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/schemas"
)

// feeder writes records straight into a Replay, one millisecond apart.
type feeder struct {
	t  *testing.T
	r  *Replay
	ts int64
}

func (f *feeder) rec(topic, key string, v []byte) {
	f.ts++
	f.r.Record(topic, []byte(key), v, f.ts)
}

func enc[T any](t *testing.T, c *schemas.Codec[T], v *T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *feeder) movement(id, sku, node string, ty schemas.MovementType, qty int64, order, line string) {
	m := schemas.StockMovement{MovementID: id, SKU: sku, NodeID: node, Type: ty, Qty: qty}
	if order != "" {
		m.OrderID, m.LineID = &order, &line
	}
	f.rec("stock-movements", sku, enc(f.t, schemas.StockMovements, &m))
}

func (f *feeder) order(id string, qty, price int64, policy schemas.FulfillmentPolicy) {
	ev := testOrder{id: id, to: paris, policy: policy, lines: map[string]int64{"A": qty}}.event()
	ev.Lines[0].UnitPriceCents = price
	f.rec("orders", id, enc(f.t, schemas.OrderEvents, &ev))
}

func (f *feeder) event(id string, ty schemas.OrderEventType) {
	ev := schemas.OrderEvent{OrderID: id, Type: ty, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{}}
	f.rec("orders", id, enc(f.t, schemas.OrderEvents, &ev))
}

// TestReplayModel drives the model record by record: daily capacity (and
// its return on a cancellation the same day), a shipment of an order line
// that the alternative routed elsewhere (the units leave where it holds
// them), the channel's order value hold and its release, duplicate
// movements and orders, and invalid records.
func TestReplayModel(t *testing.T) {
	rules, err := ParseRules([]byte(`nodes: {N1: {daily_capacity: 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := New(Settings{CentsPerKm: 1, VIPSafetyStock: true}, rules, 10)
	f := &feeder{t: t, r: r, ts: 20_000 * dayMillis}
	for _, n := range []schemas.Node{
		{NodeID: "N1", Type: schemas.Warehouse, Lat: paris.Lat, Lon: paris.Lon, Active: true, ShipEnabled: true, ShipmentCostCents: 100},
		{NodeID: "N2", Type: schemas.Warehouse, Lat: berlin.Lat, Lon: berlin.Lon, Active: true, ShipEnabled: true, ShipmentCostCents: 100},
	} {
		f.rec("nodes", n.NodeID, enc(t, schemas.Nodes, &n))
	}
	ch := schemas.Channel{ChannelID: "web", MaxOrderValueCents: 1000}
	f.rec("channels", "web", enc(t, schemas.Channels, &ch))
	f.movement("r1", "A", "N1", schemas.Receipt, 5, "", "")
	f.movement("r1", "A", "N1", schemas.Receipt, 5, "", "") // a WMS retry: applied once
	f.movement("r2", "A", "N2", schemas.Receipt, 5, "", "")
	f.movement("bad", "A", "N2", schemas.Shipment, 0, "", "") // invalid: skipped
	f.rec("orders", "junk", []byte{1, 2, 3})                  // undecodable: skipped

	f.order("p1", 1, 100, schemas.ShipAvailable) // both: N1 (the alternative's N1 takes its one shipment of the day)
	f.order("p2", 1, 100, schemas.ShipAvailable) // current N1; alternative: N1 is full -> N2
	f.event("p1", schemas.EventCancelled)        // the alternative's N1 gets its shipment back
	f.order("p3", 1, 100, schemas.ShipAvailable) // both N1: the alternative's N1 is full again
	// p2 ships from N1 as recorded: the current replay holds it there; the
	// alternative holds it at N2, so the unit leaves N2 in its world.
	f.movement("s1", "A", "N1", schemas.Shipment, 1, "p2", "1")
	if got := r.stock.onHand["A"]["N1"]; got != 4 {
		t.Fatalf("recorded on hand at N1 %d, want 4", got)
	}
	if st, _ := r.alt.Stock("A", "N2"); st.OnHand != 4 || st.Reserved != 0 {
		t.Errorf("alternative A@N2: %+v, want on hand 4 (p2 shipped from here), nothing reserved", st)
	}
	if st, _ := r.alt.Stock("A", "N1"); st.OnHand != 5 || st.Reserved != 1 {
		t.Errorf("alternative A@N1: %+v, want on hand 5, 1 reserved (p3)", st)
	}
	if st, _ := r.cur.Stock("A", "N1"); st.OnHand != 4 || st.Reserved != 1 {
		t.Errorf("current A@N1: %+v, want on hand 4, 1 reserved (p3)", st)
	}
	// p4 wants 5 whole: current: N1 has 3 free, N2 5 -> N2. Alternative:
	// N1 full for the day, N2 has only 4 -> backordered.
	f.order("p4", 5, 100, schemas.ShipComplete)
	// p5 is worth 2000 > the channel's 1000: ON_HOLD until RELEASED. Then
	// current: N1 (3 free); alternative: N1 full -> N2 (4 free).
	f.order("p5", 1, 2000, schemas.ShipAvailable)
	if len(r.cur.held) != 1 || len(r.alt.held) != 1 {
		t.Fatalf("held: %d and %d, want p5 in both", len(r.cur.held), len(r.alt.held))
	}
	f.event("p5", schemas.EventReleased)
	f.order("p2", 1, 100, schemas.ShipAvailable) // duplicate PLACED

	rep := r.Finish()
	if rep.MovementDuplicates != 1 || rep.Movements != 3 || rep.Invalid["stock-movements"] != 1 || rep.Invalid["orders"] != 1 ||
		rep.DuplicateOrders != 1 || rep.HeldCurrent != 0 || rep.HeldAlternative != 0 {
		t.Errorf("counts: movements %d dup %d invalid %v dup orders %d held %d/%d", rep.Movements, rep.MovementDuplicates, rep.Invalid,
			rep.DuplicateOrders, rep.HeldCurrent, rep.HeldAlternative)
	}
	var got []string
	for _, c := range rep.Changes {
		got = append(got, c.OrderID+": "+c.Current+" -> "+c.Alternative)
	}
	want := []string{
		"p2: ROUTED N1[1x1] -> ROUTED N2[1x1]",
		"p4: ROUTED N2[1x5] -> BACKORDERED backordered[1x5]",
		"p5: ROUTED N1[1x1] -> ROUTED N2[1x1]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || rep.Changed != 3 {
		t.Errorf("changes (%d):\n%s\nwant:\n%s", rep.Changed, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Current.Decided != 5 || rep.Alternative.Decided != 5 || rep.Alternative.Backordered != 5 || rep.OnlyReplayed != 5 || rep.Compared != 0 {
		t.Errorf("decided %d/%d, alternative backordered %d, only replayed %d, compared %d", rep.Current.Decided, rep.Alternative.Decided,
			rep.Alternative.Backordered, rep.OnlyReplayed, rep.Compared)
	}
}

// TestRecordedComparison: the first recorded decision of an order is
// compared, whether it comes before or after the replay's; later ones
// (re-plans) are not.
func TestRecordedComparison(t *testing.T) {
	r := New(Settings{CentsPerKm: 1}, &Rules{}, 10)
	f := &feeder{t: t, r: r, ts: 1000}
	n := schemas.Node{NodeID: "N1", Type: schemas.Warehouse, Lat: paris.Lat, Lon: paris.Lon, Active: true, ShipEnabled: true, ShipmentCostCents: 100}
	f.rec("nodes", "N1", enc(t, schemas.Nodes, &n))
	f.movement("r1", "A", "N1", schemas.Receipt, 5, "", "")
	dec := func(id string, node string) {
		d := schemas.RoutingDecision{OrderID: id, Status: schemas.DecisionRouted, Shipments: []schemas.RoutedShipment{{ShipmentID: id + "/1",
			NodeID: node, Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: 1}}}},
			Backordered: []schemas.OrderLine{}, Reasons: []string{}}
		f.rec("routing-decisions", id, enc(t, schemas.RoutingDecisions, &d))
	}
	dec("q1", "N1") // before its order (clock skew between topics)
	f.order("q1", 1, 0, schemas.ShipAvailable)
	f.order("q2", 1, 0, schemas.ShipAvailable)
	dec("q2", "N9") // disagrees
	dec("q2", "N1") // a later decision: not compared
	f.order("q3", 1, 0, schemas.ShipAvailable)
	rep := r.Finish()
	if rep.Compared != 2 || rep.Agreed != 1 || len(rep.Disagreements) != 1 || rep.Disagreements[0].OrderID != "q2" ||
		rep.Disagreements[0].Recorded != "ROUTED N9[1x1]" || rep.OnlyReplayed != 1 || rep.Recorded.Decided != 2 {
		t.Errorf("compared %d agreed %d disagreements %+v only replayed %d recorded %d", rep.Compared, rep.Agreed, rep.Disagreements,
			rep.OnlyReplayed, rep.Recorded.Decided)
	}
}

// TestParseRules: unknown keys and bad values are errors; a complete new
// node is added, an incomplete unknown one is reported.
func TestParseRules(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nodes:\n  W1: {actve: false}\n", "line 2: field actve not found"},
		{"cents_per_km: -1\n", "cents_per_km -1 must be a positive, finite number"},
		{"cents_per_km: 0\n", "cents_per_km 0 must be a positive, finite number"},
		{"cents_per_km: .nan\n", "cents_per_km NaN must be a positive, finite number"},
		{"cents_per_km: .inf\n", "cents_per_km +Inf must be a positive, finite number"},
		{"nodes: {W1: {type: DEPOT}}", `nodes.W1.type "DEPOT"`},
		{"nodes: {W1: {daily_capacity: -2}}", "nodes.W1.daily_capacity -2 must not be negative"},
		{"nodes: {W1: {remove: true, active: true}}", "nodes.W1: remove goes alone"},
		{"centsperkm: 1", "field centsperkm not found"},
	} {
		if _, err := ParseRules([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
	rules, err := ParseRules([]byte("nodes:\n  NEW: {type: STORE, lat: 48.8, lon: 2.3, shipment_cost_cents: 50}\n  GONE: {active: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := New(Settings{CentsPerKm: 1}, rules, 10)
	if n := r.alt.Node("NEW"); n == nil || !n.Active || !n.ShipEnabled || n.ShipmentCostCents != 50 || n.Type != schemas.Store {
		t.Errorf("added node %+v", n)
	}
	if r.cur.Node("NEW") != nil {
		t.Error("the current rules have the added node")
	}
	if rep := r.Finish(); len(rep.UnmatchedRules) != 1 || rep.UnmatchedRules[0] != "GONE" {
		t.Errorf("unmatched rules %v, want GONE", rep.UnmatchedRules)
	}
}

// TestExampleRules: the README's example rules file loads.
func TestExampleRules(t *testing.T) {
	r, err := LoadRules("../../../examples/replay-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r.CentsPerKm == nil || *r.CentsPerKm != 2 || r.Nodes["WH-FR-PAR"].Active == nil || *r.Nodes["WH-FR-PAR"].Active {
		t.Errorf("rules %+v", r)
	}
}

// TestLag: with a lag, a movement counts only that long after its
// timestamp.
func TestLag(t *testing.T) {
	for _, c := range []struct {
		lag  time.Duration
		want schemas.DecisionStatus
	}{{0, schemas.DecisionRouted}, {100 * time.Millisecond, schemas.DecisionBackordered}} {
		r := New(Settings{CentsPerKm: 1}, &Rules{}, 10)
		r.SetLag(c.lag)
		f := &feeder{t: t, r: r, ts: 1000}
		n := schemas.Node{NodeID: "N1", Type: schemas.Warehouse, Lat: paris.Lat, Lon: paris.Lon, Active: true, ShipEnabled: true}
		f.rec("nodes", "N1", enc(t, schemas.Nodes, &n))
		f.movement("r1", "A", "N1", schemas.Receipt, 5, "", "")
		f.ts += 50
		f.order("q1", 1, 0, schemas.ShipAvailable)
		rep := r.Finish()
		if rep.Current.Decided != 1 || rep.Current.Status[c.want] != 1 {
			t.Errorf("lag %v: %v, want q1 %s", c.lag, rep.Current.Status, c.want)
		}
		if st, _ := r.cur.Stock("A", "N1"); st.OnHand != 5 {
			t.Errorf("lag %v: on hand %d after Finish, want 5", c.lag, st.OnHand)
		}
	}
}

// TestCancelKeepsShippedShipmentCapacity: p1 ships lines 1 and 2 as one
// shipment from N1 (one shipment a day); line 1 ships, then line 2 is
// cancelled the same day. The router gives the capacity back only when a
// whole shipment goes, and p1's still holds line 1 (shipped): p2 is
// backordered, N1 has no shipment left.
func TestCancelKeepsShippedShipmentCapacity(t *testing.T) {
	r := New(Settings{CentsPerKm: 1}, &Rules{}, 10)
	f := &feeder{t: t, r: r, ts: 20_000 * dayMillis}
	n := schemas.Node{NodeID: "N1", Type: schemas.Warehouse, Lat: paris.Lat, Lon: paris.Lon, Active: true, ShipEnabled: true, DailyCapacity: 1}
	f.rec("nodes", "N1", enc(t, schemas.Nodes, &n))
	f.movement("r1", "A", "N1", schemas.Receipt, 5, "", "")
	f.movement("r2", "B", "N1", schemas.Receipt, 5, "", "")
	p1 := testOrder{id: "p1", to: paris, policy: schemas.ShipAvailable, lines: map[string]int64{"A": 1, "B": 1}}.event()
	f.rec("orders", "p1", enc(t, schemas.OrderEvents, &p1))
	f.movement("s1", "A", "N1", schemas.Shipment, 1, "p1", "1")
	cancel := schemas.OrderEvent{OrderID: "p1", Type: schemas.EventCancelled, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{"2"}}
	f.rec("orders", "p1", enc(t, schemas.OrderEvents, &cancel))
	f.order("p2", 1, 100, schemas.ShipAvailable)
	for _, s := range []*sim{r.cur, r.alt} {
		if left := s.ShipmentsLeft("N1"); left != 0 {
			t.Errorf("N1 has %d shipment(s) left, want 0", left)
		}
	}
	rep := r.Finish()
	if rep.Current.Decided != 2 || rep.Current.Status[schemas.DecisionRouted] != 1 || rep.Current.Status[schemas.DecisionBackordered] != 1 {
		t.Errorf("decisions %v, want p1 routed, p2 backordered", rep.Current.Status)
	}
}

// TestOrderValueSaturates: ten lines of 1e9 units at 1e9 cents are worth
// more than an int64 holds; the router's sum saturates and the order goes
// ON_HOLD (its channel takes at most 1000 cents); a wrapped sum would be
// negative and decide it.
func TestOrderValueSaturates(t *testing.T) {
	r := New(Settings{CentsPerKm: 1}, &Rules{}, 10)
	f := &feeder{t: t, r: r, ts: 20_000 * dayMillis}
	ch := schemas.Channel{ChannelID: "web", MaxOrderValueCents: 1000}
	f.rec("channels", "web", enc(t, schemas.Channels, &ch))
	ev := testOrder{id: "big", to: paris, policy: schemas.ShipAvailable}.event()
	for i := range 10 {
		ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(i + 1), SKU: fmt.Sprint("S", i), Qty: 1e9, UnitPriceCents: 1e9})
	}
	f.rec("orders", "big", enc(t, schemas.OrderEvents, &ev))
	rep := r.Finish()
	if rep.Invalid["orders"] != 0 || rep.HeldCurrent != 1 || rep.HeldAlternative != 1 || rep.Current.Decided != 0 {
		t.Errorf("invalid %d, held %d/%d, decided %d: want the order ON_HOLD in both", rep.Invalid["orders"], rep.HeldCurrent,
			rep.HeldAlternative, rep.Current.Decided)
	}
}

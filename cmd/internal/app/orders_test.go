package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// orderNet is the network of the order tests: three warehouses that ship,
// a store that takes pickups, three channels fed by every node.
var orderNet = []schemas.Node{
	{NodeID: "W-PAR", Type: schemas.Warehouse, Country: "FR", Lat: 48.86, Lon: 2.35, Active: true, ShipEnabled: true, ShipmentCostCents: 400},
	{NodeID: "W-BER", Type: schemas.Warehouse, Country: "DE", Lat: 52.52, Lon: 13.40, Active: true, ShipEnabled: true, ShipmentCostCents: 380},
	{NodeID: "W-MIL", Type: schemas.Warehouse, Country: "IT", Lat: 45.46, Lon: 9.19, Active: true, ShipEnabled: true, ShipmentCostCents: 420},
	{NodeID: "S-OPERA", Type: schemas.Store, Country: "FR", Lat: 48.87, Lon: 2.33, Active: true, PickupEnabled: true},
}

var orderChannels = []string{"amazon", "web", "pos"}

// startFull runs inventory and router until stop.
func startFull(t *testing.T, o Options) (*Engine, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	eng, err := NewEngine(o, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	return eng, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("engine did not stop within 60s")
		}
	}
}

func orderOptions(t *testing.T, brokers, prefix string) Options {
	o := testOptions(t, brokers, prefix)
	o.RouterGroup = prefix + "router"
	return o
}

func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func encode[T any](t *testing.T, c *schemas.Codec[T], v *T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedNetwork writes the nodes and channels, then receipts of stock
// (sku -> node -> units), and waits until the router's ats table shows it.
func seedNetwork(t *testing.T, cl *kgo.Client, eng *Engine, prefix string, stock map[string]map[string]int64) {
	t.Helper()
	for _, n := range orderNet {
		produce(t, cl, &kgo.Record{Topic: prefix + "nodes", Key: []byte(n.NodeID), Value: encode(t, schemas.Nodes, &n)})
	}
	for _, id := range orderChannels {
		c := schemas.Channel{ChannelID: id}
		produce(t, cl, &kgo.Record{Topic: prefix + "channels", Key: []byte(id), Value: encode(t, schemas.Channels, &c)})
	}
	var recs []*kgo.Record
	for sku, nodes := range stock {
		for node, n := range nodes {
			m := schemas.StockMovement{MovementID: "seed-" + sku + "-" + node, SKU: sku, NodeID: node, Type: schemas.Receipt, Qty: n}
			recs = append(recs, &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: encode(t, schemas.StockMovements, &m)})
		}
	}
	produce(t, cl, recs...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing := 0
		for sku, nodes := range stock {
			for node, n := range nodes {
				if st, ok := eng.Availability.Stock(sku, node); !ok || st.OnHand != n {
					missing++
				}
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router's ats table lacks %d (sku, node) stock records after 90s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decisions reads routing-decisions until want orders have one, or fails.
func decisions(t *testing.T, brokers, prefix string, want int, timeout time.Duration) map[string][]schemas.RoutingDecision {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := map[string][]schemas.RoutingDecision{}
		testkit.ReadToEnd(t, brokers, func(r *kgo.Record) {
			var d schemas.RoutingDecision
			if err := schemas.RoutingDecisions.Decode(r.Value, &d); err != nil {
				t.Fatalf("routing-decisions: %v", err)
			}
			got[d.OrderID] = append(got[d.OrderID], d)
		}, prefix+"routing-decisions")
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders decided after %v", len(got), want, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestNoOversell: thousands of concurrent orders from three channels for a
// few scarce SKUs. The units reserved never exceed the units in stock (per
// node, in every ATS record the inventory emitted), every order is decided
// exactly once, and what the final ATS shows reserved at each node is
// exactly what the decisions shipped from it.
func TestNoOversell(t *testing.T) {
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix := testkit.Prefix(t)
	o := orderOptions(t, brokers, prefix)
	eng, stop := startFull(t, o)
	defer stop()
	cl := testkit.Client(t, brokers)

	skus := []string{"SNEAKER-42", "SNEAKER-43", "JACKET-M", "HAT", "SCARF"}
	stock := map[string]map[string]int64{}
	supply := map[string]int64{}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, sku := range skus {
		stock[sku] = map[string]int64{}
		for _, n := range []string{"W-PAR", "W-BER", "W-MIL"} {
			q := int64(5 + rng.IntN(20))
			stock[sku][n] = q
			supply[sku] += q
		}
	}
	seedNetwork(t, cl, eng, prefix, stock)

	const orders = 2000
	var wg sync.WaitGroup
	for w := range 4 { // four producers, as from several channels at once
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			pcl := testkit.Client(t, brokers)
			var recs []*kgo.Record
			for i := w; i < orders; i += 4 {
				ev := schemas.OrderEvent{OrderID: fmt.Sprintf("o%05d", i), Type: schemas.EventPlaced,
					ChannelID: orderChannels[rng.IntN(len(orderChannels))], CustomerID: fmt.Sprint("c", rng.IntN(500)),
					CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
					ShipTo: &schemas.Address{Country: "FR", PostalCode: "75001", Lat: 43 + rng.Float64()*10, Lon: 1 + rng.Float64()*12},
					Policy: schemas.ShipComplete, LineIDs: []string{}}
				if rng.IntN(2) == 0 {
					ev.Policy = schemas.ShipAvailable
				}
				if rng.IntN(10) == 0 {
					ev.Priority = schemas.PriorityRush
				}
				for l, p := range rng.Perm(len(skus))[:1+rng.IntN(3)] {
					ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(l + 1), SKU: skus[p], Qty: 1 + int64(rng.IntN(2))})
				}
				b, err := schemas.OrderEvents.Encode(&ev)
				if err != nil {
					t.Error(err)
					return
				}
				recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(ev.OrderID), Value: b})
			}
			if err := pcl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ds := decisions(t, brokers, prefix, orders, 5*time.Minute)

	shipped := map[[2]string]int64{} // (sku, node) -> units in decisions
	outcomes := map[schemas.DecisionStatus]int{}
	for id, list := range ds {
		if len(list) != 1 {
			t.Errorf("order %s decided %d times", id, len(list))
			continue
		}
		d := list[0]
		outcomes[d.Status]++
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				shipped[[2]string{l.SKU, s.NodeID}] += l.Qty
			}
		}
	}
	t.Logf("outcomes: %v", outcomes)
	var routed, total int64
	for sku, nodes := range stock {
		for node, n := range nodes {
			if s := shipped[[2]string{sku, node}]; s > n {
				t.Errorf("OVERSOLD %s at %s: %d units routed, %d in stock", sku, node, s, n)
			}
			routed += shipped[[2]string{sku, node}]
			total += n
		}
	}
	if routed < total/2 {
		t.Errorf("only %d of %d units routed: the test would not show an oversell", routed, total)
	}

	// Every ATS record: reserved <= on_hand at every node. The last one per
	// SKU: reserved = what the decisions routed from the node.
	last := map[string]schemas.AtsUpdate{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		clear(last)
		violations := 0
		testkit.ReadToEnd(t, brokers, func(r *kgo.Record) {
			var u schemas.AtsUpdate
			if err := schemas.AtsUpdates.Decode(r.Value, &u); err != nil {
				t.Fatalf("ats: %v", err)
			}
			for _, n := range u.Nodes {
				if n.Reserved > n.OnHand && violations < 10 {
					violations++
					t.Errorf("ats %s v%d: %s reserved %d > on_hand %d", u.SKU, u.Version, n.NodeID, n.Reserved, n.OnHand)
				}
			}
			last[u.SKU] = u
		}, prefix+"ats")
		diff := ""
		for _, sku := range skus {
			for _, n := range last[sku].Nodes {
				if want := shipped[[2]string{sku, n.NodeID}]; n.Reserved != want {
					diff += fmt.Sprintf(" %s@%s reserved %d, decisions routed %d;", sku, n.NodeID, n.Reserved, want)
				}
			}
		}
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final ATS disagrees with the decisions:%s", diff)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestOrderLifecycle: place, route, ship, cancel, pick up and return, end
// to end; the final stock, ATS and order statuses equal a model kept by
// the test from what it did and what the router decided.
func TestOrderLifecycle(t *testing.T) {
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix := testkit.Prefix(t)
	eng, stop := startFull(t, orderOptions(t, brokers, prefix))
	defer stop()
	cl := testkit.Client(t, brokers)
	skus := []string{"A", "B", "C", "D"}
	stock := map[string]map[string]int64{}
	for _, sku := range skus {
		stock[sku] = map[string]int64{"W-PAR": 30, "W-BER": 30, "W-MIL": 30, "S-OPERA": 10}
	}
	seedNetwork(t, cl, eng, prefix, stock)

	const n = 200
	rng := rand.New(rand.NewPCG(3, 3))
	placed := map[string]schemas.OrderEvent{}
	var recs []*kgo.Record
	for i := range n {
		ev := schemas.OrderEvent{OrderID: fmt.Sprintf("L%04d", i), Type: schemas.EventPlaced, ChannelID: "web", CustomerID: "c",
			CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
			ShipTo: &schemas.Address{Country: "FR", Lat: 44 + rng.Float64()*8, Lon: 2 + rng.Float64()*10},
			Policy: schemas.ShipAvailable, LineIDs: []string{}}
		if i%5 == 0 {
			p := "S-OPERA"
			ev.DeliveryMethod, ev.PickupNodeID, ev.ShipTo = schemas.DeliveryPickup, &p, nil
		}
		for l, p := range rng.Perm(len(skus))[:1+rng.IntN(2)] {
			ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(l + 1), SKU: skus[p], Qty: 1 + int64(rng.IntN(2))})
		}
		placed[ev.OrderID] = ev
		recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(ev.OrderID), Value: encode(t, schemas.OrderEvents, &ev)})
	}
	produce(t, cl, recs...)
	ds := decisions(t, brokers, prefix, n, 3*time.Minute)

	// The model: on_hand and reserved per (sku, node), final state per order.
	type key = [2]string
	onHand, reserved := map[key]int64{}, map[key]int64{}
	for sku, nodes := range stock {
		for node, q := range nodes {
			onHand[key{sku, node}] = q
		}
	}
	want := map[string]schemas.OrderState{}
	recs = nil
	mv := 0
	movement := func(ty schemas.MovementType, sku, node, order, line string, qty int64) {
		mv++
		m := schemas.StockMovement{MovementID: fmt.Sprint("mv", mv), SKU: sku, NodeID: node, Type: ty, Qty: qty, OrderID: &order, LineID: &line}
		recs = append(recs, &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: encode(t, schemas.StockMovements, &m)})
	}
	event := func(id string, ty schemas.OrderEventType, lines ...string) {
		ev := schemas.OrderEvent{OrderID: id, Type: ty, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: lines}
		recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(id), Value: encode(t, schemas.OrderEvents, &ev)})
	}
	var later []func() // returns: restock after the RMA has been processed
	for id, list := range ds {
		if len(list) != 1 {
			t.Fatalf("order %s decided %d times", id, len(list))
		}
		d := list[0]
		pickup := placed[id].DeliveryMethod == schemas.DeliveryPickup
		if len(d.Shipments) == 0 {
			want[id] = schemas.StateBackordered
			continue
		}
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				reserved[key{l.SKU, s.NodeID}] += l.Qty
			}
		}
		if len(d.Backordered) > 0 {
			// Partly routed: leave it as it is (ROUTED with a backordered line).
			want[id] = schemas.StateRouted
			if pickup {
				want[id] = schemas.StateReadyForPickup
			}
			continue
		}
		switch rng.IntN(4) {
		case 0: // cancelled before shipment: the reservations go back
			event(id, schemas.EventCancelled)
			for _, s := range d.Shipments {
				for _, l := range s.Lines {
					reserved[key{l.SKU, s.NodeID}] -= l.Qty
				}
			}
			want[id] = schemas.StateCancelled
		case 1, 2: // shipped (or picked up)
			for _, s := range d.Shipments {
				for _, l := range s.Lines {
					movement(schemas.Shipment, l.SKU, s.NodeID, id, l.LineID, l.Qty)
					reserved[key{l.SKU, s.NodeID}] -= l.Qty
					onHand[key{l.SKU, s.NodeID}] -= l.Qty
				}
			}
			want[id] = schemas.StateShipped
			if pickup {
				want[id] = schemas.StatePickedUp
			}
		case 3: // shipped, returned and restocked: sellable again
			for _, s := range d.Shipments {
				for _, l := range s.Lines {
					movement(schemas.Shipment, l.SKU, s.NodeID, id, l.LineID, l.Qty)
					reserved[key{l.SKU, s.NodeID}] -= l.Qty
					later = append(later, func() { movement(schemas.ReturnRestock, l.SKU, s.NodeID, id, l.LineID, l.Qty) })
				}
			}
			later = append(later, func() { event(id, schemas.EventReturnAuthorized) })
			want[id] = schemas.StateReturned
		}
	}
	counts := map[schemas.OrderState]int{}
	for _, w := range want {
		counts[w]++
	}
	t.Logf("expected final states: %v", counts)
	produce(t, cl, recs...)
	// The RMA must reach the router after the shipments' notices: wait until
	// each returned order shows SHIPPED, then authorise and restock.
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		for id, w := range want {
			if w == schemas.StateReturned && st[id].State != schemas.StateShipped && st[id].State != schemas.StatePickedUp {
				return fmt.Sprintf("order %s is %s, want SHIPPED before its return", id, st[id].State)
			}
		}
		return ""
	})
	recs = nil
	for i := len(later) - 1; i >= 0; i-- { // RMAs were appended last: send them first
		later[i]()
	}
	produce(t, cl, recs...)
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		for id, w := range want {
			if st[id].State != w {
				return fmt.Sprintf("order %s is %s, want %s", id, st[id].State, w)
			}
		}
		return ""
	})
	// Final ATS per (sku, node) equals the model.
	deadline := time.Now().Add(60 * time.Second)
	for {
		diff := ""
		out := testkit.ReadAll(t, brokers, prefix)
		for _, sku := range skus {
			for _, nd := range out.Last[sku].Nodes {
				k := key{sku, nd.NodeID}
				if nd.OnHand != onHand[k] || nd.Reserved != reserved[k] {
					diff += fmt.Sprintf(" %s@%s on_hand %d reserved %d, model %d/%d;", sku, nd.NodeID, nd.OnHand, nd.Reserved, onHand[k], reserved[k])
				}
			}
		}
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final ATS differs from the model:%s", diff)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Statuses of returned orders carry what an ERP books: shipped and
	// returned quantities per line with times.
	testkit.ReadToEnd(t, brokers, func(r *kgo.Record) {
		var s schemas.OrderStatus
		if err := schemas.OrderStatuses.Decode(r.Value, &s); err != nil {
			t.Fatal(err)
		}
		if s.State == schemas.StateReturned {
			for _, l := range s.Lines {
				if l.QtyShipped != l.Qty || l.QtyReturned != l.Qty || l.ShippedAt == 0 {
					t.Errorf("order %s line %s: %+v", s.OrderID, l.LineID, l)
				}
			}
		}
	}, prefix+"order-status")
}

// waitStatuses reads order-status until check (given the latest status per
// order) returns "", or fails after two minutes with its last complaint.
func waitStatuses(t *testing.T, brokers, prefix string, check func(map[string]schemas.OrderStatus) string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := map[string]schemas.OrderStatus{}
		testkit.ReadToEnd(t, brokers, func(r *kgo.Record) {
			var s schemas.OrderStatus
			if err := schemas.OrderStatuses.Decode(r.Value, &s); err != nil {
				t.Fatal(err)
			}
			if prev, ok := st[s.OrderID]; ok && s.Version <= prev.Version {
				t.Errorf("order %s: status version %d after %d", s.OrderID, s.Version, prev.Version)
			}
			st[s.OrderID] = s
		}, prefix+"order-status")
		why := check(st)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

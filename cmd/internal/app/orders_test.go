package app

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startFull runs inventory and router until stop.
func startFull(t *testing.T, o Options) (*Engine, func()) {
	t.Helper()
	return start(t, o, t.Errorf)
}

// startOrders is the start of an order test: the whole engine (inventory
// and router, startFull) on the test's broker under a fresh topic prefix,
// and a client of that broker. stop stops the engine.
func startOrders(t *testing.T) (brokers, prefix string, eng *Engine, cl *kgo.Client, stop func()) {
	t.Helper()
	return startOrdersWith(t, func(*Options) {})
}

// startOrdersWith is startOrders with options changed by opts.
func startOrdersWith(t *testing.T, opts func(*Options)) (brokers, prefix string, eng *Engine, cl *kgo.Client, stop func()) {
	t.Helper()
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix = testkit.Prefix(t)
	o := testOptions(t, brokers, prefix)
	// Nothing is due within a test, but the router keeps its stream time
	// and expiries and looks for orders due, on the engine.
	o.OrderRetention = 30 * 24 * time.Hour
	opts(&o)
	eng, stop = startFull(t, o)
	return brokers, prefix, eng, testkit.Client(t, brokers), stop
}

// seedNetwork seeds the order network and waits until the router's ats
// table shows the stock.
func seedNetwork(t *testing.T, cl *kgo.Client, eng *Engine, prefix string, stock testkit.Stock) {
	t.Helper()
	testkit.SeedOrderNetwork(t, cl, prefix, stock)
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

// TestNoOversell: thousands of concurrent orders from three channels for a
// few scarce SKUs. The units reserved never exceed the units in stock (per
// node, in every ATS record the inventory emitted), every order is decided
// exactly once, and what the final ATS shows reserved at each node is
// exactly what the decisions shipped from it.
func TestNoOversell(t *testing.T) {
	brokers, prefix, eng, cl, stop := startOrders(t)
	defer stop()

	skus := []string{"SNEAKER-42", "SNEAKER-43", "JACKET-M", "HAT", "SCARF"}
	stock := testkit.Stock{}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, sku := range skus {
		stock[sku] = map[string]int64{}
		for _, n := range []string{"W-PAR", "W-BER", "W-MIL"} {
			stock[sku][n] = int64(5 + rng.IntN(20))
		}
	}
	seedNetwork(t, cl, eng, prefix, stock)

	const orders = 2000
	var wg sync.WaitGroup
	for w := range 4 { // four producers, as from several channels at once
		wg.Go(func() {
			var ids []string
			for i := w; i < orders; i += 4 {
				ids = append(ids, fmt.Sprintf("o%05d", i))
			}
			recs := testkit.RandomOrders(t, rand.New(rand.NewPCG(uint64(w), 99)), prefix, ids, skus)
			if err := testkit.Client(t, brokers).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ds := testkit.Decisions(t, brokers, prefix, orders, 5*time.Minute)
	if routed, total := testkit.CheckNoOversell(t, brokers, prefix, stock, ds); routed < total/2 {
		t.Errorf("only %d of %d units routed: the test would not show an oversell", routed, total)
	}
}

// TestOrderLifecycle: place, route, ship, cancel, pick up and return, end
// to end; the final stock, ATS and order statuses equal a model kept by
// the test from what it did and what the router decided.
func TestOrderLifecycle(t *testing.T) {
	// The model keeps backordered orders as they are: the stock its
	// cancellations and returns give back must not retry them.
	brokers, prefix, eng, cl, stop := startOrdersWith(t, func(o *Options) { o.BackorderRetry = false })
	defer stop()
	skus := []string{"A", "B", "C", "D"}
	stock := testkit.Stock{}
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
			Policy: schemas.ShipAvailable, LineIDs: []string{}, PlacedAt: time.Now().UnixMilli()}
		if i%5 == 0 {
			p := "S-OPERA"
			ev.DeliveryMethod, ev.PickupNodeID, ev.ShipTo = schemas.DeliveryPickup, &p, nil
		}
		for l, p := range rng.Perm(len(skus))[:1+rng.IntN(2)] {
			ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(l + 1), SKU: skus[p], Qty: 1 + int64(rng.IntN(2))})
		}
		placed[ev.OrderID] = ev
		recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(ev.OrderID), Value: testkit.Encode(t, schemas.OrderEvents, &ev)})
	}
	testkit.Produce(t, cl, recs...)
	ds := testkit.Decisions(t, brokers, prefix, n, 3*time.Minute)

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
		recs = append(recs, &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: testkit.Encode(t, schemas.StockMovements, &m)})
	}
	event := func(id string, ty schemas.OrderEventType, lines ...string) {
		ev := schemas.OrderEvent{OrderID: id, Type: ty, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: lines}
		recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(id), Value: testkit.Encode(t, schemas.OrderEvents, &ev)})
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
	testkit.Produce(t, cl, recs...)
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
	testkit.Produce(t, cl, recs...)
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

// TestCustomerScreen: with customer_max_orders on, the third order of a
// customer within the window is put ON_HOLD by the customer screen (a third
// topology, partitioned by customer id); RELEASED routes it.
func TestCustomerScreen(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	o := testOptions(t, brokers, prefix)
	o.CustomerMaxOrders = 2
	eng, stop := startFull(t, o)
	defer stop()
	if eng.Screen == nil {
		t.Fatal("customer_max_orders is set but no screen engine runs")
	}
	cl := testkit.Client(t, brokers)
	seedNetwork(t, cl, eng, prefix, testkit.Stock{"A": {"W-PAR": 10}})
	place := func(id, customer string, at int64) *kgo.Record {
		ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: "web", CustomerID: customer, PlacedAt: at,
			CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
			ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3}, Policy: schemas.ShipComplete, LineIDs: []string{},
			Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: 1}}}
		return &kgo.Record{Topic: prefix + "orders", Key: []byte(id), Value: testkit.Encode(t, schemas.OrderEvents, &ev)}
	}
	testkit.Produce(t, cl, place("v1", "c1", 1000), place("v2", "c1", 2000), place("v3", "c1", 3000), place("w1", "c2", 3000))
	// The router is partitioned by order id: c1's orders reach the screen
	// in any order, and the one that makes three is held.
	held := ""
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		held = ""
		for _, id := range []string{"v1", "v2", "v3", "w1"} {
			switch s := st[id]; {
			case s.State == schemas.StateOnHold && held == "" && id != "w1":
				held = id
			case s.State != schemas.StateRouted:
				return fmt.Sprintf("order %s is %s (%s)", id, s.State, s.Reason)
			}
		}
		if held == "" {
			return "no order of customer c1 is held"
		}
		return ""
	})
	rel := schemas.OrderEvent{OrderID: held, Type: schemas.EventReleased, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{}}
	testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "orders", Key: []byte(held), Value: testkit.Encode(t, schemas.OrderEvents, &rel)})
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		if s := st[held]; s.State != schemas.StateRouted {
			return fmt.Sprintf("released order %s is %s (%s)", held, s.State, s.Reason)
		}
		return ""
	})
}

// TestBackorderRetried: orders backordered for want of stock are routed,
// without any RELEASED event, once receipts bring the stock: one for more
// units than the network had, one for a SKU it never had.
func TestBackorderRetried(t *testing.T) {
	brokers, prefix, eng, cl, stop := startOrders(t)
	defer stop()
	seedNetwork(t, cl, eng, prefix, testkit.Stock{"A": {"W-PAR": 1}})
	place := func(id, sku string, qty int64) *kgo.Record {
		ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: "web", CustomerID: "c", PlacedAt: time.Now().UnixMilli(),
			CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
			ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3}, Policy: schemas.ShipComplete, LineIDs: []string{},
			Lines: []schemas.OrderLine{{LineID: "1", SKU: sku, Qty: qty}}}
		return &kgo.Record{Topic: prefix + "orders", Key: []byte(id), Value: testkit.Encode(t, schemas.OrderEvents, &ev)}
	}
	testkit.Produce(t, cl, place("r1", "A", 3), place("r2", "B", 1))
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		for _, id := range []string{"r1", "r2"} {
			if s := st[id]; s.State != schemas.StateBackordered {
				return fmt.Sprintf("order %s is %s (%s), want BACKORDERED", id, s.State, s.Reason)
			}
		}
		return ""
	})
	receipt := func(id, sku, node string, qty int64) *kgo.Record {
		m := schemas.StockMovement{MovementID: id, SKU: sku, NodeID: node, Type: schemas.Receipt, Qty: qty}
		return &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: testkit.Encode(t, schemas.StockMovements, &m)}
	}
	testkit.Produce(t, cl, receipt("in-1", "A", "W-BER", 5), receipt("in-2", "B", "W-MIL", 2))
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		for _, id := range []string{"r1", "r2"} {
			if s := st[id]; s.State != schemas.StateRouted {
				return fmt.Sprintf("order %s is %s (%s), want ROUTED once the stock arrived", id, s.State, s.Reason)
			}
		}
		return ""
	})
	ds := testkit.Decisions(t, brokers, prefix, 2, time.Minute)
	for id, node := range map[string]string{"r1": "W-BER", "r2": "W-MIL"} {
		list := ds[id]
		testkit.CheckDecided(t, id, list)
		if len(list) < 2 || list[0].Status != schemas.DecisionBackordered || list[len(list)-1].Status != schemas.DecisionRouted ||
			list[len(list)-1].Shipments[0].NodeID != node {
			t.Errorf("order %s: decisions %+v, want BACKORDERED, then ROUTED from %s", id, list, node)
		}
	}
}

// TestCapacityBackRetried: an order waits because the one node with its
// SKU is at its daily capacity; the order that took the capacity is
// cancelled, and the waiting order is routed with no RELEASED event. (The
// two orders are in one router partition: across partitions, capacity is
// a soft limit within a commit interval.)
func TestCapacityBackRetried(t *testing.T) {
	brokers, prefix, eng, cl, stop := startOrders(t)
	defer stop()
	seedNetwork(t, cl, eng, prefix, testkit.Stock{"Y": {"W-PAR": 5}, "Z": {"W-PAR": 5}})
	for _, n := range testkit.OrderNodes() {
		if n.NodeID == "W-PAR" {
			n.DailyCapacity = 1
			testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "nodes", Key: []byte(n.NodeID), Value: testkit.Encode(t, schemas.Nodes, &n)})
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if n := eng.Catalog.Snapshot().Node("W-PAR"); n != nil && n.DailyCapacity == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the catalog does not show W-PAR's daily capacity of 1")
		}
	}
	n, err := eng.partitionCount(context.Background(), prefix+"orders")
	if err != nil {
		t.Fatal(err)
	}
	part := func(id string) int { return keyHasher.Partition(&kgo.Record{Key: []byte(id)}, int(n)) }
	first, second := "cap-1", ""
	for i := 2; second == ""; i++ {
		if id := fmt.Sprint("cap-", i); part(id) == part(first) {
			second = id
		}
	}
	order := func(id, sku string, typ schemas.OrderEventType) *kgo.Record {
		ev := schemas.OrderEvent{OrderID: id, Type: typ, ChannelID: "web", CustomerID: "c", PlacedAt: time.Now().UnixMilli(),
			CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
			ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3}, Policy: schemas.ShipComplete, LineIDs: []string{}, Lines: []schemas.OrderLine{}}
		if typ == schemas.EventPlaced {
			ev.Lines = []schemas.OrderLine{{LineID: "1", SKU: sku, Qty: 1}}
		}
		return &kgo.Record{Topic: prefix + "orders", Key: []byte(id), Value: testkit.Encode(t, schemas.OrderEvents, &ev)}
	}
	state := func(id string, want schemas.OrderState) func(map[string]schemas.OrderStatus) string {
		return func(st map[string]schemas.OrderStatus) string {
			if s := st[id]; s.State != want {
				return fmt.Sprintf("order %s is %s (%s), want %s", id, s.State, s.Reason, want)
			}
			return ""
		}
	}
	// The first order is for Y, the second for Z: the release of the
	// first's Y is no rise of Z, and only the capacity back can retry the
	// second.
	testkit.Produce(t, cl, order(first, "Y", schemas.EventPlaced))
	waitStatuses(t, brokers, prefix, state(first, schemas.StateRouted))
	testkit.Produce(t, cl, order(second, "Z", schemas.EventPlaced))
	waitStatuses(t, brokers, prefix, state(second, schemas.StateBackordered))
	testkit.Produce(t, cl, order(first, "", schemas.EventCancelled))
	waitStatuses(t, brokers, prefix, state(second, schemas.StateRouted))
	ds := testkit.Decisions(t, brokers, prefix, 2, time.Minute)
	list := ds[second]
	testkit.CheckDecided(t, second, list)
	if len(list) != 2 || list[0].Status != schemas.DecisionBackordered || list[1].Status != schemas.DecisionRouted {
		t.Errorf("order %s: decisions %+v, want BACKORDERED, then ROUTED", second, list)
	}
}

// TestShortPickRace: the WMS sends the SHIPMENT of the units it picked
// and the SHORT_PICKED feedback for the rest together. The shipment
// reaches the inventory in one hop, the feedback's command in two (router,
// then inventory), so it lands after the shipment consumed its units. The
// hold at the short node must end at zero while the line is still open
// (its missing unit re-routed), not at the unit the shipment took: an
// absolute "hold what is left" after the shipment (before the ninth
// session) kept 1 unit held there for nothing. Then the line ships in
// full and nothing is held anywhere.
func TestShortPickRace(t *testing.T) {
	brokers, prefix, eng, cl, stop := startOrders(t)
	defer stop()
	stock := testkit.Stock{"A": {"W-PAR": 2, "W-BER": 5}}
	seedNetwork(t, cl, eng, prefix, stock)

	ev := schemas.OrderEvent{OrderID: "SP1", Type: schemas.EventPlaced, ChannelID: "web", CustomerID: "c",
		CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
		ShipTo: &schemas.Address{Country: "FR", Lat: 48.85, Lon: 2.35}, Policy: schemas.ShipComplete, LineIDs: []string{},
		Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: 2}}, PlacedAt: time.Now().UnixMilli()}
	testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "orders", Key: []byte(ev.OrderID), Value: testkit.Encode(t, schemas.OrderEvents, &ev)})
	ds := testkit.Decisions(t, brokers, prefix, 1, time.Minute)
	d := ds["SP1"][0]
	if len(d.Shipments) != 1 || len(d.Shipments[0].Lines) != 1 || d.Shipments[0].Lines[0].Qty != 2 {
		t.Fatalf("decision %+v: want one shipment of 2 units", d)
	}
	short := d.Shipments[0].NodeID
	other := map[string]string{"W-PAR": "W-BER", "W-BER": "W-PAR"}[short]

	order, line := "SP1", "1"
	shipment := func(id, node string) *kgo.Record {
		m := schemas.StockMovement{MovementID: id, SKU: "A", NodeID: node, Type: schemas.Shipment, Qty: 1, OrderID: &order, LineID: &line}
		return &kgo.Record{Topic: prefix + "stock-movements", Key: []byte("A"), Value: testkit.Encode(t, schemas.StockMovements, &m)}
	}
	f := schemas.FulfillmentFeedback{FeedbackID: "f1", OrderID: order, ShipmentID: d.Shipments[0].ShipmentID, NodeID: short,
		LineID: line, Type: schemas.FeedbackShortPicked, QtyShipped: 1, QtyShort: 1}
	testkit.Produce(t, cl, shipment("sp-ship-1", short),
		&kgo.Record{Topic: prefix + "fulfillment-feedback", Key: []byte(order), Value: testkit.Encode(t, schemas.FulfillmentFeedbacks, &f)})

	reservedAt := func() map[string]int64 {
		r := map[string]int64{}
		for _, n := range testkit.ReadAll(t, brokers, prefix).Last["A"].Nodes {
			r[n.NodeID] = n.Reserved
		}
		return r
	}
	waitReserved := func(want map[string]int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := reservedAt()
			if got[short] == want[short] && got[other] == want[other] {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reserved %v, want %v (the short node is %s)", got, want, short)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	// The line is re-routed: 1 shipped from the short node, 1 held at the other.
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		s, ok := st[order]
		if !ok || len(s.Lines) != 1 || s.Lines[0].QtyShipped != 1 || s.Lines[0].NodeID == nil || *s.Lines[0].NodeID != other {
			return fmt.Sprintf("order %s is %+v, want 1 shipped and the rest routed to %s", order, s, other)
		}
		return ""
	})
	waitReserved(map[string]int64{short: 0, other: 1})

	testkit.Produce(t, cl, shipment("sp-ship-2", other))
	waitStatuses(t, brokers, prefix, func(st map[string]schemas.OrderStatus) string {
		if s := st[order]; s.State != schemas.StateShipped {
			return fmt.Sprintf("order %s is %s, want SHIPPED", order, s.State)
		}
		return ""
	})
	waitReserved(map[string]int64{short: 0, other: 0})
}

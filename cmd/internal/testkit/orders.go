package testkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// OrderNodes is the network of the order tests: three warehouses that
// ship, a store that takes pickups.
func OrderNodes() []schemas.Node {
	return []schemas.Node{
		{NodeID: "W-PAR", Type: schemas.Warehouse, Country: "FR", Lat: 48.86, Lon: 2.35, Active: true, ShipEnabled: true, ShipmentCostCents: 400},
		{NodeID: "W-BER", Type: schemas.Warehouse, Country: "DE", Lat: 52.52, Lon: 13.40, Active: true, ShipEnabled: true, ShipmentCostCents: 380},
		{NodeID: "W-MIL", Type: schemas.Warehouse, Country: "IT", Lat: 45.46, Lon: 9.19, Active: true, ShipEnabled: true, ShipmentCostCents: 420},
		{NodeID: "S-OPERA", Type: schemas.Store, Country: "FR", Lat: 48.87, Lon: 2.33, Active: true, PickupEnabled: true},
	}
}

// OrderChannels are the channels of the order tests, fed by every node.
var OrderChannels = []string{"amazon", "web", "pos"}

// Stock is units per SKU per node.
type Stock map[string]map[string]int64

// Encode encodes v or fails the test.
func Encode[T any](t testing.TB, c *schemas.Codec[T], v *T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Produce writes recs synchronously or fails the test.
func Produce(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// SeedOrderNetwork writes the order network's nodes and channels and a
// receipt for every (sku, node) of stock.
func SeedOrderNetwork(t testing.TB, cl *kgo.Client, prefix string, stock Stock) {
	t.Helper()
	for _, n := range OrderNodes() {
		Produce(t, cl, &kgo.Record{Topic: prefix + "nodes", Key: []byte(n.NodeID), Value: Encode(t, schemas.Nodes, &n)})
	}
	for _, id := range OrderChannels {
		c := schemas.Channel{ChannelID: id}
		Produce(t, cl, &kgo.Record{Topic: prefix + "channels", Key: []byte(id), Value: Encode(t, schemas.Channels, &c)})
	}
	var recs []*kgo.Record
	for sku, nodes := range stock {
		for node, n := range nodes {
			m := schemas.StockMovement{MovementID: "seed-" + sku + "-" + node, SKU: sku, NodeID: node, Type: schemas.Receipt, Qty: n}
			recs = append(recs, &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: Encode(t, schemas.StockMovements, &m)})
		}
	}
	Produce(t, cl, recs...)
}

// RandomOrders returns PLACED orders with ids from id(first) up, 1 to 3
// lines of skus, from random channels and places, half SHIP_COMPLETE.
func RandomOrders(t testing.TB, rng *rand.Rand, prefix string, ids []string, skus []string) []*kgo.Record {
	var recs []*kgo.Record
	for _, id := range ids {
		ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced,
			ChannelID: OrderChannels[rng.IntN(len(OrderChannels))], CustomerID: fmt.Sprint("c", rng.IntN(500)),
			CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
			ShipTo: &schemas.Address{Country: "FR", PostalCode: "75001", Lat: 43 + rng.Float64()*10, Lon: 1 + rng.Float64()*12},
			Policy: schemas.ShipComplete, LineIDs: []string{}, PlacedAt: time.Now().UnixMilli()}
		if rng.IntN(2) == 0 {
			ev.Policy = schemas.ShipAvailable
		}
		if rng.IntN(10) == 0 {
			ev.Priority = schemas.PriorityRush
		}
		if rng.IntN(10) == 0 {
			ev.CustomerTier = schemas.TierVIP
		}
		for l, p := range rng.Perm(len(skus))[:1+rng.IntN(min(3, len(skus)))] {
			ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(l + 1), SKU: skus[p], Qty: 1 + int64(rng.IntN(2))})
		}
		recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(ev.OrderID), Value: Encode(t, schemas.OrderEvents, &ev)})
	}
	return recs
}

// Decisions reads routing-decisions until want orders have one, or fails.
// Later decisions of an order (retries of lines it backordered) may still
// come after it returns.
func Decisions(t testing.TB, brokers, prefix string, want int, timeout time.Duration) map[string][]schemas.RoutingDecision {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := readDecisions(t, brokers, prefix)
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders decided after %v", len(got), want, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readDecisions reads routing-decisions to its end: every order's
// decisions, in the order written.
func readDecisions(t testing.TB, brokers, prefix string) map[string][]schemas.RoutingDecision {
	got := map[string][]schemas.RoutingDecision{}
	ReadToEnd(t, brokers, func(r *kgo.Record) {
		var d schemas.RoutingDecision
		if err := schemas.RoutingDecisions.Decode(r.Value, &d); err != nil {
			t.Fatalf("routing-decisions: %v", err)
		}
		got[d.OrderID] = append(got[d.OrderID], d)
	}, prefix+"routing-decisions")
	return got
}

// CheckDecided checks the decisions of one order, in the order written:
// one, or a first one and then retries of the lines it backordered (the
// router retries them when stock arrives): each after a BACKORDERED or
// PARTIALLY_ROUTED decision, none equal to the one before it (a decision
// written twice, as by a replay of its input, would be), and no shipment
// in two of them.
func CheckDecided(t testing.TB, id string, list []schemas.RoutingDecision) {
	t.Helper()
	ships := map[string]bool{}
	for i, d := range list {
		if i > 0 {
			if prev := list[i-1]; prev.Status != schemas.DecisionBackordered && prev.Status != schemas.DecisionPartiallyRouted {
				t.Errorf("order %s: decision %d (%s) follows a decision that left nothing backordered (%s)", id, i+1, d.Status, prev.Status)
			} else if reflect.DeepEqual(d, prev) {
				t.Errorf("order %s: decision %d repeats decision %d: %+v", id, i+1, i, d)
			}
		}
		for _, s := range d.Shipments {
			if ships[s.ShipmentID] {
				t.Errorf("order %s: shipment %s in two decisions", id, s.ShipmentID)
			}
			ships[s.ShipmentID] = true
		}
	}
}

// CheckNoOversell checks decisions made with nothing shipped or cancelled:
// every order's decisions pass CheckDecided; per node no more units routed
// than in stock; in every ATS record reserved <= on_hand at every node; and
// in the last ATS record of each SKU, reserved at a node = what the
// decisions routed from it (waiting up to a minute for the last records,
// and reading the decisions again meanwhile: retries of backordered lines
// may still come). It returns the units routed and in stock.
func CheckNoOversell(t testing.TB, brokers, prefix string, stock Stock, ds map[string][]schemas.RoutingDecision) (routed, total int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		shipped := map[[2]string]int64{}
		for _, list := range ds {
			for _, d := range list {
				for _, s := range d.Shipments {
					for _, l := range s.Lines {
						shipped[[2]string{l.SKU, s.NodeID}] += l.Qty
					}
				}
			}
		}
		last := map[string]schemas.AtsUpdate{}
		var violations []string
		ReadToEnd(t, brokers, func(r *kgo.Record) {
			var u schemas.AtsUpdate
			if err := schemas.AtsUpdates.Decode(r.Value, &u); err != nil {
				t.Fatalf("ats: %v", err)
			}
			for _, n := range u.Nodes {
				if n.Reserved > n.OnHand && len(violations) < 10 {
					violations = append(violations, fmt.Sprintf("ats %s v%d: %s reserved %d > on_hand %d", u.SKU, u.Version, n.NodeID, n.Reserved, n.OnHand))
				}
			}
			last[u.SKU] = u
		}, prefix+"ats")
		diff := ""
		for sku := range stock {
			for _, n := range last[sku].Nodes {
				if want := shipped[[2]string{sku, n.NodeID}]; n.Reserved != want {
					diff += fmt.Sprintf(" %s@%s reserved %d, decisions routed %d;", sku, n.NodeID, n.Reserved, want)
				}
			}
		}
		if diff != "" && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			ds = readDecisions(t, brokers, prefix)
			continue
		}
		outcomes := map[schemas.DecisionStatus]int{}
		retried := 0
		for id, list := range ds {
			CheckDecided(t, id, list)
			outcomes[list[len(list)-1].Status]++
			retried += min(1, len(list)-1)
		}
		t.Logf("final outcomes: %v; %d orders decided again (backordered lines retried)", outcomes, retried)
		for _, v := range violations {
			t.Error(v)
		}
		for sku, nodes := range stock {
			for node, n := range nodes {
				if s := shipped[[2]string{sku, node}]; s > n {
					t.Errorf("OVERSOLD %s at %s: %d units routed, %d in stock", sku, node, s, n)
				}
				routed += shipped[[2]string{sku, node}]
				total += n
			}
		}
		if diff != "" {
			t.Fatalf("final ATS disagrees with the decisions:%s", diff)
		}
		return routed, total
	}
}

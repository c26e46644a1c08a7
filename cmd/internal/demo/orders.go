package demo

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// shipTo are places customers order to (the EU cities of the demo's
// market), with their country.
var shipTo = []struct {
	country  string
	lat, lon float64
}{
	{"FR", 48.86, 2.35}, {"FR", 45.76, 4.84}, {"FR", 43.30, 5.37}, {"DE", 52.52, 13.40}, {"DE", 48.14, 11.58},
	{"DE", 50.11, 8.68}, {"NL", 52.37, 4.90}, {"IT", 45.46, 9.19}, {"IT", 41.90, 12.50}, {"ES", 40.42, -3.70},
	{"ES", 41.39, 2.17}, {"PL", 52.23, 21.01},
}

// orders generates orders from several channels and plays the rest of
// their lives from the decisions the router publishes: the warehouse
// ships (a SHIPMENT movement naming the order line), or the customer
// cancels, picks up at the store, or returns what shipped.
type orders struct {
	g   *generator
	rnd *rand.Rand
	seq int64

	mu      sync.Mutex
	pending []schemas.RoutingDecision // routed, waiting for the warehouse

	placed    atomic.Int64
	cancelled atomic.Int64
	shipped   atomic.Int64 // order lines shipped or picked up
	returned  atomic.Int64
}

func newOrders(g *generator) *orders {
	return &orders{g: g, rnd: rand.New(rand.NewSource(g.o.Seed + 1))}
}

// decided hands the generator a decision the watcher read.
func (o *orders) decided(d schemas.RoutingDecision) {
	if len(d.Shipments) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.pending) < 10000 { // bounded: a slow demo drops follow-ups, not memory
		o.pending = append(o.pending, d)
	}
}

// run places OrderRate orders per second and plays follow-ups until ctx
// ends.
func (o *orders) run(ctx context.Context, cl *kgo.Client) error {
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	var budget float64
	var errOnce atomic.Pointer[error]
	send := func(r *kgo.Record) {
		cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if err != nil {
				errOnce.CompareAndSwap(nil, &err)
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			if p := errOnce.Load(); p != nil {
				return *p
			}
			return ctx.Err()
		case <-t.C:
		}
		budget += float64(o.g.o.OrderRate) * tick.Seconds()
		for ; budget >= 1; budget-- {
			send(o.place())
		}
		o.mu.Lock()
		todo := o.pending
		o.pending = nil
		o.mu.Unlock()
		for _, d := range todo {
			o.followUp(d, send)
		}
	}
}

// place returns a new PLACED order: 1 to 4 lines of popular SKUs, from one
// of the demo's channels; one in ten is picked up at a store.
func (o *orders) place() *kgo.Record {
	o.seq++
	ev := schemas.OrderEvent{OrderID: fmt.Sprintf("ORD-%d-%07d", o.g.o.Seed, o.seq), Type: schemas.EventPlaced,
		ChannelID: demoChannels[o.rnd.Intn(len(demoChannels))].ChannelID, PlacedAt: time.Now().UnixMilli(),
		CustomerID: fmt.Sprintf("C-%05d", o.rnd.Intn(20000)), CustomerTier: schemas.TierStandard,
		Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipAvailable,
		LineIDs: []string{}, OccurredAt: time.Now().UnixMilli()}
	if o.rnd.Intn(20) == 0 {
		ev.Priority = schemas.PriorityRush
	}
	if o.rnd.Intn(20) == 0 {
		ev.CustomerTier = schemas.TierVIP
	}
	if o.rnd.Intn(2) == 0 {
		ev.Policy = schemas.ShipComplete
	}
	if o.rnd.Intn(10) == 0 {
		store := "ST-IT-MIL"
		ev.DeliveryMethod, ev.PickupNodeID = schemas.DeliveryPickup, &store
	} else {
		p := shipTo[o.rnd.Intn(len(shipTo))]
		ev.ShipTo = &schemas.Address{Country: p.country, PostalCode: "00000",
			Lat: p.lat + o.rnd.Float64()*0.4 - 0.2, Lon: p.lon + o.rnd.Float64()*0.4 - 0.2}
	}
	seen := map[string]bool{}
	for l := 0; l < 1+o.rnd.Intn(4); l++ {
		sku := skuName(o.g.popular())
		if seen[sku] {
			continue
		}
		seen[sku] = true
		ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(l + 1), SKU: sku, Qty: 1 + int64(o.rnd.Intn(2)),
			UnitPriceCents: int64(990 + o.rnd.Intn(20000))})
	}
	o.placed.Add(1)
	return &kgo.Record{Topic: o.g.prefix + string(router.TopicOrders), Key: []byte(ev.OrderID), Value: mustEncode(schemas.OrderEvents, &ev)}
}

// followUp plays what happens after a decision: mostly the node ships
// every line (a SHIPMENT naming it), sometimes the customer cancels, and
// some shipped orders come back (an RMA, then the restock at the node).
// It sends the records in that order.
func (o *orders) followUp(d schemas.RoutingDecision, send func(*kgo.Record)) {
	event := func(ty schemas.OrderEventType) *kgo.Record {
		ev := schemas.OrderEvent{OrderID: d.OrderID, Type: ty, CustomerTier: schemas.TierStandard,
			Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete,
			Lines: []schemas.OrderLine{}, LineIDs: []string{}, OccurredAt: time.Now().UnixMilli()}
		return &kgo.Record{Topic: o.g.prefix + string(router.TopicOrders), Key: []byte(d.OrderID), Value: mustEncode(schemas.OrderEvents, &ev)}
	}
	if o.rnd.Intn(10) == 0 {
		o.cancelled.Add(1)
		send(event(schemas.EventCancelled))
		return
	}
	returned := o.rnd.Intn(20) == 0
	for _, s := range d.Shipments {
		for _, l := range s.Lines {
			o.g.orderMovement(send, schemas.Shipment, l.SKU, s.NodeID, d.OrderID, l.LineID, l.Qty)
			o.shipped.Add(1)
		}
	}
	if returned {
		o.returned.Add(1)
		send(event(schemas.EventReturnAuthorized))
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				o.g.orderMovement(send, schemas.ReturnRestock, l.SKU, s.NodeID, d.OrderID, l.LineID, l.Qty)
			}
		}
	}
}

// orderMovement sends a movement of an order line, counted in the model,
// under the generator's mu (see generator).
func (g *generator) orderMovement(send func(*kgo.Record), ty schemas.MovementType, sku, node, order, line string, qty int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	m := schemas.StockMovement{MovementID: fmt.Sprintf("ord-%d-%d", g.o.Seed, g.seq), SKU: sku, NodeID: node,
		Type: ty, Qty: qty, OrderID: &order, LineID: &line, OccurredAt: time.Now().UnixMilli()}
	g.apply(&m)
	g.movements.Add(1)
	send(&kgo.Record{Topic: g.prefix + string(inventory.TopicMovements), Key: []byte(sku), Value: mustEncode(schemas.StockMovements, &m)})
}

// popular draws a SKU index with the generator's skew.
func (g *generator) popular() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.zipf.Uint64()
}

func mustEncode[T any](c *schemas.Codec[T], v *T) []byte {
	b, err := c.Encode(v)
	if err != nil {
		panic(err) // the demo builds valid records
	}
	return b
}

package router

import (
	"errors"
	"testing"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/screen"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

type nopEmitter struct{}

func (nopEmitter) Emit(topology.Topic, []byte, []byte) {}

// FuzzProcess feeds arbitrary records to the router task on Pebble, on each
// of its inputs (orders, reservation results, feedback, screen verdicts): it
// must never panic, and every error must be bad input (dead letter). Every
// few records the transaction commits, so later inputs meet stored orders.
func FuzzProcess(f *testing.F) {
	topics := []topology.Topic{TopicOrders, inventory.TopicResults, TopicFeedback, screen.TopicVerdicts}
	pickup := "S1"
	for _, ev := range []schemas.OrderEvent{
		{OrderID: "o1", Type: schemas.EventPlaced, ChannelID: "web", CustomerID: "c1", CustomerTier: schemas.TierVIP,
			Priority: schemas.PriorityRush, DeliveryMethod: schemas.DeliveryShip, ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3},
			Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: 2}, {LineID: "2", SKU: "A", Qty: 1}}, Policy: schemas.ShipAvailable, LineIDs: []string{}},
		{OrderID: "o2", Type: schemas.EventPlaced, ChannelID: "pos", CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryPickup, PickupNodeID: &pickup, Lines: []schemas.OrderLine{{LineID: "1", SKU: "B", Qty: 1}},
			Policy: schemas.ShipComplete, LineIDs: []string{}},
		{OrderID: "o1", Type: schemas.EventCancelled, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{"2"}},
		{OrderID: "o1", Type: schemas.EventAddressChanged, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{},
			ShipTo: &schemas.Address{Country: "DE", Lat: 52.5, Lon: 13.4}},
	} {
		b := encoded(schemas.OrderEvents.Encode(&ev))
		f.Add(uint8(0), []byte(ev.OrderID), b)
	}
	for _, r := range []schemas.ReservationResult{
		{OrderID: "o1", LineID: "1", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 2, Attempt: 1, OK: true},
		{OrderID: "o1", LineID: "2", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 1, Attempt: 1, Reason: "no", Available: 0},
		{OrderID: "o1", LineID: "1", Type: schemas.Consume, SKU: "A", NodeID: "W1", Qty: 2, OK: true},
		{OrderID: "o1", LineID: "1", Type: schemas.Restock, SKU: "A", NodeID: "W1", Qty: 1, OK: true},
		{OrderID: "o1", LineID: "1", Type: schemas.Decrease, SKU: "A", NodeID: "W1", Qty: 1, OK: true},
	} {
		b := encoded(schemas.ReservationResults.Encode(&r))
		f.Add(uint8(1), []byte(r.OrderID), b)
	}
	fb := schemas.FulfillmentFeedback{FeedbackID: "f1", OrderID: "o1", ShipmentID: "o1/1", NodeID: "W1", LineID: "1",
		Type: schemas.FeedbackShortPicked, QtyShipped: 1, QtyShort: 1}
	b := encoded(schemas.FulfillmentFeedbacks.Encode(&fb))
	f.Add(uint8(2), []byte("o1"), b)
	v := schemas.CustomerVerdict{OrderID: "o1", CustomerID: "c1", Hold: true, Reason: "x"}
	b = encoded(schemas.CustomerVerdicts.Encode(&v))
	f.Add(uint8(3), []byte("o1"), b)

	st, err := state.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	cat := catalog.New(nil)
	for _, n := range []schemas.Node{
		{NodeID: "W1", Type: schemas.Warehouse, Lat: 48.8, Lon: 2.3, Active: true, ShipEnabled: true, DailyCapacity: 3, SafetyStock: 1},
		{NodeID: "W2", Type: schemas.Warehouse, Lat: 52.5, Lon: 13.4, Active: true, ShipEnabled: true},
		{NodeID: "S1", Type: schemas.Store, Lat: 48.9, Lon: 2.3, Active: true, PickupEnabled: true},
	} {
		v := encoded(schemas.Nodes.Encode(&n))
		if err := cat.ApplyNode([]byte(n.NodeID), v); err != nil {
			f.Fatal(err)
		}
	}
	avail := NewAvailability()
	for _, sku := range []string{"A", "B"} {
		u := schemas.AtsUpdate{SKU: sku, Version: 1, Channels: []schemas.ChannelATS{}, Nodes: []schemas.NodeATS{
			{NodeID: "W1", OnHand: 5}, {NodeID: "W2", OnHand: 3}, {NodeID: "S1", OnHand: 1}}}
		v := encoded(schemas.AtsUpdates.Encode(&u))
		if err := avail.Apply([]byte(sku), v); err != nil {
			f.Fatal(err)
		}
	}
	task, err := Topology(TopologyOptions{Catalog: cat, Availability: avail, Loads: NewLoads(),
		Config: Config{CustomerMaxOrders: 2, OrderRetention: time.Hour}}).NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 100})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	f.Fuzz(func(t *testing.T, input uint8, key, value []byte) {
		topic := topics[int(input)%len(topics)]
		err := task.Process(&topology.Record{Topic: string(topic), Key: key, Value: value, Timestamp: 1_800_000_000_000}, nopEmitter{})
		var bad *topology.BadInputError
		if err != nil && !errors.As(err, &bad) {
			t.Fatalf("not a dead letter: %v", err)
		}
		if n++; n%16 == 0 {
			if err := task.Flush(nopEmitter{}); err != nil {
				t.Fatal(err)
			}
			if err := st.Prepare(); err != nil {
				t.Fatal(err)
			}
			if err := st.Commit(state.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// encoded is an encoded seed: one that does not encode would silently be
// an empty input and weaken the corpus.
func encoded(b []byte, err error) []byte {
	if err != nil {
		panic("a fuzz seed does not encode: " + err.Error())
	}
	return b
}

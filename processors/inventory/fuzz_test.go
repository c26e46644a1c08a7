package inventory

import (
	"errors"
	"testing"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// FuzzProcess feeds arbitrary records to the inventory task on Pebble, as
// stock movements or reservation commands: it must never panic, and every
// error must be bad input (dead letter) rather than a failure. Every few
// records the transaction commits, so later inputs meet stored state.
func FuzzProcess(f *testing.F) {
	orderID, lineID := "o1", "1"
	for _, m := range []schemas.StockMovement{
		{MovementID: "m1", SKU: "A", NodeID: "W1", Type: schemas.Receipt, Qty: 5},
		{MovementID: "m2", SKU: "A", NodeID: "W1", Type: schemas.Shipment, Qty: 1, OrderID: &orderID, LineID: &lineID},
		{MovementID: "m3", SKU: "A", NodeID: "W2", Type: schemas.Count, Qty: 0},
	} {
		b := encoded(schemas.StockMovements.Encode(&m))
		f.Add(false, []byte(m.SKU), b)
	}
	for _, c := range []schemas.ReservationCommand{
		{OrderID: "o1", LineID: "1", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 2, Attempt: 1},
		{OrderID: "o1", LineID: "1", Type: schemas.Release, SKU: "A", NodeID: "W1", Attempt: 1},
		{OrderID: "o1", LineID: "1", Type: schemas.Decrease, SKU: "A", NodeID: "W1", Qty: 1},
	} {
		b := encoded(schemas.ReservationCommands.Encode(&c))
		f.Add(true, []byte(c.SKU), b)
	}
	f.Add(true, []byte("A"), []byte{0xff, 0x00})
	st, err := state.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	cat := catalog.New(nil)
	for _, id := range []string{"W1", "W2"} {
		v := encoded(schemas.Nodes.Encode(&schemas.Node{NodeID: id, Type: schemas.Warehouse, Active: true, ShipEnabled: true, SafetyStock: 1}))
		if err := cat.ApplyNode([]byte(id), v); err != nil {
			f.Fatal(err)
		}
	}
	task, err := Topology(TopologyOptions{Catalog: cat}).NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 100})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	f.Fuzz(func(t *testing.T, command bool, key, value []byte) {
		topic := TopicMovements
		if command {
			topic = TopicCommands
		}
		err := task.Process(&topology.Record{Topic: string(topic), Key: key, Value: value}, nopEmitter{})
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

package router

import (
	"fmt"
	"slices"
	"testing"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// TestBackorderRetryTask runs the retry of backordered lines on Pebble:
// the task looks at the orders waiting for a SKU when the ats table shows
// its availability rise (and at every SKU waited for after a start or an
// abort), within retryBatch per transaction, and only then; an aborted
// retry is redone; the index survives a restart.
func TestBackorderRetryTask(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	cat := catalog.New(nil)
	n := schemas.Node{NodeID: "W1", Type: schemas.Warehouse, Lat: 48.8, Lon: 2.3, Active: true, ShipEnabled: true}
	if err := cat.ApplyNode([]byte("W1"), encodeT(t, schemas.Nodes, &n)); err != nil {
		t.Fatal(err)
	}
	avail := NewAvailability()
	const t0 = int64(1_800_000_000_000)
	stock := func(sku string, onHand, reserved int64) {
		t.Helper()
		u := schemas.AtsUpdate{SKU: sku, Version: 1, UpdatedAt: t0 + 60_000, Channels: []schemas.ChannelATS{},
			Nodes: []schemas.NodeATS{{NodeID: "W1", OnHand: onHand, Reserved: reserved, Active: true}}}
		if err := avail.Apply([]byte(sku), encodeT(t, schemas.AtsUpdates, &u)); err != nil {
			t.Fatal(err)
		}
	}
	stock("A", 0, 0)
	topo := Topology(TopologyOptions{Catalog: cat, Availability: avail, Loads: NewLoads()})
	newTask := func() *Task {
		task, err := topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 100})
		if err != nil {
			t.Fatal(err)
		}
		return task.(*Task)
	}
	placed := func(id string, qty int64, at int64) *topology.Record {
		ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: "web", CustomerTier: schemas.TierStandard,
			Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3},
			Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: qty}}, Policy: schemas.ShipComplete, LineIDs: []string{}, PlacedAt: at}
		return &topology.Record{Topic: string(TopicOrders), Key: []byte(id), Value: encodeT(t, schemas.OrderEvents, &ev), Timestamp: at}
	}
	// txn runs one transaction: records, then the flush if the runtime
	// would call it (input, or Pending); commit or abort.
	txn := func(task *Task, commit bool, recs ...*topology.Record) (em emitted, flushed bool) {
		t.Helper()
		for _, r := range recs {
			if err := task.Process(r, &em); err != nil {
				t.Fatalf("%s %s: %v", r.Topic, r.Key, err)
			}
		}
		if len(recs) == 0 && !task.Pending() {
			return nil, false
		}
		if err := task.Flush(&em); err != nil {
			t.Fatal(err)
		}
		if err := st.Prepare(); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := st.Commit(state.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
		} else {
			st.Abort()
			task.Aborted()
		}
		return em, true
	}
	reserves := func(em emitted) int {
		return len(slices.DeleteFunc(slices.Clone(em), func(s string) bool { return s != string(inventory.TopicCommands)+" A" }))
	}

	task := newTask()
	// Three orders wait for A; nothing is in stock. The look at every SKU
	// waited for, at the start, finds nothing to ship.
	em, _ := txn(task, true, placed("o1", 2, t0+1000), placed("o2", 1, t0+2000), placed("o3", 1, t0+3000))
	if reserves(em) != 0 {
		t.Fatalf("reserved with no stock: %v", em)
	}
	if _, flushed := txn(task, true); flushed {
		if _, flushed := txn(task, true); flushed {
			t.Fatal("still pending after a look with nothing new")
		}
	}
	// A rise of a SKU nobody waits for is not work.
	stock("B", 5, 0)
	if task.Pending() {
		t.Fatal("pending after a rise of a SKU nobody waits for")
	}
	// A falls: not work either.
	stock("A", 0, 0)
	if task.Pending() {
		t.Fatal("pending after A did not rise")
	}

	// Two arrive: o1 takes both; o2 and o3 are not retried (claimed).
	stock("A", 2, 0)
	if !task.Pending() {
		t.Fatal("A rose, orders wait for it, and the task has no work")
	}
	// Aborted: the look is redone.
	em, _ = txn(task, false)
	if reserves(em) != 1 || !slices.Contains(em, string(TopicStatus)+" o1") {
		t.Fatalf("first look: %v, want o1's RESERVE and status", em)
	}
	em, flushed := txn(task, true)
	if !flushed || reserves(em) != 1 || !slices.Contains(em, string(TopicStatus)+" o1") {
		t.Fatalf("after the abort: flushed %t, %v; want o1 retried again", flushed, em)
	}
	if _, flushed := txn(task, true); flushed {
		t.Fatal("pending after the look")
	}
	o1, err := task.store.Order("o1")
	if err != nil || o1 == nil || o1.Attempt != 1 {
		t.Fatalf("o1: %+v, %v; want a round open", o1, err)
	}

	// Bounded: one order per transaction; o2 and o3 (one each) both get a
	// look once more arrive.
	task.retryBatch = 1
	stock("A", 5, 2) // 3 left: a rise
	var retried []string
	for i := 0; ; i++ {
		em, flushed := txn(task, true)
		if !flushed {
			break
		}
		if i == 3 {
			t.Fatal("more than 3 transactions for 2 orders")
		}
		if r := reserves(em); r > 1 {
			t.Fatalf("transaction %d: %d RESERVEs with retryBatch 1", i, r)
		}
		for _, id := range []string{"o2", "o3"} {
			if slices.Contains(em, string(TopicStatus)+" "+id) {
				retried = append(retried, id)
			}
		}
	}
	if !slices.Equal(retried, []string{"o2", "o3"}) {
		t.Fatalf("retried %v, want o2 then o3 (earliest placed first)", retried)
	}

	// After a restart the index is read again: o4 waits, and the first
	// look retries it.
	task.retryBatch = retryBatch
	stock("A", 5, 5)
	if _, flushed := txn(task, true, placed("o4", 1, t0+4000)); !flushed {
		t.Fatal("no flush")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = state.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	stock("A", 6, 5)
	task = newTask()
	em, flushed = txn(task, true)
	if !flushed || !slices.Contains(em, string(TopicStatus)+" o4") {
		t.Fatalf("after a restart: flushed %t, %v; want o4 retried", flushed, em)
	}

	// With the retry off the task has no such work.
	if _, flushed := txn(task, true, placed("o5", 9, t0+5000)); !flushed {
		t.Fatal("no flush")
	}
	task.r.cfg.NoBackorderRetry = true
	stock("A", 9, 4)
	if task.Pending() {
		t.Fatal("pending with the retry off")
	}
}

// TestRisesLost: a task that falls more than riseLog rises behind looks
// at every SKU waited for.
func TestRisesLost(t *testing.T) {
	a := NewAvailability()
	for i := range riseLog + 10 {
		sku := fmt.Sprint("S", i)
		u := schemas.AtsUpdate{SKU: sku, Version: 1, Channels: []schemas.ChannelATS{}, Nodes: []schemas.NodeATS{{NodeID: "W1", OnHand: 1}}}
		if err := a.Apply([]byte(sku), encodeT(t, schemas.AtsUpdates, &u)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	next, lost := a.Rises(0, func(sku string) { seen = append(seen, sku) })
	if !lost || next != riseLog+10 || len(seen) != riseLog || seen[0] != "S10" {
		t.Fatalf("from 0: lost %t, next %d, %d seen from %s; want lost, %d, %d from S10", lost, next, len(seen), seen[0], riseLog+10, riseLog)
	}
	seen = nil
	next, lost = a.Rises(riseLog+5, func(sku string) { seen = append(seen, sku) })
	if lost || next != riseLog+10 || len(seen) != 5 || seen[0] != fmt.Sprint("S", riseLog+5) {
		t.Fatalf("from riseLog+5: lost %t, next %d, seen %v", lost, next, seen)
	}
}

package router

import (
	"slices"
	"testing"
	"time"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/topology"
)

// grantedAt is the inventory's answer to the open round's RESERVE of qty
// at W1, in a record stamped ts.
// grantedAt is granted, for a record stamped ts.
func (g *retryRig) grantedAt(task *Task, id, sku string, qty, ts int64) *topology.Record {
	g.t.Helper()
	r := g.granted(task, id, sku, qty)
	r.Timestamp = ts
	return r
}

// TestLateRecordCountsOnNewestDay: a partition keeps one count per node
// (l/<node>: day + shipments). Once a record of day D+1 has routed to W1,
// a record stamped on day D (a second producer, a channel syncing late, a
// lagging router) plans with Load(W1, D) = 0 although W1 is full on D, and
// its shipment is counted nowhere (AddLoad ignores an earlier day). With a
// daily capacity of 1, W1 is given two shipments of day D.
// TestLateRecordCountsOnNewestDay: orders stamped with day D, processed
// after the partition counted day D+1 at a node (a producer's clock behind
// another's), see the newest day's count, and their shipments count there.
// Found by review: they saw 0 and their shipments counted on no day, so
// every one of them passed a full node.
func TestLateRecordCountsOnNewestDay(t *testing.T) {
	g := newRetryRig(t)
	g.cfg.NoBackorderRetry = true // isolate the capacity count
	g.node("W1", true, 1)
	g.stock("A", 100, 0)
	task := g.task()
	midnight := (t0/dayMillis + 1) * dayMillis // start of day D+1

	// Day D, 23:59:58: o1 takes W1's one shipment of day D.
	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, midnight-2000))
	g.txn(task, true, g.grantedAt(task, "o1", "A", 1, midnight-1900))
	if n, _ := task.store.Load("W1", day(midnight-1)); n != 1 {
		t.Fatalf("day D load %d, want 1", n)
	}
	// Day D+1, 00:00:00.5: o2 takes W1's one shipment of day D+1.
	g.txn(task, true, g.placed("o2", "A", 1, schemas.ShipComplete, midnight+500))
	g.txn(task, true, g.grantedAt(task, "o2", "A", 1, midnight+600))

	// Records stamped day D, 23:59:59, appended after o2's: W1 is full on
	// day D (o1) and must not be planned for any of them.
	routed := 0
	for i, id := range []string{"o3", "o4", "o5"} {
		at := midnight - 1000 + int64(i)*10
		em, _ := g.txn(task, true, g.placed(id, "A", 1, schemas.ShipComplete, at))
		if reserves(em, "A") == 0 {
			continue
		}
		g.txn(task, true, g.grantedAt(task, id, "A", 1, at+5))
		if o, _ := task.store.Order(id); o.State == schemas.StateRouted {
			routed++
		}
	}
	dD, _ := task.store.Load("W1", day(midnight-1))
	dD1, _ := task.store.Load("W1", day(midnight))
	if routed > 0 {
		t.Errorf("%d late day-D orders routed to W1 (capacity 1, already full on day D with o1); "+
			"the partition's count: day D %d, day D+1 %d: those shipments are counted on no day", routed, dD, dD1)
	}
}

// TestOtherPartitionsNewerDayCounts: the node-load table keeps one record per
// (node, partition); a partition that moved to day D+1 drops out of the
// count of day D that a partition still processing day-D records sees.
// TestOtherPartitionsNewerDayCounts: another partition whose record is for
// a later day counts for an earlier one too (its count of the earlier day
// is gone), as the partition's own count does.
func TestOtherPartitionsNewerDayCounts(t *testing.T) {
	g := newRetryRig(t)
	g.cfg.NoBackorderRetry = true
	g.node("W1", true, 1)
	g.stock("A", 100, 0)
	midnight := (t0/dayMillis + 1) * dayMillis
	put := func(p int32, d, n int64) {
		v := encodeT(t, schemas.NodeLoads, &schemas.NodeLoad{NodeID: "W1", Partition: p, Day: d, Shipments: n})
		if err := g.loads.Apply([]byte(LoadKey("W1", p)), v); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 5 gave W1 its one shipment of day D, then (its records run
	// ahead of ours) one of day D+1.
	put(5, day(midnight-1), 1)
	put(5, day(midnight), 1)
	task := g.task() // partition 0, still at 23:59:59 of day D
	em, _ := g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, midnight-1000))
	if reserves(em, "A") != 0 {
		t.Errorf("o1 (day D) planned at W1, which partition 5 filled on day D: Other(W1, D) = %d", g.loads.Other("W1", day(midnight-1), 0))
	}
}

// TestNewDayRetryKeepsLateRecordsCounted: the same without a second
// producer. The router lags two seconds at midnight; the new-day trigger
// retries a waiting order with the wall clock (day D+1), which moves the
// partition's count of W1 to day D+1; the next order, stamped day D, then
// sees W1 empty on day D, which o1 filled.
// TestNewDayRetryKeepsLateRecordsCounted: the new day's retry, stamped
// with the wall clock, moves a node's count to the new day while a lagging
// router still has orders of the day before to process; those see the
// count, and do not take the full node.
func TestNewDayRetryKeepsLateRecordsCounted(t *testing.T) {
	g := newRetryRig(t)
	g.node("W1", true, 1)
	g.stock("A", 100, 0)
	midnight := (t0/dayMillis + 1) * dayMillis
	clock := time.UnixMilli(midnight - 10_000)
	task := g.task()
	task.now = func() time.Time { return clock }
	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, midnight-10_000))
	g.txn(task, true, g.grantedAt(task, "o1", "A", 1, midnight-9_900))
	g.stock("A", 100, 1)
	g.txn(task, true, g.placed("o2", "A", 1, schemas.ShipComplete, midnight-9_000)) // W1 full: waits
	if o, _ := task.store.Order("o2"); o.State != schemas.StateBackordered {
		t.Fatalf("o2 %s, want BACKORDERED (W1 at capacity)", o.State)
	}
	clock = time.UnixMilli(midnight + 1000) // a new day: o2 retried
	if got := g.idle(task, 3); len(got) == 0 || !slices.Contains(got[0], "o2") {
		t.Fatalf("new day: %v, want o2 retried", got)
	}
	g.txn(task, true, g.grantedAt(task, "o2", "A", 1, midnight+1100))
	g.stock("A", 100, 2)
	// o3, stamped 23:59:59 of day D, reaches the lagging router now.
	em, _ := g.txn(task, true, g.placed("o3", "A", 1, schemas.ShipComplete, midnight-1000))
	if reserves(em, "A") != 0 {
		dD, _ := task.store.Load("W1", day(midnight-1))
		t.Errorf("o3 (day D) planned at W1, full on day D with o1: Load(W1, D) = %d", dD)
	}
}

// TestLateShipmentCancelFreesNode: a late record's shipment (stamped day
// D) is counted on day D+1, the node's newest day, and its cancellation on
// D+1 gives that unit back, so the order waiting for the node is retried.
// Found by review: the order kept D as the shipment's day, nothing came
// back, and the waiting order was never retried.
func TestLateShipmentCancelFreesNode(t *testing.T) {
	g := newRetryRig(t)
	g.node("W1", true, 2)
	g.stock("A", 100, 0)
	midnight := (t0/dayMillis + 1) * dayMillis
	clock := time.UnixMilli(midnight + 500)
	task := g.task()
	task.now = func() time.Time { return clock }

	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, midnight+500)) // day D+1
	g.txn(task, true, g.grantedAt(task, "o1", "A", 1, midnight+600))
	g.txn(task, true, g.placed("o2", "A", 1, schemas.ShipComplete, midnight-1000)) // stamped day D, late
	g.txn(task, true, g.grantedAt(task, "o2", "A", 1, midnight-900))
	if n, _ := task.store.Load("W1", day(midnight)); n != 2 {
		t.Fatalf("W1's count of day D+1: %d, want 2 (o1, and o2 counted on the newest day)", n)
	}
	g.stock("A", 100, 2)
	g.txn(task, true, g.placed("o3", "A", 1, schemas.ShipComplete, midnight+2000)) // W1 full: waits
	g.idle(task, 3)
	if o, _ := task.store.Order("o3"); o.State != schemas.StateBackordered {
		t.Fatalf("o3 %s, want BACKORDERED", o.State)
	}
	ev := schemas.OrderEvent{OrderID: "o2", Type: schemas.EventCancelled, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{}, PlacedAt: midnight - 1000}
	em, _ := g.txn(task, true, &topology.Record{Topic: string(TopicOrders), Key: []byte("o2"), Value: encodeT(t, schemas.OrderEvents, &ev), Timestamp: midnight + 3000})
	n, _ := task.store.Load("W1", day(midnight))
	got := append([][]string{statuses(em)}, g.idle(task, 3)...)
	if n != 1 || !slices.ContainsFunc(got, func(ids []string) bool { return slices.Contains(ids, "o3") }) {
		t.Errorf("o2's shipment (counted on D+1) cancelled on D+1: W1's count %d, want 1; retried %v, want o3", n, got)
	}
}

package router

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// retryRig runs router tasks on one Pebble store with one active node, W1,
// and an ats table the test writes.
type retryRig struct {
	t     *testing.T
	dir   string
	st    *state.Store
	avail *Availability
	loads *Loads // what the global reader would read back of the node-load records committed
	// lag, if set, keeps the committed node-load records in lagged instead
	// of applying them (the global reader has not read them yet).
	lag    bool
	lagged [][2][]byte
	cat    *catalog.Catalog
	cfg    Config
}

const t0 = int64(1_800_000_000_000)

func newRetryRig(t *testing.T) *retryRig {
	g := &retryRig{t: t, dir: t.TempDir(), avail: NewAvailability(), loads: NewLoads(), cat: catalog.New(nil)}
	var err error
	if g.st, err = state.Open(g.dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.st.Close() })
	g.node("W1", true, 0)
	return g
}

// applyATS applies sku's ats record with nodes to a.
func applyATS(t *testing.T, a *Availability, sku string, nodes ...schemas.NodeATS) {
	t.Helper()
	u := schemas.AtsUpdate{SKU: sku, Version: 1, UpdatedAt: t0, Channels: []schemas.ChannelATS{}, Nodes: nodes}
	if err := a.Apply([]byte(sku), encodeT(t, schemas.AtsUpdates, &u)); err != nil {
		t.Fatal(err)
	}
}

// stock writes sku's ats record: W1 has onHand, reserved.
func (g *retryRig) stock(sku string, onHand, reserved int64) {
	g.t.Helper()
	applyATS(g.t, g.avail, sku, schemas.NodeATS{NodeID: "W1", OnHand: onHand, Reserved: reserved, Active: true})
}

// node writes node id (in Paris) to the catalog: active or not, with a
// daily capacity (0: none).
func (g *retryRig) node(id string, active bool, capacity int32) {
	g.t.Helper()
	n := schemas.Node{NodeID: id, Type: schemas.Warehouse, Lat: 48.8, Lon: 2.3, Active: active, ShipEnabled: true, DailyCapacity: capacity}
	if err := g.cat.ApplyNode([]byte(id), encodeT(g.t, schemas.Nodes, &n)); err != nil {
		g.t.Fatal(err)
	}
}

// restart closes and opens the store (a new process); the next task reads it.
func (g *retryRig) restart() {
	g.t.Helper()
	if err := g.st.Close(); err != nil {
		g.t.Fatal(err)
	}
	var err error
	if g.st, err = state.Open(g.dir, nil); err != nil {
		g.t.Fatal(err)
	}
}

func (g *retryRig) task() *Task {
	g.t.Helper()
	topo := Topology(TopologyOptions{Catalog: g.cat, Availability: g.avail, Loads: g.loads, Config: g.cfg})
	task, err := topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: g.st}, CacheEntries: 100})
	if err != nil {
		g.t.Fatal(err)
	}
	return task.(*Task)
}

// placed is a PLACED order of one line: qty of sku.
func (g *retryRig) placed(id, sku string, qty int64, policy schemas.FulfillmentPolicy, at int64) *topology.Record {
	ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: "web", CustomerTier: schemas.TierStandard,
		Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3},
		Lines: []schemas.OrderLine{{LineID: "1", SKU: sku, Qty: qty}}, Policy: policy, LineIDs: []string{}, PlacedAt: at}
	return &topology.Record{Topic: string(TopicOrders), Key: []byte(id), Value: encodeT(g.t, schemas.OrderEvents, &ev), Timestamp: at}
}

// granted is the inventory's answer to a RESERVE of qty.
func (g *retryRig) granted(task *Task, id, sku string, qty int64) *topology.Record {
	g.t.Helper()
	o, err := task.store.Order(id)
	if err != nil || o == nil || o.Attempt == 0 {
		g.t.Fatalf("granted: order %s has no round open (%v)", id, err)
	}
	// The answer to the open round's RESERVE: its attempt (numbered on
	// across the order's rounds).
	r := schemas.ReservationResult{OrderID: id, LineID: "1", Type: schemas.Reserve, SKU: sku, NodeID: "W1", Qty: qty, Attempt: o.Attempt, OK: true}
	return &topology.Record{Topic: string(inventory.TopicResults), Key: []byte(id), Value: encodeT(g.t, schemas.ReservationResults, &r), Timestamp: t0 + 9000}
}

// txn runs one transaction: records, then the flush if the runtime would
// call it (input, or Pending); commit or abort.
func (g *retryRig) txn(task *Task, commit bool, recs ...*topology.Record) (em emitted, flushed bool) {
	g.t.Helper()
	for _, r := range recs {
		if err := task.Process(r, &em); err != nil {
			g.t.Fatalf("%s %s: %v", r.Topic, r.Key, err)
		}
	}
	if len(recs) == 0 && !task.Pending() {
		return nil, false
	}
	tee := loadTee{em: &em}
	if err := task.Flush(&tee); err != nil {
		g.t.Fatal(err)
	}
	if err := g.st.Prepare(); err != nil {
		g.t.Fatal(err)
	}
	if commit {
		if err := g.st.Commit(state.Checkpoint{}); err != nil {
			g.t.Fatal(err)
		}
		if g.lag {
			g.lagged = append(g.lagged, tee.loads...)
		} else {
			g.applyLoads(tee.loads)
		}
	} else {
		g.st.Abort()
		task.Aborted()
	}
	return em, true
}

// applyLoads applies node-load records to g.loads.
func (g *retryRig) applyLoads(kvs [][2][]byte) {
	g.t.Helper()
	for _, kv := range kvs {
		if err := g.loads.Apply(kv[0], kv[1]); err != nil {
			g.t.Fatal(err)
		}
	}
}

// loadTee passes what a flush emits on to em and keeps the node-load
// records.
type loadTee struct {
	em    *emitted
	loads [][2][]byte
}

func (l *loadTee) Emit(topic topology.Topic, key, value []byte) {
	if topic == TopicLoad {
		l.loads = append(l.loads, [2][]byte{key, value})
	}
	l.em.Emit(topic, key, value)
}

// idle runs transactions while the task has work without input, at most
// max, and returns the orders whose status each emitted.
func (g *retryRig) idle(task *Task, max int) [][]string {
	g.t.Helper()
	var out [][]string
	for {
		em, flushed := g.txn(task, true)
		if !flushed {
			return out
		}
		if len(out) == max {
			g.t.Fatalf("still pending after %d transactions without input", max)
		}
		out = append(out, statuses(em))
	}
}

// statuses lists the orders whose status em holds.
func statuses(em emitted) []string {
	var ids []string
	for _, s := range em {
		if id, ok := strings.CutPrefix(s, string(TopicStatus)+" "); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func reserves(em emitted, sku string) int {
	n := 0
	for _, s := range em {
		if s == string(inventory.TopicCommands)+" "+sku {
			n++
		}
	}
	return n
}

// TestBackorderRetryTask runs the retry of backordered lines on Pebble:
// the task looks at the orders waiting for a SKU when the ats table shows
// its availability rise (and at every SKU waited for after a start or an
// abort), within retryBatch per transaction, and only then; an aborted
// retry is redone; units a retry asked for stay taken until the table
// changes; the index survives a restart; with the retry off nothing is
// indexed.
func TestBackorderRetryTask(t *testing.T) {
	g := newRetryRig(t)
	g.stock("A", 0, 0)
	task := g.task()
	// Three orders wait for A; nothing is in stock. The look at every SKU
	// waited for, at the start, finds nothing to ship.
	em, _ := g.txn(task, true, g.placed("o1", "A", 2, schemas.ShipComplete, t0+1000), g.placed("o2", "A", 1, schemas.ShipComplete, t0+2000),
		g.placed("o3", "A", 1, schemas.ShipComplete, t0+3000))
	if reserves(em, "A") != 0 {
		t.Fatalf("reserved with no stock: %v", em)
	}
	if got := g.idle(task, 1); len(got) > 0 && len(got[0]) > 0 {
		t.Fatalf("the first look retried %v with no stock", got)
	}
	// A rise of a SKU nobody waits for is not work; nor is a fall.
	g.stock("B", 5, 0)
	if task.Pending() {
		t.Fatal("pending after a rise of a SKU nobody waits for")
	}
	g.stock("A", 0, 0)
	if task.Pending() {
		t.Fatal("pending after A did not rise")
	}

	// Two arrive: o1 takes both; o2 and o3 are not retried.
	g.stock("A", 2, 0)
	if !task.Pending() {
		t.Fatal("A rose, orders wait for it, and the task has no work")
	}
	// Aborted: the look is redone.
	em, _ = g.txn(task, false)
	if reserves(em, "A") != 1 || !slices.Equal(statuses(em), []string{"o1"}) {
		t.Fatalf("first look: %v, want o1's RESERVE and status", em)
	}
	if got := g.idle(task, 2); len(got) != 1 || !slices.Equal(got[0], []string{"o1"}) {
		t.Fatalf("after the abort: %v, want o1 retried again, once", got)
	}
	if o1, err := task.store.Order("o1"); err != nil || o1 == nil || o1.Attempt == 0 {
		t.Fatalf("o1: %+v, %v; want a round open", o1, err)
	}

	// Bounded: one order per transaction; the units o2's retry asked for
	// stay taken in the next transaction, until the inventory answers.
	task.retryBatch = 1
	g.txn(task, true, g.granted(task, "o1", "A", 2)) // the inventory's answer ends the claim
	g.stock("A", 2, 2)                               // and the table shows the reservation
	g.stock("A", 3, 2)                               // one more: a rise
	if got := g.idle(task, 3); !slices.Equal(got[0], []string{"o2"}) || slices.ContainsFunc(got, func(ids []string) bool { return slices.Contains(ids, "o3") }) {
		t.Fatalf("one unit for o2 and o3: %v, want o2 retried, not o3", got)
	}
	g.txn(task, true, g.granted(task, "o2", "A", 1))
	g.stock("A", 3, 3) // the table shows o2's unit reserved
	g.stock("A", 4, 3) // one more
	if got := g.idle(task, 3); len(got) == 0 || !slices.Equal(got[0], []string{"o3"}) {
		t.Fatalf("one more unit: %v, want o3 retried", got)
	}

	// After a restart the index is read again: o4 waits, and the first
	// look retries it (the log of rises read to its end before: the look
	// at every SKU waited for finds it).
	task.retryBatch = retryBatch
	g.stock("A", 4, 4)
	if _, flushed := g.txn(task, true, g.placed("o4", "A", 1, schemas.ShipComplete, t0+4000)); !flushed {
		t.Fatal("no flush")
	}
	g.stock("A", 5, 4)
	g.restart()
	task = g.task()
	task.riseSeq = g.avail.Seq()
	if got := g.idle(task, 2); len(got) == 0 || !slices.Equal(got[0], []string{"o4"}) {
		t.Fatalf("after a restart: %v, want o4 retried", got)
	}

	// With the retry off the task has no such work and indexes nothing.
	g.restart()
	g.cfg.NoBackorderRetry = true
	task = g.task()
	g.stock("A", 9, 5)
	if task.Pending() {
		t.Fatal("pending with the retry off")
	}
	g.txn(task, true, g.placed("o5", "A", 99, schemas.ShipComplete, t0+5000))
	if list, err := task.store.Backorders("A", Waiting{}, 10); err != nil || slices.ContainsFunc(list, func(w Waiting) bool { return w.ID == "o5" }) {
		t.Fatalf("A's waiting orders with the retry off: %v, %v; want no o5", list, err)
	}
}

// TestBackorderRoseDuringRound: stock that arrives while an order's round
// is open (the order does not wait yet) is looked at once the round ends
// with the order waiting.
func TestBackorderRoseDuringRound(t *testing.T) {
	g := newRetryRig(t)
	g.stock("C", 1, 0)
	task := g.task()
	em, _ := g.txn(task, true, g.placed("o1", "C", 3, schemas.ShipAvailable, t0+1000))
	if reserves(em, "C") != 1 {
		t.Fatalf("o1: %v, want a RESERVE", em)
	}
	g.idle(task, 2)
	g.stock("C", 3, 0) // two more, while the RESERVE is in flight
	if got := g.idle(task, 2); len(got) > 0 && len(got[0]) > 0 {
		t.Fatalf("the rise retried %v while o1's round was open", got)
	}
	// The answer: 1 unit; o1 ships it and waits for 2 more, which the
	// table already shows: it is retried for them, in that transaction's
	// flush or in the next.
	em, _ = g.txn(task, true, g.granted(task, "o1", "C", 1))
	n := reserves(em, "C")
	for range 2 {
		e, flushed := g.txn(task, true)
		if !flushed {
			break
		}
		n += reserves(e, "C")
	}
	if n != 1 {
		t.Fatalf("after the answer: %d RESERVEs, want 1: o1 retried for the 2 units that came during its round", n)
	}
	if o1, err := task.store.Order("o1"); err != nil || o1.Attempt == 0 {
		t.Fatalf("o1: %+v, %v; want a round open", o1, err)
	}
}

// TestBackorderTurns: a SKU whose orders fill a transaction's look goes
// to the end of the queue: the other SKUs' orders are not held up.
func TestBackorderTurns(t *testing.T) {
	g := newRetryRig(t)
	g.stock("X", 0, 0)
	g.stock("Y", 0, 0)
	task := g.task()
	task.retryBatch = 1
	g.txn(task, true, g.placed("x1", "X", 1, schemas.ShipComplete, t0+1000), g.placed("x2", "X", 1, schemas.ShipComplete, t0+2000),
		g.placed("y1", "Y", 1, schemas.ShipComplete, t0+3000))
	g.idle(task, 4)
	g.stock("X", 5, 0)
	g.stock("Y", 5, 0)
	var order []string
	for _, ids := range g.idle(task, 6) {
		order = append(order, ids...)
	}
	if !slices.Equal(order, []string{"x1", "y1", "x2"}) {
		t.Fatalf("retried in order %v, want x1, y1, x2", order)
	}
}

// TestRises: a rise at one node counts even when another node's fall
// hides it in the sum; a task that falls more than riseLog rises behind
// is told so.
func TestRises(t *testing.T) {
	a := NewAvailability()
	apply := func(sku string, nodes ...schemas.NodeATS) { t.Helper(); applyATS(t, a, sku, nodes...) }
	apply("A", schemas.NodeATS{NodeID: "W1", OnHand: 5}, schemas.NodeATS{NodeID: "W2"})
	apply("A", schemas.NodeATS{NodeID: "W1", OnHand: 5, Reserved: 5}, schemas.NodeATS{NodeID: "W2", OnHand: 5})
	apply("A", schemas.NodeATS{NodeID: "W1", OnHand: 5, Reserved: 5}, schemas.NodeATS{NodeID: "W2", OnHand: 4})
	var seen []string
	if next, lost := a.Rises(0, func(sku string) { seen = append(seen, sku) }); lost || next != 2 || len(seen) != 2 {
		t.Fatalf("rises %v (next %d, lost %t), want A twice: the first record, and W2's rise W1's fall hides", seen, next, lost)
	}
	if a.RoseAt("A") != 2 || a.RoseAt("B") != 0 {
		t.Fatalf("RoseAt A %d, B %d; want 2, 0", a.RoseAt("A"), a.RoseAt("B"))
	}
	for i := range riseLog + 10 {
		apply(fmt.Sprint("S", i), schemas.NodeATS{NodeID: "W1", OnHand: 1})
	}
	seen = nil
	next, lost := a.Rises(0, func(sku string) { seen = append(seen, sku) })
	if !lost || next != riseLog+12 || len(seen) != riseLog || seen[0] != "S10" {
		t.Fatalf("from 0: lost %t, next %d, %d seen from %s; want lost, %d, %d from S10 (the two rises of A and S0..S9 are gone)", lost, next, len(seen), seen[0], riseLog+12, riseLog)
	}
	seen = nil
	next, lost = a.Rises(riseLog+7, func(sku string) { seen = append(seen, sku) })
	if lost || next != riseLog+12 || len(seen) != 5 || seen[0] != fmt.Sprint("S", riseLog+5) {
		t.Fatalf("from riseLog+7: lost %t, next %d, seen %v", lost, next, seen)
	}
}

// TestShortCaps: an order keeps at most maxShorts short caps, the newest,
// whatever refusal caps the round holds; a short cap holds to the end of
// the next UTC day, and while the node's on_hand is no higher than then.
func TestShortCaps(t *testing.T) {
	net := newTestNet()
	net.stock[[2]string{"A", "W1"}] = schemas.NodeATS{NodeID: "W1", OnHand: 7}
	s := &step{w: testWorld{net}, ts: t0, o: &schemas.RouterOrder{}}
	for i := range 20 {
		s.o.Caps = append(s.o.Caps, schemas.Cap{SKU: "A", NodeID: fmt.Sprint("R", i), Available: int64(i % 2)})
	}
	for i := range 20 {
		s.addShort("A", fmt.Sprint("N", i))
	}
	var shorts []string
	for _, c := range s.o.Caps {
		if c.Available < 0 {
			shorts = append(shorts, c.NodeID)
		}
	}
	if len(s.o.Caps) != 20+maxShorts || len(shorts) != maxShorts || shorts[0] != "N4" || shorts[maxShorts-1] != "N19" {
		t.Fatalf("%d caps, shorts %v; want 20 refusals and N4..N19", len(s.o.Caps), shorts)
	}
	s.addShort("A", "W1")
	c := s.o.Caps[len(s.o.Caps)-1]
	if !s.shortHolds(c) {
		t.Fatal("a short cap does not hold at once")
	}
	net.stock[[2]string{"A", "W1"}] = schemas.NodeATS{NodeID: "W1", OnHand: 3} // a count down, a shipment
	if !s.shortHolds(c) {
		t.Fatal("a short cap does not hold with on_hand lower")
	}
	s.ts = t0 + 24*time.Hour.Milliseconds()
	if !s.shortHolds(c) {
		t.Fatal("a short cap does not hold the next UTC day")
	}
	s.ts = t0 + 48*time.Hour.Milliseconds()
	if s.shortHolds(c) {
		t.Fatal("a short cap holds two UTC days later")
	}
	s.ts = t0 + time.Hour.Milliseconds()
	net.stock[[2]string{"A", "W1"}] = schemas.NodeATS{NodeID: "W1", OnHand: 8}
	if s.shortHolds(c) {
		t.Fatal("a short cap holds with on_hand above what it was")
	}
}

// TestClaimExpires: units a retry asked for that the ats table never shows
// reserved (the inventory refused them) stop counting after claimFor.
func TestClaimExpires(t *testing.T) {
	g := newRetryRig(t)
	clock := time.UnixMilli(t0)
	ats := func(w1, w2 int64) { // W2 is not in the catalog: its rises only wake the task
		t.Helper()
		applyATS(t, g.avail, "A", schemas.NodeATS{NodeID: "W1", OnHand: w1, Active: true}, schemas.NodeATS{NodeID: "W2", OnHand: w2})
	}
	ats(0, 0)
	task := g.task()
	task.now = func() time.Time { return clock }
	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, t0+1000), g.placed("o2", "A", 1, schemas.ShipComplete, t0+2000))
	g.idle(task, 2)
	ats(1, 0)
	if got := g.idle(task, 2); len(got) != 1 || !slices.Equal(got[0], []string{"o1"}) {
		t.Fatalf("one unit: %v, want o1 retried", got)
	}
	ats(1, 1) // the table does not show o1's unit reserved
	if got := g.idle(task, 2); len(got) > 0 && len(got[0]) > 0 {
		t.Fatalf("the unit is claimed: %v, want nothing retried", got)
	}
	clock = clock.Add(claimFor)
	ats(1, 2)
	if got := g.idle(task, 2); len(got) != 1 || !slices.Equal(got[0], []string{"o2"}) {
		t.Fatalf("after claimFor: %v, want o2 retried", got)
	}
}

// TestBackorderCatalogAndDay: a node activated with the stock it already
// had, and a new day that gives a node its capacity back, are looked at
// like stock arriving.
func TestBackorderCatalogAndDay(t *testing.T) {
	g := newRetryRig(t)
	clock := time.UnixMilli(t0)
	g.node("W1", true, 1)
	g.stock("A", 5, 0)
	task := g.task()
	task.now = func() time.Time { return clock }
	// o0 takes W1's one shipment of the day; o1 waits for it.
	em, _ := g.txn(task, true, g.placed("o0", "A", 1, schemas.ShipComplete, t0))
	if reserves(em, "A") != 1 {
		t.Fatalf("o0: %v", em)
	}
	g.txn(task, true, g.granted(task, "o0", "A", 1))
	g.stock("A", 5, 1)
	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, t0+1000))
	if got := g.idle(task, 2); len(got) > 0 && len(got[0]) > 0 {
		t.Fatalf("W1 is at capacity today: %v retried", got)
	}
	clock = clock.Add(24 * time.Hour)
	if got := g.idle(task, 2); len(got) != 1 || !slices.Equal(got[0], []string{"o1"}) {
		t.Fatalf("the next day: %v, want o1 retried", got)
	}

	// o2 waits for B, which only an inactive node has; the node is
	// activated.
	g.node("W2", false, 0)
	applyATS(t, g.avail, "B", schemas.NodeATS{NodeID: "W2", OnHand: 3})
	g.txn(task, true, g.placed("o2", "B", 1, schemas.ShipComplete, t0+2000))
	g.idle(task, 3)
	g.node("W2", true, 0)
	if got := g.idle(task, 3); len(got) == 0 || !slices.Contains(got[0], "o2") {
		t.Fatalf("W2 activated: %v, want o2 retried", got)
	}
}

// TestBackorderCapacityBack: an order that waits because the node with the
// stock is at its daily capacity is retried when the node gets capacity
// back the same day: another partition's count of shipments there falls,
// or this partition's own order is cancelled with its shipment of today,
// even in the transaction that filled the node. Only a node that was full
// and has capacity left after the fall is looked at, and only for the SKUs
// waited for that it has available.
func TestBackorderCapacityBack(t *testing.T) {
	g := newRetryRig(t)
	clock := time.UnixMilli(t0)
	loadOn := func(node string, p int32, d, shipments int64) {
		t.Helper()
		v := encodeT(t, schemas.NodeLoads, &schemas.NodeLoad{NodeID: node, Partition: p, Day: d, Shipments: shipments})
		if err := g.loads.Apply([]byte(LoadKey(node, p)), v); err != nil {
			t.Fatal(err)
		}
	}
	load := func(node string, p int32, shipments int64) {
		t.Helper()
		loadOn(node, p, day(clock.UnixMilli()), shipments)
	}
	g.node("W1", true, 1)
	g.node("W2", false, 5) // inactive: it ships nothing, but has A and a capacity
	applyATS(t, g.avail, "A", schemas.NodeATS{NodeID: "W1", OnHand: 5, Active: true}, schemas.NodeATS{NodeID: "W2", OnHand: 5})
	g.stock("C", 0, 0)
	task := g.task()
	task.now = func() time.Time { return clock }
	noLook := func(what string) {
		t.Helper()
		if task.Pending() || len(task.queue) > 0 {
			t.Fatalf("%s: queued %v", what, task.queue)
		}
	}
	// Partition 7 used W1's one shipment of the day: o1 (A) waits; o3
	// waits for C, which no node has.
	load("W1", 7, 1)
	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, t0+1000), g.placed("o3", "C", 1, schemas.ShipComplete, t0+1500))
	g.idle(task, 2)
	noLook("W1 at capacity")
	load("W1", 7, 1)
	noLook("the same count again")
	loadOn("W1", 9, day(clock.UnixMilli())-1, 1)
	loadOn("W1", 9, day(clock.UnixMilli())-1, 0)
	noLook("a count of yesterday fell")
	load("W2", 3, 2)
	load("W2", 3, 1)
	noLook("W2's count fell, but W2 was not full")
	load("W1", 8, 1)
	load("W1", 7, 0)
	noLook("partition 7 gave W1's shipment back and partition 8 took it")
	load("W1", 8, 0)
	if !task.Pending() || !slices.Equal(task.queue, []string{"A"}) {
		t.Fatalf("partition 8 gave W1's shipment back: queued %v, want A (W1 has no C)", task.queue)
	}
	if got := g.idle(task, 2); len(got) != 1 || !slices.Equal(got[0], []string{"o1"}) {
		t.Fatalf("partition 8 gave W1's shipment back: %v, want o1 retried", got)
	}
	g.txn(task, true, g.granted(task, "o1", "A", 1))
	g.idle(task, 2)

	// o1 holds W1's shipment of the day now; o2, for B, waits; o1 is
	// cancelled. The release of o1's A is no rise of B: only the capacity
	// back can retry o2, in the cancellation's own transaction.
	g.stock("B", 5, 0)
	g.txn(task, true, g.placed("o2", "B", 1, schemas.ShipComplete, t0+2000))
	g.idle(task, 2)
	noLook("W1 at capacity")
	cancel := func(id string) *topology.Record {
		ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventCancelled, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{}, PlacedAt: t0 + 3000}
		return &topology.Record{Topic: string(TopicOrders), Key: []byte(id), Value: encodeT(t, schemas.OrderEvents, &ev), Timestamp: t0 + 3000}
	}
	// retried says whether the transaction em, or the ones without input
	// after it, retried id with a RESERVE of sku.
	retried := func(em emitted, id, sku string) bool {
		t.Helper()
		for {
			if slices.Contains(statuses(em), id) && reserves(em, sku) == 1 {
				return true
			}
			var flushed bool
			if em, flushed = g.txn(task, true); !flushed {
				return false
			}
		}
	}
	em, _ := g.txn(task, true, cancel("o1"))
	if !retried(em, "o2", "B") {
		t.Fatalf("o1's shipment cancelled: %v, want o2 retried", em)
	}
	g.txn(task, true, g.granted(task, "o2", "B", 1))
	g.idle(task, 2)

	// In one transaction: o5 is granted W1's shipment (the node is full),
	// o6 (E) waits for it, o5 is cancelled. The count the partition
	// publishes is the same as before the transaction: only the fall seen as
	// it happens retries o6.
	g.txn(task, true, cancel("o2"))
	g.idle(task, 2)
	g.stock("D", 5, 0)
	g.stock("E", 5, 0)
	g.txn(task, true, g.placed("o5", "D", 1, schemas.ShipComplete, t0+4000))
	g.idle(task, 2)
	em, _ = g.txn(task, true, g.granted(task, "o5", "D", 1), g.placed("o6", "E", 1, schemas.ShipComplete, t0+5000), cancel("o5"))
	if !retried(em, "o6", "E") {
		t.Fatalf("o5 cancelled in the transaction o6 waited in: %v, want o6 retried", em)
	}
	g.txn(task, true, g.granted(task, "o6", "E", 1))
	g.txn(task, true, cancel("o6"))
	g.idle(task, 2)

	// W1 takes 2 a day now, and partition 7 has 1 there. This partition
	// ships o7 (W1 full: its count and partition 7's) and o8 waits.
	g.node("W1", true, 2)
	g.stock("F", 5, 0)
	g.stock("G", 5, 0)
	load("W1", 7, 1)
	g.txn(task, true, g.placed("o7", "F", 1, schemas.ShipComplete, t0+6000))
	g.idle(task, 2)
	g.lag = true // the table does not have this partition's count of 1 yet
	g.txn(task, true, g.granted(task, "o7", "F", 1), g.placed("o8", "G", 1, schemas.ShipComplete, t0+7000))
	g.idle(task, 2)
	noLook("W1 full with partition 7's shipment and this partition's")
	// Partition 7's count falls before the table has this partition's:
	// W1 was full all the same.
	load("W1", 7, 0)
	if !retried(nil, "o8", "G") {
		t.Fatal("partition 7 gave W1's shipment back while the table lagged: want o8 retried")
	}
	g.lag = false
	g.applyLoads(g.lagged)
	g.txn(task, true, g.granted(task, "o8", "G", 1))
	g.idle(task, 2)

	// Full again, with partition 7's shipment and this partition's o8 (o7
	// went); o9 waits; this partition cancels o8: the fall counts
	// partition 7's share.
	load("W1", 7, 1)
	g.txn(task, true, cancel("o7"))
	g.idle(task, 2)
	g.stock("H", 5, 0)
	g.txn(task, true, g.placed("o9", "H", 1, schemas.ShipComplete, t0+8000))
	g.idle(task, 2)
	noLook("W1 full with partition 7's shipment and o8")
	if em, _ := g.txn(task, true, cancel("o8")); !retried(em, "o9", "H") {
		t.Fatalf("o8 cancelled: %v, want o9 retried", em)
	}

	// Full again (o9 here, partition 7's one); o10 waits. Partition 7's
	// count falls, and before this partition looks at that, it cancels o9:
	// its own fall was not at a full node any more, and its count is 0 by
	// the look; partition 7's fall was at a full node all the same.
	g.txn(task, true, g.granted(task, "o9", "H", 1))
	g.stock("I", 5, 0)
	g.txn(task, true, g.placed("o10", "I", 1, schemas.ShipComplete, t0+9000))
	g.idle(task, 2)
	noLook("W1 full with partition 7's shipment and o9")
	load("W1", 7, 0)
	if em, _ := g.txn(task, true, cancel("o9")); !retried(em, "o10", "I") {
		t.Fatalf("partition 7 and o9 gave W1's shipments back: %v, want o10 retried", em)
	}
}

// TestLoadsFalls: the node-load table logs a partition's count of a
// node's shipments falling within a day, with every partition's count that
// day before it; not a new day's count, not a rise; a reader too far behind
// is told.
func TestLoadsFalls(t *testing.T) {
	l := NewLoads()
	set := func(node string, p int32, d, n int64) {
		t.Helper()
		if err := l.Apply([]byte(LoadKey(node, p)), encodeT(t, schemas.NodeLoads, &schemas.NodeLoad{NodeID: node, Partition: p, Day: d, Shipments: n})); err != nil {
			t.Fatal(err)
		}
	}
	falls := func(from uint64) (fs []Fall, next uint64, lost bool) {
		next, lost = l.Falls(from, func(f Fall) { fs = append(fs, f) })
		return fs, next, lost
	}
	set("W1", 0, 100, 3)
	set("W1", 1, 100, 2)
	set("W1", 2, 99, 9) // another day: not counted
	set("W2", 0, 100, 1)
	set("W1", 0, 100, 4) // a rise
	set("W2", 0, 101, 0) // a new day
	if fs, _, _ := falls(0); len(fs) != 0 {
		t.Fatalf("no fall yet: %v", fs)
	}
	set("W1", 1, 100, 1)
	fs, seq, lost := falls(0)
	if len(fs) != 1 || lost || fs[0].Node != "W1" || fs[0].Partition != 1 || fs[0].Day != 100 || fs[0].Before != 6 {
		t.Fatalf("W1's count fell: %+v (lost %v), want W1, partition 1, day 100, before 6", fs, lost)
	}
	// A partition's own count, which the table may not have yet, in place
	// of the table's: partition 0 had 4, knows 5; partition 5 had none.
	if b0, b5 := fs[0].BeforeWith(0, 5), fs[0].BeforeWith(5, 1); b0 != 7 || b5 != 7 {
		t.Fatalf("before with partition 0's own 5: %d, want 7; with partition 5's own 1: %d, want 7", b0, b5)
	}
	// An own count that fell since (to 2) is not the one of the fall's time.
	if b := fs[0].BeforeWith(0, 2); b != 6 {
		t.Fatalf("before with partition 0's own 2: %d, want 6 (the table's 4)", b)
	}
	if fs, _, _ := falls(seq); len(fs) != 0 {
		t.Fatalf("nothing new since: %v", fs)
	}
	for i := range fallLog + 2 { // a first count, then fallLog+1 falls
		set("W3", 0, 100, int64(2*fallLog-i))
	}
	fs, _, lost = falls(seq)
	if len(fs) != fallLog || !lost || fs[len(fs)-1].Before != fallLog {
		t.Fatalf("%d falls (lost %v), want the newest %d and lost", len(fs), lost, fallLog)
	}
}

// TestClaimRefused: the inventory's refusal of a retry's RESERVE ends its
// claim at once, and the SKU is looked at again.
func TestClaimRefused(t *testing.T) {
	g := newRetryRig(t)
	g.stock("A", 0, 0)
	task := g.task()
	g.txn(task, true, g.placed("o1", "A", 1, schemas.ShipComplete, t0+1000), g.placed("o2", "A", 1, schemas.ShipAvailable, t0+2000))
	g.idle(task, 2)
	g.stock("A", 1, 0)
	if got := g.idle(task, 2); len(got) != 1 || !slices.Equal(got[0], []string{"o1"}) {
		t.Fatalf("one unit: %v, want o1 retried", got)
	}
	o1, err := task.store.Order("o1")
	if err != nil || o1 == nil || o1.Attempt == 0 {
		t.Fatalf("o1: %+v, %v; want a round open", o1, err)
	}
	refused := schemas.ReservationResult{OrderID: "o1", LineID: "1", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 1, Attempt: o1.Attempt, Available: 1}
	rec := &topology.Record{Topic: string(inventory.TopicResults), Key: []byte("o1"), Value: encodeT(t, schemas.ReservationResults, &refused), Timestamp: t0 + 5000}
	// Refused though it reports 1 left (another partition's order took it
	// and gave it back, say): o1 re-plans within its round; the unit is
	// claimed no more, and o2 is looked at in the same transaction.
	em, _ := g.txn(task, true, rec)
	if !slices.Contains(statuses(em), "o2") {
		t.Fatalf("after the refusal: %v, want o2 retried", em)
	}
}

// TestPhantomStock: after one order's short pick at a node, retries of the
// partition's other orders stay away from that stock too, until the node's
// on_hand rises.
func TestPhantomStock(t *testing.T) {
	g := newRetryRig(t)
	g.stock("A", 2, 0)
	task := g.task()
	em, _ := g.txn(task, true, g.placed("o1", "A", 2, schemas.ShipComplete, t0+1000))
	if reserves(em, "A") != 1 {
		t.Fatalf("o1: %v", em)
	}
	g.txn(task, true, g.granted(task, "o1", "A", 2))
	g.stock("A", 2, 2)
	g.txn(task, true, g.placed("o2", "A", 1, schemas.ShipComplete, t0+2000)) // waits
	fb := schemas.FulfillmentFeedback{FeedbackID: "f1", OrderID: "o1", LineID: "1", NodeID: "W1", Type: schemas.FeedbackShortPicked, QtyShort: 2}
	rec := &topology.Record{Topic: string(TopicFeedback), Key: []byte("o1"), Value: encodeT(t, schemas.FulfillmentFeedbacks, &fb), Timestamp: t0 + 3000}
	g.txn(task, true, rec)
	g.stock("A", 2, 0) // the release: the 2 units the node could not find look available
	if got := g.idle(task, 2); len(got) > 0 && (slices.Contains(got[0], "o1") || slices.Contains(got[0], "o2")) {
		t.Fatalf("retried to stock a short pick showed missing: %v", got)
	}
	g.stock("A", 3, 0) // a receipt: on_hand above what it was
	if got := g.idle(task, 2); len(got) == 0 || !slices.Contains(got[0], "o1") {
		t.Fatalf("after a receipt: %v, want o1 retried", got)
	}
}

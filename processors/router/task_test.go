package router

import (
	"errors"
	"fmt"
	"reflect"
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

// TestLoadDays: a node's count is per UTC day; a record stamped with an
// earlier day (clock skew) neither wipes nor moves today's count.
func TestLoadDays(t *testing.T) {
	st, err := state.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &pebbleStore{st: st, orders: state.NewTable[schemas.RouterOrder](st, prefixOrder, orderCodec{}, 10), dirty: map[string]int64{}}
	for range 5 {
		if _, err := s.AddLoad("W1", 101, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddLoad("W1", 100, -1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Load("W1", 101); err != nil || n != 5 {
		t.Fatalf("day 101: %d, %v; want 5", n, err)
	}
	// a record stamped day 100 after day 101 was counted: it sees day
	// 101's count, and its shipment counts on day 101
	if n, _ := s.Load("W1", 100); n != 5 {
		t.Fatalf("day 100: %d, want 5 (counted against the newest day)", n)
	}
	if d, err := s.AddLoad("W1", 100, 1); err != nil || d != 101 {
		t.Fatalf("a late shipment of day 100 counted on day %d (%v), want 101", d, err)
	}
	if n, _ := s.Load("W1", 101); n != 6 {
		t.Fatalf("day 101 after a late shipment of day 100: %d, want 6", n)
	}
	if _, err := s.AddLoad("W1", 100, -1); err != nil { // a late give-back: nothing
		t.Fatal(err)
	}
	if n, _ := s.Load("W1", 101); n != 6 {
		t.Fatalf("day 101 after a late give-back of day 100: %d, want 6", n)
	}
	if _, err := s.AddLoad("W1", 102, 1); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Load("W1", 102); n != 1 {
		t.Fatalf("day 102: %d, want 1 (the count starts again)", n)
	}
}

// emitted records what a task emits.
type emitted []string

func (e *emitted) Emit(topic topology.Topic, key, value []byte) {
	if value == nil {
		*e = append(*e, fmt.Sprintf("%s %s tombstone", topic, key))
	} else {
		*e = append(*e, fmt.Sprintf("%s %s", topic, key))
	}
}

// TestRetentionTask runs order retention on Pebble: the stream time and
// the finished orders' entries are stored, a purge forgets a finished
// order (state, entry, status tombstone) only once due, an aborted purge
// is redone, an order finished again moves its entry, a look forgets at
// most purgeBatch, and after a restart an old PLACED event of a forgotten
// order is refused.
func TestRetentionTask(t *testing.T) {
	g := newRetentionRig(t, 10*time.Second)
	newTask, placed, result, txn, stored, cancel, now, due := g.newTask, g.placed, g.result, g.txn, g.stored, g.cancel, g.now, g.due
	has := func(em emitted, s string) bool { return slices.Contains(em, s) }
	const t0 = rigT0

	task := newTask()
	// o1 placed at t0, reserved and shipped: finished at stream time t0
	// (only order events move it).
	txn(task, true, placed("o1", t0), result("o1", schemas.Reserve, 1, t0+1000), result("o1", schemas.Consume, 0, t0+2000))
	if o, _ := task.store.Order("o1"); o == nil || o.State != schemas.StateShipped {
		t.Fatalf("o1: %+v, want SHIPPED", o)
	}
	if !stored("u/o1") || !stored(string(dueKey(t0, "o1"))) || now(task) != 0 {
		t.Fatalf("o1's entry not stored at t0 (stream time %d)", now(task))
	}
	// At t0+15s o1 is due, but the first look was at t0: the next comes
	// a minute of stream time later.
	if em := txn(task, true, placed("o2", t0+15000)); has(em, "order-status o1 tombstone") {
		t.Fatalf("o1 forgotten before the next look: %v", em)
	}
	// At t0+70s o1 is forgotten; the transaction aborts, then is redone.
	if em := txn(task, false, placed("o3", t0+70000)); !has(em, "order-status o1 tombstone") {
		t.Fatalf("o1 not forgotten at t0+70s: %v", em)
	}
	if o, _ := task.store.Order("o1"); o == nil || !stored("u/o1") || now(task) != 15000 {
		t.Fatalf("an aborted purge left o1 forgotten, or the stream time at %d", now(task))
	}
	if em := txn(task, true, placed("o3", t0+70000)); !has(em, "order-status o1 tombstone") {
		t.Fatalf("the purge was not redone after the abort: %v", em)
	}
	if stored("o/o1") || stored("u/o1") || stored(string(dueKey(t0, "o1"))) {
		t.Fatal("o1's state or entry left after the purge")
	}
	if !stored("o/o2") || !stored("o/o3") {
		t.Fatal("open orders forgotten")
	}
	// o3 cancelled at t0+71s: finished at the stream time before, t0+70s;
	// cancelled again at t0+72s (refused, a new status): its entry moves
	// to t0+71s. Due's bound is inclusive.
	txn(task, true, cancel("o3", t0+71000))
	if got := due(task, t0+70000); !slices.Equal(got, []string{"o3@70000"}) {
		t.Fatalf("due at t0+70s: %v", got)
	}
	txn(task, true, cancel("o3", t0+72000))
	if got := due(task, t0+71000); !slices.Equal(got, []string{"o3@71000"}) || stored(string(dueKey(t0+70000, "o3"))) {
		t.Fatalf("due at t0+71s: %v (the entry at t0+70s must be gone)", got)
	}
	if got := due(task, t0+70999); len(got) != 0 {
		t.Fatalf("due at t0+70.999s: %v", got)
	}
	// A refused PLACED event does not move the stream time.
	var em emitted
	refused := placed("o9", 0)
	refused.Timestamp = t0 + 500000
	if err := task.Process(refused, &em); err == nil {
		t.Fatal("an order without placed_at taken")
	}
	if now(task) != 72000 {
		t.Fatalf("stream time %d after a refused event, want 72000", now(task))
	}
	g.st.Abort()
	task.Aborted()
	// o2 cancelled at t0+73s (finished at t0+72s). At t0+140s both are
	// due: with one per look,
	// one is forgotten in that transaction and the other in the next.
	txn(task, true, cancel("o2", t0+73000))
	task.purgeBatch = 1
	em1 := txn(task, true, placed("o4", t0+135000), placed("o6", t0+140000))
	em2 := txn(task, true)
	if !has(em1, "order-status o3 tombstone") || has(em1, "order-status o2 tombstone") || !has(em2, "order-status o2 tombstone") {
		t.Fatalf("one per look: %v, then %v", em1, em2)
	}
	// A restart: the stream time comes from the store, and o1's PLACED
	// event, 140 s old, is refused rather than routed again.
	g.reopen()
	task = newTask()
	// o4 shipped by the first records after it: finished at the stored
	// stream time, not at 0 or at its placed_at.
	txn(task, true, result("o4", schemas.Reserve, 1, t0+141000), result("o4", schemas.Consume, 0, t0+142000))
	if got := due(task, t0+200000); !slices.Contains(got, "o4@140000") {
		t.Fatalf("o4 after the restart: %v, want o4@140000", got)
	}
	err := task.Process(placed("o1", t0), &em)
	var bad *topology.BadInputError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), "order_retention") {
		t.Fatalf("o1 placed again after a restart: %v, want a dead letter for order_retention", err)
	}
	if now(task) != 140000 {
		t.Fatalf("stream time after the restart: %d, want 140000", now(task))
	}
	// A record stamped far ahead of the wall clock of its poll moves the
	// stream time by an hour past that clock at most, and a placed_at
	// more than two hours past it is refused.
	ahead := placed("o7", t0+150000)
	ahead.Timestamp, ahead.Polled = t0+1e10, t0+150000
	txn(task, true, ahead)
	if now(task) != 150000+3600000 {
		t.Fatalf("stream time after a record stamped far ahead: %d, want %d", now(task), 150000+3600000)
	}
	far := placed("o8", t0+150000+2*3600000+1)
	far.Polled = t0 + 150000
	if err := task.Process(far, &em); !errors.As(err, &bad) {
		t.Fatalf("an order placed more than two hours past its poll: %v, want a dead letter", err)
	}
}

// TestRetentionMigration: orders that finished while order_retention was
// unset are listed when it is set, as finished at the stream time of the
// flush that lists them (not earlier: they are kept order_retention from
// then), purgeBatch of the stored orders per flush, once a stream time
// is known; open orders are not; an aborted look is redone; unsetting the
// option again deletes the marker, so orders finished meanwhile are listed
// when it is set once more.
func TestRetentionMigration(t *testing.T) {
	g := newRetentionRig(t, 0)
	const t0 = rigT0
	shipped := func(id string, at int64) []*topology.Record {
		return []*topology.Record{g.placed(id, at), g.result(id, schemas.Reserve, 1, at+1), g.result(id, schemas.Consume, 0, at+2)}
	}
	task := g.newTask()
	g.txn(task, true, shipped("o1", t0)...)
	g.txn(task, true, shipped("o2", t0+1000)...)
	g.txn(task, true, g.placed("o3", t0+2000)) // routed, not shipped: open
	if o, _ := task.store.Order("o1"); o == nil || o.State != schemas.StateShipped || g.stored("u/o1") {
		t.Fatalf("o1 without retention: %+v, listed %t", o, g.stored("u/o1"))
	}

	// order_retention set, with a restart: nothing is listed before the
	// first order event gives a stream time.
	g.retained = 10 * time.Second
	g.reopen()
	task = g.newTask()
	task.purgeBatch = 2
	g.txn(task, true, g.result("o3", schemas.Consume, 0, t0+500000)) // o3 shipped: listed by save, at its placed_at
	if g.stored("u/o1") || g.stored("m/") {
		t.Fatal("listed without a stream time")
	}
	if got := g.due(task, t0+1e9); !slices.Equal(got, []string{"o3@2000"}) {
		t.Fatalf("due: %v, want o3 only", got)
	}
	// The stream time is t0+100s: o1 and o2 are listed at it, two stored
	// orders per flush (o1, o2; then o3, listed already, and o4, open),
	// and o3 (finished at t0+2s) is forgotten. An aborted look is redone.
	g.txn(task, false, g.placed("o4", t0+100000))
	if g.stored("u/o1") || g.stored("m/") || task.migrated {
		t.Fatal("an aborted look left its marks")
	}
	em := g.txn(task, true, g.placed("o4", t0+100000))
	if got := g.due(task, t0+1e9); !slices.Equal(got, []string{"o1@100000", "o2@100000"}) || task.migrated {
		t.Fatalf("due after the first look: %v, migrated %t", got, task.migrated)
	}
	if !slices.Contains(em, "order-status o3 tombstone") {
		t.Fatalf("o3 not forgotten at t0+100s: %v", em)
	}
	g.txn(task, true)
	if !task.migrated || task.r.Stats.Indexed != 4 { // 2 in the aborted transaction: the counters count work done, like every Stats counter
		t.Fatalf("after the second look: migrated %t, indexed %d", task.migrated, task.r.Stats.Indexed)
	}
	if got := g.due(task, t0+1e9); len(got) != 2 {
		t.Fatalf("the open order o4 listed: %v", got)
	}
	// Kept order_retention after they were listed: not forgotten at
	// t0+105s, forgotten at t0+200s.
	if em := g.txn(task, true, g.placed("o5", t0+105000)); slices.Contains(em, "order-status o1 tombstone") {
		t.Fatalf("at t0+105s: %v", em)
	}
	em = g.txn(task, true, g.placed("o6", t0+200000))
	if !slices.Contains(em, "order-status o1 tombstone") || !slices.Contains(em, "order-status o2 tombstone") {
		t.Fatalf("at t0+200s: %v", em)
	}

	// Unset: the marker goes. o4 finishes meanwhile, unlisted; set again,
	// the next look lists it.
	g.retained = 0
	g.reopen()
	task = g.newTask()
	g.txn(task, true, g.cancel("o4", t0+210000))
	if g.stored("m/") || g.stored("u/o4") {
		t.Fatal("marker kept, or o4 listed, without retention")
	}
	g.retained = 10 * time.Second
	g.reopen()
	task = g.newTask()
	g.txn(task, true, g.placed("o7", t0+220000))
	if !g.stored("u/o4") || !g.stored("m/") {
		t.Fatal("o4, finished while retention was unset, not listed when set again")
	}
	if got := g.due(task, t0+210000); len(got) != 0 {
		t.Fatalf("o4 listed before the stream time that listed it: %v", got)
	}
}

// rigT0 is the time the retention rig's scripts start at.
const rigT0 = int64(1_800_000_000_000)

// retentionRig runs router tasks on one Pebble store, with one node W1
// holding 5 units of SKU A.
type retentionRig struct {
	t        *testing.T
	dir      string
	st       *state.Store
	cat      *catalog.Catalog
	avail    *Availability
	loads    *Loads
	retained time.Duration
}

func newRetentionRig(t *testing.T, retention time.Duration) *retentionRig {
	g := &retentionRig{t: t, dir: t.TempDir(), cat: catalog.New(nil), avail: NewAvailability(), loads: NewLoads(), retained: retention}
	var err error
	if g.st, err = state.Open(g.dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.st.Close() })
	n := schemas.Node{NodeID: "W1", Type: schemas.Warehouse, Lat: 48.8, Lon: 2.3, Active: true, ShipEnabled: true}
	if err := g.cat.ApplyNode([]byte("W1"), encodeT(t, schemas.Nodes, &n)); err != nil {
		t.Fatal(err)
	}
	u := schemas.AtsUpdate{SKU: "A", Version: 1, Channels: []schemas.ChannelATS{}, Nodes: []schemas.NodeATS{{NodeID: "W1", OnHand: 5, Available: 5, Active: true}}}
	if err := g.avail.Apply([]byte("A"), encodeT(t, schemas.AtsUpdates, &u)); err != nil {
		t.Fatal(err)
	}
	return g
}

// reopen closes the store and opens it again (a restart).
func (g *retentionRig) reopen() {
	if err := g.st.Close(); err != nil {
		g.t.Fatal(err)
	}
	var err error
	if g.st, err = state.Open(g.dir, nil); err != nil {
		g.t.Fatal(err)
	}
}

// newTask makes a task with the rig's order_retention.
func (g *retentionRig) newTask() *Task {
	topo := Topology(TopologyOptions{Catalog: g.cat, Availability: g.avail, Loads: g.loads, Config: Config{OrderRetention: g.retained}})
	task, err := topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: g.st}, CacheEntries: 100})
	if err != nil {
		g.t.Fatal(err)
	}
	return task.(*Task)
}

func (g *retentionRig) placed(id string, at int64) *topology.Record {
	ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: "web", CustomerTier: schemas.TierStandard,
		Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3},
		Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: 1}}, Policy: schemas.ShipComplete, LineIDs: []string{}, PlacedAt: at}
	return &topology.Record{Topic: string(TopicOrders), Key: []byte(id), Value: encodeT(g.t, schemas.OrderEvents, &ev), Timestamp: at}
}

func (g *retentionRig) result(id string, typ schemas.ReservationOp, attempt int32, ts int64) *topology.Record {
	r := schemas.ReservationResult{OrderID: id, LineID: "1", Type: typ, SKU: "A", NodeID: "W1", Qty: 1, Attempt: attempt, OK: true}
	return &topology.Record{Topic: string(inventory.TopicResults), Key: []byte(id), Value: encodeT(g.t, schemas.ReservationResults, &r), Timestamp: ts}
}

func (g *retentionRig) cancel(id string, ts int64) *topology.Record {
	ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventCancelled, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{}}
	return &topology.Record{Topic: string(TopicOrders), Key: []byte(id), Value: encodeT(g.t, schemas.OrderEvents, &ev), Timestamp: ts}
}

// txn processes records and flushes; commit or not.
func (g *retentionRig) txn(task *Task, commit bool, recs ...*topology.Record) emitted {
	g.t.Helper()
	var em emitted
	for _, r := range recs {
		if err := task.Process(r, &em); err != nil {
			g.t.Fatalf("%s %s: %v", r.Topic, r.Key, err)
		}
	}
	if err := task.Flush(&em); err != nil {
		g.t.Fatal(err)
	}
	if err := g.st.Prepare(); err != nil {
		g.t.Fatal(err)
	}
	if commit {
		if err := g.st.Commit(state.Checkpoint{}); err != nil {
			g.t.Fatal(err)
		}
	} else {
		g.st.Abort()
		task.Aborted()
	}
	return em
}

func (g *retentionRig) stored(key string) bool {
	_, ok, err := g.st.Get([]byte(key))
	if err != nil {
		g.t.Fatal(err)
	}
	return ok
}

// now is the task's stream time, from rigT0.
func (g *retentionRig) now(task *Task) int64 {
	if err := task.store.loadNow(); err != nil {
		g.t.Fatal(err)
	}
	return task.store.Now() - rigT0
}

// due lists the orders due at at, as id@finish (from rigT0).
func (g *retentionRig) due(task *Task, at int64) []string {
	fs, err := task.store.Due(at, 100)
	if err != nil {
		g.t.Fatal(err)
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, fmt.Sprintf("%s@%d", f.ID, f.At-rigT0))
	}
	return ids
}

func encodeT[T any](t *testing.T, c *schemas.Codec[T], v *T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetentionRefinishedWhileUnset: an order listed with order_retention,
// brought back (a return) and finished again while the option is unset,
// is listed anew when it is set again, by then: its old entry would have
// it forgotten at once, by its first finish. Found by review.
func TestRetentionRefinishedWhileUnset(t *testing.T) {
	g := newRetentionRig(t, 10*time.Second)
	const t0 = rigT0
	task := g.newTask()
	g.txn(task, true, g.placed("o1", t0), g.result("o1", schemas.Reserve, 1, t0+1), g.result("o1", schemas.Consume, 0, t0+2))
	if got := g.due(task, t0+1e9); !slices.Equal(got, []string{"o1@0"}) {
		t.Fatalf("due: %v", got)
	}
	// Unset: o1 is returned and restocked at t0+1000s, finished again.
	g.retained = 0
	g.reopen()
	task = g.newTask()
	rma := schemas.OrderEvent{OrderID: "o1", Type: schemas.EventReturnAuthorized, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{}, LineIDs: []string{"1"}}
	g.txn(task, true, &topology.Record{Topic: string(TopicOrders), Key: []byte("o1"), Value: encodeT(t, schemas.OrderEvents, &rma), Timestamp: t0 + 1_000_000},
		g.result("o1", schemas.Restock, 0, t0+1_000_001))
	if o, _ := task.store.Order("o1"); o == nil || o.State != schemas.StateReturned || g.stored("u/o1") {
		t.Fatalf("o1 after the return: %+v, listed %t (want returned, not listed)", o, g.stored("u/o1"))
	}
	// Set again at t0+1005s: listed then, kept 10 s from then.
	g.retained = 10 * time.Second
	g.reopen()
	task = g.newTask()
	if em := g.txn(task, true, g.placed("o9", t0+1_005_000)); slices.Contains(em, "order-status o1 tombstone") {
		t.Fatalf("o1 forgotten at once: %v", em)
	}
	if got := g.due(task, t0+1e9); !slices.Equal(got, []string{"o1@1005000"}) {
		t.Fatalf("due: %v, want o1 listed at the stream time that listed it", got)
	}
}

// TestStoredOrderFormats: an order stored before attempt_base (format 1)
// still decodes, with AttemptBase 0 and every other field as it was; the
// router writes format 2; an unknown format is an error.
func TestStoredOrderFormats(t *testing.T) {
	o := schemas.RouterOrder{OrderID: "o1", Attempt: 2, RoundLines: []string{"1"}, Version: 3, State: schemas.StateRouted,
		Placed: schemas.OrderEvent{OrderID: "o1", Type: schemas.EventPlaced, CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
			DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, Lines: []schemas.OrderLine{{LineID: "1", SKU: "A", Qty: 1}}, LineIDs: []string{}},
		Lines: []schemas.LineStatus{{LineID: "1", SKU: "A", Qty: 1, State: schemas.StateRouted}}, Holds: []schemas.Hold{{LineID: "1", SKU: "A", NodeID: "W1", Qty: 1}},
		Caps: []schemas.Cap{}, Shipments: []schemas.RoutedShipment{}, FeedbackIDs: []string{}, ShipmentDays: map[string]int64{}}
	v1, err := schemas.RouterOrdersV1.Append([]byte{1}, &o)
	if err != nil {
		t.Fatal(err)
	}
	got := schemas.RouterOrder{AttemptBase: 9} // a value reused from an earlier decode
	if err := DecodeStoredOrder(v1, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, o) {
		t.Fatalf("format 1 decoded as %+v, want %+v", got, o)
	}
	o.AttemptBase = 4
	v2, err := orderCodec{}.Append(nil, &o)
	if err != nil {
		t.Fatal(err)
	}
	if v2[0] != 2 {
		t.Fatalf("written with format %d, want 2", v2[0])
	}
	if err := DecodeStoredOrder(v2, &got); err != nil || got.AttemptBase != 4 {
		t.Fatalf("format 2: %v, attempt_base %d", err, got.AttemptBase)
	}
	if err := DecodeStoredOrder(append([]byte{3}, v2[1:]...), &got); err == nil {
		t.Fatal("format 3 decoded")
	}
}

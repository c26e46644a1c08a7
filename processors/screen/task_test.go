package screen

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// verdicts keeps the verdicts a task emits, by order.
type verdicts map[string]schemas.CustomerVerdict

func (v verdicts) Emit(topic topology.Topic, key, value []byte) {
	if topic != TopicVerdicts {
		return
	}
	var cv schemas.CustomerVerdict
	if err := schemas.CustomerVerdicts.Decode(value, &cv); err != nil {
		panic(err)
	}
	v[string(key)] = cv
}

// retentionRig runs screen tasks on one Pebble store.
type retentionRig struct {
	t    *testing.T
	dir  string
	st   *state.Store
	topo *topology.Topology
}

const (
	t0     = int64(1_800_000_000_000)
	window = int64(3_600_000) // an hour
	expiry = 2*window + 3_600_000
)

func newRetentionRig(t *testing.T) *retentionRig {
	g := &retentionRig{t: t, dir: t.TempDir(), topo: Topology("g", "dlq", nil)}
	var err error
	if g.st, err = state.Open(g.dir, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.st.Close() })
	return g
}

func (g *retentionRig) task() *Task {
	g.t.Helper()
	task, err := g.topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: g.st}, CacheEntries: 100})
	if err != nil {
		g.t.Fatal(err)
	}
	return task.(*Task)
}

// restart closes and opens the store; the next task reads it.
func (g *retentionRig) restart() {
	g.t.Helper()
	if err := g.st.Close(); err != nil {
		g.t.Fatal(err)
	}
	var err error
	if g.st, err = state.Open(g.dir, nil); err != nil {
		g.t.Fatal(err)
	}
}

// check is a check of order by customer, placed at at, in a record of
// time ts (at most 2 other orders within the hour).
func (g *retentionRig) check(order, customer string, at, ts int64) *topology.Record {
	c := schemas.CustomerCheck{OrderID: order, CustomerID: customer, ChannelID: "web", PlacedAt: at, MaxOrders: 2, WindowMs: window}
	v, err := schemas.CustomerChecks.Encode(&c)
	if err != nil {
		g.t.Fatal(err)
	}
	return &topology.Record{Topic: string(TopicChecks), Key: []byte(customer), Value: v, Timestamp: ts}
}

// txn processes records, flushes and commits (or aborts); it returns the
// verdicts and the keys the transaction deleted (the changelog's
// tombstones).
func (g *retentionRig) txn(task *Task, commit bool, recs ...*topology.Record) (verdicts, map[string]bool) {
	g.t.Helper()
	vs := verdicts{}
	for _, r := range recs {
		if err := task.Process(r, vs); err != nil {
			g.t.Fatalf("%s: %v", r.Key, err)
		}
	}
	if err := task.Flush(vs); err != nil {
		g.t.Fatal(err)
	}
	if err := g.st.Prepare(); err != nil {
		g.t.Fatal(err)
	}
	deleted := map[string]bool{}
	if err := g.st.Txn().Writes(func(k, v []byte) error {
		if v == nil {
			deleted[string(k)] = true
		}
		return nil
	}); err != nil {
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
	return vs, deleted
}

// stored says whether customer's history is in the store (committed).
func (g *retentionRig) stored(customer string) bool {
	g.t.Helper()
	_, ok, err := g.st.Get([]byte(prefixHistory + customer))
	if err != nil {
		g.t.Fatal(err)
	}
	return ok
}

// TestRetention runs the retention of idle customers on Pebble: a history
// counts as gone once the partition's stream time (the placed_at of its
// checks) passes its expiry (two windows and an hour after the order
// checked), and a purge deletes it; a customer checked again meanwhile
// stays; a late check of an older order does not bring the expiry forward;
// a placed_at far past its record's time counts as an hour past it; an
// aborted purge is redone and an aborted check's stream time forgotten; a
// flush deletes at most purgeBatch; the stream time survives a restart; the
// changelog gets the deletions.
func TestRetention(t *testing.T) {
	g := newRetentionRig(t)
	task := g.task()
	// c1 and c2 order at t0; c3's order says it was placed a day after its
	// record (a bad clock): it counts as an hour after.
	g.txn(task, true, g.check("o1", "c1", t0, t0), g.check("o2", "c2", t0, t0), g.check("o3", "c3", t0+86_400_000, t0))
	// c2 orders again an hour later; c1's late check of an order placed
	// before o1 does not bring c1's expiry forward.
	g.txn(task, true, g.check("o4", "c2", t0+window, t0+window), g.check("o0", "c1", t0-window, t0+window))
	// Stream time just before c1's expiry: all there.
	g.txn(task, true, g.check("p1", "c9", t0+expiry-1, t0+expiry-1))
	for _, c := range []string{"c1", "c2", "c3"} {
		if h, _ := task.Get(c); h == nil || !g.stored(c) {
			t.Fatalf("%s gone before its expiry", c)
		}
	}
	// An aborted check far ahead: its stream time goes with it.
	g.txn(task, false, g.check("pz", "c9", t0+100*expiry, t0+100*expiry))
	// At c1's expiry: an aborted purge deletes c1 and is undone, a
	// committed one deletes c1 only (c2 ordered later, c3's order counts
	// as an hour later), with its history in the changelog's deletions.
	task.nextPurge = 0 // a purge at this flush (the last was less than a minute of stream time before)
	if _, deleted := g.txn(task, false, g.check("p2", "c9", t0+expiry, t0+expiry)); !deleted[prefixHistory+"c1"] || !g.stored("c1") {
		t.Fatalf("the aborted transaction: deleted %v, c1 kept %v; want c1 deleted in it and kept", deleted, g.stored("c1"))
	}
	// Redone at the next flush, though less than a minute of stream time
	// later.
	_, deleted := g.txn(task, true, g.check("p2", "c9", t0+expiry, t0+expiry))
	if g.stored("c1") || !g.stored("c2") || !g.stored("c3") {
		t.Fatalf("at c1's expiry: c1 %v c2 %v c3 %v; want only c1 deleted", g.stored("c1"), g.stored("c2"), g.stored("c3"))
	}
	if !deleted[prefixHistory+"c1"] || !deleted[prefixExpiry+"c1"] {
		t.Fatalf("deleted %v, want c1's history and expiry", deleted)
	}
	// The stream time reaches c2's and c3's expiry (t0+1h+expiry) in a
	// transaction that does not purge: they count as gone at once; then the
	// process restarts: the stored stream time, not the old order checked
	// next, says they are due; c9 stays.
	task.nextPurge = 1 << 62
	g.txn(task, true, g.check("p3", "c9", t0+window+expiry, t0+window+expiry))
	if h, _ := task.Get("c2"); h != nil || !g.stored("c2") || !g.stored("c3") {
		t.Fatal("c2 counts before its purge, or was deleted without one")
	}
	g.restart()
	task = g.task()
	g.txn(task, true, g.check("p4", "c8", t0, t0+window+expiry))
	// (c8's order, placed that long before the stream time, is due an hour
	// after it: late orders count each other.)
	if g.stored("c2") || g.stored("c3") || !g.stored("c9") || !g.stored("c8") {
		t.Fatalf("after the restart: c2 %v c3 %v c9 %v c8 %v, want c2 and c3 deleted", g.stored("c2"), g.stored("c3"), g.stored("c9"), g.stored("c8"))
	}

	// A flush deletes at most purgeBatch; the next ones go on.
	task.purgeBatch = 3
	var recs []*topology.Record
	at := t0 + 10*expiry
	for i := range 7 {
		recs = append(recs, g.check(fmt.Sprint("b", i), fmt.Sprint("b", i), at, at))
	}
	g.txn(task, true, recs...)
	g.txn(task, true, g.check("p5", "c7", at+expiry, at+expiry))
	kept := 0
	for i := range 7 {
		if g.stored(fmt.Sprint("b", i)) {
			kept++
		}
	}
	if kept != 4 {
		t.Fatalf("one flush deleted %d, want purgeBatch (3)", 7-kept)
	}
	for range 3 {
		g.txn(task, true, g.check("p6", "c7", at+expiry, at+expiry))
	}
	for i := range 7 {
		if g.stored(fmt.Sprint("b", i)) {
			t.Fatalf("b%d not deleted after four flushes", i)
		}
	}
	// Nothing left in the index but the customers not due.
	var left []string
	if err := g.st.Txn().Iterate([]byte(prefixDue), func(k, _ []byte) error { left = append(left, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 {
		t.Fatalf("index: %q, want c7's entry only", left)
	}
}

// TestLateChecksCountEachOther: checks of orders placed well behind the
// partition's stream time (a channel syncing late) count each other, the
// same whether they come in one transaction or several: a history counts
// as gone by its expiry, not by when a purge ran; and whether or not the
// customer has a newer order (which trimmed each late one away before).
func TestLateChecksCountEachOther(t *testing.T) {
	for _, tc := range []struct{ split, newer bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("split=%t/newer=%t", tc.split, tc.newer), func(t *testing.T) {
			split := tc.split
			g := newRetentionRig(t)
			task := g.task()
			g.txn(task, true, g.check("n1", "other", t0, t0))
			if tc.newer {
				g.txn(task, true, g.check("n0", "x", t0, t0))
			}
			late := t0 - 4*window
			recs := []*topology.Record{g.check("x1", "x", late, t0), g.check("x2", "x", late+1000, t0), g.check("x3", "x", late+2000, t0)}
			vs := verdicts{}
			if split {
				for _, r := range recs {
					task.nextPurge = 0 // a purge at every flush
					got, _ := g.txn(task, true, r, g.check(fmt.Sprint("n-", string(r.Key)), "other", t0+60_000, t0+60_000))
					for k, v := range got {
						vs[k] = v
					}
				}
			} else {
				vs, _ = g.txn(task, true, recs...)
			}
			if v := vs["x3"]; !v.Hold || v.OrdersInWindow != 2 {
				t.Fatalf("x3: %+v, want held with 2 others", v)
			}
		})
	}
}

// TestMigrateOldHistories: histories stored before retention existed (no
// expiry) expire two windows and an hour after their newest order, whether
// indexed yet or not (Get), and are indexed a bounded number per flush, with
// the same expiry whatever the stream time of the flush that reaches them,
// then deleted when due.
func TestMigrateOldHistories(t *testing.T) {
	g := newRetentionRig(t)
	task := g.task()
	task.purgeBatch = 2
	old := func(id string, newest int64) {
		task.hist.Put(id, &schemas.CustomerHistory{CustomerID: id, Orders: []schemas.CustomerOrder{{OrderID: "a", PlacedAt: newest - window/2}, {OrderID: "b", PlacedAt: newest}}})
	}
	for i := range 5 {
		old(fmt.Sprint("old", i), t0)
	}
	old("stale", t0-10*window)
	if err := g.st.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := g.st.Commit(state.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	indexed := func() int {
		n := 0
		for i := range 5 {
			at, ok, err := task.expiry(fmt.Sprint("old", i))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if at != t0+expiry {
					t.Fatalf("old%d expires at %d, want its newest order plus two windows and an hour (%d)", i, at, t0+expiry)
				}
				n++
			}
		}
		return n
	}
	// A late check of old0's customer, before any flush indexed it, counts
	// its orders; one of stale's does not.
	vs, _ := g.txn(task, true, g.check("n1", "new", t0, t0), g.check("l1", "old0", t0, t0), g.check("l2", "stale", t0-10*window, t0))
	if vs["l1"].OrdersInWindow != 2 || vs["l2"].OrdersInWindow != 0 {
		t.Fatalf("old0's check saw %d others (want 2), stale's %d (want 0: expired)", vs["l1"].OrdersInWindow, vs["l2"].OrdersInWindow)
	}
	if n := indexed(); n != 2 { // old0 by its check; old1 by the flush ("new" is not in the store yet), 2 keys per flush
		t.Fatalf("%d indexed after the first flush, want 2", n)
	}
	// Later flushes, at later stream times, index the rest alike.
	for i := range 3 {
		g.txn(task, true, g.check(fmt.Sprint("n", i+2), "new", t0+int64(i+1)*window/2, t0+int64(i+1)*window/2))
	}
	if n := indexed(); n != 5 {
		t.Fatalf("%d indexed after four flushes, want 5", n)
	}
	task.purgeBatch = 10
	g.txn(task, true, g.check("n9", "new", t0+expiry, t0+expiry))
	for _, id := range []string{"old0", "old1", "old2", "old3", "old4"} {
		if g.stored(id) {
			t.Fatalf("%s kept past its expiry", id)
		}
	}
}

// TestCorruptRetentionState: a stored stream time or expiry of the wrong
// size is an error, not a value taken for zero.
func TestCorruptRetentionState(t *testing.T) {
	for _, key := range []string{keyNow, prefixExpiry + "c1"} {
		t.Run(key, func(t *testing.T) {
			g := newRetentionRig(t)
			if err := g.st.Txn().Set([]byte(key), []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			if err := g.st.Prepare(); err != nil {
				t.Fatal(err)
			}
			if err := g.st.Commit(state.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
			task := g.task()
			if err := task.Process(g.check("o1", "c1", t0, t0), verdicts{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("got %v, want a corrupt-state error", err)
			}
		})
	}
}

// TestOldHistoryVerdictsIgnoreBatching: the same checks give the same
// verdicts whether the flush that indexes a history from before retention
// comes before a late check of its customer or after it.
func TestOldHistoryVerdictsIgnoreBatching(t *testing.T) {
	seen := map[string]int32{}
	for name, groups := range map[string][][]int{"together": {{0, 1}, {2}, {3}}, "apart": {{0}, {1}, {2}, {3}}} {
		g := newRetentionRig(t)
		task := g.task()
		task.hist.Put("x", &schemas.CustomerHistory{CustomerID: "x", Orders: []schemas.CustomerOrder{{OrderID: "a", PlacedAt: t0 - window/2}, {OrderID: "b", PlacedAt: t0}}})
		if err := g.st.Prepare(); err != nil {
			t.Fatal(err)
		}
		if err := g.st.Commit(state.Checkpoint{}); err != nil {
			t.Fatal(err)
		}
		recs := []*topology.Record{
			g.check("n1", "other", t0, t0),
			g.check("l1", "x", t0-window, t0), // late
			g.check("n2", "other", t0+5*window/2, t0+5*window/2),
			g.check("y", "x", t0+window/2, t0+5*window/2),
		}
		for _, group := range groups {
			var batch []*topology.Record
			for _, i := range group {
				batch = append(batch, recs[i])
			}
			if vs, _ := g.txn(task, true, batch...); slices.Contains(group, 3) {
				seen[name] = vs["y"].OrdersInWindow
			}
		}
	}
	if seen["together"] != seen["apart"] || seen["apart"] != 1 {
		t.Fatalf("y saw %v others, want 1 both ways", seen)
	}
}

// TestMetrics: the counters follow the stats a task reports after each
// flush, per partition, and start again for a new task of the partition.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	g := newRetentionRig(t)
	g.topo = Topology("g", "dlq", m.Observe)
	task := g.task()
	g.txn(task, true, g.check("o1", "c1", t0, t0), g.check("o2", "c1", t0+1, t0), g.check("o3", "c1", t0+2, t0)) // o3 held
	g.txn(task, true, g.check("o4", "c2", t0+expiry+window, t0+expiry+window))                                   // c1 forgotten
	g.restart()
	task = g.task() // a new task
	g.txn(task, true, g.check("o5", "c3", t0+expiry+window, t0+expiry+window))
	for event, want := range map[string]float64{"checked": 5, "held": 1, "forgotten": 1} {
		if got := testutil.ToFloat64(m.events.WithLabelValues("0", event)); got != want {
			t.Errorf("%s: %v, want %v", event, got, want)
		}
	}
}

package screen

import (
	"fmt"
	"testing"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// TestRetention runs the retention of idle customers on Pebble: a history
// is forgotten once the partition's stream time (the placed_at of its
// checks) passes its last order checked by two windows and the grace; a
// customer checked again meanwhile stays; a late check of an older order
// does not bring the expiry forward; a placed_at far past its record's time
// counts as an hour past it; an aborted purge is redone; a flush forgets at
// most purgeBatch; the stream time survives a restart; the changelog gets
// the deletions.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	const (
		t0     = int64(1_800_000_000_000)
		window = int64(3_600_000) // an hour
		expiry = 2*window + 3_600_000
	)
	topo := Topology("g", "dlq")
	newTask := func() *Task {
		task, err := topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 100})
		if err != nil {
			t.Fatal(err)
		}
		return task.(*Task)
	}
	check := func(order, customer string, at, ts int64) *topology.Record {
		c := schemas.CustomerCheck{OrderID: order, CustomerID: customer, ChannelID: "web", PlacedAt: at, MaxOrders: 3, WindowMs: window}
		v, err := schemas.CustomerChecks.Encode(&c)
		if err != nil {
			t.Fatal(err)
		}
		return &topology.Record{Topic: string(TopicChecks), Key: []byte(customer), Value: v, Timestamp: ts}
	}
	// txn processes records, flushes and commits (or aborts); it returns
	// the keys the transaction deleted (what the changelog gets as
	// tombstones).
	txn := func(task *Task, commit bool, recs ...*topology.Record) (deleted map[string]bool) {
		t.Helper()
		for _, r := range recs {
			if err := task.Process(r, nopEmitter{}); err != nil {
				t.Fatalf("%s: %v", r.Key, err)
			}
		}
		if err := task.Flush(nopEmitter{}); err != nil {
			t.Fatal(err)
		}
		if err := st.Prepare(); err != nil {
			t.Fatal(err)
		}
		deleted = map[string]bool{}
		if err := st.Txn().Writes(func(k, v []byte) error {
			if v == nil {
				deleted[string(k)] = true
			}
			return nil
		}); err != nil {
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
		return deleted
	}
	has := func(task *Task, customer string) bool {
		t.Helper()
		h, err := task.Get(customer)
		if err != nil {
			t.Fatal(err)
		}
		return h != nil
	}

	task := newTask()
	// c1 and c2 order at t0; c3's order says it was placed a day after its
	// record (a bad clock): it counts as an hour after.
	txn(task, true, check("o1", "c1", t0, t0), check("o2", "c2", t0, t0), check("o3", "c3", t0+86_400_000, t0))
	// c2 orders again an hour later; c1's late check of an order placed
	// before o1 does not bring c1's expiry forward.
	txn(task, true, check("o4", "c2", t0+window, t0+window), check("o0", "c1", t0-window, t0+window))
	// Stream time just before c1's expiry: nobody is forgotten.
	txn(task, true, check("p1", "c9", t0+expiry-1, t0+expiry-1))
	if !has(task, "c1") || !has(task, "c2") || !has(task, "c3") {
		t.Fatal("forgotten before their expiry")
	}
	// At c1's expiry: an aborted purge forgets nothing, a committed one
	// forgets c1 only (c2 ordered later, c3's order counts as an hour
	// later), with its history in the changelog's deletions.
	task.nextPurge = 0 // a purge at this flush (the last was less than a minute of stream time before)
	if deleted := txn(task, false, check("p2", "c9", t0+expiry, t0+expiry)); !deleted[prefixHistory+"c1"] || !has(task, "c1") {
		t.Fatalf("the aborted transaction: deleted %v, c1 kept %v; want c1 deleted in it and kept", deleted, has(task, "c1"))
	}
	// Redone at the next flush, though less than a minute of stream time
	// later.
	deleted := txn(task, true, check("p2", "c9", t0+expiry, t0+expiry))
	if has(task, "c1") || !has(task, "c2") || !has(task, "c3") {
		t.Fatalf("at c1's expiry: c1 %v c2 %v c3 %v; want only c1 forgotten", has(task, "c1"), has(task, "c2"), has(task, "c3"))
	}
	if !deleted[prefixHistory+"c1"] || !deleted[prefixExpiry+"c1"] {
		t.Fatalf("deleted %v, want c1's history and expiry", deleted)
	}
	// The stream time reaches c2's and c3's expiry (t0+1h+expiry) in a
	// transaction that does not purge, then the process restarts: the
	// stored stream time, not the old order checked next, says they are
	// due; c9 stays.
	task.nextPurge = 1 << 62
	txn(task, true, check("p3", "c9", t0+window+expiry, t0+window+expiry))
	if !has(task, "c2") || !has(task, "c3") {
		t.Fatal("forgotten without a purge")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = state.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	task = newTask()
	txn(task, true, check("p3", "c8", t0, t0+window+expiry))
	// (c8's order, placed that long before the stream time, is due at once.)
	if has(task, "c2") || has(task, "c3") || !has(task, "c9") || has(task, "c8") {
		t.Fatalf("after the restart: c2 %v c3 %v c9 %v c8 %v, want c2, c3 and c8 forgotten", has(task, "c2"), has(task, "c3"), has(task, "c9"), has(task, "c8"))
	}

	// A flush forgets at most purgeBatch; the next ones go on.
	task.purgeBatch = 3
	var recs []*topology.Record
	at := t0 + 10*expiry
	for i := range 7 {
		recs = append(recs, check(fmt.Sprint("b", i), fmt.Sprint("b", i), at, at))
	}
	txn(task, true, recs...)
	txn(task, true, check("p4", "c8", at+expiry, at+expiry))
	kept := 0
	for i := range 7 {
		if has(task, fmt.Sprint("b", i)) {
			kept++
		}
	}
	if kept != 4 {
		t.Fatalf("one flush forgot %d, want purgeBatch (3)", 7-kept)
	}
	for range 3 {
		txn(task, true, check("p5", "c8", at+expiry, at+expiry))
	}
	for i := range 7 {
		if has(task, fmt.Sprint("b", i)) {
			t.Fatalf("b%d not forgotten after four flushes", i)
		}
	}
	// Nothing left in the index but the customers not due.
	var left []string
	if err := st.Txn().Iterate([]byte(prefixDue), func(k, _ []byte) error { left = append(left, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 {
		t.Fatalf("index: %q, want c8's entry only", left)
	}
}

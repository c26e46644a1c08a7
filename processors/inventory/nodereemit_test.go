package inventory

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// stockAt applies a RECEIPT of each SKU at node, committing every 500.
func stockAt(t testing.TB, tk *Task, st *state.Store, node string, skus []string) {
	t.Helper()
	out := &sink{keys: map[string]int{}}
	for i, sku := range skus {
		m := schemas.StockMovement{MovementID: node + sku, SKU: sku, NodeID: node, Type: schemas.Receipt, Qty: 1}
		b, _ := schemas.StockMovements.Encode(&m)
		if err := tk.Process(&topology.Record{Key: []byte(sku), Value: b}, out); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 || i == len(skus)-1 {
			flushCommit(t, tk, st, out)
		}
	}
}

func skuNames(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return s
}

// reemitRounds commits transactions until the task has no re-emit
// pending; it returns the SKUs emitted and the most of one transaction.
func reemitRounds(t testing.TB, tk *Task, st *state.Store, out *sink, limit int) (rounds, most int) {
	t.Helper()
	for first := true; first || tk.Pending(); first = false {
		before := sumKeys(out)
		flushCommit(t, tk, st, out)
		most = max(most, sumKeys(out)-before)
		if rounds++; rounds > limit {
			t.Fatalf("re-emit still pending after %d transactions", rounds)
		}
	}
	return rounds, most
}

func sumKeys(s *sink) int {
	n := 0
	for _, c := range s.keys {
		n += c
	}
	return n
}

// TestNodeReemitOnPebble: a node change re-emits exactly the SKUs stocked
// at that node, each once, at most one batch per transaction, through
// commits; nodes that change together share the batches (a bulk update of
// many nodes is no larger a transaction); a task reopened in the middle
// goes on from the cursor in the store.
func TestNodeReemitOnPebble(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	const batch = 50
	tk := newPebbleTask(t, st, Config{ReemitBatch: batch})
	w1, w2 := skuNames("A", 1000), skuNames("B", 300)
	stockAt(t, tk, st, "W1", w1)
	stockAt(t, tk, st, "W2", w2)
	stockAt(t, tk, st, "W2", w1[:10]) // ten SKUs at both

	// A SKU at both nodes may be re-emitted once per node (in two
	// transactions), like a channel re-emit's extra update: harmless.
	both := map[string]bool{}
	for _, k := range w1[:10] {
		both[k] = true
	}
	check := func(name string, out *sink, want []string) {
		t.Helper()
		if len(out.keys) != len(want) {
			t.Errorf("%s: %d SKUs re-emitted, want %d", name, len(out.keys), len(want))
		}
		for _, k := range want {
			if n := out.keys[k]; n != 1 && !(both[k] && n == 2) {
				t.Errorf("%s: %s re-emitted %d times, want once", name, k, n)
			}
		}
	}

	out := &sink{keys: map[string]int{}}
	if err := tk.GlobalChanged(TopicNodes, []byte("W1"), 1, out); err != nil {
		t.Fatal(err)
	}
	rounds, most := reemitRounds(t, tk, st, out, 100)
	check("W1", out, w1)
	if most > batch || rounds > len(w1)/batch+1 {
		t.Errorf("W1: %d transactions, at most %d updates in one; want at most %d of at most %d", rounds, most, len(w1)/batch+1, batch)
	}

	out = &sink{keys: map[string]int{}}
	for _, n := range []string{"W2", "W1"} {
		if err := tk.GlobalChanged(TopicNodes, []byte(n), 2, out); err != nil {
			t.Fatal(err)
		}
	}
	_, most = reemitRounds(t, tk, st, out, 100)
	check("W1 and W2", out, append(append([]string{}, w1...), w2...))
	if most > batch {
		t.Errorf("W1 and W2: %d updates in one transaction, want at most %d", most, batch)
	}

	// A crash in the middle: the cursor committed, a new task goes on.
	out = &sink{keys: map[string]int{}}
	if err := tk.GlobalChanged(TopicNodes, []byte("W1"), 3, out); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		flushCommit(t, tk, st, out)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = state.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	tk = newPebbleTask(t, st, Config{ReemitBatch: batch})
	if !tk.Pending() {
		t.Fatal("the reopened task has no re-emit pending")
	}
	reemitRounds(t, tk, st, out, 100)
	check("W1 across a reopen", out, w1)
}

// BenchmarkNodeChange measures the transactions a node change makes when
// the node stocks 200,000 SKUs of the partition: their count, the largest,
// the time until the last one commits and the heap at its peak.
//
//	go test -run '^$' -bench NodeChange -benchtime 1x ./processors/inventory
func BenchmarkNodeChange(b *testing.B) {
	st, err := state.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tk := newPebbleTask(b, st, Config{})
	stockAt(b, tk, st, "W1", skuNames("S", 200_000))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := &sink{keys: map[string]int{}}
		start := time.Now()
		if err := tk.GlobalChanged(TopicNodes, []byte("W1"), int64(i+1), out); err != nil {
			b.Fatal(err)
		}
		var peak uint64
		rounds, most := 0, 0
		for first := true; first || tk.Pending(); first = false {
			before := sumKeys(out)
			if err := tk.Flush(out); err != nil {
				b.Fatal(err)
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			commitStore(b, st)
			most = max(most, sumKeys(out)-before)
			rounds++
		}
		b.ReportMetric(float64(rounds), "txns")
		b.ReportMetric(float64(most), "max-updates/txn")
		b.ReportMetric(time.Since(start).Seconds(), "s-to-last-commit")
		b.ReportMetric(float64(peak-min(peak, base))/(1<<20), "heap-MiB-over-base")
		if len(out.keys) != 200_000 {
			b.Fatalf("%d SKUs re-emitted", len(out.keys))
		}
	}
}

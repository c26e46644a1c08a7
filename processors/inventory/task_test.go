package inventory

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

type sink struct{ keys map[string]int }

func (s *sink) Emit(_ topology.Topic, key, _ []byte) { s.keys[string(key)]++ }

// newPebbleTask returns the inventory task of a partition on st.
func newPebbleTask(t testing.TB, st *state.Store, cfg Config) *Task {
	t.Helper()
	topo := Topology(TopologyOptions{Catalog: catalog.New(nil), Config: cfg})
	task, err := topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	return task.(*Task)
}

// flushCommit flushes tk into out, then prepares and commits st.
func flushCommit(t testing.TB, tk *Task, st *state.Store, out topology.Emitter) {
	t.Helper()
	if err := tk.Flush(out); err != nil {
		t.Fatal(err)
	}
	commitStore(t, st)
}

// commitStore prepares and commits st's open transaction.
func commitStore(t testing.TB, st *state.Store) {
	t.Helper()
	if err := st.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(state.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
}

// TestReemitOnPebble: after a channel change, every SKU of the partition is
// re-emitted exactly once, ReemitBatch per transaction, through commits.
func TestReemitOnPebble(t *testing.T) {
	st, err := state.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tk := newPebbleTask(t, st, Config{ReemitBatch: 50})
	commit := func() { commitStore(t, st) }
	out := &sink{keys: map[string]int{}}
	const n = 1000
	for i := 0; i < n; i++ {
		m := schemas.StockMovement{MovementID: fmt.Sprint(i), SKU: fmt.Sprintf("S%04d", i), NodeID: "W1", Type: schemas.Receipt, Qty: 1}
		b, _ := schemas.StockMovements.Encode(&m)
		if err := tk.Process(&topology.Record{Key: []byte(m.SKU), Value: b}, out); err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 {
			if err := tk.Flush(out); err != nil {
				t.Fatal(err)
			}
			commit()
		}
	}
	if err := tk.Flush(out); err != nil {
		t.Fatal(err)
	}
	commit()
	clear(out.keys)
	if err := tk.GlobalChanged(TopicChannels, []byte("web"), 1, out); err != nil {
		t.Fatal(err)
	}
	rounds := 0
	for first := true; first || tk.Pending(); first = false {
		if err := tk.Flush(out); err != nil {
			t.Fatal(err)
		}
		commit()
		rounds++
		if rounds > n {
			t.Fatal("re-emit does not end")
		}
	}
	if len(out.keys) != n {
		t.Errorf("re-emitted %d SKUs in %d rounds, want %d", len(out.keys), rounds, n)
	}
	for k, c := range out.keys {
		if c != 1 {
			t.Errorf("%s emitted %d times", k, c)
		}
	}
	if rounds != n/50 {
		t.Errorf("%d rounds, want %d", rounds, n/50)
	}
}

// TestSKUStateFormat: stored states carry a format byte; an unknown format
// is an error, never a misread.
func TestSKUStateFormat(t *testing.T) {
	st := &schemas.SKUState{SKU: "A", Version: 3, Nodes: []schemas.NodeStock{{NodeID: "W1", OnHand: 5}}}
	b, err := skuStateCodec{}.Append(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != skuStateFormat {
		t.Fatalf("format byte %d, want %d", b[0], skuStateFormat)
	}
	var got schemas.SKUState
	if err := (skuStateCodec{}).Decode(b, &got); err != nil || got.Version != 3 || got.Nodes[0].OnHand != 5 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b[0] = 2
	if err := (skuStateCodec{}).Decode(b, &got); err == nil {
		t.Error("format 2 was read")
	}
	if err := (skuStateCodec{}).Decode(nil, &got); err == nil {
		t.Error("empty value was read")
	}
}

// TestWindowOnPebble: the idempotency window follows commits and aborts,
// and survives reopening the store (a restart).
func TestWindowOnPebble(t *testing.T) {
	dir := t.TempDir()
	var st *state.Store
	var tk *Task
	open := func() {
		t.Helper()
		var err error
		if st, err = state.Open(dir, nil); err != nil {
			t.Fatal(err)
		}
		tk = newPebbleTask(t, st, Config{})
	}
	out := &sink{keys: map[string]int{}}
	// apply sends movement id and says whether it was applied (not a duplicate).
	apply := func(id string) bool {
		t.Helper()
		m := schemas.StockMovement{MovementID: id, SKU: "A", NodeID: "W1", Type: schemas.Receipt, Qty: 1, OccurredAt: 1000}
		b, _ := schemas.StockMovements.Encode(&m)
		before := tk.p.Stats.Duplicates
		if err := tk.Process(&topology.Record{Key: []byte("A"), Value: b}, out); err != nil {
			t.Fatal(err)
		}
		return tk.p.Stats.Duplicates == before
	}
	flush := func() {
		t.Helper()
		if err := tk.Flush(out); err != nil {
			t.Fatal(err)
		}
		if err := st.Prepare(); err != nil {
			t.Fatal(err)
		}
	}
	commit := func() {
		t.Helper()
		flush()
		if err := st.Commit(state.Checkpoint{}); err != nil {
			t.Fatal(err)
		}
	}
	abort := func() {
		t.Helper()
		flush()
		st.Abort()
		tk.Aborted()
	}

	open()
	if !apply("m1") || apply("m1") {
		t.Fatal("m1: first not applied or repeat applied")
	}
	abort()
	if !apply("m1") {
		t.Fatal("m1 still remembered after the abort that applied it")
	}
	commit()
	if apply("m1") {
		t.Fatal("m1 applied again after commit")
	}
	if !apply("m2") {
		t.Fatal("m2 not applied")
	}
	abort()
	if apply("m1") || !apply("m2") {
		t.Fatal("after abort: committed m1 forgotten or aborted m2 remembered")
	}
	commit()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	open()
	defer st.Close()
	if apply("m1") || apply("m2") || !apply("m3") {
		t.Fatal("after reopen: the window lost committed ids or kept none")
	}
}

// BenchmarkTask measures the engine's per-movement work outside Kafka:
// decode, apply, flush (ATS encode), prepare, changelog copy and commit to
// Pebble, in transactions of 5000 movements over 100k Zipf-skewed SKUs and
// 5 nodes. b.N is movements.
func BenchmarkTask(b *testing.B) {
	// The engine's default block cache (cache_mb 64): states evicted from
	// the state cache are read from memory, as in the engine.
	st, err := state.Open(b.TempDir(), &state.Options{CacheSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cat := catalog.New(nil)
	for i := range 5 {
		n := schemas.Node{NodeID: fmt.Sprint("N", i), Type: schemas.Warehouse, Active: true, ShipEnabled: true, SafetyStock: 1}
		v, _ := schemas.Nodes.Encode(&n)
		if err := cat.ApplyNode([]byte(n.NodeID), v); err != nil {
			b.Fatal(err)
		}
	}
	for _, id := range []string{"web", "amazon", "pos"} {
		c := schemas.Channel{ChannelID: id, BufferUnits: 1}
		v, _ := schemas.Channels.Encode(&c)
		if err := cat.ApplyChannel([]byte(id), v); err != nil {
			b.Fatal(err)
		}
	}
	topo := Topology(TopologyOptions{Catalog: cat})
	task, err := topo.NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 10000})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(2, 2)), 1.1, 1, 99_999)
	// Records are made 200,000 at a time, outside the timer, with movement
	// ids new to every batch: a repeated id would take the (cheaper)
	// duplicate path.
	recs := make([]*topology.Record, 200_000)
	fill := func(base int) {
		for i := range recs {
			m := schemas.StockMovement{MovementID: fmt.Sprint("m", base+i), SKU: fmt.Sprintf("SKU-%06d", zipf.Uint64()),
				NodeID: fmt.Sprint("N", rng.IntN(5)), Type: schemas.Receipt, Qty: 1 + int64(rng.IntN(5)), OccurredAt: int64(base + i)}
			v, _ := schemas.StockMovements.Encode(&m)
			recs[i] = &topology.Record{Topic: string(TopicMovements), Key: []byte(m.SKU), Value: v, Timestamp: int64(base + i)}
		}
	}
	fill(0)
	out := nopEmitter{}
	commit := func() {
		if err := task.Flush(out); err != nil {
			b.Fatal(err)
		}
		if err := st.Prepare(); err != nil {
			b.Fatal(err)
		}
		if err := st.Txn().Writes(func(k, v []byte) error {
			_, _ = bytes.Clone(k), bytes.Clone(v) // what the engine hands the producer
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := st.Commit(state.Checkpoint{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%len(recs) == 0 {
			b.StopTimer()
			fill(i)
			b.StartTimer()
		}
		if err := task.Process(recs[i%len(recs)], out); err != nil {
			b.Fatal(err)
		}
		if i%5000 == 4999 {
			commit()
		}
	}
	commit()
}

type nopEmitter struct{}

func (nopEmitter) Emit(topology.Topic, []byte, []byte) {}

// recSink keeps what a task emits.
type recSink struct{ recs []emitted }

type emitted struct {
	topic      topology.Topic
	key, value []byte
}

func (s *recSink) Emit(topic topology.Topic, key, value []byte) {
	s.recs = append(s.recs, emitted{topic, key, value})
}

// TestReservationsOnPebble: reservation commands through the task, on
// Pebble: results go to the results topic keyed by order id, and a
// reservation survives a commit and a reopen.
func TestReservationsOnPebble(t *testing.T) {
	dir := t.TempDir()
	cat := catalog.New(nil)
	n := schemas.Node{NodeID: "W1", Type: schemas.Warehouse, Active: true, ShipEnabled: true}
	v, _ := schemas.Nodes.Encode(&n)
	if err := cat.ApplyNode([]byte("W1"), v); err != nil {
		t.Fatal(err)
	}
	open := func() (*state.Store, *Task) {
		st, err := state.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		task, err := Topology(TopologyOptions{Catalog: cat}).NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 10})
		if err != nil {
			t.Fatal(err)
		}
		return st, task.(*Task)
	}
	commit := func(st *state.Store, tk *Task, out topology.Emitter) {
		t.Helper()
		flushCommit(t, tk, st, out)
	}
	command := func(tk *Task, out topology.Emitter, c schemas.ReservationCommand) {
		t.Helper()
		b, _ := schemas.ReservationCommands.Encode(&c)
		if err := tk.Process(&topology.Record{Topic: string(TopicCommands), Key: []byte(c.SKU), Value: b}, out); err != nil {
			t.Fatal(err)
		}
	}
	result := func(e emitted) *schemas.ReservationResult {
		t.Helper()
		var r schemas.ReservationResult
		if e.topic != TopicResults {
			t.Fatalf("emitted to %s, want %s", e.topic, TopicResults)
		}
		if err := schemas.ReservationResults.Decode(e.value, &r); err != nil {
			t.Fatal(err)
		}
		if string(e.key) != r.OrderID {
			t.Fatalf("result keyed %q, want the order id %q", e.key, r.OrderID)
		}
		return &r
	}

	st, tk := open()
	out := &recSink{}
	m := schemas.StockMovement{MovementID: "m1", SKU: "A", NodeID: "W1", Type: schemas.Receipt, Qty: 3}
	b, _ := schemas.StockMovements.Encode(&m)
	if err := tk.Process(&topology.Record{Topic: string(TopicMovements), Key: []byte("A"), Value: b}, out); err != nil {
		t.Fatal(err)
	}
	commit(st, tk, out)
	out.recs = nil
	command(tk, out, schemas.ReservationCommand{OrderID: "o1", LineID: "1", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 2, Attempt: 1})
	if r := result(out.recs[0]); !r.OK || r.Available != 1 {
		t.Fatalf("reserve: %+v", r)
	}
	commit(st, tk, out)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, tk = open()
	defer st.Close()
	out.recs = nil
	command(tk, out, schemas.ReservationCommand{OrderID: "o2", LineID: "1", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 2, Attempt: 1})
	if r := result(out.recs[0]); r.OK || r.Available != 1 {
		t.Fatalf("second reserve after reopen: %+v, want refused with 1 available", r)
	}
	command(tk, out, schemas.ReservationCommand{OrderID: "o1", LineID: "1", Type: schemas.Release, SKU: "A", NodeID: "W1", Attempt: 1})
	if r := result(out.recs[1]); !r.OK || r.Qty != 2 || r.Available != 3 {
		t.Fatalf("release: %+v", r)
	}
}

// TestReemitCursorCached: the re-emit cursor, read before every flush and
// for every partition without input, is answered from memory once known
// (present or absent), follows commits and aborts, is stored in the format
// of earlier versions (ts, 8 bytes big endian, then the last SKU) and is
// read back from Pebble by a new task on the same store.
func TestReemitCursorCached(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	tk := newPebbleTask(t, st, Config{})
	commit := func() { commitStore(t, st) }
	if tk.Pending() {
		t.Fatal("pending on an empty store")
	}
	gets := st.Metrics().PebbleGets
	for range 10 {
		if tk.Pending() {
			t.Fatal("pending on an empty store")
		}
	}
	if g := st.Metrics().PebbleGets - gets; g != 0 {
		t.Errorf("10 Pending calls read Pebble %d times, want 0 (the absence is cached)", g)
	}

	tk.store.SetReemit("S0001", 42, true)
	if !tk.Pending() {
		t.Fatal("not pending within the transaction that set the cursor")
	}
	st.Abort()
	if tk.Pending() {
		t.Fatal("pending after the transaction that set the cursor aborted")
	}

	tk.store.SetReemit("S0001", 42, true)
	commit()
	if after, ts, ok, err := tk.store.Reemit(); err != nil || !ok || after != "S0001" || ts != 42 {
		t.Fatalf("committed cursor: %q %d %v %v", after, ts, ok, err)
	}
	raw, ok, err := st.Get([]byte("m/reemit"))
	if err != nil || !ok {
		t.Fatalf("stored cursor: %v %v", ok, err)
	}
	if want := append(binary.BigEndian.AppendUint64(nil, 42), "S0001"...); !bytes.Equal(raw, want) {
		t.Errorf("stored cursor %x, want %x (the format of earlier versions)", raw, want)
	}

	// A new task on the reopened store (as after a restart) reads it from
	// Pebble.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = state.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	tk2 := newPebbleTask(t, st, Config{})
	if after, ts, ok, err := tk2.store.Reemit(); err != nil || !ok || after != "S0001" || ts != 42 {
		t.Fatalf("cursor read by a new task: %q %d %v %v", after, ts, ok, err)
	}
	tk2.store.SetReemit("", 0, false)
	st.Abort()
	if !tk2.Pending() {
		t.Fatal("cursor gone after the transaction that cleared it aborted")
	}
	tk2.store.SetReemit("", 0, false)
	commit()
	if tk2.Pending() {
		t.Fatal("pending after the cursor was cleared and committed")
	}
	if _, ok, _ := st.Get([]byte("m/reemit")); ok {
		t.Error("cleared cursor still stored")
	}
}

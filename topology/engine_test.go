package topology

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// echoTask stores and echoes its input, and emits one "out" record per
// global change it is told about.
type echoTask struct {
	st   *state.Store
	seen []string
}

func (t *echoTask) Process(r *Record, out Emitter) error {
	out.Emit("out", r.Key, r.Value)
	return t.st.Txn().Set(r.Key, r.Value)
}
func (t *echoTask) GlobalChanged(_ Topic, key []byte, _ int64, _ Emitter) error {
	t.seen = append(t.seen, string(key))
	return nil
}
func (t *echoTask) Flush(out Emitter) error {
	for _, k := range t.seen {
		out.Emit("out", []byte(k), []byte("changed"))
	}
	t.seen = nil
	return nil
}
func (t *echoTask) Aborted() { t.seen = nil }

// TestGlobalChangeSurvivesAbort: the transaction that carries a global
// table change aborts; the change must be handed to the tasks again and
// reach the output in a later, committed transaction.
func TestGlobalChangeSurvivesAbort(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology(Global{Topic: "glob", Apply: func(k, v []byte) error { return nil }}))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	cl := outClient(t, brokers)
	defer cl.Close()
	// Wait until the engine owns its partition (the output topic exists and
	// the group is stable), then arm: the next commit is refused as abortable.
	waitOwned(eng, 1)
	// The partition has state (global changes are delivered to partitions
	// whose store holds data; an empty one has no outputs to correct).
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k")
	aborted := refuseNextCommit(c, kerr.TransactionAbortable.Code)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "glob", Key: []byte("node-1"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "node-1")
	if aborted.Load() != 1 {
		t.Errorf("%d commits were refused, want exactly 1", aborted.Load())
	}
}

// waitOwned waits (30 s at most) until eng owns n partitions and says
// whether it does.
func waitOwned(eng *Engine, n int32) bool {
	deadline := time.Now().Add(30 * time.Second)
	for eng.owned.Load() != n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return eng.owned.Load() == n
}

// waitUntil polls cond every 20 ms and fails the test if it does not hold
// within timeout.
func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not after %v", what, timeout)
		}
	}
}

// refuseNextCommit makes c answer the next EndTxn that commits with code,
// without committing; the count says how many it answered (1 once it has).
func refuseNextCommit(c *kfake.Cluster, code int16) *atomic.Int32 {
	var refused atomic.Int32
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.EndTxnRequest)
		if !r.Commit {
			return nil, nil, false
		}
		refused.Add(1)
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = code
		return resp, nil, true
	})
	return &refused
}

// failProduce answers every partition of produce request r with code.
func failProduce(r *kmsg.ProduceRequest, code int16) *kmsg.ProduceResponse {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// newCluster is a one-broker kfake cluster, closed when the test ends.
func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cl until a record with key arrives (30 s at most) and
// returns it.
func waitFor(t *testing.T, cl *kgo.Client, key string) *kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no output record with key %q", key)
		}
		var got *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if got == nil && string(r.Key) == key {
				got = r
			}
		})
		if got != nil {
			return got
		}
	}
}

// echoTopology is one input, one store, one output, echoTask, and globals.
func echoTopology(globals ...Global) *Topology {
	return &Topology{Group: "g", Inputs: []Input{{Topic: "in"}}, Stores: []Store{{Name: "st", Changelog: "st-changelog"}},
		Outputs: []Output{{Topic: "out", CoPartitioned: true}}, Globals: globals, DeadLetter: "dlq",
		NewTask: func(tc TaskContext) (Task, error) { return &echoTask{st: tc.Stores["st"]}, nil }}
}

// runEngine runs topo as instance "a" on one partition (unless a mod says
// otherwise) until stop, which returns Run's error.
func runEngine(t *testing.T, brokers []string, stateDir string, topo *Topology, mods ...func(*Config)) (eng *Engine, stop func() error) {
	t.Helper()
	cfg := Config{Brokers: brokers, InstanceID: "a", StateDir: stateDir, Partitions: 1,
		CommitInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, mod := range mods {
		mod(&cfg)
	}
	eng, err := NewEngine(cfg, topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	return eng, func() error { cancel(); return <-done }
}

// runOwned is runEngine, stopped (and its error reported) when the test
// ends, once it owns its partition.
func runOwned(t *testing.T, brokers []string, topo *Topology, mods ...func(*Config)) *Engine {
	t.Helper()
	eng, stop := runEngine(t, brokers, t.TempDir(), topo, mods...)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	if !waitOwned(eng, 1) {
		t.Fatal("the engine does not own its partition")
	}
	return eng
}

// outClient reads "out" read_committed from the start.
func outClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestParallel: every task runs, at most Workers at once, and the error
// reported is the first in task order, whatever finishes first.
func TestParallel(t *testing.T) {
	for _, workers := range []int{1, 2, 8} {
		e := &Engine{cfg: Config{Workers: workers}}
		var tss []*taskState
		for p := range int32(6) {
			tss = append(tss, &taskState{p: p})
		}
		var running, peak, ran atomic.Int32
		err := e.parallel(tss, func(ts *taskState) error {
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(time.Duration(6-ts.p) * time.Millisecond)
			running.Add(-1)
			ran.Add(1)
			if ts.p == 2 || ts.p == 4 {
				return fmt.Errorf("p%d", ts.p)
			}
			return nil
		})
		if ran.Load() != 6 && workers > 1 {
			t.Errorf("workers=%d: %d tasks ran, want 6", workers, ran.Load())
		}
		if err == nil || err.Error() != "p2" {
			t.Errorf("workers=%d: error %v, want p2", workers, err)
		}
		if peak.Load() > int32(workers) {
			t.Errorf("workers=%d: %d ran at once", workers, peak.Load())
		}
	}
}

// tagTask records which instance processed which (topic, partition) and
// writes every input record to "by-key", a non-co-partitioned output.
type tagTask struct {
	instance string
	p        int32
	mu       *sync.Mutex
	seen     map[string]string // "topic/partition" -> instance
}

func (t *tagTask) Process(r *Record, out Emitter) error {
	t.mu.Lock()
	t.seen[fmt.Sprintf("%s/%d", r.Topic, r.Partition)] += t.instance
	t.mu.Unlock()
	out.Emit("by-key", r.Key, r.Value)
	return nil
}
func (t *tagTask) GlobalChanged(Topic, []byte, int64, Emitter) error { return nil }
func (t *tagTask) Flush(Emitter) error                               { return nil }
func (t *tagTask) Aborted()                                          {}

// TestCoPartitionedInputs: two instances share a topology with two inputs;
// partition p of both inputs is processed by the same instance, and a
// non-co-partitioned output is partitioned by Kafka's key hash.
func TestCoPartitionedInputs(t *testing.T) {
	brokers := newKfake(t)
	var mu sync.Mutex
	seen := map[string]string{}
	const parts = 4
	ctx, cancel := context.WithCancel(context.Background())
	var engines []*Engine
	var wg sync.WaitGroup
	for _, name := range []string{"x", "y"} {
		topo := &Topology{
			Group:      "g",
			Inputs:     []Input{{Topic: "a"}, {Topic: "b"}},
			Stores:     []Store{{Name: "st", Changelog: "st-changelog"}},
			Outputs:    []Output{{Topic: "by-key"}},
			DeadLetter: "dlq",
			NewTask: func(tc TaskContext) (Task, error) {
				return &tagTask{instance: name, p: tc.Partition, mu: &mu, seen: seen}, nil
			},
		}
		eng, err := NewEngine(Config{Brokers: brokers, InstanceID: name, StateDir: t.TempDir(), Partitions: parts,
			CommitInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, topo)
		if err != nil {
			t.Fatal(err)
		}
		engines = append(engines, eng)
		wg.Go(func() {
			if err := eng.Run(ctx); err != nil {
				t.Error(name, err)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for (engines[0].owned.Load() == 0 || engines[1].owned.Load() == 0 ||
		engines[0].owned.Load()+engines[1].owned.Load() != parts) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if o0, o1 := engines[0].owned.Load(), engines[1].owned.Load(); o0 == 0 || o1 == 0 || o0+o1 != parts {
		t.Fatalf("instances own %d and %d partitions, want a share each of %d", o0, o1, parts)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics("by-key"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range int32(parts) {
		for _, topic := range []string{"a", "b"} {
			for i := range 5 {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "%s-%d-%d", topic, p, i), Value: []byte("v")})
			}
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	hasher := kgo.StickyKeyPartitioner(nil).ForTopic("by-key")
	got := 0
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	for got < len(recs) && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			got++
			if want := int32(hasher.Partition(r, parts)); r.Partition != want {
				t.Errorf("by-key record %s in partition %d, want %d (key hash)", r.Key, r.Partition, want)
			}
		})
	}
	if got != len(recs) {
		t.Fatalf("%d of %d records reached by-key", got, len(recs))
	}
	mu.Lock()
	defer mu.Unlock()
	// One letter per processing: at least the 5 records of each input (a
	// transaction aborted on the way, at start-up say, processes its
	// records again), all by one instance, the same for both inputs.
	one := func(s string) bool { return len(s) >= 5 && strings.Trim(s, s[:1]) == "" }
	for p := range parts {
		a, b := seen[fmt.Sprintf("a/%d", p)], seen[fmt.Sprintf("b/%d", p)]
		if !one(a) || !one(b) || a[0] != b[0] {
			t.Errorf("partition %d: input a processed by %q, b by %q; want the same single instance", p, a, b)
		}
	}
}

func TestCoPartitionedCheck(t *testing.T) {
	set := map[int32]bool{0: true, 2: true}
	if err := coPartitioned([]string{"a", "b"}, map[string][]int32{"a": {0, 2}, "b": {2, 0}}, set); err != nil {
		t.Error(err)
	}
	if err := coPartitioned([]string{"a", "b"}, map[string][]int32{"a": {0, 2}, "b": {2}}, set); err == nil {
		t.Error("partition 0 of b missing: no error")
	}
}

// TestSilentGlobal: a silent table's records are applied but kept out of
// the change history and of the positions tasks persist.
func TestSilentGlobal(t *testing.T) {
	e := &Engine{topo: &Topology{Globals: []Global{{Topic: "nodes"}, {Topic: "ats", Silent: true}}}, cfg: Config{TopicPrefix: "p."}}
	g := newGlobalReader(e)
	g.record(&kgo.Record{Topic: "p.nodes", Partition: 0, Offset: 0, Key: []byte("n1")})
	g.record(&kgo.Record{Topic: "p.ats", Partition: 0, Offset: 0, Key: []byte("sku")})
	pos := g.positions()
	if _, ok := pos["p.ats"]; ok || pos["p.nodes"][0] != 1 {
		t.Errorf("positions %v: want p.nodes only", pos)
	}
	entries, all := g.changes(Positions{}, Positions{"p.nodes": {0: 1}, "p.ats": {0: 1}})
	if len(entries) != 1 || string(entries[0].key) != "n1" || len(all) != 0 {
		t.Errorf("changes: %v %v, want n1 only", entries, all)
	}
}

// TestIdleCommitsNothing: with no input the engine ends its transactions
// as aborts without counting them: nothing to commit, and a committed
// empty transaction would make franz-go hold its session lock for 500 ms
// (the next commit would wait). The counters stay put while idle.
func TestIdleCommitsNothing(t *testing.T) {
	c := newCluster(t)
	eng, stop := runEngine(t, c.ListenAddrs(), t.TempDir(), echoTopology())
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	cl := outClient(t, c.ListenAddrs())
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k") // one committed transaction with input,
	// counted once its apply is done (the records counter comes last)
	waitUntil(t, 10*time.Second, "the transaction with input counted", func() bool { return testutil.ToFloat64(eng.m.records) >= 1 })
	before := testutil.ToFloat64(eng.m.committed) + testutil.ToFloat64(eng.m.aborted)
	time.Sleep(1500 * time.Millisecond) // about 75 commit intervals, idle (and past franz-go's 500 ms hold after an empty commit)
	if after := testutil.ToFloat64(eng.m.committed) + testutil.ToFloat64(eng.m.aborted); after != before {
		t.Errorf("%v transactions counted while idle, want none", after-before)
	}
}

// TestCorruptStoreRebuilt: a store whose files are damaged between runs is
// not trusted: it is moved aside and rebuilt from the changelog, and the
// engine carries on with every key it had plus the new ones.
func TestCorruptStoreRebuilt(t *testing.T) {
	c := newCluster(t)
	stateDir := t.TempDir()
	run := func(keys ...string) {
		t.Helper()
		_, stop := runEngine(t, c.ListenAddrs(), stateDir, echoTopology())
		cl := outClient(t, c.ListenAddrs())
		for _, k := range keys {
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte(k), Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, cl, keys[len(keys)-1])
		cl.Close()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	run("k1", "k2", "k3")
	dir := filepath.Join(stateDir, "g", "st-0")
	manifests, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatalf("no MANIFEST in %s", dir)
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, []byte("garbage, not a manifest"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("k4")
	moved, _ := filepath.Glob(dir + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("moved-aside stores: %v, want one", moved)
	}
	st, err := state.Open(dir, nil)
	if err != nil {
		t.Fatalf("the rebuilt store does not open: %v", err)
	}
	defer st.Close()
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		if _, ok, err := st.Get([]byte(k)); err != nil || !ok {
			t.Errorf("rebuilt store lacks %s (%v)", k, err)
		}
	}
}

// TestBusyStoreNotMovedAside: a store another holder has open is an error,
// not corruption: it stays where it is.
func TestBusyStoreNotMovedAside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "st-0")
	held, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e := &Engine{cfg: Config{MemTableBytes: 4 << 20}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), m: newMetrics(nil)}
	if st, err := e.openStore("st", 0, dir, false); err == nil {
		st.Close()
		t.Fatal("a locked store opened")
	}
	if moved, _ := filepath.Glob(dir + ".corrupt-*"); len(moved) != 0 {
		t.Fatalf("a busy store was moved aside: %v", moved)
	}
}

// TestOutputTimestamps: the records the engine produces carry the time of
// the transaction that produced them (Engine.now, read once per poll and
// flush), not a stale one: an output produced well after an earlier one has
// a timestamp within the time its input was processed.
func TestOutputTimestamps(t *testing.T) {
	brokers := newKfake(t)
	_, stop := runEngine(t, brokers, t.TempDir(), echoTopology())
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	cl := outClient(t, brokers)
	defer cl.Close()
	produced := map[string]time.Time{}
	for _, key := range []string{"first", "second"} {
		before := time.Now().Truncate(time.Millisecond) // franz-go keeps milliseconds
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte(key), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, cl, key)
		if after := time.Now(); got.Timestamp.Before(before) || got.Timestamp.After(after) {
			t.Errorf("output %q: timestamp %v, want within [%v, %v] (when its input was produced and read)",
				key, got.Timestamp, before, after)
		}
		produced[key] = got.Timestamp
		time.Sleep(200 * time.Millisecond) // several idle transactions in between
	}
	if !produced["second"].After(produced["first"]) {
		t.Errorf("timestamps %v then %v: not increasing", produced["first"], produced["second"])
	}
}

// TestConcurrentTransactionsRetriedPromptly: the broker answers the first
// produce of a transaction with CONCURRENT_TRANSACTIONS (it is still
// writing the markers of the transaction before), twice in a row. franz-go
// retries it after a metadata update; with its default MetadataMinAge the
// second retry waited up to 5 s for the update (the first had just
// happened), and so did every partition. The record must be out well
// before that.
func TestConcurrentTransactionsRetriedPromptly(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	runOwned(t, brokers, echoTopology())
	cl := outClient(t, brokers)
	defer cl.Close()
	produce := func(key string) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte(key), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce("k1")
	waitFor(t, cl, "k1")

	var refused atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		if r.TransactionID == nil || refused.Load() >= 2 {
			return nil, nil, false
		}
		refused.Add(1)
		return failProduce(r, kerr.ConcurrentTransactions.Code), nil, true
	})
	start := time.Now()
	produce("k2")
	waitFor(t, cl, "k2")
	took := time.Since(start)
	t.Logf("took %v", took)
	if n := refused.Load(); n != 2 {
		t.Fatalf("%d produce requests were refused, want 2", n)
	}
	// 5 s with franz-go's default; a few hundred ms with the engine's.
	if took > 3*time.Second {
		t.Errorf("the record took %v to come out after two CONCURRENT_TRANSACTIONS answers, want well under franz-go's default 5 s metadata wait", took)
	}
}

// countingLogger counts franz-go's messages that contain sub, at every level.
type countingLogger struct {
	sub string
	n   atomic.Int32
}

func (l *countingLogger) Level() kgo.LogLevel { return kgo.LogLevelDebug }
func (l *countingLogger) Log(_ kgo.LogLevel, msg string, _ ...any) {
	if strings.Contains(msg, l.sub) {
		l.n.Add(1)
	}
}

// TestCommitWithoutInputKeepsOffsets: a transaction with output and no
// input (here global changes; in the router, a backorder retry) commits the
// partitions' offsets as they are. franz-go learns from the offset commit's
// answer that the broker has KIP-447; after a commit without one it holds
// its session lock for 500 ms (it says so at debug level), and End returns
// only then: the engine stood still for half a second after every such
// transaction. The group's offset must not move. On kfake, or on the broker
// of KAFKA_BROKERS.
func TestCommitWithoutInputKeepsOffsets(t *testing.T) {
	var c *kfake.Cluster
	brokers := []string{os.Getenv("KAFKA_BROKERS")}
	if brokers[0] == "" {
		c = newCluster(t)
		brokers = c.ListenAddrs()
	}
	prefix := fmt.Sprintf("t%d-keep.", time.Now().UnixNano()%1e9)
	topo := echoTopology(Global{Topic: "glob", Apply: func(k, v []byte) error { return nil }})
	topo.Group = prefix + "g"
	held := &countingLogger{sub: "sleeping 500ms"}
	dir := t.TempDir()
	start := func() (*Engine, func() error) {
		return runEngine(t, brokers, dir, topo, func(cfg *Config) {
			cfg.TopicPrefix = prefix
			cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithLogger(held))
		})
	}
	eng, stop := start()
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	if !waitOwned(eng, 1) {
		t.Fatal("the engine does not own its partition")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(prefix+"out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(topic, key string) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: prefix + topic, Key: []byte(key), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, cl, key)
	}
	produce("in", "k")
	waitUntil(t, 10*time.Second, "the transaction with input counted", func() bool { return testutil.ToFloat64(eng.m.records) >= 1 })
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(context.Background(), prefix+"in")
	if err != nil {
		t.Fatal(err)
	}
	inID := [16]byte(topics[prefix+"in"].ID)
	var sent atomic.Int32
	var watching atomic.Bool
	watching.Store(true)
	if c != nil {
		c.ControlKey(int16(kmsg.TxnOffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if !watching.Load() {
				return nil, nil, false
			}
			r := req.(*kmsg.TxnOffsetCommitRequest)
			for _, tp := range r.Topics {
				topic := tp.Topic // v6 (KIP-1319) names the topic by id alone
				if r.Version >= 6 && tp.TopicID == inID {
					topic = prefix + "in"
				}
				for _, p := range tp.Partitions {
					if topic != prefix+"in" || p.Partition != 0 || p.Offset != 1 {
						t.Errorf("offset commit (v%d) of %q (id %x)/%d at %d, want in/0 at 1", r.Version, tp.Topic, tp.TopicID, p.Partition, p.Offset)
					}
					sent.Add(1)
				}
			}
			return nil, nil, false
		})
	}
	// (A transaction before that one, with nothing committed to keep,
	// may have been held.)
	heldBefore := held.n.Load()
	before := testutil.ToFloat64(eng.m.committed)
	for i := range 3 {
		produce("glob", fmt.Sprint("node-", i))
	}
	waitUntil(t, 10*time.Second, "three transactions without input committed", func() bool { return testutil.ToFloat64(eng.m.committed)-before >= 3 })
	if n := held.n.Load() - heldBefore; n != 0 {
		t.Errorf("franz-go held its session lock for 500 ms after %d commits", n)
	}
	if c != nil && sent.Load() < 3 {
		t.Errorf("%d partition offsets sent with 3 commits without input, want one each", sent.Load())
	}
	offs, err := adm.FetchOffsets(context.Background(), topo.Group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(prefix+"in", 0); !ok || o.At != 1 {
		t.Errorf("the group's offset of in/0 is %+v, want 1", o)
	}
	// The engine goes on with input after them.
	watching.Store(false)
	produce("in", "k2")

	// Restarted, with offsets committed and no input fetched yet: the
	// topic id comes from the metadata.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	eng, stop = start()
	if !waitOwned(eng, 1) {
		t.Fatal("the restarted engine does not own its partition")
	}
	heldBefore = held.n.Load()
	before = testutil.ToFloat64(eng.m.committed)
	produce("glob", "node-after-restart")
	waitUntil(t, 10*time.Second, "a transaction without input committed after the restart", func() bool { return testutil.ToFloat64(eng.m.committed)-before >= 1 })
	if n := held.n.Load() - heldBefore; n != 0 {
		t.Errorf("after the restart, franz-go held its session lock for 500 ms after %d commits", n)
	}
}

package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/invroute/invroute/state"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// faultFS is one process's view of a filesystem on which faults can be
// switched on: writes (or reads) of files whose name ends in suffix fail
// with an errno. kill freezes every further operation and releases the
// locks taken, as the death of the process would: a store whose Pebble
// panicked or blocked is never closed, and would otherwise keep its lock
// and touch the directory a restarted engine opens.
type faultFS struct {
	*errorfs.FS
	mode   atomic.Int32
	suffix atomic.Pointer[string]
	errno  atomic.Int32

	mu    sync.Mutex
	locks []*onceCloser
}

const (
	faultOff = iota
	faultWrite
	faultRead
	faultDead
)

func newFaultFS() *faultFS {
	f := &faultFS{}
	f.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(f.inject))
	return f
}

func (f *faultFS) inject(op errorfs.Op) error {
	suffix := ""
	if p := f.suffix.Load(); p != nil {
		suffix = *p
	}
	errno := syscall.Errno(f.errno.Load())
	switch f.mode.Load() {
	case faultDead:
		select {} // this process is gone
	case faultWrite:
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && op.Kind != errorfs.OpRemove && strings.HasSuffix(op.Path, suffix) {
			return &os.PathError{Op: "write", Path: op.Path, Err: errno}
		}
	case faultRead:
		if (op.Kind == errorfs.OpFileReadAt || op.Kind == errorfs.OpFileRead) && strings.HasSuffix(op.Path, suffix) {
			return &os.PathError{Op: "read", Path: op.Path, Err: errno}
		}
	}
	return nil
}

func (f *faultFS) set(mode int32, suffix string, errno syscall.Errno) {
	f.suffix.Store(&suffix)
	f.errno.Store(int32(errno))
	f.mode.Store(mode)
}

func (f *faultFS) Lock(name string) (io.Closer, error) {
	c, err := f.FS.Lock(name)
	if err != nil {
		return nil, err
	}
	oc := &onceCloser{c: c}
	f.mu.Lock()
	f.locks = append(f.locks, oc)
	f.mu.Unlock()
	return oc, nil
}

func (f *faultFS) kill() {
	f.mode.Store(faultDead)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.locks {
		_ = c.Close()
	}
}

type onceCloser struct {
	once sync.Once
	c    io.Closer
}

func (o *onceCloser) Close() (err error) {
	o.once.Do(func() { err = o.c.Close() })
	return err
}

// faultEnv is where a storage fault test runs: an in-process kfake or,
// with KAFKA_BROKERS set, the real broker, on topics and a group of its own.
type faultEnv struct {
	brokers  []string
	prefix   string // topic prefix
	group    string
	stateDir string
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	env := &faultEnv{group: "g", stateDir: t.TempDir()}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		env.brokers = strings.Split(b, ",")
		env.prefix = fmt.Sprintf("t%d-%s.", time.Now().UnixNano()%1e9, t.Name())
		env.group = env.prefix + "g"
		return env
	}
	if os.Getenv("INVROUTE_REQUIRE_KAFKA") == "1" {
		t.Fatal("INVROUTE_REQUIRE_KAFKA=1 but KAFKA_BROKERS is not set")
	}
	env.brokers = newKfake(t)
	return env
}

func newKfake(t *testing.T) []string {
	t.Helper()
	return newCluster(t).ListenAddrs()
}

// topology is echoTopology in the env's group, with tasks from newTask
// (nil: echoTask).
func (env *faultEnv) topology(newTask func(TaskContext) (Task, error)) *Topology {
	tp := echoTopology()
	tp.Group = env.group
	if newTask != nil {
		tp.NewTask = newTask
	}
	return tp
}

// client produces to the env's "in" and reads its "out" read_committed.
func (env *faultEnv) client(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.brokers...), kgo.ConsumeTopics(env.prefix+"out"),
		kgo.DefaultProduceTopic(env.prefix+"in"), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// engineRun is an engine running in the background.
type engineRun struct {
	eng    *Engine
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// start runs topo as instance "a" on one partition; cfg adjusts the
// configuration.
func (env *faultEnv) start(t *testing.T, topo *Topology, cfg func(*Config)) *engineRun {
	t.Helper()
	c := Config{Brokers: env.brokers, TopicPrefix: env.prefix, InstanceID: "a", StateDir: env.stateDir, Partitions: 1,
		CommitInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if cfg != nil {
		cfg(&c)
	}
	eng, err := NewEngine(c, topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &engineRun{eng: eng, cancel: cancel, done: make(chan struct{})}
	go func() { r.err = eng.Run(ctx); close(r.done) }()
	if !waitOwned(eng, 1) {
		cancel()
		<-r.done
		t.Fatalf("the engine did not take its partition: %v", r.err)
	}
	if err := eng.Healthy(); err != nil {
		t.Fatalf("a running engine reports %v", err)
	}
	if g := testutil.ToFloat64(eng.m.healthy); g != 1 {
		t.Fatalf("invroute_engine_healthy = %v while running, want 1", g)
	}
	return r
}

func (r *engineRun) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// exited waits up to d for Run to return by itself.
func (r *engineRun) exited(d time.Duration) bool {
	select {
	case <-r.done:
		return true
	case <-time.After(d):
		return false
	}
}

func produce(t *testing.T, cl *kgo.Client, key string, value []byte) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(key), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committedOutputs reads "out" read_committed from the start until it has
// been quiet for a second: key -> how many times it was output.
func (env *faultEnv) committedOutputs(t *testing.T) map[string]int {
	t.Helper()
	cl := env.client(t)
	defer cl.Close()
	got := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Key)]++; n++ })
		if n == 0 && ctx.Err() != nil {
			return got
		}
	}
	t.Fatal("out never went quiet")
	return nil
}

// committedInput returns the group's committed offset of in[0] (-1: none).
func (env *faultEnv) committedInput(t *testing.T) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), env.group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(env.prefix+"in", 0)
	if !ok {
		return -1
	}
	return o.At
}

// checkExactlyOnce checks that every key of want was output exactly once.
func checkExactlyOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("key %s output %d times, want exactly once", k, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct keys output, want %d: %v", len(got), len(want), got)
	}
}

// storeDir is the directory of store st, partition 0.
func (env *faultEnv) storeDir() string { return filepath.Join(env.stateDir, env.group, "st-0") }

// checkStore opens the store of partition 0 (the engine stopped) and
// checks that it holds exactly want.
func (env *faultEnv) checkStore(t *testing.T, want map[string]int) {
	t.Helper()
	st, err := state.Open(env.storeDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	if err := st.Txn().Iterate(nil, func(k, v []byte) error {
		if string(k) == string(globalsKey) {
			return nil
		}
		n++
		if l, ok := want[string(k)]; !ok || l != len(v) {
			t.Errorf("store holds %s (%d bytes), want %v", k, len(v), l)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("store holds %d keys, want %d", n, len(want))
	}
}

// assertStorageFault checks the error Run returned and the health of the
// stopped engine.
func assertStorageFault(t *testing.T, r *engineRun, errno syscall.Errno, phase string) {
	t.Helper()
	var se *StorageError
	if !errors.As(r.err, &se) {
		t.Fatalf("Run returned %v, want a *StorageError", r.err)
	}
	if !errors.Is(r.err, errno) {
		t.Errorf("Run's error does not wrap %v: %v", errno, r.err)
	}
	msg := r.err.Error()
	for _, want := range []string{"store st partition 0", phase} {
		if !strings.Contains(msg, want) {
			t.Errorf("Run's error %q does not say %q", msg, want)
		}
	}
	if errno == syscall.ENOSPC && !strings.Contains(msg, "disk full") {
		t.Errorf("Run's error %q does not say disk full", msg)
	}
	if err := r.eng.Healthy(); !errors.As(err, &se) {
		t.Errorf("Healthy() = %v after a storage fault", err)
	}
	if g := testutil.ToFloat64(r.eng.m.healthy); g != 0 {
		t.Errorf("invroute_engine_healthy = %v after a storage fault, want 0", g)
	}
}

// TestDiskFullAfterCommit: the disk fills up; the next transaction commits
// in Kafka and its store cannot apply it. The engine stops with a clear
// error, commits nothing more and reports unhealthy; restarted on a healthy
// disk it restores the store from the changelog and every input's effect
// is there exactly once.
func TestDiskFullAfterCommit(t *testing.T) {
	env := newFaultEnv(t)
	fs := newFaultFS()
	small := func(cfg *Config) { cfg.FS = fs; cfg.MemTableBytes = 256 << 10 }
	r := env.start(t, env.topology(nil), small)
	cl := env.client(t)
	defer cl.Close()
	want := map[string]int{}
	var keys []string
	send := func(k string, size int) {
		produce(t, cl, k, make([]byte, size))
		want[k] = size
		keys = append(keys, k)
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		send(k, 10)
	}
	waitFor(t, cl, "k3")
	// The engine writes a committed transaction to Pebble during the next
	// one's end; with no input, idle transactions (every CommitInterval,
	// 20 ms) do that. Wait until the store has nothing pending (asked on the
	// engine's loop, between transactions), so that the disk fills after k3
	// is on it.
	waitApplied(t, r.eng, 0)

	fs.set(faultWrite, "", syscall.ENOSPC)
	// Larger than half a memtable: Pebble rotates its memtable and WAL to
	// apply it, which needs a new file.
	send("big", 200<<10)
	waitFor(t, cl, "big") // Kafka committed it
	for i := range 5 {
		send(fmt.Sprintf("after%d", i), 10)
	}
	if !r.exited(30 * time.Second) {
		r.stop()
		t.Fatal("the engine kept running on a full disk")
	}
	assertStorageFault(t, r, syscall.ENOSPC, "applying a transaction Kafka committed")

	// Nothing after the failed transaction committed: the outputs are a
	// prefix of the inputs ending with it or just after, and the group's
	// committed offset is exactly that prefix.
	got := env.committedOutputs(t)
	n := 0
	for n < len(keys) && got[keys[n]] == 1 {
		n++
	}
	if n < 4 || len(got) != n {
		t.Fatalf("outputs %v: want exactly the first %d inputs, through big (the failed transaction)", got, n)
	}
	if off := env.committedInput(t); off != int64(n) {
		t.Errorf("committed input offset %d, want %d (the outputs)", off, n)
	}
	if n == len(keys) {
		t.Log("every after record went into the failed transaction; none was left to check")
	}
	committed := testutil.ToFloat64(r.eng.m.committed)
	time.Sleep(300 * time.Millisecond)
	if testutil.ToFloat64(r.eng.m.committed) != committed {
		t.Error("transactions committed after Run returned")
	}

	fs.kill() // the failed process is gone
	r = env.start(t, env.topology(nil), func(cfg *Config) { cfg.MemTableBytes = 256 << 10 })
	send("k5", 10)
	waitFor(t, cl, "k5")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(r.eng.m.storesRebuilt); v != 0 {
		t.Errorf("%v stores rebuilt: a store behind Kafka is restored, not moved aside", v)
	}
	checkExactlyOnce(t, env.committedOutputs(t), keys)
	env.checkStore(t, want)
}

// TestBackgroundFlushFaultStopsEngine: the disk has no room for the table
// files Pebble flushes memtables to, in the background; every apply
// succeeds (memtable and log). The engine learns of the fault from the
// flush, stops on its own, with nothing committed after its last applied
// transaction; a restart on a healthy disk processes every input once.
func TestBackgroundFlushFaultStopsEngine(t *testing.T) {
	env := newFaultEnv(t)
	fs := newFaultFS()
	r := env.start(t, env.topology(nil), func(cfg *Config) { cfg.FS, cfg.MemTableBytes = fs, 256<<10 })
	cl := env.client(t)
	defer cl.Close()
	want := map[string]int{}
	var keys []string
	fs.set(faultWrite, ".sst", syscall.ENOSPC)
	for i := 0; i < 100 && !r.exited(50*time.Millisecond); i++ {
		k := fmt.Sprintf("k%03d", i)
		produce(t, cl, k, make([]byte, 16<<10))
		want[k], keys = 16<<10, append(keys, k)
	}
	if !r.exited(30 * time.Second) {
		r.stop()
		t.Fatalf("%d records of 16 KiB on 256 KiB memtables, no room for tables: the engine kept running", len(keys))
	}
	// The flush's failure surfaces either through Pebble's background error
	// ("detected") or through the next apply that finds the store failed.
	assertStorageFault(t, r, syscall.ENOSPC, "")
	if msg := r.err.Error(); !strings.Contains(msg, "detected") && !strings.Contains(msg, "applying a transaction Kafka committed") {
		t.Errorf("Run's error %q says neither detected nor applying", msg)
	}
	if !strings.Contains(r.err.Error(), ".sst") {
		t.Errorf("the fault does not name the table file: %v", r.err)
	}
	got := env.committedOutputs(t)
	n := 0
	for n < len(keys) && got[keys[n]] == 1 {
		n++
	}
	if len(got) != n {
		t.Fatalf("outputs %v are not a prefix of the inputs", got)
	}
	if off := env.committedInput(t); off != int64(n) {
		t.Errorf("committed input offset %d, want %d (the outputs)", off, n)
	}
	fs.kill()
	r = env.start(t, env.topology(nil), func(cfg *Config) { cfg.MemTableBytes = 256 << 10 })
	produce(t, cl, "last", []byte("v"))
	want["last"], keys = 1, append(keys, "last")
	waitFor(t, cl, "last")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, env.committedOutputs(t), keys)
	env.checkStore(t, want)
}

// probeTask is echoTask whose Flush reads a key it never wrote and, like a
// careless task, takes a failed read for "not found": the store's failure
// must still abort the transaction.
type probeTask struct {
	echoTask
	readErrs *atomic.Int32
	key      string // read in Flush; default zz-probe
}

func (t *probeTask) Flush(out Emitter) error {
	key := cmp.Or(t.key, "zz-probe")
	if _, _, err := t.st.Txn().Get([]byte(key)); err != nil {
		t.readErrs.Add(1)
	}
	return t.echoTask.Flush(out)
}

// TestReadFaultDuringFlushAborts: the disk returns I/O errors while a
// transaction is flushed (the task reads): the transaction is aborted, even
// though the task ignores the error, the engine stops with it, and a
// restart on a healthy disk processes the input exactly once.
func TestReadFaultDuringFlushAborts(t *testing.T) {
	env := newFaultEnv(t)
	var readErrs atomic.Int32
	topo := func() *Topology {
		return env.topology(func(tc TaskContext) (Task, error) {
			return &probeTask{echoTask: echoTask{st: tc.Stores["st"]}, readErrs: &readErrs}, nil
		})
	}
	cl := env.client(t)
	defer cl.Close()
	want := map[string]int{}
	var keys []string
	send := func(k string, size int) {
		produce(t, cl, k, make([]byte, size))
		want[k] = size
		keys = append(keys, k)
	}
	// 640 KiB on 256 KiB memtables: most of the store is in table files.
	r := env.start(t, topo(), func(cfg *Config) { cfg.MemTableBytes = 256 << 10 })
	for i := range 40 {
		send(fmt.Sprintf("k%02d", i), 16<<10)
	}
	waitFor(t, cl, "k39")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// No block cache to speak of: every read of a table touches its file.
	fs := newFaultFS()
	r = env.start(t, topo(), func(cfg *Config) {
		cfg.FS, cfg.MemTableBytes, cfg.CacheBytes = fs, 256<<10, 1
	})
	send("p1", 10)
	waitFor(t, cl, "p1")
	if n := readErrs.Load(); n != 0 {
		t.Fatalf("%d reads failed on a healthy disk", n)
	}
	fs.set(faultRead, ".sst", syscall.EIO)
	send("p2", 10)
	if !r.exited(30 * time.Second) {
		r.stop()
		t.Fatal("the engine kept running with failing reads")
	}
	assertStorageFault(t, r, syscall.EIO, "partition 0")
	if readErrs.Load() == 0 {
		t.Log("the store failed before the task's read (a background read found the fault first)")
	}
	got := env.committedOutputs(t)
	if got["p2"] != 0 {
		t.Fatal("the transaction whose flush failed was committed")
	}
	if off := env.committedInput(t); off != int64(len(keys)-1) {
		t.Errorf("committed input offset %d, want %d (p2 not committed)", off, len(keys)-1)
	}

	fs.kill()
	r = env.start(t, topo(), func(cfg *Config) { cfg.MemTableBytes = 256 << 10 })
	waitFor(t, cl, "p2")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, env.committedOutputs(t), keys)
	env.checkStore(t, want)
}

// TestMissingStateDirRebuilt: the whole state directory is deleted while
// the engine is stopped; it is rebuilt from the changelog.
func TestMissingStateDirRebuilt(t *testing.T) {
	env := newFaultEnv(t)
	env.stateDir = filepath.Join(env.stateDir, "state")
	cl := env.client(t)
	defer cl.Close()
	want := map[string]int{}
	var keys []string
	r := env.start(t, env.topology(nil), nil)
	for _, k := range []string{"k1", "k2", "k3"} {
		produce(t, cl, k, []byte(k+"-value"))
		want[k], keys = len(k)+6, append(keys, k)
	}
	waitFor(t, cl, "k3")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(env.stateDir); err != nil {
		t.Fatal(err)
	}
	r = env.start(t, env.topology(nil), nil)
	produce(t, cl, "k4", []byte("k4-value"))
	want["k4"], keys = 8, append(keys, "k4")
	waitFor(t, cl, "k4")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(r.eng.m.restored); v < 3 {
		t.Errorf("%v changelog records restored, want the 3 of the first run", v)
	}
	checkExactlyOnce(t, env.committedOutputs(t), keys)
	env.checkStore(t, want)
}

// TestCheckpointBeyondChangelogMovedAside: the state directory comes from
// another cluster (or the topics were recreated): its checkpoint names
// changelog records that do not exist. It is not trusted: moved aside and
// rebuilt from this changelog, without any of the other cluster's keys.
func TestCheckpointBeyondChangelogMovedAside(t *testing.T) {
	env := newFaultEnv(t)
	run := func(keys ...string) *engineRun {
		t.Helper()
		// Another cluster, or (on a real broker) topics of another name:
		// the same group, the same state directory.
		if env.prefix == "" {
			env.brokers = newKfake(t)
		} else {
			env.prefix = fmt.Sprintf("t%d-%s.", time.Now().UnixNano()%1e9, t.Name())
		}
		r := env.start(t, env.topology(nil), nil)
		cl := env.client(t)
		defer cl.Close()
		for _, k := range keys {
			produce(t, cl, k, []byte("v"))
		}
		waitFor(t, cl, keys[len(keys)-1])
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	run("old1", "old2", "old3", "old4")
	r := run("new1")
	moved, _ := filepath.Glob(env.storeDir() + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("moved-aside stores: %v, want one", moved)
	}
	if v := testutil.ToFloat64(r.eng.m.storesRebuilt); v != 1 {
		t.Errorf("invroute_stores_rebuilt_total = %v, want 1", v)
	}
	env.checkStore(t, map[string]int{"new1": 1})
}

// TestStoreOfRecreatedTopicMovedAside: the state directory comes from a
// changelog topic of the same name that no longer exists (recreated, or
// another cluster's), and its checkpoint falls within the new changelog's
// offsets, so the offsets alone cannot tell. The topic id the store was
// bound to does: it is moved aside and rebuilt.
func TestStoreOfRecreatedTopicMovedAside(t *testing.T) {
	env := newFaultEnv(t)
	newTopics := func() {
		if env.prefix == "" {
			env.brokers = newKfake(t)
		} else {
			env.prefix = fmt.Sprintf("t%d-%s.", time.Now().UnixNano()%1e9, t.Name())
		}
	}
	run := func(keys ...string) *engineRun {
		t.Helper()
		r := env.start(t, env.topology(nil), nil)
		cl := env.client(t)
		defer cl.Close()
		for _, k := range keys {
			produce(t, cl, k, []byte("v"))
		}
		waitFor(t, cl, keys[len(keys)-1])
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	run("old1") // checkpoint: changelog offset 1 or 2
	newTopics()
	dir := env.stateDir
	env.stateDir = t.TempDir() // another instance fills the new changelog
	run("new1", "new2", "new3", "new4", "new5")
	env.stateDir = dir
	r := run("new6")
	moved, _ := filepath.Glob(env.storeDir() + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("moved-aside stores: %v, want one", moved)
	}
	if v := testutil.ToFloat64(r.eng.m.storesRebuilt); v != 1 {
		t.Errorf("invroute_stores_rebuilt_total = %v, want 1", v)
	}
	env.checkStore(t, map[string]int{"new1": 1, "new2": 1, "new3": 1, "new4": 1, "new5": 1, "new6": 1})
}

// TestCorruptionFoundRunningRebuilt: the table files of a store are
// damaged while the engine is stopped; Pebble opens the store (it checks
// blocks only when it reads them) and finds the damage later, in a read of
// the task or of a background job. The store is not trusted: moved aside
// (at open, or when the engine stops on the fault) and rebuilt from the
// changelog, and every input's effect is there exactly once.
func TestCorruptionFoundRunningRebuilt(t *testing.T) {
	env := newFaultEnv(t)
	var readErrs atomic.Int32
	topo := env.topology(func(tc TaskContext) (Task, error) {
		// The task reads an early key, whose value is in a table file.
		return &probeTask{echoTask: echoTask{st: tc.Stores["st"]}, readErrs: &readErrs, key: "k05"}, nil
	})
	cl := env.client(t)
	defer cl.Close()
	want := map[string]int{}
	var keys []string
	send := func(k string, size int) {
		produce(t, cl, k, make([]byte, size))
		want[k], keys = size, append(keys, k)
	}
	small := func(cfg *Config) { cfg.MemTableBytes, cfg.CacheBytes = 256<<10, 1 }
	r := env.start(t, topo, small)
	for i := range 40 {
		send(fmt.Sprintf("k%02d", i), 16<<10)
	}
	waitFor(t, cl, "k39")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(env.storeDir(), "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table files to damage")
	}
	for _, f := range tables {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 10; i < len(b)*9/10; i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	c := Config{Brokers: env.brokers, TopicPrefix: env.prefix, InstanceID: "a", StateDir: env.stateDir, Partitions: 1,
		CommitInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	small(&c)
	eng, err := NewEngine(c, topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	send("p1", 10)
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	seen := false
	for !seen && pctx.Err() == nil {
		select {
		case err := <-done:
			// Found running: the engine stopped on it.
			var se *StorageError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("Run stopped with %v, want a storage fault saying corrupt", err)
			}
			seen = true
			done <- err
		default:
		}
		short, scancel := context.WithTimeout(pctx, 200*time.Millisecond)
		cl.PollFetches(short).EachRecord(func(r *kgo.Record) { seen = seen || string(r.Key) == "p1" })
		scancel()
	}
	pcancel()
	cancel()
	if err := <-done; err != nil {
		t.Logf("run 2: %v", err)
	} else {
		t.Log("run 2: the damage was found while opening the store, which was rebuilt at once")
	}
	if !seen {
		t.Fatal("run 2 neither processed p1 nor stopped on the damage")
	}
	moved, _ := filepath.Glob(env.storeDir() + ".corrupt-*")
	if len(moved) != 1 {
		t.Fatalf("moved-aside stores: %v, want one", moved)
	}

	r = env.start(t, topo, small)
	send("p2", 10)
	waitFor(t, cl, "p2")
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, env.committedOutputs(t), keys)
	env.checkStore(t, want)
}

// TestHealthyLifecycle: Healthy says not running before Run and after it
// returns, nil in between.
func TestHealthyLifecycle(t *testing.T) {
	eng, err := NewEngine(Config{Brokers: newKfake(t), InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
		CommitInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, echoTopology())
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Healthy(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("before Run: %v, want ErrNotRunning", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for eng.Healthy() != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := eng.Healthy(); err != nil {
		t.Errorf("running: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := eng.Healthy(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("after Run: %v, want ErrNotRunning", err)
	}
	if g := testutil.ToFloat64(eng.m.healthy); g != 0 {
		t.Errorf("invroute_engine_healthy = %v after Run, want 0", g)
	}
}

// waitApplied waits (10 s at most) until partition p's stores have no
// committed transaction left to write to Pebble, asking on the engine's
// loop.
func waitApplied(t *testing.T, eng *Engine, p int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending := false
		err := eng.Query(context.Background(), p, func(stores map[string]*state.Store) error {
			for _, st := range stores {
				pending = pending || st.Pending()
			}
			return nil
		})
		if err == nil && !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d: a committed transaction still waits to be written to Pebble after 10 s (query: %v)", p, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

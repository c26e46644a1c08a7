package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestStandbyShare: members sorted form a ring; each partition's standbys
// are the members after its owner, never the owner, at most all others.
func TestStandbyShare(t *testing.T) {
	ring := []string{"c", "a", "b"}
	owner := map[int32]string{0: "a", 1: "b", 2: "c", 3: "a"}
	for _, tc := range []struct {
		me    string
		count int
		want  []int32
	}{
		{"a", 1, []int32{2}},
		{"b", 1, []int32{0, 3}},
		{"c", 1, []int32{1}},
		{"a", 2, []int32{1, 2}},
		{"b", 5, []int32{0, 2, 3}}, // capped at the other members
		{"a", 0, nil},
		{"z", 1, nil}, // not a member
	} {
		got := slices.Sorted(maps.Keys(standbyShare(ring, owner, tc.me, tc.count)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s with %d standbys: %v, want %v", tc.me, tc.count, got, tc.want)
		}
	}
	if got := standbyShare([]string{"a"}, map[int32]string{0: "a"}, "a", 1); len(got) != 0 {
		t.Errorf("a lone member is nobody's standby: %v", got)
	}
}

// TestStandby: two instances share four partitions; instance a stops and b
// takes its partitions over. Without standbys b replays every changelog
// record of a's partitions; with one standby b had tailed them already and
// replays (almost) nothing. Either way b's stores then hold every key.
func TestStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("two engines on kfake; skipped with -short")
	}
	for _, n := range []int{0, 1} {
		t.Run(fmt.Sprintf("standbys=%d", n), func(t *testing.T) {
			r := failover(t, n, 2000)
			t.Logf("standbys=%d: a's partitions hold %d changelog records; b replayed %d of them on takeover in %v (restoring %v)",
				n, r.moved, r.replayed, r.took.Round(time.Millisecond), r.restore.Round(time.Millisecond))
			switch {
			case n == 0 && r.replayed < r.moved:
				t.Errorf("without standbys b replayed %d records, want all %d", r.replayed, r.moved)
			case n > 0 && r.replayed > r.moved/10:
				t.Errorf("with a standby b replayed %d of %d records: it was not warm", r.replayed, r.moved)
			}
		})
	}
}

// TestStandbyLag: the lag gauge is the largest distance from a standby
// store's position to its changelog's end, leaves out stores that are not
// restored yet, and is 0 without standbys.
func TestStandbyLag(t *testing.T) {
	e := standbyEngine(t, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil, 10, 5)
	task := func(next int64) *standbyTask {
		n := new(atomic.Int64)
		n.Store(next)
		return &standbyTask{next: map[string]*atomic.Int64{"st-changelog": n}}
	}
	for _, c := range []struct {
		name  string
		tasks map[int32]*standbyTask
		want  float64
	}{
		{"none", nil, 0},
		{"p0 at 8 of 10, p1 restoring", map[int32]*standbyTask{0: task(8), 1: task(-1)}, 2},
		{"p0 at 4 of 10, p1 at 0 of 5", map[int32]*standbyTask{0: task(4), 1: task(0)}, 6},
		{"p0 caught up, p1 at 0 of 5", map[int32]*standbyTask{0: task(10), 1: task(0)}, 5},
		{"both caught up", map[int32]*standbyTask{0: task(10), 1: task(5)}, 0},
	} {
		e.sb.tasks = c.tasks
		if err := e.sb.measureLag(context.Background()); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := testutil.ToFloat64(e.sb.lag); got != c.want {
			t.Errorf("%s: lag %v, want %v", c.name, got, c.want)
		}
	}
}

// BenchmarkFailover prints how long a takeover of half the partitions
// (about 500,000 changelog records) takes, from a's graceful stop until b
// owns every partition, restored, and how much of it b spent restoring,
// with and without a standby, on kfake:
//
//	go test -run '^$' -bench Failover -benchtime 1x ./topology
func BenchmarkFailover(b *testing.B) {
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprintf("standbys=%d", n), func(b *testing.B) {
			for range b.N {
				r := failover(b, n, 1_000_000)
				b.ReportMetric(r.took.Seconds(), "s/takeover")
				b.ReportMetric(r.restore.Seconds(), "restore-s/takeover")
				b.ReportMetric(float64(r.replayed), "replayed/takeover")
			}
		})
	}
}

type failoverResult struct {
	moved, replayed int
	took            time.Duration // a stops -> b owns every partition, restored
	restore         time.Duration // of that, b restoring a's partitions
}

// restoreTimes records the took of every "partition assigned and restored"
// log line.
type restoreTimes struct {
	slog.Handler
	mu   *sync.Mutex
	took *[]time.Duration
}

func (h restoreTimes) Enabled(context.Context, slog.Level) bool { return true }
func (h restoreTimes) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h restoreTimes) WithGroup(string) slog.Handler            { return h }
func (h restoreTimes) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "partition assigned and restored" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "took" {
				h.mu.Lock()
				*h.took = append(*h.took, a.Value.Duration())
				h.mu.Unlock()
			}
			return true
		})
	}
	return nil
}

// failover runs the scenario of TestStandby with records keys.
func failover(tb testing.TB, standbys, records int) failoverResult {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	type inst struct {
		e    *Engine
		dir  string
		stop func() error
	}
	var logMu sync.Mutex
	var tooks []time.Duration
	start := func(id string) inst {
		dir := tb.TempDir()
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		if id == "b" {
			logger = slog.New(restoreTimes{mu: &logMu, took: &tooks})
		}
		e, err := NewEngine(Config{Brokers: brokers, InstanceID: id, StateDir: dir, Partitions: 4, Standbys: standbys,
			CommitInterval: 20 * time.Millisecond, Registerer: prometheus.NewRegistry(),
			Logger: logger}, echoTopology())
		if err != nil {
			tb.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		var once sync.Once
		var runErr error
		return inst{e: e, dir: dir, stop: func() error {
			once.Do(func() { cancel(); runErr = <-done })
			return runErr
		}}
	}
	settled := func(is ...inst) bool {
		var owned int32
		for _, i := range is {
			s := i.e.Status()
			if s.Assigning || s.Owned == 0 {
				return false
			}
			owned += s.Owned
		}
		return owned == 4
	}
	a := start("a")
	defer func() { _ = a.stop() }()
	waitUntil(tb, 30*time.Second, "a to own every partition", func() bool { return settled(a) })
	b := start("b")
	defer func() { _ = b.stop() }()
	waitUntil(tb, 60*time.Second, "a and b to share the partitions", func() bool { return settled(a, b) })

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	part := map[string]int32{}
	var batch []*kgo.Record
	for i := range records {
		batch = append(batch, &kgo.Record{Topic: "in", Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i))})
		if len(batch) == 1000 || i == records-1 {
			res := cl.ProduceSync(context.Background(), batch...)
			if err := res.FirstErr(); err != nil {
				tb.Fatal(err)
			}
			for _, r := range res {
				part[string(r.Record.Key)] = r.Record.Partition
			}
			batch = batch[:0]
		}
	}
	// Every record processed (echoed, read_committed).
	out, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for len(seen) < records {
		fs := out.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("%d of %d records echoed", len(seen), records)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)] = true })
	}
	// a's partitions, from the group's description.
	adm := kadm.NewClient(cl)
	gs, err := adm.DescribeGroups(context.Background(), "g")
	if err != nil {
		tb.Fatal(err)
	}
	aParts := map[int32]bool{}
	for _, m := range gs["g"].Members {
		if me := a.e.sb.me.Load(); me != nil && m.MemberID == *me {
			if ca, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range ca.Topics {
					for _, p := range t.Partitions {
						aParts[p] = true
					}
				}
			}
		}
	}
	if len(aParts) == 0 {
		tb.Fatal("a owns no partition in the group's description")
	}
	moved := 0
	for _, p := range part {
		if aParts[p] {
			moved++
		}
	}
	if standbys > 0 {
		// b's standbys have the changelogs of a's partitions: restored at
		// their start, tailed since.
		waitUntil(tb, 2*time.Minute, "b's standbys to catch up", func() bool {
			return int(b.e.Status().Restored+testutil.ToFloat64(b.e.sb.records)) >= moved
		})
		// And say so: past the last commit marker too.
		waitUntil(tb, 30*time.Second, "b's standby lag to reach 0", func() bool {
			return testutil.ToFloat64(b.e.sb.lag) == 0 && testutil.ToFloat64(b.e.sb.partitions) > 0
		})
	}
	before := b.e.Status().Restored
	logMu.Lock()
	tooks = tooks[:0]
	logMu.Unlock()
	t0 := time.Now()
	if err := a.stop(); err != nil {
		tb.Fatal(err)
	}
	waitUntil(tb, 2*time.Minute, "b to own every partition", func() bool { return settled(b) })
	r := failoverResult{moved: moved, replayed: int(b.e.Status().Restored - before), took: time.Since(t0)}
	logMu.Lock()
	for _, d := range tooks {
		r.restore += d
	}
	logMu.Unlock()
	if err := b.stop(); err != nil {
		tb.Fatal(err)
	}
	// b's stores hold every key.
	missing := 0
	for p := range int32(4) {
		st, err := state.Open(filepath.Join(b.dir, "g", "st-"+strconv.Itoa(int(p))), &state.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		for k, kp := range part {
			if kp != p {
				continue
			}
			if _, ok, err := st.Get([]byte(k)); err != nil || !ok {
				missing++
			}
		}
		if err := st.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	if missing > 0 {
		tb.Fatalf("b's stores lack %d of %d keys after the takeover", missing, records)
	}
	return r
}

// TestStandbyFaultIsNotTheEngines: a standby's store that fails (found
// while tailing, opening or restoring) ends that standby only; the same
// failure in a store the engine owns is the engine's storage fault.
func TestStandbyFaultIsNotTheEngines(t *testing.T) {
	e, err := NewEngine(Config{Brokers: []string{"127.0.0.1:1"}, InstanceID: "a", StateDir: t.TempDir(),
		Logger: discardLogger()}, echoTopology())
	if err != nil {
		t.Fatal(err)
	}
	fault := errors.New("no space left on device")
	e.storeOptions("st", 3, true).OnFailure(fault)
	if err := e.openFault(true, &StorageError{Store: "st", Partition: 3, Phase: "restoring", Err: fault}); err == nil {
		t.Error("openFault of a standby returned nil: the standby would go on")
	}
	if f := e.fatalErr(); f != nil {
		t.Fatalf("a standby's failed store became the engine's fault: %v", f)
	}
	e.storeOptions("st", 3, false).OnFailure(fault)
	var se *StorageError
	if f := e.fatalErr(); !errors.As(f, &se) || se.Partition != 3 {
		t.Fatalf("an owned store's failure is not the engine's fault: %v", f)
	}
}

// standbyEngine makes an engine (not run) with one standby per partition,
// cfg's other settings, and an admin client; its changelog has one
// partition per count, holding that many records (keys 0, 1, ..., value
// value).
func standbyEngine(t *testing.T, cfg Config, value []byte, counts ...int) *Engine {
	t.Helper()
	brokers := newKfake(t)
	cfg.Brokers, cfg.InstanceID, cfg.StateDir, cfg.Partitions, cfg.Standbys = brokers, "a", t.TempDir(), int32(len(counts)), 1
	e, err := NewEngine(cfg, echoTopology())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.adm = kadm.NewClient(cl)
	if _, err := e.adm.CreateTopic(context.Background(), int32(len(counts)), 1, nil, "st-changelog"); err != nil {
		t.Fatal(err)
	}
	for p, n := range counts {
		for i := range n {
			r := &kgo.Record{Topic: "st-changelog", Partition: int32(p), Key: []byte(strconv.Itoa(i)), Value: value}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return e
}

package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readCommitted returns the keys of topic, read_committed from the start,
// polling for d.
func readCommitted(t *testing.T, brokers []string, topic string, d time.Duration) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var keys []string
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
	}
	return keys
}

// countKey counts k in keys.
func countKey(keys []string, k string) int {
	n := 0
	for _, x := range keys {
		if x == k {
			n++
		}
	}
	return n
}

// storeHas says which of keys the store "st" of partition 0 holds.
func storeHas(t *testing.T, eng *Engine, keys ...string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	if err := eng.Query(context.Background(), 0, func(s map[string]*state.Store) error {
		for _, k := range keys {
			_, ok, err := s["st"].Get([]byte(k))
			if err != nil {
				return err
			}
			got[k] = ok
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// The broker refuses a transaction's changelog batch for good
// (INVALID_RECORD fails the records, not the producer id) while the end
// of the transaction flushes it. The transaction must abort, not commit
// without its changelog; the retry then commits output, changelog and
// store together.
func TestRefusedOutputAborts(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	var refused atomic.Int64
	var changelogID atomic.Pointer[[16]byte]
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		id := changelogID.Load()
		if r.TransactionID == nil || id == nil || refused.Load() > 0 {
			return nil, nil, false
		}
		hit := false
		for _, rt := range r.Topics {
			hit = hit || rt.Topic == "st-changelog" || rt.TopicID == *id
		}
		if !hit {
			return nil, nil, false
		}
		refused.Add(1)
		return failProduce(r, kerr.InvalidRecord.Code), nil, true
	})
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology())
	defer stop()
	cl := outClient(t, brokers)
	defer cl.Close()
	waitOwned(eng, 1)
	time.Sleep(time.Second) // the task's first writes (global positions) committed: the next changelog batch is k1's
	tds, err := kadm.NewClient(cl).ListTopics(context.Background(), "st-changelog")
	if err != nil || tds["st-changelog"].Err != nil {
		t.Fatalf("changelog topic: %v %v", err, tds["st-changelog"].Err)
	}
	id := [16]byte(tds["st-changelog"].ID)
	changelogID.Store(&id)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k1"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k1")
	if refused.Load() != 1 {
		t.Fatalf("%d changelog batches refused, want 1", refused.Load())
	}
	if n := testutil.ToFloat64(eng.m.aborted); n < 1 {
		t.Errorf("aborted transactions: %v, want at least 1 (the refused changelog's)", n)
	}
	if n := countKey(readCommitted(t, brokers, "st-changelog", 2*time.Second), "k1"); n != 1 {
		t.Errorf("changelog holds k1 %d times (read_committed), want 1: the output committed without its changelog", n)
	}
	if got := storeHas(t, eng, "k1"); !got["k1"] {
		t.Errorf("k1 in the store: %v", got["k1"])
	}
	if outs := countKey(readCommitted(t, brokers, "out", 2*time.Second), "k1"); outs != 1 {
		t.Errorf("output k1 committed %d times, want 1", outs)
	}
}

// failTask emits the input, then fails on "fail" after its produce request
// went out: the transaction ends as an abort with a record in flight.
type failTask struct{ echoTask }

func (t *failTask) Process(r *Record, out Emitter) error {
	out.Emit("out", r.Key, r.Value)
	if string(r.Value) == "fail" {
		time.Sleep(300 * time.Millisecond)
		return errors.New("boom")
	}
	return nil
}

// A transaction ends as an abort while the broker never answers its
// produce request: End times out, and Run must still return (it waited
// for the promise of a record franz-go retries for ever).
func TestAbortWithRecordsInFlightEnds(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	release := make(chan struct{})
	var held atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if r := req.(*kmsg.ProduceRequest); r.TransactionID != nil {
			held.Add(1)
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer close(release)
	topo := echoTopology()
	topo.NewTask = func(tc TaskContext) (Task, error) { return &failTask{echoTask{st: tc.Stores["st"]}}, nil }
	_, stop := runEngine(t, brokers, t.TempDir(), topo, func(c *Config) { c.SessionTimeout = 6 * time.Second })
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("fail")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for held.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if held.Load() == 0 {
		t.Fatal("no transactional produce request reached the broker")
	}
	time.Sleep(time.Second)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- stop() }()
	select {
	case err := <-done:
		t.Logf("Run returned %v after the cancel: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(30 * time.Second):
		t.Fatalf("Run still running 30 s after the cancel (End's timeout is 6 s): it waits for records the client retries for ever")
	}
}

// Partitions added to one input of a topology with two: the range assignor
// gives this member partition 1 of one input and not of the other. The
// engine must stop with the co-partitioning error, not re-join for ever.
func TestNotCoPartitionedStops(t *testing.T) {
	brokers := newKfake(t)
	topo := echoTopology()
	topo.Inputs = append(topo.Inputs, Input{Topic: "in2"})
	eng, err := NewEngine(Config{Brokers: brokers, InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
		CommitInterval: 20 * time.Millisecond, Logger: discardLogger(),
		ClientOpts: []kgo.Opt{kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100 * time.Millisecond)}}, topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k")
	if _, err := kadm.NewClient(cl).CreatePartitions(context.Background(), 1, "in2"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errNotCoPartitioned) {
			t.Fatalf("Run = %v, want the co-partitioning error", err)
		}
		t.Logf("Run stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatalf("the engine still runs 60 s after in2 got a partition in has not (re-initialisations: %v)",
			testutil.ToFloat64(eng.m.reinits))
	}
}

// An input under MaxRecordBytes whose output is too large to produce (the
// echo of 1,010,000 bytes, over the producer's batch limit of 1000012):
// producing it would fail at every retry and block the partition. The
// transaction aborts once, the record goes to the dead-letter topic
// unprocessed, and the record behind it is processed.
func TestOutputTooLargeDeadLetters(t *testing.T) {
	brokers := newKfake(t)
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology())
	defer stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.ConsumeTopics("dlq"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := outClient(t, brokers)
	defer out.Close()
	if err := out.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("first"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "first")
	big := make([]byte, 1_010_000)
	for _, r := range []*kgo.Record{{Topic: "in", Key: []byte("big"), Value: big}, {Topic: "in", Key: []byte("after"), Value: []byte("v")}} {
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, out, "after")
	dl := waitFor(t, cl, "big")
	headers := map[string]string{}
	for _, h := range dl.Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers["invroute.stage"] != "output" || len(dl.Value) != len(big) {
		t.Errorf("dead letter: stage %q, %d bytes; want stage output and the original %d bytes (error %q)",
			headers["invroute.stage"], len(dl.Value), len(big), headers["invroute.error"])
	}
	if n := testutil.ToFloat64(eng.m.aborted); n != 1 {
		t.Errorf("%v transactions aborted, want 1", n)
	}
	if got := storeHas(t, eng, "big"); got["big"] {
		t.Errorf("the dead-lettered record is in the store")
	}
}

// franz-go ends a commit whose EndTxn got UNKNOWN_SERVER_ERROR as an abort
// and reports not committed, though "the broker may or may not have
// completed it". The engine must take the outcome as unknown: re-initialise
// and rebuild from what Kafka committed, not rewind and go on as after an
// abort. Here the broker did not commit: the record is processed again and
// its output committed once.
func TestUnconfirmedCommitReinitialises(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	// A logger of the caller's (Config.ClientOpts) still gets the session
	// client's logs, the engine's watch notwithstanding.
	var logs lockedBuffer
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology(), func(c *Config) {
		c.ClientOpts = append(c.ClientOpts, kgo.WithLogger(kgo.BasicLogger(&logs, kgo.LogLevelInfo, nil)))
	})
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k0"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k0")
	refused := refuseNextCommit(c, kerr.UnknownServerError.Code)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k1"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k1")
	if refused.Load() != 1 {
		t.Fatalf("%d commits answered UNKNOWN_SERVER_ERROR, want 1", refused.Load())
	}
	if n := testutil.ToFloat64(eng.m.reinits); n < 1 {
		t.Errorf("re-initialisations: %v, want at least 1 (an unconfirmed commit is an unknown outcome)", n)
	}
	if !strings.Contains(logs.String(), "the commit is unconfirmed") {
		t.Errorf("the ClientOpts logger did not get the session client's message")
	}
	if n := countKey(readCommitted(t, brokers, "out", 2*time.Second), "k1"); n != 1 {
		t.Errorf("output k1 committed %d times, want 1", n)
	}
}

// A rebalance while records flow: a transaction open when partitions are
// revoked is aborted by franz-go (End reports not committed), which is an
// abort, not an unknown outcome. No instance may re-initialise: a
// re-initialisation leaves the group, which makes the group rebalance again.
func TestRebalanceDoesNotReinitialise(t *testing.T) {
	brokers := newKfake(t)
	four := func(id string) func(*Config) {
		return func(c *Config) { c.Partitions, c.InstanceID = 4, id }
	}
	a, stopA := runEngine(t, brokers, t.TempDir(), echoTopology(), four("a"))
	defer stopA()
	cl := outClient(t, brokers)
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; ctx.Err() == nil; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte("v")}, nil)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// a works on all four partitions before b joins ...
	waitUntil(t, 30*time.Second, "a owns the four partitions and commits", func() bool {
		return a.owned.Load() == 4 && testutil.ToFloat64(a.m.committed) >= 3
	})
	b, stopB := runEngine(t, brokers, t.TempDir(), echoTopology(), four("b"))
	defer stopB()
	// ... and both commit after the partitions are shared, then records
	// flow for 3 s more: a re-initialisation would leave the group and
	// start another rebalance.
	var bases [2]float64
	waitUntil(t, time.Minute, "the partitions shared by both instances", func() bool {
		if oa, ob := a.owned.Load(), b.owned.Load(); oa+ob != 4 || oa == 0 || ob == 0 {
			bases = [2]float64{testutil.ToFloat64(a.m.committed), testutil.ToFloat64(b.m.committed)}
			return false
		}
		return testutil.ToFloat64(a.m.committed) > bases[0] && testutil.ToFloat64(b.m.committed) > bases[1]
	})
	time.Sleep(3 * time.Second)
	cancel()
	<-fed
	ra, rb := testutil.ToFloat64(a.m.reinits), testutil.ToFloat64(b.m.reinits)
	oa, ob := a.owned.Load(), b.owned.Load()
	t.Logf("re-initialisations a=%v b=%v, partitions owned a=%d b=%d, commits a=%v b=%v", ra, rb, oa, ob,
		testutil.ToFloat64(a.m.committed), testutil.ToFloat64(b.m.committed))
	if ra != 0 || rb != 0 {
		t.Errorf("re-initialisations a=%v b=%v, want none", ra, rb)
	}
	if oa+ob != 4 || oa == 0 || ob == 0 {
		t.Errorf("partitions owned a=%d b=%d, want 4 shared by both", oa, ob)
	}
}

// lockedBuffer is a bytes.Buffer for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

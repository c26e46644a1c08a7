package topology

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGlobalRecordsKeptOnFetchError: one global table's partition
// answers fetches with a non-retriable error while another global table
// has a new record in the same poll: that record is applied. Found by
// review: the reader returned on the error before applying any record of
// the poll, while the client's position had moved past them, so the other
// table never got the record.
func TestGlobalRecordsKeptOnFetchError(t *testing.T) {
	c, eng, cl, applied := twoTables(t)
	// chans[0] answers fetches with UNKNOWN_SERVER_ERROR for a while.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: "chans", Partitions: []int32{0},
		Err: kerr.UnknownServerError, Count: -1})
	time.Sleep(300 * time.Millisecond)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "nodes", Key: []byte("n1"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	h.Remove()
	// Later records of nodes still arrive, so the reader is alive.
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "nodes", Key: []byte("n2"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "n2 applied", func() bool { return applied.has("n2") })
	if !applied.has("n1") {
		t.Errorf("nodes record n1 was never applied to the global table (lost: fetched with chans[0]'s error); positions now %v", eng.globals.positions())
	}
}

// appliedKeys records the keys a global table's Apply was given.
type appliedKeys struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (a *appliedKeys) apply(k, _ []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[string(k)] = true
	return nil
}

func (a *appliedKeys) has(k string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keys[k]
}

// twoTables runs an engine on one partition with two global tables, nodes
// and chans, whose records it notes in applied, until the test ends.
func twoTables(t *testing.T) (c *kfake.Cluster, eng *Engine, cl *kgo.Client, applied *appliedKeys) {
	t.Helper()
	c = newCluster(t)
	brokers := c.ListenAddrs()
	applied = &appliedKeys{keys: map[string]bool{}}
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology(
		Global{Topic: "nodes", Apply: applied.apply}, Global{Topic: "chans", Apply: applied.apply}))
	t.Cleanup(func() { _ = stop() })
	if !waitOwned(eng, 1) {
		t.Fatal("not owned")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, eng, cl, applied
}

// gateTask: its first Process waits (once) until the test has changed a
// global table; it records every GlobalChanged key.
type gateTask struct {
	echoTask
	first   *sync.Once
	reached chan struct{}
	resume  chan struct{}
	mu      *sync.Mutex
	told    *[]string
}

func (t *gateTask) Process(r *Record, out Emitter) error {
	t.first.Do(func() { close(t.reached); <-t.resume })
	return t.echoTask.Process(r, out)
}

func (t *gateTask) GlobalChanged(_ Topic, key []byte, _ int64, _ Emitter) error {
	t.mu.Lock()
	*t.told = append(*t.told, string(key))
	t.mu.Unlock()
	return nil
}

// TestFirstTransactionGetsGlobalChange: a partition whose store is
// empty processes its first records (reading the tables as they are) and
// a global table changes before the transaction's flush: the change is
// delivered. Found by review: the flush took the reader's positions as the
// task's without delivering it, so the output computed from the old value
// was never corrected.
func TestFirstTransactionGetsGlobalChange(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := c.CreateTopic("in", 1, nil); err != nil {
		t.Fatal(err)
	}
	// Input is waiting before the engine starts (a fresh deployment).
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var told []string
	reached, resume := make(chan struct{}), make(chan struct{})
	once := &sync.Once{}
	topo := echoTopology(Global{Topic: "nodes", Apply: func(k, v []byte) error { return nil }})
	topo.NewTask = func(tc TaskContext) (Task, error) {
		return &gateTask{echoTask: echoTask{st: tc.Stores["st"]}, first: once, reached: reached, resume: resume, mu: &mu, told: &told}, nil
	}
	eng, stop := runEngine(t, brokers, t.TempDir(), topo)
	defer func() { _ = stop() }()
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the first record was not processed")
	}
	// While the first record is being processed (it read node n1 as it
	// was), n1 changes.
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "nodes", Key: []byte("n1"), Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the reader to apply n1", func() bool { return eng.globals.positions()["nodes"][0] >= 1 })
	close(resume)
	// Give the engine several transactions.
	time.Sleep(time.Second)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k2"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	for _, k := range told {
		if k == "n1" {
			return
		}
	}
	t.Errorf("the task was never told that n1 changed after it processed k with n1's old value (told %v)", told)
}

// TestGlobalRecreatedTopicStopsNoOther: one global topic is deleted
// and recreated (say, to fix its cleanup policy) while the engine runs:
// its fetches fail from then on, and the other global tables still get
// every record. Found by review: none of them got any.
func TestGlobalRecreatedTopicStopsNoOther(t *testing.T) {
	c, _, cl, applied := twoTables(t)
	if err := c.DeleteTopic("chans"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic("chans", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	for i := range 20 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "nodes", Key: []byte("n" + string(rune('a'+i))), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	applied.mu.Lock()
	defer applied.mu.Unlock()
	if len(applied.keys) < 20 {
		t.Errorf("%d of 20 nodes records applied after chans was recreated: %v", len(applied.keys), applied.keys)
	}
}

// TestGlobalRepublishIsNoChange: a global record with the value its key
// already has (a job that republishes the node table) is no change: the
// tasks are not told, so a long re-emit it would restart goes on. A new
// value is a change, and so is the old one again after it. Found by review:
// a table republished more often than a node's re-emit takes kept
// restarting it, and the SKUs late in it were never re-emitted.
func TestGlobalRepublishIsNoChange(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	runOwned(t, brokers, echoTopology(Global{Topic: "glob", Apply: func(k, v []byte) error { return nil }}))
	cl := outClient(t, brokers)
	defer cl.Close()
	produce := func(topic, key, value string) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce("in", "k", "v") // the partition has state: global changes are delivered to it
	waitFor(t, cl, "k")
	for i, v := range []string{"x", "x", "x", "y", "x"} {
		produce("glob", "n1", v)
		marker := fmt.Sprint("m", i)
		produce("glob", marker, "once") // a change the task is always told of, after n1's
		waitFor(t, cl, marker)
	}
	// Read everything back: n1's changes are told before the markers
	// that follow them.
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var seq []string
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if k := string(r.Key); k == "n1" || strings.HasPrefix(k, "m") {
				seq = append(seq, k)
			}
		})
	}
	want := []string{"n1", "m0", "m1", "m2", "n1", "m3", "n1", "m4"}
	if !slices.Equal(seq, want) {
		t.Errorf("changes told: %v, want %v (x, x again, x again, y, x)", seq, want)
	}
}

// TestGlobalAllChangedTime: a task behind the change history is told that
// every key of the table may have changed, at the newest record time of
// the table, not at 0. Found by review: the re-emit that follows stamped
// every ATS update with updated_at 1970.
func TestGlobalAllChangedTime(t *testing.T) {
	e := &Engine{topo: &Topology{Globals: []Global{{Topic: "nodes"}}}, cfg: Config{TopicPrefix: "p."}}
	g := newGlobalReader(e)
	g.record(&kgo.Record{Topic: "p.nodes", Partition: 0, Offset: 0, Key: []byte("n1"), Timestamp: time.UnixMilli(5000)})
	g.record(&kgo.Record{Topic: "p.nodes", Partition: 0, Offset: 1, Key: []byte("n2"), Timestamp: time.UnixMilli(7000)})
	g.histStart["p.nodes"][0] = 1 // the history lost offset 0
	_, all := g.changes(Positions{"p.nodes": {0: 0}}, g.positions())
	if len(all) != 1 || all[0].topic != "nodes" || all[0].ts != 7000 {
		t.Errorf("all changed: %+v, want nodes at 7000", all)
	}
}

package topology

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
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
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	topo := &Topology{
		Group:      "g",
		Inputs:     []Input{{Topic: "in"}},
		Stores:     []Store{{Name: "st", Changelog: "st-changelog"}},
		Outputs:    []Output{{Topic: "out", CoPartitioned: true}},
		Globals:    []Global{{Topic: "glob", Apply: func(k, v []byte) error { return nil }}},
		DeadLetter: "dlq",
		NewTask:    func(tc TaskContext) (Task, error) { return &echoTask{st: tc.Stores["st"]}, nil },
	}
	eng, err := NewEngine(Config{Brokers: brokers, InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
		CommitInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Wait until the engine owns its partition (the output topic exists and
	// the group is stable), then arm: the next commit is refused as abortable.
	deadline := time.Now().Add(30 * time.Second)
	for eng.owned.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The partition has state (global changes are delivered to partitions
	// whose store holds data; an empty one has no outputs to correct).
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k")
	var aborted atomic.Int32
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.EndTxnRequest)
		if !r.Commit {
			return nil, nil, false
		}
		aborted.Add(1)
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.TransactionAbortable.Code
		return resp, nil, true
	})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "glob", Key: []byte("node-1"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "node-1")
	if aborted.Load() != 1 {
		t.Errorf("%d commits were refused, want exactly 1", aborted.Load())
	}
}

// waitFor polls cl until a record with key arrives (30 s at most).
func waitFor(t *testing.T, cl *kgo.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no output record with key %q", key)
		}
		var got bool
		fs.EachRecord(func(r *kgo.Record) { got = got || string(r.Key) == key })
		if got {
			return
		}
	}
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

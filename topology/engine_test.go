package topology

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// echoTask emits one "out" record per global change it is told about.
type echoTask struct{ seen []string }

func (t *echoTask) Process(r *Record, out Emitter) error { return nil }
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
		NewTask:    func(TaskContext) (Task, error) { return &echoTask{}, nil },
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
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	for {
		fs := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("the change never reached the output (commits refused: %d)", aborted.Load())
		}
		var got bool
		fs.EachRecord(func(r *kgo.Record) { got = got || string(r.Key) == "node-1" })
		if got {
			break
		}
	}
	if aborted.Load() != 1 {
		t.Errorf("%d commits were refused, want exactly 1", aborted.Load())
	}
}

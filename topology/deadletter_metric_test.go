package topology

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// refuseTask refuses every record whose value is "bad" at the validate
// stage, and echoes the others.
type refuseTask struct{ echoTask }

func (t *refuseTask) Process(r *Record, out Emitter) error {
	if string(r.Value) == "bad" {
		return BadInput("validate", errors.New("bad value"))
	}
	return t.echoTask.Process(r, out)
}

// TestDeadLettersByStage: invroute_dead_letters_total counts dead letters
// by the stage that refused them.
func TestDeadLettersByStage(t *testing.T) {
	brokers := newKfake(t)
	topo := echoTopology()
	topo.NewTask = func(tc TaskContext) (Task, error) { return &refuseTask{echoTask{st: tc.Stores["st"]}}, nil }
	eng, stop := runEngine(t, brokers, t.TempDir(), topo)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	cl := outClient(t, brokers)
	defer cl.Close()
	for _, v := range []string{"bad", "bad", "good"} {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, cl, "good")
	awaitCount(eng.m.deadLetters.WithLabelValues("validate"), 2)
	if got := testutil.ToFloat64(eng.m.deadLetters.WithLabelValues("validate")); got != 2 {
		t.Errorf("dead letters at stage validate: %v, want 2", got)
	}
	if got := testutil.ToFloat64(eng.m.deadLetters.WithLabelValues("decode")); got != 0 {
		t.Errorf("dead letters at stage decode: %v, want 0", got)
	}
}

// TestStopWhileStarting: a stop (ctx cancelled) while the engine is still
// creating topics or loading tables is a graceful stop: Run returns nil, so
// `invroute run` exits 0 (TestChaos saw exit 1 on a SIGTERM soon after a
// restart).
func TestStopWhileStarting(t *testing.T) {
	c := newCluster(t)
	for _, after := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
		eng, err := NewEngine(Config{Brokers: c.ListenAddrs(), InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
			Logger: discardLogger()}, echoTopology(Global{Topic: "glob", Apply: func(k, v []byte) error { return nil }}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(after, cancel)
		if err := eng.Run(ctx); err != nil {
			t.Errorf("stopped %v after the start: Run returned %v, want nil", after, err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestUnwritableOutputDoesNotHang: the broker refuses every write of the
// engine's transactional producer (a partition without enough replicas,
// say) for longer than the transaction timeout. The flush gives up, the
// session is re-initialised, and a stop still stops the engine: the
// records that could not be written are dropped, not waited for for ever.
func TestUnwritableOutputDoesNotHang(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	var refused atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ProduceRequest)
		if r.TransactionID == nil || *r.TransactionID != "g-a" {
			return nil, nil, false
		}
		refused.Add(1)
		return failProduce(r, kerr.NotEnoughReplicas.Code), nil, true
	})
	eng, err := NewEngine(Config{Brokers: brokers, InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
		TxnTimeout: 2 * time.Second, CommitInterval: 20 * time.Millisecond, Logger: discardLogger()}, echoTopology())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for refused.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if refused.Load() == 0 {
		t.Fatal("the engine never tried to write")
	}
	time.Sleep(5 * time.Second) // past the transaction timeout: the flush gave up
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30 s after the stop: it waits for records that can never be written")
	}
}

// TestLargeKeyDeadLettered: the size bound counts the key with the value:
// a record whose key alone exceeds MaxRecordBytes is dead-lettered (stage
// size), not processed (a review's mutation counting the value only
// passed every test, all of whose large records had large values).
func TestLargeKeyDeadLettered(t *testing.T) {
	brokers := newKfake(t)
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology(), func(c *Config) { c.MaxRecordBytes = 1 << 10 })
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	cl := outClient(t, brokers)
	defer cl.Close()
	for _, r := range []*kgo.Record{
		{Topic: "in", Key: bytes.Repeat([]byte("k"), 2<<10), Value: []byte("v")},
		{Topic: "in", Key: []byte("good"), Value: []byte("v")},
	} {
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, cl, "good")
	awaitCount(eng.m.deadLetters.WithLabelValues("size"), 1)
	if got := testutil.ToFloat64(eng.m.deadLetters.WithLabelValues("size")); got != 1 {
		t.Errorf("dead letters at stage size: %v, want 1 (the record of a 2 KiB key)", got)
	}
}

// awaitCount waits up to 10 s for c to reach n (the caller checks it).
func awaitCount(c prometheus.Collector, n float64) {
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(c) < n && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

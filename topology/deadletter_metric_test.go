package topology

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
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
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(eng.m.deadLetters.WithLabelValues("validate")) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
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
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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

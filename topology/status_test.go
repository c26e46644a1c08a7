package topology

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// statusAt records the engine's Status at every log line of the messages
// given, from the engine's own goroutine: what a readiness probe would
// have seen at that moment.
type statusAt struct {
	eng  chan *Engine // the engine, once NewEngine returned
	e    *Engine
	msgs map[string]bool
	mu   sync.Mutex
	seen map[string][]Status
}

func (h *statusAt) Enabled(context.Context, slog.Level) bool { return true }
func (h *statusAt) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *statusAt) WithGroup(string) slog.Handler            { return h }
func (h *statusAt) Handle(_ context.Context, r slog.Record) error {
	if !h.msgs[r.Message] {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.e == nil {
		h.e = <-h.eng
	}
	h.seen[r.Message] = append(h.seen[r.Message], h.e.Status())
	return nil
}

// TestStatusWhileRestoring: while the loop restores a partition it was
// assigned, Status says Assigning (so /readyz does not say ready with the
// partitions owned before, whose count may equal the new assignment's);
// once restored, it owns it and assigns nothing; once stopped, it owns
// nothing.
func TestStatusWhileRestoring(t *testing.T) {
	brokers := newKfake(t)
	h := &statusAt{eng: make(chan *Engine, 1), msgs: map[string]bool{"restored store": true, "partition assigned and restored": true}, seen: map[string][]Status{}}
	// a first run writes the changelog, so that the second restores it
	dir := t.TempDir()
	eng, stop := runEngine(t, brokers, dir, echoTopology())
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := eng.Status(); st.Owned != 0 {
		t.Errorf("stopped engine: owns %d partitions, want 0", st.Owned)
	}
	eng, stop = runEngine(t, brokers, t.TempDir(), echoTopology(), func(c *Config) { c.Logger = slog.New(h) })
	h.eng <- eng
	defer stop()
	for deadline := time.Now().Add(30 * time.Second); eng.Status().Owned != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not restored: %+v", eng.Status())
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for msg := range h.msgs {
		if len(h.seen[msg]) == 0 {
			t.Fatalf("no %q line", msg)
		}
		for _, st := range h.seen[msg] {
			if !st.Assigning || st.Owned != 0 {
				t.Errorf("at %q: %+v, want assigning, owning none yet", msg, st)
			}
		}
	}
	if st := eng.Status(); st.Assigning {
		t.Errorf("restored: %+v, want not assigning", st)
	}
}

package topology

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProducerLinger: Config.ProducerLinger reaches the transactional
// producer: 1 ms by default, as set, and no lingering when negative.
func TestProducerLinger(t *testing.T) {
	for _, c := range []struct{ set, want time.Duration }{
		{0, time.Millisecond},
		{7 * time.Millisecond, 7 * time.Millisecond},
		{-1, 0},
	} {
		cfg := Config{Brokers: []string{"127.0.0.1:1"}, InstanceID: "a", ProducerLinger: c.set}
		cfg.EnsureDefaults()
		e := &Engine{cfg: cfg, topo: &Topology{Group: "g"}, inputs: []string{"in"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		cl, err := kgo.NewClient(e.sessionOpts()...)
		if err != nil {
			t.Fatal(err)
		}
		got := cl.OptValue(kgo.ProducerLinger)
		cl.Close()
		if got != c.want {
			t.Errorf("ProducerLinger %v: the session lingers %v, want %v", c.set, got, c.want)
		}
	}
}

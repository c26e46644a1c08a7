package inventory

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsNewProcessor: a new processor for a partition (after a
// rebalance) starts its counts at 0, even when they are already higher
// than the old one's last: the counters add both. Found by review: only a
// count lower than the last one reported marked a new processor, so the
// first counts of a new one above the old one's were taken as a
// continuation and under-counted.
func TestMetricsNewProcessor(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	old, next := New(Config{}), New(Config{})
	old.Stats.Applied, old.Stats.Emitted = 5, 5
	m.Observe(3, old.Stats)
	next.Stats.Applied, next.Stats.Emitted = 100, 100
	m.Observe(3, next.Stats)
	next.Stats.Applied = 110
	m.Observe(3, next.Stats)
	if got := testutil.ToFloat64(m.applied.WithLabelValues("3")); got != 115 {
		t.Errorf("movements applied: %v, want 115 (5 of the old processor, 110 of the new)", got)
	}
}

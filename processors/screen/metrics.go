package screen

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics turns screen Stats into Prometheus counters.
type Metrics struct {
	mu     sync.Mutex
	last   map[int32]Stats
	events *prometheus.CounterVec
}

// NewMetrics registers the screen's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{last: map[int32]Stats{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_screen_events_total",
			Help: "Customer screen events: checks answered (checked), orders held (held), idle customers forgotten (forgotten)."},
			[]string{"partition", "event"})}
	reg.MustRegister(m.events)
	return m
}

// Observe adds what partition p's screen counted since the last call.
func (m *Metrics) Observe(p int32, s Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.last[p]
	if s.Gen != prev.Gen || s.Checks < prev.Checks || s.Held < prev.Held || s.Forgotten < prev.Forgotten {
		prev = Stats{} // a new task for p after a rebalance
	}
	m.last[p] = s
	l := strconv.Itoa(int(p))
	m.events.WithLabelValues(l, "checked").Add(float64(s.Checks - prev.Checks))
	m.events.WithLabelValues(l, "held").Add(float64(s.Held - prev.Held))
	m.events.WithLabelValues(l, "forgotten").Add(float64(s.Forgotten - prev.Forgotten))
}

package inventory

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics turns processor Stats into Prometheus counters.
type Metrics struct {
	mu         sync.Mutex
	last       map[int32]Stats
	applied    *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	negative   *prometheus.CounterVec
	emitted    *prometheus.CounterVec
	commands   *prometheus.CounterVec
}

// NewMetrics registers the inventory metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_inventory_" + name, Help: help}, []string{"partition"})
	}
	m := &Metrics{
		last:       map[int32]Stats{},
		applied:    vec("movements_applied_total", "Stock movements applied (including transactions later aborted)."),
		duplicates: vec("movements_duplicate_total", "Stock movements ignored because their movement_id was already applied."),
		negative:   vec("negative_on_hand_total", "Movements that left a node's on_hand below zero (availability clamped at 0)."),
		emitted:    vec("ats_updates_total", "ATS updates emitted."),
	}
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_inventory_reservation_commands_total",
		Help: "Reservation commands by outcome: reserved, refused (not enough stock), released (RELEASE and DECREASE)."}, []string{"partition", "outcome"})
	reg.MustRegister(m.applied, m.duplicates, m.negative, m.emitted, m.commands)
	return m
}

// Observe adds what partition p's processor counted since the last call.
func (m *Metrics) Observe(p int32, s Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.last[p]
	if s.Gen != prev.Gen || s.Applied < prev.Applied || s.Duplicates < prev.Duplicates || s.Emitted < prev.Emitted ||
		s.Reserved < prev.Reserved || s.Refused < prev.Refused || s.Released < prev.Released || s.Negative < prev.Negative {
		// a new processor for p after a rebalance
		prev = Stats{}
	}
	m.last[p] = s
	l := strconv.Itoa(int(p))
	m.applied.WithLabelValues(l).Add(float64(s.Applied - prev.Applied))
	m.duplicates.WithLabelValues(l).Add(float64(s.Duplicates - prev.Duplicates))
	m.negative.WithLabelValues(l).Add(float64(s.Negative - prev.Negative))
	m.emitted.WithLabelValues(l).Add(float64(s.Emitted - prev.Emitted))
	m.commands.WithLabelValues(l, "reserved").Add(float64(s.Reserved - prev.Reserved))
	m.commands.WithLabelValues(l, "refused").Add(float64(s.Refused - prev.Refused))
	m.commands.WithLabelValues(l, "released").Add(float64(s.Released - prev.Released))
}

package router

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics turns router Stats into Prometheus counters.
type Metrics struct {
	mu        sync.Mutex
	last      map[int32]Stats
	orders    *prometheus.CounterVec
	decisions *prometheus.CounterVec
	events    *prometheus.CounterVec
}

// NewMetrics registers the router metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		last: map[int32]Stats{},
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_router_orders_total",
			Help: "PLACED orders accepted."}, []string{"partition"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_router_decisions_total",
			Help: "Routing decisions by outcome (routed, partially_routed, backordered, rejected) and split shipments (split)."},
			[]string{"partition", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_router_events_total",
			Help: "Other router events: holds, replans (attempts after a refused reservation), duplicates, stale results, finished orders forgotten (order_retention), orders finished before order_retention was set listed for it (indexed), backordered orders retried when stock arrived (retried)."},
			[]string{"partition", "event"}),
	}
	reg.MustRegister(m.orders, m.decisions, m.events)
	return m
}

// Observe adds what partition p's router counted since the last call.
func (m *Metrics) Observe(p int32, s Stats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.last[p]
	if s.Gen != prev.Gen || s.Orders < prev.Orders || s.Decisions < prev.Decisions || s.Stale < prev.Stale || s.Duplicates < prev.Duplicates {
		prev = Stats{} // a new router for p after a rebalance
	}
	m.last[p] = s
	l := strconv.Itoa(int(p))
	m.orders.WithLabelValues(l).Add(float64(s.Orders - prev.Orders))
	for _, c := range []struct {
		name      string
		cur, prev int64
	}{
		{"routed", s.Routed, prev.Routed}, {"partially_routed", s.Partial, prev.Partial},
		{"backordered", s.Backordered, prev.Backordered}, {"rejected", s.Rejected, prev.Rejected},
		{"split", s.Splits, prev.Splits},
	} {
		m.decisions.WithLabelValues(l, c.name).Add(float64(max(0, c.cur-c.prev)))
	}
	for _, c := range []struct {
		name      string
		cur, prev int64
	}{
		{"hold", s.Holds, prev.Holds}, {"replan", s.Replans, prev.Replans},
		{"duplicate", s.Duplicates, prev.Duplicates}, {"stale", s.Stale, prev.Stale},
		{"forgotten", s.Forgotten, prev.Forgotten}, {"retried", s.Retried, prev.Retried},
		{"indexed", s.Indexed, prev.Indexed},
	} {
		m.events.WithLabelValues(l, c.name).Add(float64(max(0, c.cur-c.prev)))
	}
}

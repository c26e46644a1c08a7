package topology

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// metrics are the engine's Prometheus metrics, all prefixed invroute_.
type metrics struct {
	records       prometheus.Counter
	deadLetters   *prometheus.CounterVec // by stage
	committed     prometheus.Counter
	aborted       prometheus.Counter
	reinits       prometheus.Counter
	stalls        prometheus.Counter
	restored      prometheus.Counter
	restoreShort  prometheus.Counter
	globalErrors  prometheus.Counter
	storesRebuilt prometheus.Counter
	partitions    prometheus.Gauge
	healthy       prometheus.Gauge
	commitSeconds prometheus.Histogram
	phaseSeconds  *prometheus.HistogramVec
	txnPartitions prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "invroute_" + name, Help: help})
	}
	m := &metrics{
		records: c("records_processed_total", "Input records processed in committed transactions."),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_dead_letters_total",
			Help: "Records sent to the dead-letter topic (including aborted attempts), by the stage that refused them: size, decode, validate or output (an output too large to produce)."},
			[]string{"stage"}),
		committed:     c("transactions_committed_total", "Kafka transactions committed."),
		aborted:       c("transactions_aborted_total", "Kafka transactions aborted (rebalance, produce failure)."),
		reinits:       c("session_reinits_total", "Sessions re-initialised after a commit with unknown outcome or a failed session."),
		stalls:        c("process_stalls_total", "Times the whole process stopped running for half the session timeout or longer (SIGSTOP, a frozen VM); the transaction open then aborts."),
		restored:      c("changelog_records_restored_total", "Changelog records replayed into local stores."),
		restoreShort:  c("restores_short_total", "Restores that read a changelog partition only to its last stable offset, a transaction having stayed open on it past the wait: what that transaction commits later is missing from the store."),
		globalErrors:  c("global_table_errors_total", "Undecodable global table records skipped."),
		storesRebuilt: c("stores_rebuilt_total", "Local stores that could not be opened, moved aside and rebuilt from the changelog."),
		partitions:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "invroute_partitions_owned", Help: "Partitions this instance owns."}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "invroute_engine_healthy",
			Help: "1 while the processing loop runs and no storage fault happened, else 0 (see Engine.Healthy)."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "invroute_transaction_seconds", Help: "Duration of committed transactions, begin to applied.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		phaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "invroute_transaction_phase_seconds", Help: "Time committed transactions spend per phase: poll (waiting in the poll for input: the rest of the commit interval when idle, the next fetch when busy), process (processing the input), flush (coalesced outputs and changelog), end (Kafka commit, during which the previous transaction is written to Pebble), apply (the stores take the transaction as committed; the write to Pebble follows during the next end).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"phase"}),
		txnPartitions: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "invroute_transaction_partitions", Help: "Partitions with work (input, or flush work such as a re-emit) per committed transaction: how many the workers can process in parallel.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.deadLetters, m.committed, m.aborted, m.reinits, m.restored, m.restoreShort,
			m.stalls, m.globalErrors, m.storesRebuilt, m.partitions, m.healthy, m.commitSeconds, m.phaseSeconds, m.txnPartitions)
	}
	return m
}

// phaseStats summarises where committed transactions spend their time
// (poll, process, flush, end, apply), and over how many partitions, and
// logs it every 10 seconds.
type phaseStats struct {
	log               *slog.Logger
	hist              *prometheus.HistogramVec
	since             time.Time
	txns, recs, parts int
	sum, worst        [5]time.Duration
}

var phaseNames = [5]string{"poll", "process", "flush", "end", "apply"}

func (p *phaseStats) observe(records, partitions int, d ...time.Duration) {
	if p.since.IsZero() {
		p.since = time.Now()
	}
	p.txns++
	p.recs += records
	p.parts += partitions
	for i, x := range d {
		p.sum[i] += x
		p.worst[i] = max(p.worst[i], x)
		if p.hist != nil {
			p.hist.WithLabelValues(phaseNames[i]).Observe(x.Seconds())
		}
	}
	if time.Since(p.since) < 10*time.Second {
		return
	}
	args := []any{"transactions", p.txns, "records", p.recs,
		"partitions_avg", math.Round(100*float64(p.parts)/float64(p.txns)) / 100}
	for i, name := range phaseNames {
		args = append(args, name+"_avg", (p.sum[i] / time.Duration(p.txns)).Round(time.Microsecond),
			name+"_max", p.worst[i].Round(time.Microsecond))
	}
	p.log.Info("transactions", args...)
	*p = phaseStats{log: p.log, hist: p.hist}
}

// kgoLogger sends franz-go's logs (warnings and errors) to slog.
type kgoLogger struct {
	l *slog.Logger
	// unconfirmed, if set (the transactional session's client), is set
	// when franz-go says a commit's outcome is unconfirmed: it tells so
	// only in an info message ("end transaction returned an unknown server
	// error; the commit is unconfirmed, retrying as abort ..."), and End
	// then reports not committed, as for an abort it chose.
	// TestUnconfirmedCommitReinitialises fails if the message changes.
	unconfirmed *atomic.Bool
	// next, if set, is a logger Config.ClientOpts gave, which this one
	// stands in for on the session's client: it gets what it asks for.
	next kgo.Logger
}

func (k kgoLogger) Level() kgo.LogLevel {
	lv := kgo.LogLevelWarn
	if k.unconfirmed != nil {
		lv = kgo.LogLevelInfo
	}
	if k.next != nil {
		lv = max(lv, k.next.Level())
	}
	return lv
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if k.unconfirmed != nil && level == kgo.LogLevelInfo && strings.Contains(msg, "unconfirmed") {
		k.unconfirmed.Store(true)
	}
	if k.next != nil {
		if level <= k.next.Level() {
			k.next.Log(level, msg, keyvals...)
		}
		return
	}
	if level == kgo.LogLevelInfo || level == kgo.LogLevelDebug {
		return // info is for the watch alone: the engine logs at warn and above
	}
	lv := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelDebug:
		lv = slog.LevelDebug
	}
	k.l.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}

package validate

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// memStore is an in-memory storage.Queryable for the PromQL engine, loaded
// from series in the notation of Prometheus' test scripts (`name{labels}
// 0+5x40`, parsed by the PromQL parser), one sample a minute from time 0.
// Prometheus' own promqltest package would do the same on its TSDB, at the
// price of ~400 more packages (remote storage, service discovery, cloud SDKs).
type memStore struct{ series []storage.Series }

func loadSeries(t *testing.T, text string) *memStore {
	t.Helper()
	m := &memStore{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		lset, values, err := promParser.ParseSeriesDesc(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var samples chunks.SampleSlice
		for i, v := range values {
			if !v.Omitted {
				samples = append(samples, fsample{t: int64(i) * time.Minute.Milliseconds(), f: v.Value})
			}
		}
		m.series = append(m.series, storage.NewListSeries(lset, samples))
	}
	sort.Slice(m.series, func(i, j int) bool { return labels.Compare(m.series[i].Labels(), m.series[j].Labels()) < 0 })
	return m
}

func (m *memStore) Querier(int64, int64) (storage.Querier, error) { return m, nil }
func (m *memStore) Close() error                                  { return nil }

func (m *memStore) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m.series {
		ok := true
		for _, mt := range ms {
			ok = ok && mt.Matches(s.Labels().Get(mt.Name))
		}
		if ok {
			out = append(out, s)
		}
	}
	return &seriesSet{list: out, i: -1}
}

func (m *memStore) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (m *memStore) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

type seriesSet struct {
	list []storage.Series
	i    int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series                { return s.list[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }
func (f fsample) T() int64                             { return f.t }
func (f fsample) ST() int64                            { return 0 }
func (f fsample) F() float64                           { return f.f }
func (f fsample) H() *histogram.Histogram              { return nil }
func (f fsample) FH() *histogram.FloatHistogram        { return nil }
func (f fsample) Type() chunkenc.ValueType             { return chunkenc.ValFloat }
func (f fsample) Copy() chunks.Sample                  { return f }

type fsample struct {
	t int64
	f float64
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:    1_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
		Parser:        promParser,
	})
}

// TestMemStore: the store and engine answer like Prometheus on known input.
func TestMemStore(t *testing.T) {
	st := loadSeries(t, `c_total{a="1"} 0+10x20
	                     c_total{a="2"} 5x20
	                     g{a="1"} 1 _ 3`)
	for expr, want := range map[string]float64{
		`sum(rate(c_total{a="1"}[5m]))`: 10.0 / 60,
		`c_total{a="2"}`:                5,
		`count(c_total)`:                2,
		`g`:                             3, // at 10m: the last sample (2m) is beyond the 5m lookback? no: see below
	} {
		at := 10 * time.Minute
		if expr == "g" {
			at = 4 * time.Minute
		}
		v := evalAt(t, newEngine(), st, expr, at)
		if len(v) != 1 || v[0].F < want-1e-9 || v[0].F > want+1e-9 {
			t.Errorf("%s = %v, want %v", expr, v, want)
		}
	}
	if v := evalAt(t, newEngine(), st, `g`, 10*time.Minute); len(v) != 0 {
		t.Errorf("g past the lookback delta: %v", v)
	}
}

package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerResult is everything measured on one broker.
type brokerResult struct {
	name, desc string
	rounds     []*round // the throughput phase, in the order run
	warmup     *round   // the discarded round before them (-warmup), nil if none
	connErr    error    // nothing could run on this broker
	lat        *latencyResult
	latErr     error
	ptLat      *latencyResult // the passthrough at the same rate: what the broker costs
	ptLatErr   error
	scale      *scaleResult
	scaleErr   error
	route      *routeResult
	routeErr   error
	hostile    *hostileResult // hostile.go
	hostileErr error
	errs       []error
}

// round is one passthrough/engine pair of the throughput phase, on topics,
// consumer groups and an engine state dir of its own.
type round struct {
	i, of         int // round i of of, from 1
	pt, eng       catchUp
	ptErr, engErr error
	// bytes on disk after each side caught up, nil if unknown
	ptBytes, engBytes map[string]int64
	ptIn, ptOut       string
	engIn, engATS     string
	engChangelog      string
	prefixes          []string // its topics, dropped after it unless it is the last
	stateDir          string
}

func (rd *round) String() string {
	if rd.i == 0 {
		return "warm-up round"
	}
	return fmt.Sprintf("round %d/%d", rd.i, rd.of)
}

func (rd *round) ptOK() bool  { return rd.ptErr == nil && rd.pt.wall > 0 }
func (rd *round) engOK() bool { return rd.engErr == nil && rd.eng.wall > 0 }

// ratio is the round's engine/passthrough ratio; ok when both caught up.
func (rd *round) ratio() (float64, bool) {
	if !rd.ptOK() || !rd.engOK() {
		return 0, false
	}
	return rd.eng.rps() / rd.pt.rps(), true
}

// last is the round whose engine ran the latency phase, nil if none ran.
func (res *brokerResult) last() *round {
	if len(res.rounds) == 0 {
		return nil
	}
	return res.rounds[len(res.rounds)-1]
}

// ptRPS, engRPS and ratio are medians over the rounds where that figure
// exists; n is how many rounds that is.
func (res *brokerResult) ptRPS() (v float64, n int) {
	return res.median(func(rd *round) (float64, bool) { return rd.pt.rps(), rd.ptOK() })
}

func (res *brokerResult) engRPS() (v float64, n int) {
	return res.median(func(rd *round) (float64, bool) { return rd.eng.rps(), rd.engOK() })
}

func (res *brokerResult) ratio() (v float64, n int) { return res.median((*round).ratio) }

func (res *brokerResult) median(f func(*round) (float64, bool)) (float64, int) {
	var xs []float64
	for _, rd := range res.rounds {
		if x, ok := f(rd); ok {
			xs = append(xs, x)
		}
	}
	return median(xs), len(xs)
}

// median of xs (the mean of the middle two for an even count), 0 if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuOf sums the CPU and records of one side over the rounds where it
// caught up: one figure from all the work measured, not one noisy round.
func (res *brokerResult) cpuOf(side func(*round) (catchUp, bool)) (cpu time.Duration, records int64, n int) {
	for _, rd := range res.rounds {
		if c, ok := side(rd); ok {
			cpu += c.cpu
			records += c.records
			n++
		}
	}
	return cpu, records, n
}

func ptSide(rd *round) (catchUp, bool)  { return rd.pt, rd.ptOK() }
func engSide(rd *round) (catchUp, bool) { return rd.eng, rd.engOK() }

func (res *brokerResult) fail(phase string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("%s: %s: %w", res.name, phase, err)
	res.errs = append(res.errs, err)
	return err
}

// runBroker runs every section on one broker.
func (r *runner) runBroker(ctx context.Context, b brokerEnv) *brokerResult {
	res := &brokerResult{name: b.name, desc: b.brokers}
	if err := b.connect(); err != nil {
		res.connErr = res.fail("connect", err)
		return res
	}
	defer r.cleanup(&b)
	res.desc = b.describe(ctx)
	r.progress("=== %s", res.desc)
	if r.cfg.hostile.only {
		res.hostileErr = res.fail("hostile", r.hostile(ctx, &b, res))
		return res
	}
	eng, err := r.throughput(ctx, &b, res)
	// Half the engine's maximum rate: the median over rounds of its rate
	// after its first commit (the rate of the ratio counts its start-up
	// too, which would make the load depend on -records, and lighter);
	// the whole rate when a round was done by its first commit (tiny runs).
	engRPS, n := res.median(func(rd *round) (float64, bool) { return rd.eng.steadyRPS(), rd.engOK() && rd.eng.steadyRPS() > 0 })
	if n == 0 {
		engRPS, _ = res.engRPS()
	}
	rate := engRPS / 2
	if r.cfg.latencyRate > 0 { // a fixed load, to compare two builds
		rate = float64(r.cfg.latencyRate)
	}
	if err == nil {
		res.lat, err = r.latency(ctx, &b, eng.p, eng.in, eng.out, rate, "engine")
		res.latErr = res.fail("latency", err)
	}
	last := res.last()
	if eng != nil {
		if err := eng.p.stop(60 * time.Second); err != nil && last.engErr == nil {
			res.fail("engine shutdown", err)
		}
	}
	if eng != nil && last.ptErr == nil && res.latErr == nil && ctx.Err() == nil {
		// The same load through the passthrough: the part of the latency
		// that is the broker's (transaction commit, read_committed fetch).
		p, err := r.start(b.name+"-passthrough-latency", eng.ptArgs...)
		if err == nil {
			err = r.warmUp(ctx, &b, p, eng.ptIn, eng.ptOut)
			if err == nil {
				res.ptLat, err = r.latency(ctx, &b, p, eng.ptIn, eng.ptOut, rate, "passthrough")
			}
			if serr := p.stop(30 * time.Second); err == nil {
				err = serr
			}
		}
		res.ptLatErr = res.fail("passthrough latency", err)
	}
	switch {
	case r.cfg.scaleSKUs == 0:
		res.scaleErr = fmt.Errorf("%w (-scale-skus 0)", errSkipped)
	case !b.real && !r.cfg.scaleOnKfake:
		res.scaleErr = fmt.Errorf("%w on kfake (-scale-on-kfake to run it)", errSkipped)
	case ctx.Err() != nil:
		res.scaleErr = ctx.Err()
	default:
		res.scaleErr = res.fail("scale", r.scale(ctx, &b, res))
	}
	switch {
	case !r.cfg.routing:
		res.routeErr = fmt.Errorf("%w (-routing=false)", errSkipped)
	case ctx.Err() != nil:
		res.routeErr = ctx.Err()
	default:
		res.routeErr = res.fail("routing", r.routing(ctx, &b, res))
	}
	switch {
	case !r.cfg.hostile.on:
		res.hostileErr = fmt.Errorf("%w (-hostile=false)", errSkipped)
	case ctx.Err() != nil:
		res.hostileErr = ctx.Err()
	default:
		res.hostileErr = res.fail("hostile", r.hostile(ctx, &b, res))
	}
	return res
}

// enginePhase is the engine left running after the throughput phase, and
// how to run the passthrough again.
type enginePhase struct {
	p           *proc
	in, out     string // the engine's input and ats topics
	ptIn, ptOut string
	ptArgs      []string
}

// throughput runs cfg.rounds rounds of the passthrough then the engine on
// the same pre-loaded movements. One pair is not a measure on a shared
// machine: the passthrough alone swings between 180k/s and 520k/s from one
// run to the next, so the report takes medians, and the two alternate so
// that slow and fast spells of the machine fall on both. The engine of the
// last round is left running for the latency phase; earlier ones are
// stopped after their round. A round that fails ends the phase: its engine,
// if it runs, is the one left running.
func (r *runner) throughput(ctx context.Context, b *brokerEnv, res *brokerResult) (*enginePhase, error) {
	// A broker just started runs slower while its JVM compiles its hot
	// paths; the passthrough, measured first, would pay for it and the ratio
	// would flatter the engine. With -warmup a round 0 runs both sides the
	// same way and is left out of every figure.
	first := 1
	if r.cfg.warmup {
		first = 0
	}
	for i := first; ; i++ {
		rd := &round{i: i, of: r.cfg.rounds}
		if i == 0 {
			res.warmup = rd
		} else {
			res.rounds = append(res.rounds, rd)
		}
		ep, err := r.round(ctx, b, res, rd)
		if err != nil || ep == nil || rd.ptErr != nil || i >= r.cfg.rounds || ctx.Err() != nil {
			r.progressMedians(res)
			return ep, err
		}
		if err := ep.p.stop(60 * time.Second); err != nil {
			res.fail(rd.String()+": engine shutdown", err)
		}
		r.dropRound(ctx, b, rd)
	}
}

// progressMedians prints the medians the report will use.
func (r *runner) progressMedians(res *brokerResult) {
	pt, _ := res.ptRPS()
	eng, _ := res.engRPS()
	ratio, n := res.ratio()
	if n > 0 {
		r.progress("throughput, median of %d rounds: passthrough %.0f records/s, engine %.0f movements/s, ratio %.2f", n, pt, eng, ratio)
	}
}

// dropRound deletes a finished round's topics and state dir: every round
// starts from the same broker (kfake holds every record in the bench
// process's heap) and disk.
func (r *runner) dropRound(ctx context.Context, b *brokerEnv, rd *round) {
	if !r.cfg.keepDir {
		os.RemoveAll(rd.stateDir)
	}
	if r.cfg.keepTopics {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if n, err := b.deleteTopics(dctx, rd.prefixes); err != nil {
		r.progress("%s: deleting its topics: %v", rd, err)
	} else {
		r.progress("%s: deleted its %d topics", rd, n)
	}
}

// round pre-loads the same movements into a passthrough topic and the
// engine's input topic of its own, then runs each alone until its group has
// committed everything. The engine is left running.
func (r *runner) round(ctx context.Context, b *brokerEnv, res *brokerResult, rd *round) (*enginePhase, error) {
	cfg := r.cfg
	tag := fmt.Sprintf("round%d", rd.i)
	ptPrefix := r.runID + "-" + b.name + "-pt" + strconv.Itoa(rd.i) + "."
	engPrefix := r.runID + "-" + b.name + "-eng" + strconv.Itoa(rd.i) + "."
	in, out, ptGroup := ptPrefix+"in", ptPrefix+"out", ptPrefix+"group"
	b.prefixes = append(b.prefixes, ptPrefix)
	b.groups = append(b.groups, ptGroup)
	rd.prefixes = []string{ptPrefix, engPrefix}
	rd.stateDir = filepath.Join(r.dir, b.name+"-engine-state-"+tag)
	o := b.options(cfg, engPrefix, rd.stateDir)
	movements := engPrefix + string(inventory.TopicMovements)

	if err := r.setupRound(ctx, b, rd, o, in, out, movements); err != nil {
		rd.ptErr = res.fail(rd.String()+": setup", err)
		rd.engErr = rd.ptErr
		return nil, err
	}

	// 1a: the bare franz-go passthrough.
	ptArgs := []string{"bench", workerFlag, "passthrough",
		"-brokers", b.brokers, "-in", in, "-out", out, "-group", ptGroup, "-txn-id", ptGroup + "-txn",
		"-commit-interval", cfg.commitInterval.String(), "-max-txn-records", strconv.Itoa(cfg.maxTxnRecords)}
	var err error
	rd.pt, err = r.runPassthrough(ctx, b, rd, b.name+"-passthrough-"+tag, ptGroup, in, ptArgs)
	if err != nil {
		rd.ptErr = res.fail(rd.String()+": passthrough", err)
	} else {
		r.progress("%s: passthrough: %.0f records/s", rd, rd.pt.rps())
		rd.ptIn, rd.ptOut = in, out
		rd.ptBytes = b.topicBytes(ctx, in, out)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// 1b: the engine on the same movements.
	engEnds, err := b.ends(ctx, movements)
	if err != nil {
		rd.engErr = res.fail(rd.String()+": engine", err)
		return nil, err
	}
	r.progress("%s: engine: %d movements", rd, sum(engEnds))
	p, err := r.start(b.name+"-engine-"+tag, r.engineArgs(b, o, tag)...)
	if err != nil {
		rd.engErr = res.fail(rd.String()+": engine", err)
		return nil, err
	}
	rd.eng, err = r.waitCaughtUp(ctx, b, p, o.Group, movements, engEnds, 0)
	if cfg.cpuprofile != "" || cfg.trace != "" {
		_ = p.cmd.Process.Signal(syscall.SIGUSR1)
		r.progress("%s: engine profile/trace of the throughput phase: %s %s", rd, cfg.cpuprofile, cfg.trace)
	}
	ep := &enginePhase{p: p, in: movements, out: engPrefix + string(inventory.TopicATS),
		ptIn: in, ptOut: out, ptArgs: ptArgs}
	if err != nil {
		rd.engErr = res.fail(rd.String()+": engine", err)
		return ep, err
	}
	r.progress("%s: engine: %.0f movements/s", rd, rd.eng.rps())
	if ratio, ok := rd.ratio(); ok {
		r.progress("%s: ratio engine/passthrough %.2f", rd, ratio)
	}
	rd.engIn, rd.engATS, rd.engChangelog = movements, ep.out, engPrefix+string(inventory.TopicChangelog)
	rd.engBytes = b.topicBytes(ctx, rd.engIn, rd.engATS, rd.engChangelog)
	return ep, nil
}

// setupRound creates the round's topics, seeds the engine's catalogue and
// pre-loads the movements into the passthrough's and the engine's input.
func (r *runner) setupRound(ctx context.Context, b *brokerEnv, rd *round, o app.Options, in, out, movements string) error {
	if err := b.createTopic(ctx, r.cfg.partitions, in, out); err != nil {
		return fmt.Errorf("creating passthrough topics: %w", err)
	}
	if _, err := app.CreateTopics(ctx, o); err != nil {
		return err
	}
	if err := b.seedCatalog(ctx, o.TopicPrefix, benchNodes, benchChannels); err != nil {
		return err
	}
	for _, t := range []string{in, movements} {
		i := 0
		t0 := time.Now()
		n, err := b.produceAll(ctx, t, func() (record, bool) {
			if i == len(r.recs) {
				return record{}, false
			}
			i++
			return r.recs[i-1], true
		}, nil)
		if err != nil {
			return fmt.Errorf("pre-loading %s: %w", t, err)
		}
		r.progress("%s: pre-loaded %d movements into %s (%.0f/s)", rd, n, t, float64(n)/time.Since(t0).Seconds())
	}
	return nil
}

// runPassthrough runs the passthrough on in until its group has committed
// everything, then stops it.
func (r *runner) runPassthrough(ctx context.Context, b *brokerEnv, rd *round, name, group, in string, args []string) (catchUp, error) {
	ends, err := b.ends(ctx, in)
	if err != nil {
		return catchUp{}, err
	}
	r.progress("%s: passthrough: %d records", rd, sum(ends))
	p, err := r.start(name, args...)
	if err != nil {
		return catchUp{}, err
	}
	c, err := r.waitCaughtUp(ctx, b, p, group, in, ends, 0)
	if serr := p.stop(30 * time.Second); err == nil {
		err = serr
	}
	return c, err
}

// engineArgs runs the engine as `invroute run`, or as the profiling engine
// worker when -cpuprofile or -trace asks for it; every round alike, so that
// the rounds measure the same thing.
func (r *runner) engineArgs(b *brokerEnv, o app.Options, tag string) []string {
	cfg := r.cfg
	if cfg.cpuprofile == "" && cfg.trace == "" {
		return append([]string{"run"}, runArgs(o)...)
	}
	args := []string{"bench", workerFlag, "engine"}
	if cfg.cpuprofile != "" {
		args = append(args, "-cpuprofile", cfg.cpuprofile+"."+b.name+"-"+tag)
	}
	if cfg.trace != "" {
		args = append(args, "-trace", cfg.trace+"."+b.name+"-"+tag)
	}
	return append(args, runArgs(o)...)
}

// latencyResult is the latency phase's outcome.
type latencyResult struct {
	targetRate, achievedRate float64
	duration                 time.Duration
	probes, seen             int
	p50, p99, max            time.Duration
	recP99                   time.Duration // by UpdatedAt (record timestamp) instead of send time
	ackP50, ackP99           time.Duration // Produce call -> broker ack of the probe
}

// latency produces movements at half the engine's measured rate, among
// them probeRate probes per second, each on a SKU of its own, and measures
// each probe from its Produce call to its AtsUpdate read by a
// read_committed consumer.
func (r *runner) latency(ctx context.Context, b *brokerEnv, p *proc, movements, ats string, rate float64, who string) (*latencyResult, error) {
	cfg := r.cfg
	if rate <= 0 {
		return nil, fmt.Errorf("no engine rate to halve")
	}
	from, err := b.ends(ctx, ats)
	if err != nil {
		return nil, err
	}
	w, err := newATSWatcher(b, ats, from)
	if err != nil {
		return nil, err
	}
	defer w.close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(app.SplitBrokers(b.brokers)...),
		kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(100000))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	gen := newGenerator(cfg.seed+1, cfg.skus)
	var produceErr atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, &err)
		}
	}
	r.progress("latency (%s): %.0f movements/s for %s, %d probes/s", who, rate, cfg.latencyFor, cfg.probeRate)
	var keys []string
	var buf []record
	sent := 0
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < cfg.latencyFor {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		if p.exited() {
			return nil, p.failure()
		}
		el := time.Since(start).Seconds()
		for target := int(rate * el); sent < target; sent++ {
			if len(keys) < int(float64(cfg.probeRate)*el)+1 {
				key := fmt.Sprintf("PRB-%s-%06d", r.runID, len(keys))
				rec := probe(key)
				keys = append(keys, key)
				sentAt := time.Now()
				w.expect(key, sentAt)
				cl.Produce(ctx, &kgo.Record{Topic: movements, Key: rec.key, Value: rec.value}, func(r *kgo.Record, err error) {
					promise(r, err)
					if err == nil {
						w.acked(key, time.Since(sentAt))
					}
				})
				continue
			}
			if len(buf) == 0 {
				buf = gen.next(buf[:0])
			}
			rec := buf[0]
			buf = buf[1:]
			cl.Produce(ctx, &kgo.Record{Topic: movements, Key: rec.key, Value: rec.value}, promise)
		}
	}
	elapsed := time.Since(start)
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	if p := produceErr.Load(); p != nil {
		return nil, *p
	}
	// Wait for the last probes (bounded).
	deadline := time.Now().Add(max(10*time.Second, 20*cfg.commitInterval))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		w.mu.Lock()
		n := len(w.seen)
		w.mu.Unlock()
		if n == len(keys) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	var ds []time.Duration
	for _, k := range keys {
		if d, ok := w.seen[k]; ok {
			ds = append(ds, d)
		}
	}
	skew := slices.Clone(w.skew)
	var acks []time.Duration
	for _, d := range w.ack {
		acks = append(acks, d)
	}
	w.mu.Unlock()
	lr := &latencyResult{targetRate: rate, achievedRate: float64(sent) / elapsed.Seconds(), duration: elapsed,
		probes: len(keys), seen: len(ds)}
	if len(ds) == 0 {
		return lr, fmt.Errorf("none of %d probes became visible", len(keys))
	}
	slices.Sort(ds)
	slices.Sort(skew)
	lr.p50, lr.p99, lr.max = pct(ds, 0.50), pct(ds, 0.99), ds[len(ds)-1]
	if len(skew) > 0 {
		lr.recP99 = pct(skew, 0.99)
	}
	if len(acks) > 0 {
		slices.Sort(acks)
		lr.ackP50, lr.ackP99 = pct(acks, 0.5), pct(acks, 0.99)
	}
	r.progress("latency (%s): p50 %s p99 %s max %s (%d/%d probes); produce ack p50 %s p99 %s",
		who, lr.p50, lr.p99, lr.max, lr.seen, lr.probes, lr.ackP50, lr.ackP99)
	if lr.seen < lr.probes {
		return lr, fmt.Errorf("%d of %d probes not visible within the wait", lr.probes-lr.seen, lr.probes)
	}
	return lr, nil
}

// warmUp waits (at most a minute) until a record written to in is visible
// in out: the process has joined its group and is consuming.
func (r *runner) warmUp(ctx context.Context, b *brokerEnv, p *proc, in, out string) error {
	from, err := b.ends(ctx, out)
	if err != nil {
		return err
	}
	w, err := newATSWatcher(b, out, from)
	if err != nil {
		return err
	}
	defer w.close()
	key := fmt.Sprintf("WARM-%s-%s", r.runID, p.name)
	rec := probe(key)
	w.expect(key, time.Now())
	if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: in, Key: rec.key, Value: rec.value}).FirstErr(); err != nil {
		return err
	}
	_, err = w.waitFor(ctx, key, time.Minute, func() error {
		if p.exited() {
			return p.failure()
		}
		return nil
	})
	return err
}

// pct returns the q-quantile of sorted ds (nearest rank).
func pct(ds []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// scaleResult is the state-at-scale section's outcome.
type scaleResult struct {
	skus, nodes      int
	movements        int64
	produceRPS       float64
	load             catchUp
	stateBytes       int64
	changelogEnd     int64
	warmFirst        time.Duration // restart -> probe ATS visible
	warmRestored     int64
	coldFirst        time.Duration
	coldRestored     int64
	coldRestoreTook  time.Duration // sum of "restored store" took
	coldAssignTook   time.Duration // sum of "partition assigned and restored" took
	coldRestoreParts int
}

func (s *scaleResult) coldRPS() float64 {
	if s.coldRestoreTook <= 0 {
		return 0
	}
	return float64(s.coldRestored) / s.coldRestoreTook.Seconds()
}

// scale loads skus x nodes receipts into an `invroute run` subprocess,
// measures its memory, then kill -9s it and restarts it warm (same state
// dir) and cold (empty state dir).
func (r *runner) scale(ctx context.Context, b *brokerEnv, res *brokerResult) error {
	cfg := r.cfg
	prefix := r.runID + "-" + b.name + "-scale."
	o := b.options(cfg, prefix, filepath.Join(r.dir, b.name+"-scale-state"))
	o.InstanceID = "bench-scale"
	args := append(append([]string{"run"}, runArgs(o)...), "-static-membership", "-session-timeout", "6s")
	movements := prefix + string(inventory.TopicMovements)
	ats := prefix + string(inventory.TopicATS)
	changelog := prefix + string(inventory.TopicChangelog)
	sr := &scaleResult{skus: cfg.scaleSKUs, nodes: cfg.scaleNodes}
	res.scale = sr

	if _, err := app.CreateTopics(ctx, o); err != nil {
		return err
	}
	nodes := scaleNodes(cfg.scaleNodes)
	if err := b.seedCatalog(ctx, prefix, nodes, benchChannels); err != nil {
		return err
	}
	// Node by node, every SKU: each warehouse reporting its full stock.
	total := cfg.scaleSKUs * cfg.scaleNodes
	i := 0
	now := time.Now().UnixMilli()
	t0 := time.Now()
	r.progress("scale: producing %d receipts (%d SKUs x %d nodes)", total, cfg.scaleSKUs, cfg.scaleNodes)
	n, err := b.produceAll(ctx, movements, func() (record, bool) {
		if i == total {
			return record{}, false
		}
		node, sku := i/cfg.scaleSKUs, i%cfg.scaleSKUs
		i++
		return receipt(skuName(uint64(sku)), nodes[node].NodeID, 10+int64(sku%7), now), true
	}, func(n int64) { r.progress("scale: produced %d/%d", n, total) })
	if err != nil {
		return err
	}
	sr.movements = n
	sr.produceRPS = float64(n) / time.Since(t0).Seconds()
	ends, err := b.ends(ctx, movements)
	if err != nil {
		return err
	}

	// Load.
	r.progress("scale: engine loading %d movements", n)
	loadArgs := args
	if cfg.cpuprofile != "" {
		// invroute run plus a CPU profile, stopped at catch-up.
		loadArgs = append([]string{"bench", workerFlag, "engine", "-cpuprofile", cfg.cpuprofile + "." + b.name + "-scale"}, args[1:]...)
	}
	p, err := r.start(b.name+"-scale-load", loadArgs...)
	if err != nil {
		return err
	}
	sr.load, err = r.waitCaughtUp(ctx, b, p, o.Group, movements, ends, 0)
	if cfg.cpuprofile != "" {
		_ = p.cmd.Process.Signal(syscall.SIGUSR1)
		waitFileWritten(cfg.cpuprofile+"."+b.name+"-scale", 10*time.Second)
	}
	if err != nil {
		p.kill()
		return err
	}
	sr.stateBytes = dirSize(o.StateDir)
	if cl, err := b.ends(ctx, changelog); err == nil {
		sr.changelogEnd = sum(cl)
	}
	r.progress("scale: loaded at %.0f movements/s, RSS %d MiB, HWM %d MiB", sr.load.rps(), sr.load.rss>>20, sr.load.hwm>>20)

	// restart kills the running engine with SIGKILL, writes a probe
	// movement and starts the engine on stateDir; it returns the time from
	// the restart to the probe's ATS update and the restarted process.
	restart := func(name, stateDir string) (time.Duration, *proc, error) {
		p.kill()
		from, err := b.ends(ctx, ats)
		if err != nil {
			return 0, nil, err
		}
		w, err := newATSWatcher(b, ats, from)
		if err != nil {
			return 0, nil, err
		}
		defer w.close()
		key := fmt.Sprintf("PRB-%s-%s", r.runID, name)
		rec := probe(key)
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: movements, Key: rec.key, Value: rec.value}).FirstErr(); err != nil {
			return 0, nil, err
		}
		a := slices.Clone(args)
		a[slices.Index(a, "-state-dir")+1] = stateDir
		w.expect(key, time.Now())
		np, err := r.start(b.name+"-scale-"+name, a...)
		if err != nil {
			return 0, nil, err
		}
		d, err := w.waitFor(ctx, key, cfg.phaseTimeout, func() error {
			if np.exited() {
				return np.failure()
			}
			return nil
		})
		return d, np, err
	}

	// Warm restart: same state dir.
	r.progress("scale: kill -9, warm restart")
	d, np, err := restart("warm", o.StateDir)
	if np != nil {
		p = np
	}
	if err != nil {
		p.kill()
		return fmt.Errorf("warm restart: %w", err)
	}
	sr.warmFirst = d
	sr.warmRestored, _, _, _ = restoreStats(p)
	r.progress("scale: warm restart to first record %s (%d changelog records restored)", d, sr.warmRestored)

	// Cold restart: empty state dir, everything from the changelog.
	r.progress("scale: kill -9, cold restart on an empty state dir")
	coldDir := filepath.Join(r.dir, b.name+"-scale-state-cold")
	d, np, err = restart("cold", coldDir)
	if np != nil {
		p = np
	}
	if err != nil {
		p.kill()
		return fmt.Errorf("cold restart: %w", err)
	}
	sr.coldFirst = d
	sr.coldRestored, sr.coldRestoreTook, sr.coldAssignTook, sr.coldRestoreParts = restoreStats(p)
	r.progress("scale: cold restart to first record %s; %d records restored in %s (%.0f/s)",
		d, sr.coldRestored, sr.coldRestoreTook, sr.coldRPS())
	p.kill()
	os.RemoveAll(o.StateDir)
	os.RemoveAll(coldDir)
	return nil
}

var (
	reRestored = regexp.MustCompile(`msg="restored store" .*\brecords=(\d+) took=(\S+)`)
	reAssigned = regexp.MustCompile(`msg="partition assigned and restored" .*\btook=(\S+)`)
)

// restoreStats sums the engine's restore log lines.
func restoreStats(p *proc) (records int64, took, assignTook time.Duration, parts int) {
	for _, l := range p.lines() {
		if m := reRestored.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			d, _ := time.ParseDuration(m[2])
			records += n
			took += d
			parts++
		} else if m := reAssigned.FindStringSubmatch(l); m != nil {
			d, _ := time.ParseDuration(m[1])
			assignTook += d
		}
	}
	return records, took, assignTook, parts
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// waitFileWritten waits (bounded) until a profile file is not empty.
func waitFileWritten(path string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			time.Sleep(100 * time.Millisecond) // the writer closes right after
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

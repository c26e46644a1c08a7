package bench

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The routing section on a broker: `invroute run` with the router on, on
// the EU scenario's network.
//
//	stock       the scenario's assortment (which node carries which SKU),
//	            routeStockUnits units each, loaded by the engine with the
//	            router off, then the engine stopped: the router's replicated
//	            ats table is whole when it starts
//	throughput  -routing-orders pre-loaded orders, the engine restarted with
//	            the router on; orders/s from process start to the router
//	            group's committed offsets on the orders topic reaching the
//	            end, and to every order's decision being visible
//	            (read_committed)
//	latency     orders produced at -routing-rate for -latency-duration on
//	            the same engine (after routeWarmup of the same load, not
//	            measured), each timed from its Produce call to its decision
//	            read by a read_committed consumer: the order goes router ->
//	            reservation commands -> inventory -> results -> router ->
//	            decision, three transactions, hence the goal of
//	            3 x commit interval + 100 ms. The time to the order's first
//	            reservation result (two of the three) is reported too.
//
// Stock is ample so that orders are ROUTED (the outcome counts are
// reported): the section measures the routing machinery, the quality
// section the choices.

// routeStockUnits is the stock of every (node, SKU) the scenario carries in
// the broker phases: far more than the orders take.
const routeStockUnits = 100000

func goalDecisionLatency(cfg *config) time.Duration {
	return 3*cfg.commitInterval + 100*time.Millisecond
}

// routeResult is the routing section's outcome on one broker.
type routeResult struct {
	orders      int
	receipts    int64
	stock       catchUp       // the inventory loading the stock (router off)
	caught      catchUp       // router group's committed offsets on orders reaching the end
	decidedWall time.Duration // process start -> the last pre-loaded order's decision visible
	decidedCPU  time.Duration // of the engine process then
	decided     decisionCounts
	lat         *routeLatency
	latErr      error
}

func (rr *routeResult) decidedRPS() float64 {
	if rr.decidedWall <= 0 {
		return 0
	}
	return float64(rr.orders) / rr.decidedWall.Seconds()
}

// routeLatency is the latency phase's outcome.
type routeLatency struct {
	targetRate, achievedRate float64
	duration                 time.Duration // measured, after the warm-up
	sent, seen               int           // measured orders, and of them decided
	p50, p99, max            time.Duration // order produced -> decision visible
	resP50, resP99           time.Duration // order produced -> its first reservation result visible
	warmSent, warmSeen       int
	warmP99, warmMax         time.Duration
	decided                  decisionCounts // warm-up included
}

// decisionCounts are the decisions seen of a phase's orders.
type decisionCounts struct {
	orders   int // with a decision
	outcomes map[schemas.DecisionStatus]int
	splits   int
	replans  int // decided after more than one attempt
	dups     int // further decisions of an order already decided
}

func (d decisionCounts) String() string {
	s := ""
	for _, st := range []schemas.DecisionStatus{schemas.DecisionRouted, schemas.DecisionPartiallyRouted, schemas.DecisionBackordered, schemas.DecisionRejected} {
		if n := d.outcomes[st]; n > 0 || st == schemas.DecisionRouted {
			s += fmt.Sprintf("%s %d, ", st, n)
		}
	}
	return s + fmt.Sprintf("split %d, re-planned %d, decided twice %d", d.splits, d.replans, d.dups)
}

// routing runs the section on b.
func (r *runner) routing(ctx context.Context, b *brokerEnv, res *brokerResult) error {
	cfg := r.cfg
	prefix := r.runID + "-" + b.name + "-route."
	o := b.options(cfg, prefix, filepath.Join(r.dir, b.name+"-route-state"))
	o.Router = true
	b.groups = append(b.groups, o.RouterGroupName())
	rr := &routeResult{orders: cfg.routingOrders}
	res.route = rr
	movements := prefix + string(inventory.TopicMovements)
	orders := prefix + string(router.TopicOrders)
	decisions := prefix + string(router.TopicDecisions)

	if _, err := app.CreateTopics(ctx, o); err != nil {
		return err
	}
	sc := newScenario(cfg.seed, cfg.routingOrders)
	if err := b.seedCatalog(ctx, prefix, sc.nodes, []schemas.Channel{{ChannelID: routeChannel}}); err != nil {
		return err
	}
	if err := r.loadRouteStock(ctx, b, rr, sc, o, movements); err != nil {
		return fmt.Errorf("stock: %w", err)
	}

	// Throughput: pre-loaded orders, then the engine with the router.
	i := 0
	now := time.Now().UnixMilli()
	n, err := b.produceAll(ctx, orders, func() (record, bool) {
		if i == len(sc.orders) {
			return record{}, false
		}
		i++
		return orderRecord(&sc.orders[i-1].ev, now), true
	}, nil)
	if err != nil {
		return fmt.Errorf("pre-loading orders: %w", err)
	}
	r.progress("routing: pre-loaded %d orders into %s", n, orders)
	ends, err := b.ends(ctx, orders)
	if err != nil {
		return err
	}
	dw, err := newDecisionWatcher(b, decisions, "", nil)
	if err != nil {
		return err
	}
	defer dw.close()
	p, err := r.start(b.name+"-router", append([]string{"run"}, runArgs(o)...)...)
	if err != nil {
		return err
	}
	defer p.stop(60 * time.Second)
	rr.caught, err = r.waitCaughtUp(ctx, b, p, o.RouterGroupName(), orders, ends, 0)
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	r.progress("routing: router group committed %d orders at %.0f orders/s", rr.caught.records, rr.caught.rps())
	last, err := r.waitDecisions(ctx, p, dw, len(sc.orders))
	rr.decided = dw.counts()
	if err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	rr.decidedWall = last.Sub(p.started)
	rr.decidedCPU, _ = p.cpu()
	r.progress("routing: %d orders decided at %.0f orders/s (%s)", rr.decided.orders, rr.decidedRPS(), rr.decided)

	// Latency, on the same engine.
	rr.lat, rr.latErr = r.routeLatency(ctx, b, p, sc, orders, decisions, prefix+string(inventory.TopicResults))
	if rr.latErr != nil {
		rr.latErr = res.fail("routing latency", rr.latErr)
	}
	if err := p.stop(60 * time.Second); err != nil {
		res.fail("routing engine shutdown", err)
	}
	return nil
}

// loadRouteStock receipts routeStockUnits of every (node, SKU) the
// scenario stocks and runs the engine with the router off until it has
// committed them all, then stops it: when the router starts, it loads the
// whole ats topic before its first order.
func (r *runner) loadRouteStock(ctx context.Context, b *brokerEnv, rr *routeResult, sc *scenario, o app.Options, movements string) error {
	type nodeSKU struct{ n, s int }
	var pairs []nodeSKU
	for n, row := range sc.stock {
		for s, q := range row {
			if q > 0 {
				pairs = append(pairs, nodeSKU{n, s})
			}
		}
	}
	now := time.Now().UnixMilli()
	i := 0
	n, err := b.produceAll(ctx, movements, func() (record, bool) {
		if i == len(pairs) {
			return record{}, false
		}
		ps := pairs[i]
		i++
		return receipt(sc.skus[ps.s], sc.nodes[ps.n].NodeID, routeStockUnits, now), true
	}, nil)
	if err != nil {
		return err
	}
	rr.receipts = n
	ends, err := b.ends(ctx, movements)
	if err != nil {
		return err
	}
	stockOpts := o
	stockOpts.Router = false
	r.progress("routing: loading %d receipts (%d nodes, %d SKUs), router off", n, len(sc.nodes), len(sc.skus))
	p, err := r.start(b.name+"-route-stock", append([]string{"run"}, runArgs(stockOpts)...)...)
	if err != nil {
		return err
	}
	rr.stock, err = r.waitCaughtUp(ctx, b, p, o.Group, movements, ends, 0)
	if serr := p.stop(60 * time.Second); err == nil {
		err = serr
	}
	return err
}

// orderRecord is a PLACED order, keyed by its id, placed at now.
func orderRecord(ev *schemas.OrderEvent, now int64) record {
	e := *ev
	e.PlacedAt, e.OccurredAt = now, now
	v, err := schemas.OrderEvents.Encode(&e)
	if err != nil {
		panic(fmt.Sprintf("bench: encoding a generated order: %v", err)) // the generator builds valid orders
	}
	return record{key: []byte(e.OrderID), value: v}
}

// waitDecisions waits until want orders have a decision, the engine exits,
// no decision arrives for stallTimeout or phaseTimeout passes; it returns
// when the last one became visible.
func (r *runner) waitDecisions(ctx context.Context, p *proc, dw *decisionWatcher, want int) (time.Time, error) {
	deadline := time.Now().Add(r.cfg.phaseTimeout)
	lastN, lastMove, lastPrint := -1, time.Now(), time.Now()
	for {
		n, last := dw.progress()
		if n >= want {
			return last, nil
		}
		now := time.Now()
		if n > lastN {
			lastN, lastMove = n, now
		}
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case p.exited():
			return last, p.failure()
		case now.Sub(lastMove) > r.cfg.stallTimeout:
			return last, fmt.Errorf("bench: %d of %d orders decided, none for %s; last log lines:\n%s", n, want, r.cfg.stallTimeout, p.tail(15))
		case now.After(deadline):
			return last, fmt.Errorf("bench: %d of %d orders decided after %s", n, want, r.cfg.phaseTimeout)
		}
		if now.Sub(lastPrint) > 5*time.Second {
			lastPrint = now
			r.progress("routing: %d/%d orders decided", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// routeWarmup is the start of the latency load that is not measured: the
// engine was idle after the throughput phase, and the first transactions
// after idle are slow (see the report's note); the goal is about a steady
// 500 orders/s. Its figures are reported apart.
const routeWarmup = time.Second

// routeLatency produces orders at -routing-rate for routeWarmup plus
// -latency-duration and times each from its Produce call to its decision,
// and to its first reservation result (the router's and the inventory's
// transactions: two of the three hops).
func (r *runner) routeLatency(ctx context.Context, b *brokerEnv, p *proc, sc *scenario, orders, decisions, results string) (*routeLatency, error) {
	cfg := r.cfg
	from := map[string]map[int32]int64{}
	for _, t := range []string{decisions, results} {
		ends, err := b.ends(ctx, t)
		if err != nil {
			return nil, err
		}
		from[t] = ends
	}
	dw, err := newDecisionWatcher(b, decisions, results, from)
	if err != nil {
		return nil, err
	}
	defer dw.close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(app.SplitBrokers(b.brokers)...),
		kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(100000))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	gen := newOrderGen(rand.New(rand.NewSource(cfg.seed+2)), sc.pop)
	var produceErr atomic.Pointer[error]
	rate := float64(cfg.routingRate)
	r.progress("routing latency: %.0f orders/s for %s (after %s of warm-up)", rate, cfg.latencyFor, routeWarmup)
	var warm, measured []string
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < routeWarmup+cfg.latencyFor {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		if p.exited() {
			return nil, p.failure()
		}
		el := time.Since(start)
		for target := int(rate * el.Seconds()); len(warm)+len(measured) < target; {
			o := gen.next(fmt.Sprintf("L-%07d", len(warm)+len(measured)), sc.skus)
			if el < routeWarmup {
				warm = append(warm, o.ev.OrderID)
			} else {
				measured = append(measured, o.ev.OrderID)
			}
			rec := orderRecord(&o.ev, time.Now().UnixMilli())
			dw.expect(o.ev.OrderID, time.Now())
			cl.Produce(ctx, &kgo.Record{Topic: orders, Key: rec.key, Value: rec.value}, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.CompareAndSwap(nil, &err)
				}
			})
		}
	}
	elapsed := time.Since(start) - routeWarmup
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	if e := produceErr.Load(); e != nil {
		return nil, *e
	}
	// Wait for the last decisions (bounded).
	all := len(warm) + len(measured)
	deadline := time.Now().Add(max(10*time.Second, 30*cfg.commitInterval))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n, _ := dw.progress(); n >= all {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lr := &routeLatency{targetRate: rate, achievedRate: float64(len(measured)) / elapsed.Seconds(), duration: elapsed,
		sent: len(measured), warmSent: len(warm), decided: dw.counts()}
	if ws := dw.latencies(warm, false); len(ws) > 0 {
		lr.warmSeen, lr.warmP99, lr.warmMax = len(ws), pct(ws, 0.99), ws[len(ws)-1]
	}
	ds := dw.latencies(measured, false)
	lr.seen = len(ds)
	if len(ds) == 0 {
		return lr, fmt.Errorf("none of %d orders decided", len(measured))
	}
	lr.p50, lr.p99, lr.max = pct(ds, 0.50), pct(ds, 0.99), ds[len(ds)-1]
	if rs := dw.latencies(measured, true); len(rs) > 0 {
		lr.resP50, lr.resP99 = pct(rs, 0.50), pct(rs, 0.99)
	}
	r.progress("routing latency: p50 %s p99 %s max %s (%d/%d orders decided; first reservation result p50 %s p99 %s); warm-up: %d/%d decided, p99 %s max %s; %s",
		lr.p50, lr.p99, lr.max, lr.seen, lr.sent, lr.resP50, lr.resP99, lr.warmSeen, lr.warmSent, lr.warmP99, lr.warmMax, lr.decided)
	if lr.seen < lr.sent {
		return lr, fmt.Errorf("%d of %d orders not decided within the wait", lr.sent-lr.seen, lr.sent)
	}
	return lr, nil
}

// decisionWatcher reads routing-decisions read_committed, as a downstream
// system would, and notes when each order's first decision became visible;
// optionally also when its first reservation result did (both topics are
// keyed by order id).
type decisionWatcher struct {
	cl        *kgo.Client
	cancel    context.CancelFunc
	done      chan struct{}
	decisions string

	mu       sync.Mutex
	sent     map[string]time.Time // order -> Produce call, for latencies
	seenAt   map[string]time.Time // order -> its first decision visible
	resultAt map[string]time.Time // order -> its first reservation result visible
	last     time.Time            // newest first decision
	c        decisionCounts
}

// newDecisionWatcher reads decisions, and results unless empty, from the
// offsets in from (none: from the start).
func newDecisionWatcher(b *brokerEnv, decisions, results string, from map[string]map[int32]int64) (*decisionWatcher, error) {
	topics := []string{decisions}
	if results != "" {
		topics = append(topics, results)
	}
	consume := kgo.ConsumeTopics(topics...)
	if from != nil {
		offs := map[string]map[int32]kgo.Offset{}
		for _, t := range topics {
			offs[t] = map[int32]kgo.Offset{}
			for p, o := range from[t] {
				offs[t][p] = kgo.NewOffset().At(o)
			}
		}
		consume = kgo.ConsumePartitions(offs)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(app.SplitBrokers(b.brokers)...), consume,
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &decisionWatcher{cl: cl, cancel: cancel, done: make(chan struct{}), decisions: decisions,
		sent: map[string]time.Time{}, seenAt: map[string]time.Time{}, resultAt: map[string]time.Time{},
		c: decisionCounts{outcomes: map[schemas.DecisionStatus]int{}}}
	go w.run(ctx)
	return w, nil
}

func (w *decisionWatcher) expect(order string, sent time.Time) {
	w.mu.Lock()
	w.sent[order] = sent
	w.mu.Unlock()
}

func (w *decisionWatcher) run(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		fs := w.cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != w.decisions {
				w.mu.Lock()
				if _, ok := w.resultAt[string(r.Key)]; !ok {
					w.resultAt[string(r.Key)] = now
				}
				w.mu.Unlock()
				return
			}
			var d schemas.RoutingDecision
			if schemas.RoutingDecisions.Decode(r.Value, &d) != nil {
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if _, dup := w.seenAt[d.OrderID]; dup {
				w.c.dups++
				return
			}
			w.seenAt[d.OrderID] = now
			w.last = now
			c := &w.c
			c.orders++
			c.outcomes[d.Status]++
			if d.Split {
				c.splits++
			}
			if d.Attempts > 1 {
				c.replans++
			}
		})
	}
}

// progress is how many orders have a decision, and when the last came.
func (w *decisionWatcher) progress() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seenAt), w.last
}

// counts returns a copy of the counts so far.
func (w *decisionWatcher) counts() decisionCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.c
	c.outcomes = map[schemas.DecisionStatus]int{}
	for k, v := range w.c.outcomes {
		c.outcomes[k] = v
	}
	return c
}

// latencies are, sorted, decision (or, with results, first reservation
// result) visible minus Produce call of those of orders that have one.
func (w *decisionWatcher) latencies(orders []string, results bool) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := w.seenAt
	if results {
		at = w.resultAt
	}
	var ds []time.Duration
	for _, id := range orders {
		if t, ok := at[id]; ok {
			ds = append(ds, t.Sub(w.sent[id]))
		}
	}
	slices.Sort(ds)
	return ds
}

func (w *decisionWatcher) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

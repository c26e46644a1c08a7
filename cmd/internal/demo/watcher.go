package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// watcher reads the ats and dead-letter topics as a channel syncer would
// (read_committed) and keeps the last ATS of every SKU; it also reads the
// routing decisions and hands them to onDecision.
type watcher struct {
	onDecision func(schemas.RoutingDecision)
	cl         *kgo.Client
	cancel     context.CancelFunc
	done       chan struct{}

	atsUpdates  atomic.Int64
	deadLetters atomic.Int64
	decisions   atomic.Int64
	retried     atomic.Int64 // decisions of orders decided before: backordered lines retried
	splits      atomic.Int64
	backordered atomic.Int64 // decisions BACKORDERED or PARTIALLY_ROUTED
	decided     []uint64     // bit n: order n of the demo decided (run's only)
	orderPrefix string       // of the demo's order ids, before n
	prefix      string       // of the topics
	regressions atomic.Int64 // versions that did not increase
	last        atomic.Int64 // unix nanos of the last record read

	mu      sync.Mutex
	ats     map[string]schemas.AtsUpdate
	version map[string]int64
}

// newWatcher starts a watcher of the topics with prefix; orderPrefix is
// how the ids of the demo's orders begin (a decision of another order is
// never counted as retried).
func newWatcher(brokers, prefix, orderPrefix string, onDecision func(schemas.RoutingDecision)) (*watcher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers),
		kgo.ConsumeTopics(prefix+string(inventory.TopicATS), prefix+string(inventory.TopicDeadLetter), prefix+string(router.TopicDecisions)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cl: cl, cancel: cancel, done: make(chan struct{}), ats: map[string]schemas.AtsUpdate{},
		version: map[string]int64{}, onDecision: onDecision, orderPrefix: orderPrefix, prefix: prefix}
	w.last.Store(time.Now().UnixNano())
	go w.run(ctx)
	return w, nil
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	var u schemas.AtsUpdate
	for ctx.Err() == nil {
		fs := w.cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			w.last.Store(time.Now().UnixNano())
			switch strings.TrimPrefix(r.Topic, w.prefix) {
			case string(inventory.TopicDeadLetter):
				w.deadLetters.Add(1)
				return
			case string(router.TopicDecisions):
				var d schemas.RoutingDecision
				if schemas.RoutingDecisions.Decode(r.Value, &d) != nil {
					return
				}
				w.decisions.Add(1)
				if w.decidedBefore(d.OrderID) {
					w.retried.Add(1)
				}
				if d.Split {
					w.splits.Add(1)
				}
				if d.Status == schemas.DecisionBackordered || d.Status == schemas.DecisionPartiallyRouted {
					w.backordered.Add(1)
				}
				if w.onDecision != nil {
					w.onDecision(d)
				}
				return
			}
			if err := schemas.AtsUpdates.Decode(r.Value, &u); err != nil {
				return
			}
			w.atsUpdates.Add(1)
			w.mu.Lock()
			if u.Version <= w.version[u.SKU] {
				w.regressions.Add(1)
			}
			w.version[u.SKU] = u.Version
			w.ats[u.SKU] = u
			w.mu.Unlock()
		})
	}
}

func (w *watcher) idleFor() time.Duration {
	return time.Since(time.Unix(0, w.last.Load()))
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

// progress prints a live one-line display: rewritten in place on a
// terminal, one line every five seconds otherwise.
type progress struct {
	out io.Writer
	o   *orders
	g   *generator
	w   *watcher
	tty bool
}

func newProgress(out io.Writer, g *generator, o *orders, w *watcher) *progress {
	tty := false
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{out: out, g: g, o: o, w: w, tty: tty}
}

func (p *progress) run(ctx context.Context) {
	every := 5 * time.Second
	if p.tty {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := p.g.movements.Load()
		line := fmt.Sprintf("movements=%d (%.0f/s) ats_updates=%d dead_letters=%d retries=%d orders=%d decisions=%d splits=%d hot ATS: %s",
			n, float64(n-prev)/every.Seconds(), p.w.atsUpdates.Load(), p.w.deadLetters.Load(), p.g.retries.Load(),
			p.o.placed.Load(), p.w.decisions.Load(), p.w.splits.Load(), p.hot())
		prev = n
		if p.tty {
			fmt.Fprintf(p.out, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(p.out, line)
		}
	}
}

// hot shows the ATS of the three most popular SKUs.
func (p *progress) hot() string {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	var parts []string
	for i := uint64(0); i < 3; i++ {
		s := skuName(i)
		if v, ok := p.w.ats[s]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", s, v.ATS))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// decidedBefore reports whether order id (orderPrefix then n) had a decision
// already, and notes that it has: one bit per order of the demo.
func (w *watcher) decidedBefore(id string) bool {
	num, ok := strings.CutPrefix(id, w.orderPrefix)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n >= 1<<28 { // 32 MiB of bits at most
		return false
	}
	i, bit := n/64, uint64(1)<<(n%64)
	if i >= uint64(len(w.decided)) {
		w.decided = append(w.decided, make([]uint64, i+1-uint64(len(w.decided)))...)
	}
	seen := w.decided[i]&bit != 0
	w.decided[i] |= bit
	return seen
}

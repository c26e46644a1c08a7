package topology

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// globalReader keeps the global tables: it reads every partition of every
// global topic from the beginning, read_committed, applies each record with
// the topic's Apply function, and queues the changed keys for the tasks.
// load returns once the tables hold everything up to the topics' last
// stable offsets at start-up; after that a goroutine tails them.
type globalReader struct {
	e      *Engine
	cl     *kgo.Client
	apply  map[string]func(key, value []byte) error
	topic  map[string]Topic // prefixed -> unprefixed
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changes []globalChange
	index   map[string]int // topic+"\x00"+key -> position in changes
}

type globalChange struct {
	topic Topic
	key   []byte
	ts    int64
}

func newGlobalReader(e *Engine) *globalReader {
	g := &globalReader{e: e, apply: map[string]func(k, v []byte) error{}, topic: map[string]Topic{},
		index: map[string]int{}, done: make(chan struct{})}
	for _, gl := range e.topo.Globals {
		name := e.cfg.TopicPrefix + string(gl.Topic)
		g.apply[name] = gl.Apply
		g.topic[name] = gl.Topic
	}
	return g
}

func (g *globalReader) load(ctx context.Context) error {
	if len(g.apply) == 0 {
		close(g.done)
		return nil
	}
	ends := map[string]map[int32]int64{}
	offsets := map[string]map[int32]kgo.Offset{}
	for name := range g.apply {
		n := g.e.counts[name]
		ends[name] = map[int32]int64{}
		offsets[name] = map[int32]kgo.Offset{}
		for p := int32(0); p < n; p++ {
			_, end, err := g.e.stableEnd(ctx, name, p)
			if err != nil {
				return err
			}
			if end > 0 {
				ends[name][p] = end
			}
			offsets[name][p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(g.e.clientOpts(
		kgo.ConsumePartitions(offsets),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("topology: global reader: %w", err)
	}
	g.cl = cl
	pending := 0
	for _, m := range ends {
		pending += len(m)
	}
	for pending > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			cl.Close()
			return err
		}
		if err := g.handle(fs, false); err != nil {
			cl.Close()
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := ends[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(ends[r.Topic], r.Partition)
				pending--
			}
		})
	}
	g.e.log.Info("global tables loaded", "topics", len(g.apply))
	runCtx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.tail(runCtx)
	return nil
}

func (g *globalReader) tail(ctx context.Context) {
	defer close(g.done)
	for ctx.Err() == nil {
		fs := g.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		if err := g.handle(fs, true); err != nil {
			g.e.log.Error("global table", "err", err)
		}
	}
}

// handle applies the records of fs. Bad records are logged and counted, not
// fatal: a global table must not stop every partition.
func (g *globalReader) handle(fs kgo.Fetches, notify bool) error {
	var ferr error
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			ferr = fmt.Errorf("topology: reading global %s[%d]: %w", t, p, err)
		}
	})
	if ferr != nil {
		return ferr
	}
	fs.EachRecord(func(r *kgo.Record) {
		if r.Attrs.IsControl() {
			return
		}
		if err := g.apply[r.Topic](r.Key, r.Value); err != nil {
			g.e.m.globalErrors.Inc()
			g.e.log.Warn("bad global table record skipped", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "err", err)
			return
		}
		if notify {
			g.note(globalChange{topic: g.topic[r.Topic], key: r.Key, ts: r.Timestamp.UnixMilli()})
		}
	})
	return nil
}

// note queues a change, keeping one entry per key (the newest time).
func (g *globalReader) note(c globalChange) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := string(c.topic) + "\x00" + string(c.key)
	if i, ok := g.index[k]; ok {
		g.changes[i].ts = max(g.changes[i].ts, c.ts)
		return
	}
	g.index[k] = len(g.changes)
	g.changes = append(g.changes, c)
}

// requeue puts back changes whose transaction did not commit (a newer
// change of the same key keeps its place).
func (g *globalReader) requeue(cs []globalChange) {
	for _, c := range cs {
		g.note(c)
	}
}

// drain returns and forgets the queued changes.
func (g *globalReader) drain() []globalChange {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.changes
	g.changes = nil
	clear(g.index)
	return out
}

func (g *globalReader) close() {
	if g.cancel != nil {
		g.cancel()
	}
	if g.cl != nil {
		g.cl.Close()
	}
	<-g.done
}

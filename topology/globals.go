package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// globalReader keeps the global tables: it reads every partition of every
// global topic from the beginning, read_committed, applies each record with
// the topic's Apply function, and records (position, key) of every record
// in a history. load returns once the tables hold everything up to the
// topics' last stable offsets at start-up; after that a goroutine tails
// them.
//
// # Delivering changes to tasks
//
// Each task persists, in its store and inside its transactions, the
// positions of the global topics its outputs reflect (Positions). In every
// transaction the runtime hands the task the keys that changed between the
// task's positions and the reader's, then stores the reader's positions. So
// a change is delivered exactly when the task's state commits with it: an
// aborted transaction delivers it again, and a change made while the
// engine was down, or while a partition moved between instances, reaches
// the partition when it next runs.
type globalReader struct {
	e      *Engine
	cl     *kgo.Client
	apply  map[string]func(key, value []byte) error
	topic  map[string]Topic // prefixed -> unprefixed
	silent map[string]bool  // prefixed, Global.Silent
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	pos  Positions     // next offset per topic partition, after applying
	hist []globalEntry // every record applied, in order; bounded by maxHistory
	// histStart are the positions at which hist begins; a task behind them
	// gets "everything may have changed" (a nil key).
	histStart Positions
	// last is the newest value of every key of the tables tasks are told
	// of (prefixed topic, 0x00, key): a record with the same value is no
	// change. A job that republishes the node table every few minutes
	// would otherwise restart every node's re-emit each time, and the SKUs
	// late in a long re-emit would never be re-emitted.
	last map[string][]byte
	// newest is the newest record time (ms) of each table: the time of an
	// "everything may have changed".
	newest map[string]int64
}

// maxHistory bounds the change history; past it the oldest half is dropped.
const maxHistory = 1 << 20

type globalEntry struct {
	topic  Topic // unprefixed
	prefix string
	part   int32
	offset int64
	key    []byte
	ts     int64
}

// Positions are next offsets per prefixed global topic and partition.
type Positions map[string]map[int32]int64

func (p Positions) clone() Positions {
	out := Positions{}
	for t, m := range p {
		out[t] = maps.Clone(m)
	}
	return out
}

func (p Positions) equal(o Positions) bool {
	if len(p) != len(o) {
		return false
	}
	for t, m := range p {
		if !maps.Equal(m, o[t]) {
			return false
		}
	}
	return true
}

func newGlobalReader(e *Engine) *globalReader {
	g := &globalReader{e: e, apply: map[string]func(k, v []byte) error{}, topic: map[string]Topic{}, silent: map[string]bool{},
		done: make(chan struct{}), pos: Positions{}, histStart: Positions{}, last: map[string][]byte{}, newest: map[string]int64{}}
	for _, gl := range e.topo.Globals {
		name := e.cfg.TopicPrefix + string(gl.Topic)
		g.apply[name] = gl.Apply
		g.topic[name] = gl.Topic
		g.silent[name] = gl.Silent
		g.pos[name] = map[int32]int64{}
		g.histStart[name] = map[int32]int64{}
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
			start, end, err := g.e.stableEnd(ctx, name, p, g.e.cfg.TxnTimeout+5*time.Second, false)
			if err != nil {
				return err
			}
			g.pos[name][p] = start
			g.histStart[name][p] = start
			if end > start {
				ends[name][p] = end
			}
			offsets[name][p] = kgo.NewOffset().At(start)
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
		if err := g.handle(fs); err != nil {
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
		if err := g.handle(fs); err != nil {
			g.e.log.Error("global table", "err", err)
			if fs.NumRecords() == 0 { // an error that persists is not logged in a tight loop
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// handle applies the records of fs. Bad records are logged and counted, not
// fatal: a global table must not stop every partition.
func (g *globalReader) handle(fs kgo.Fetches) error {
	var ferr error
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			ferr = fmt.Errorf("topology: reading global %s[%d]: %w", t, p, err)
		}
	})
	// The records that came back are applied whatever error another
	// partition (or this one, after them) reported: the client has moved
	// past them and does not fetch them again.
	fs.EachRecord(func(r *kgo.Record) {
		if !r.Attrs.IsControl() {
			if err := g.apply[r.Topic](r.Key, r.Value); err != nil {
				g.e.m.globalErrors.Inc()
				g.e.log.Warn("bad global table record skipped", "topic", r.Topic, "partition", r.Partition,
					"offset", r.Offset, "err", err)
			}
		}
		g.record(r)
	})
	return ferr
}

// record notes r in the history and advances the position. Control records
// and bad records advance the position too (they change no table).
func (g *globalReader) record(r *kgo.Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !r.Attrs.IsControl() && !g.silent[r.Topic] {
		g.newest[r.Topic] = max(g.newest[r.Topic], r.Timestamp.UnixMilli())
		k := r.Topic + "\x00" + string(r.Key)
		if v, ok := g.last[k]; !ok || !bytes.Equal(v, r.Value) || (v == nil) != (r.Value == nil) {
			g.last[k] = bytes.Clone(r.Value)
			g.hist = append(g.hist, globalEntry{topic: g.topic[r.Topic], prefix: r.Topic, part: r.Partition,
				offset: r.Offset, key: r.Key, ts: r.Timestamp.UnixMilli()})
		}
	}
	g.pos[r.Topic][r.Partition] = r.Offset + 1
	if len(g.hist) > maxHistory {
		drop := len(g.hist) / 2
		for _, h := range g.hist[:drop] {
			g.histStart[h.prefix][h.part] = max(g.histStart[h.prefix][h.part], h.offset+1)
		}
		g.hist = append([]globalEntry(nil), g.hist[drop:]...)
	}
}

// positions returns the reader's current positions in the tables whose
// changes tasks are told of (not the silent ones).
func (g *globalReader) positions() Positions {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := Positions{}
	for t, m := range g.pos {
		if !g.silent[t] {
			out[t] = maps.Clone(m)
		}
	}
	return out
}

// changes returns the entries after from up to to, one per key (the
// newest), and the topics for which from is older than the history (the
// task must assume every key of those changed; their entries have no key,
// and the newest record time of the table).
func (g *globalReader) changes(from, to Positions) (entries, all []globalEntry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, parts := range g.histStart {
		for p, start := range parts {
			if f, ok := from[name][p]; (!ok || f < start) && to[name][p] > f {
				all = append(all, globalEntry{topic: g.topic[name], prefix: name, ts: g.newest[name]})
				break
			}
		}
	}
	newest := map[string]int{}
	for _, h := range g.hist {
		f := from[h.prefix][h.part]
		if h.offset < f || h.offset >= to[h.prefix][h.part] {
			continue
		}
		k := h.prefix + "\x00" + string(h.key)
		if i, ok := newest[k]; ok {
			entries[i] = h
			continue
		}
		newest[k] = len(entries)
		entries = append(entries, h)
	}
	return entries, all
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

// globalsKey is the store key under which a task's global positions live in
// its first store (reserved for the runtime).
var globalsKey = []byte("~invroute/global-positions")

func encodePositions(p Positions) []byte {
	b, _ := json.Marshal(p) // a map of maps of ints cannot fail
	return b
}

func decodePositions(b []byte) (Positions, error) {
	var p Positions
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("topology: corrupt global positions %q: %w", b, err)
	}
	return p, nil
}

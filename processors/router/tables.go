package router

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/invroute/invroute/schemas"
)

// Availability is the router's replicated, read-only table of per-node
// stock, built from the ats topic (like a Kafka Streams GlobalKTable). It is
// safe for concurrent use: the global reader applies records while tasks
// read.
//
// It also keeps a log of the SKUs whose availability rose at some node
// (Rises), for the retry of backordered lines: the last riseLog of them.
//
// Memory: about 24 bytes per (sku, node) with stock, plus the SKU key and
// 40 bytes per SKU; node ids are interned; the log holds up to riseLog SKU
// strings.
type Availability struct {
	mu    sync.RWMutex
	skus  map[string]*skuStock
	nodes []string        // interned node ids
	index map[string]int  // node id -> position in nodes
	rises ringLog[string] // SKUs that rose, riseLog of them
	had   []int64         // rose's scratch space, one per node
}

// skuStock is what the table knows of one SKU.
type skuStock struct {
	nodes []stockEntry
	rose  uint64 // the rise log's position after its last rise (0: none)
}

type stockEntry struct {
	node     uint32
	onHand   int64
	reserved int64
}

// riseLog bounds the log of rises: a task that falls further behind
// looks at every SKU it has orders waiting for.
const riseLog = 1 << 16

// ringLog keeps the newest size entries appended, numbered from 0 on; the
// table that owns it guards it.
type ringLog[T any] struct {
	size    uint64
	entries []T
	seq     uint64 // entries appended so far
}

// add appends v and returns the position after it.
func (r *ringLog[T]) add(v T) uint64 {
	if uint64(len(r.entries)) < r.size {
		r.entries = append(r.entries, v)
	} else {
		r.entries[r.seq%r.size] = v
	}
	r.seq++
	return r.seq
}

// since calls fn, in order, with the entries from position from on, and
// returns the next position. lost reports entries no longer kept (more
// than size since from): fn has then seen only the newest.
func (r *ringLog[T]) since(from uint64, fn func(T)) (next uint64, lost bool) {
	if r.seq-min(from, r.seq) > r.size {
		from, lost = r.seq-r.size, true
	}
	for i := from; i < r.seq; i++ {
		fn(r.entries[i%r.size])
	}
	return r.seq, lost
}

// rose reports whether some node has more to sell (on hand less reserved,
// at least 0) in next than in prev; had is scratch space (Apply's, under
// the lock), indexed by interned node.
func rose(prev, next []stockEntry, had []int64) bool {
	for _, p := range prev {
		had[p.node] = max(0, p.onHand-p.reserved)
	}
	up := false
	for _, e := range next {
		up = up || max(0, e.onHand-e.reserved) > had[e.node]
	}
	for _, p := range prev {
		had[p.node] = 0
	}
	return up
}

// NewAvailability returns an empty table.
func NewAvailability() *Availability {
	return &Availability{skus: map[string]*skuStock{}, index: map[string]int{}, rises: ringLog[string]{size: riseLog}}
}

// Apply applies one record of the ats topic; an empty value deletes.
func (a *Availability) Apply(key, value []byte) error {
	if len(value) == 0 {
		a.mu.Lock()
		delete(a.skus, string(key))
		a.mu.Unlock()
		return nil
	}
	var u schemas.AtsUpdate
	if err := schemas.AtsUpdates.Decode(value, &u); err != nil {
		return fmt.Errorf("router: ats record %q: %w", key, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	es := make([]stockEntry, 0, len(u.Nodes))
	for _, n := range u.Nodes {
		i, ok := a.index[n.NodeID]
		if !ok {
			i = len(a.nodes)
			a.nodes = append(a.nodes, n.NodeID)
			a.index[n.NodeID] = i
		}
		es = append(es, stockEntry{node: uint32(i), onHand: n.OnHand, reserved: n.Reserved})
	}
	st := a.skus[u.SKU]
	if st == nil {
		st = &skuStock{}
		a.skus[u.SKU] = st
	}
	if len(a.had) < len(a.nodes) {
		a.had = make([]int64, len(a.nodes))
	}
	if rose(st.nodes, es, a.had) {
		st.rose = a.rises.add(u.SKU)
	}
	st.nodes = es
	return nil
}

// Rises calls fn, in order, with the SKUs whose availability rose at some
// node from rise from on (0: the first), and returns the next position.
// lost reports rises no longer in the log (more than riseLog since from):
// fn has then seen only the newest.
func (a *Availability) Rises(from uint64, fn func(sku string)) (next uint64, lost bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.rises.since(from, fn)
}

// Seq is the position after the newest rise.
func (a *Availability) Seq() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.rises.seq
}

// RoseAt is the position after sku's newest rise (0: none known).
func (a *Availability) RoseAt(sku string) uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if st := a.skus[sku]; st != nil {
		return st.rose
	}
	return 0
}

// Stock returns the last known stock of sku at node.
func (a *Availability) Stock(sku, node string) (schemas.NodeATS, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	i, ok := a.index[node]
	if !ok {
		return schemas.NodeATS{}, false
	}
	st := a.skus[sku]
	if st == nil {
		return schemas.NodeATS{}, false
	}
	for _, e := range st.nodes {
		if e.node == uint32(i) {
			return schemas.NodeATS{NodeID: node, OnHand: e.onHand, Reserved: e.reserved}, true
		}
	}
	return schemas.NodeATS{}, false
}

// SKUs returns how many SKUs the table holds.
func (a *Availability) SKUs() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.skus)
}

// Loads is the replicated table of shipments each router partition gave
// each node per day (the node-load topic), so that every partition sees the
// capacity the others used. Safe for concurrent use.
type Loads struct {
	mu sync.RWMutex
	m  map[string]map[int32]schemas.NodeLoad
	// falls logs, fallLog of them, each time a partition's count of a
	// node's shipments fell within a day (a cancelled shipment gave its
	// capacity back).
	falls ringLog[Fall]
}

// Fall is a partition's count of a node's shipments falling within a day.
type Fall struct {
	Node      string
	Partition int32
	Day       int64
	Before    int64 // every partition's shipments at the node that day, before it fell, as the table had them
	counts    []partCount
}

type partCount struct {
	p int32
	n int64
}

// BeforeWith is Before with partition part's count taken as own if that
// is higher: the table learns a partition's count only once its
// transaction committed and the record was read back, and the partition
// itself knows it sooner; a count of its own that fell since is not the one
// at the time of this fall (its own fall is noted as it happens).
func (f Fall) BeforeWith(part int32, own int64) int64 {
	for _, c := range f.counts {
		if c.p == part {
			return f.Before - c.n + max(own, c.n)
		}
	}
	return f.Before + own
}

// fallLog bounds the log of falls; a reader further behind is told so.
const fallLog = 4096

// NewLoads returns an empty table.
func NewLoads() *Loads {
	return &Loads{m: map[string]map[int32]schemas.NodeLoad{}, falls: ringLog[Fall]{size: fallLog}}
}

// Falls calls fn, in order, with the falls from position from on, and
// returns the next position. lost reports falls no longer in the log (more
// than fallLog since from): fn has then seen only the newest.
func (l *Loads) Falls(from uint64, fn func(Fall)) (next uint64, lost bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.falls.since(from, fn)
}

// FallSeq is the position after the newest fall.
func (l *Loads) FallSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.falls.seq
}

// LoadKey is the record key of a partition's load at a node.
func LoadKey(node string, partition int32) string {
	return node + "/" + strconv.Itoa(int(partition))
}

// Apply applies one record of the node-load topic.
func (l *Loads) Apply(key, value []byte) error {
	if len(value) == 0 {
		node, p, ok := strings.Cut(string(key), "/")
		n, err := strconv.Atoi(p)
		if !ok || err != nil {
			return fmt.Errorf("router: node-load key %q: want node/partition", key)
		}
		l.mu.Lock()
		delete(l.m[node], int32(n))
		l.mu.Unlock()
		return nil
	}
	var v schemas.NodeLoad
	if err := schemas.NodeLoads.Decode(value, &v); err != nil {
		return fmt.Errorf("router: node-load record %q: %w", key, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[v.NodeID] == nil {
		l.m[v.NodeID] = map[int32]schemas.NodeLoad{}
	}
	if old, ok := l.m[v.NodeID][v.Partition]; ok && old.Day == v.Day && v.Shipments < old.Shipments {
		f := Fall{Node: v.NodeID, Partition: v.Partition, Day: v.Day}
		for p, o := range l.m[v.NodeID] {
			if o.Day == v.Day && o.Shipments > 0 {
				f.Before += o.Shipments
				f.counts = append(f.counts, partCount{p, o.Shipments})
			}
		}
		l.falls.add(f)
	}
	l.m[v.NodeID][v.Partition] = v
	return nil
}

// Other is how many shipments partitions other than mine gave node on
// day; a partition that counts a later day already has its count of that
// day taken for day's (as its own store does: loadOn).
func (l *Loads) Other(node string, day int64, mine int32) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for p, v := range l.m[node] {
		if p != mine && v.Day >= day {
			n += v.Shipments
		}
	}
	return n
}

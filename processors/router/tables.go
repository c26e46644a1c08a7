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
// Memory: about 24 bytes per (sku, node) with stock plus the SKU key and 8
// bytes of updated_at; node ids are interned; the log of rises holds up to
// riseLog SKU strings.
//
// It also keeps a log of the SKUs whose availability rose (Rises), for the
// retry of backordered lines: the last riseLog of them.
type Availability struct {
	mu    sync.RWMutex
	skus  map[string][]stockEntry
	at    map[string]int64 // sku -> updated_at of its last update
	nodes []string         // interned node ids
	index map[string]int   // node id -> position in nodes
	rises []string         // ring of riseLog SKUs
	seq   uint64           // rises appended so far
}

// riseLog bounds the log of rises: a task that falls further behind
// looks at every SKU it has orders waiting for.
const riseLog = 1 << 16

// available is what a SKU's entries leave to sell, over all nodes.
func available(es []stockEntry) int64 {
	var n int64
	for _, e := range es {
		n += max(0, e.onHand-e.reserved)
	}
	return n
}

type stockEntry struct {
	node     uint32
	onHand   int64
	reserved int64
}

// NewAvailability returns an empty table.
func NewAvailability() *Availability {
	return &Availability{skus: map[string][]stockEntry{}, at: map[string]int64{}, index: map[string]int{}}
}

// Apply applies one record of the ats topic; an empty value deletes.
func (a *Availability) Apply(key, value []byte) error {
	if len(value) == 0 {
		a.mu.Lock()
		delete(a.skus, string(key))
		delete(a.at, string(key))
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
	if available(es) > available(a.skus[u.SKU]) {
		if len(a.rises) < riseLog {
			a.rises = append(a.rises, u.SKU)
		} else {
			a.rises[a.seq%riseLog] = u.SKU
		}
		a.seq++
	}
	a.skus[u.SKU] = es
	a.at[u.SKU] = u.UpdatedAt
	return nil
}

// Rises calls fn, in order, with the SKUs whose availability (on hand less
// reserved, summed over the nodes) rose from rise from on (0: the first),
// and returns the next position. lost reports rises no longer in the log
// (more than riseLog since from): fn has then seen only the newest.
func (a *Availability) Rises(from uint64, fn func(sku string)) (next uint64, lost bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.seq-min(from, a.seq) > riseLog {
		from, lost = a.seq-riseLog, true
	}
	for i := from; i < a.seq; i++ {
		fn(a.rises[i%riseLog])
	}
	return a.seq, lost
}

// UpdatedAt is the updated_at of sku's last update (0: none).
func (a *Availability) UpdatedAt(sku string) int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.at[sku]
}

// Stock returns the last known stock of sku at node.
func (a *Availability) Stock(sku, node string) (schemas.NodeATS, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	i, ok := a.index[node]
	if !ok {
		return schemas.NodeATS{}, false
	}
	for _, e := range a.skus[sku] {
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
}

// NewLoads returns an empty table.
func NewLoads() *Loads { return &Loads{m: map[string]map[int32]schemas.NodeLoad{}} }

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
	l.m[v.NodeID][v.Partition] = v
	return nil
}

// Other is how many shipments partitions other than mine gave node on day.
func (l *Loads) Other(node string, day int64, mine int32) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for p, v := range l.m[node] {
		if p != mine && v.Day == day {
			n += v.Shipments
		}
	}
	return n
}

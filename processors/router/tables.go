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
// Memory: about 24 bytes per (sku, node) with stock plus the SKU key; node
// ids are interned.
type Availability struct {
	mu    sync.RWMutex
	skus  map[string][]stockEntry
	nodes []string       // interned node ids
	index map[string]int // node id -> position in nodes
}

type stockEntry struct {
	node     uint32
	onHand   int64
	reserved int64
}

// NewAvailability returns an empty table.
func NewAvailability() *Availability {
	return &Availability{skus: map[string][]stockEntry{}, index: map[string]int{}}
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
	a.skus[u.SKU] = es
	return nil
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

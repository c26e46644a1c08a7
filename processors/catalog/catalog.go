// Package catalog holds the replicated, read-only tables of fulfillment
// nodes and sales channels that every instance keeps whole (like a Kafka
// Streams GlobalKTable), built from the compacted nodes and channels topics.
package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/invroute/invroute/schemas"
)

// Catalog is safe for concurrent use: one goroutine applies records while
// processors read immutable snapshots.
type Catalog struct {
	ids  schemas.SchemaIDs
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[Snapshot]
}

// Snapshot is an immutable view of the tables.
type Snapshot struct {
	nodes    map[string]*schemas.Node
	sorted   []*schemas.Node    // nodes sorted by NodeID
	channels []*schemas.Channel // sorted by ChannelID
}

// New returns an empty catalog. ids are the Confluent schema ids accepted
// on the nodes and channels topics.
func New(ids schemas.SchemaIDs) *Catalog {
	c := &Catalog{ids: ids}
	c.snap.Store(&Snapshot{nodes: map[string]*schemas.Node{}})
	return c
}

// Snapshot returns the current tables.
func (c *Catalog) Snapshot() *Snapshot { return c.snap.Load() }

// ApplyNode applies one record of the nodes topic; an empty value deletes.
func (c *Catalog) ApplyNode(key, value []byte) error {
	var n *schemas.Node
	if len(value) > 0 {
		n = new(schemas.Node)
		if err := schemas.Nodes.DecodeInput(value, n, c.ids); err != nil {
			return err
		}
		if n.NodeID != string(key) {
			return fmt.Errorf("catalog: node key %q disagrees with node_id %q", key, n.NodeID)
		}
		if err := CheckNode(n); err != nil {
			return fmt.Errorf("catalog: node %q: %w", n.NodeID, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	next := &Snapshot{nodes: maps.Clone(old.nodes), channels: old.channels}
	if n == nil {
		delete(next.nodes, string(key))
	} else {
		next.nodes[n.NodeID] = n
	}
	next.sorted = slices.SortedFunc(maps.Values(next.nodes), func(a, b *schemas.Node) int { return strings.Compare(a.NodeID, b.NodeID) })
	c.snap.Store(next)
	return nil
}

// CheckNode refuses what would make the rules misbehave: an id that
// schemas.CheckID refuses, coordinates out of range, and negative safety
// stock (which would sell more than on_hand - reserved) or daily capacity
// (0 already means unlimited). The catalog skips such a node record.
func CheckNode(n *schemas.Node) error {
	if err := schemas.CheckID("node_id", n.NodeID); err != nil {
		return err
	}
	if err := schemas.CheckCoordinates(n.Lat, n.Lon); err != nil {
		return err
	}
	if n.SafetyStock < 0 || n.DailyCapacity < 0 {
		return fmt.Errorf("safety_stock (%d) and daily_capacity (%d) must not be negative", n.SafetyStock, n.DailyCapacity)
	}
	for sku, v := range n.SKUSafetyStock {
		if v < 0 {
			return fmt.Errorf("sku_safety_stock of %q is %d: it must not be negative", sku, v)
		}
	}
	return nil
}

// CheckChannel refuses a channel id that schemas.CheckID refuses and
// buffers out of range. The catalog skips such a channel record.
func CheckChannel(ch *schemas.Channel) error {
	if err := schemas.CheckID("channel_id", ch.ChannelID); err != nil {
		return err
	}
	if ch.BufferPercent < 0 || ch.BufferPercent > 100 || ch.BufferUnits < 0 {
		return fmt.Errorf("buffer_percent must be 0..100 and buffer_units >= 0")
	}
	return nil
}

// ApplyChannel applies one record of the channels topic; an empty value
// deletes.
func (c *Catalog) ApplyChannel(key, value []byte) error {
	var ch *schemas.Channel
	if len(value) > 0 {
		ch = new(schemas.Channel)
		if err := schemas.DecodeChannel(value, ch, c.ids); err != nil {
			return err
		}
		if ch.ChannelID != string(key) {
			return fmt.Errorf("catalog: channel key %q disagrees with channel_id %q", key, ch.ChannelID)
		}
		if err := CheckChannel(ch); err != nil {
			return fmt.Errorf("catalog: channel %q: %w", ch.ChannelID, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	chans := slices.DeleteFunc(slices.Clone(old.channels), func(x *schemas.Channel) bool { return x.ChannelID == string(key) })
	if ch != nil {
		i, _ := slices.BinarySearchFunc(chans, ch.ChannelID, func(x *schemas.Channel, id string) int {
			switch {
			case x.ChannelID < id:
				return -1
			case x.ChannelID > id:
				return 1
			}
			return 0
		})
		chans = slices.Insert(chans, i, ch)
	}
	c.snap.Store(&Snapshot{nodes: old.nodes, sorted: old.sorted, channels: chans})
	return nil
}

// Node returns the node with the given id, or nil.
func (s *Snapshot) Node(id string) *schemas.Node { return s.nodes[id] }

// Channels returns every channel sorted by id. Do not modify.
func (s *Snapshot) Channels() []*schemas.Channel { return s.channels }

// Nodes returns every node sorted by id. Do not modify.
func (s *Snapshot) Nodes() []*schemas.Node { return s.sorted }

// Channel returns the channel with the given id, or nil.
func (s *Snapshot) Channel(id string) *schemas.Channel {
	i, ok := slices.BinarySearchFunc(s.channels, id, func(c *schemas.Channel, id string) int { return strings.Compare(c.ChannelID, id) })
	if !ok {
		return nil
	}
	return s.channels[i]
}

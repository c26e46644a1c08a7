package catalog

import (
	"math"
	"strings"
	"testing"

	"github.com/invroute/invroute/schemas"
)

func enc[T any](t *testing.T, c interface{ Encode(*T) ([]byte, error) }, v *T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCatalog(t *testing.T) {
	c := New(schemas.SchemaIDs{7})
	before := c.Snapshot()
	w1 := &schemas.Node{NodeID: "W1", Type: schemas.Warehouse, Active: true}
	if err := c.ApplyNode([]byte("W1"), enc(t, schemas.Nodes, w1)); err != nil {
		t.Fatal(err)
	}
	// Confluent framing with an accepted id works too.
	s1 := &schemas.Node{NodeID: "S1", Type: schemas.Store}
	if err := c.ApplyNode([]byte("S1"), schemas.Frame(nil, 7, enc(t, schemas.Nodes, s1))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web", "app"} {
		ch := &schemas.Channel{ChannelID: id, BufferPercent: 5}
		if err := c.ApplyChannel([]byte(id), enc(t, schemas.Channels, ch)); err != nil {
			t.Fatal(err)
		}
	}
	snap := c.Snapshot()
	if snap.Node("W1") == nil || snap.Node("S1") == nil || len(snap.Nodes()) != 2 {
		t.Fatalf("nodes: %v", snap.Nodes())
	}
	if ch := snap.Channels(); len(ch) != 2 || ch[0].ChannelID != "app" || ch[1].ChannelID != "web" {
		t.Fatalf("channels not sorted: %v", ch)
	}
	if before.Node("W1") != nil {
		t.Fatal("an old snapshot changed")
	}
	// Tombstones delete.
	if err := c.ApplyNode([]byte("W1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyChannel([]byte("web"), nil); err != nil {
		t.Fatal(err)
	}
	if c.Snapshot().Node("W1") != nil || len(c.Snapshot().Channels()) != 1 {
		t.Fatal("tombstones did not delete")
	}
	// Bad records are refused and change nothing.
	for name, apply := range map[string]func() error{
		"garbage":   func() error { return c.ApplyNode([]byte("X"), []byte{1, 2, 3}) },
		"key":       func() error { return c.ApplyNode([]byte("X"), enc(t, schemas.Nodes, s1)) },
		"schema id": func() error { return c.ApplyNode([]byte("S1"), schemas.Frame(nil, 8, enc(t, schemas.Nodes, s1))) },
		"buffer": func() error {
			return c.ApplyChannel([]byte("b"), enc(t, schemas.Channels, &schemas.Channel{ChannelID: "b", BufferPercent: 101}))
		},
		"node id": func() error {
			n := &schemas.Node{NodeID: "W\x00", Type: schemas.Warehouse}
			return c.ApplyNode([]byte(n.NodeID), enc(t, schemas.Nodes, n))
		},
		"long node id": func() error {
			n := &schemas.Node{NodeID: strings.Repeat("w", schemas.MaxIDBytes+1), Type: schemas.Warehouse}
			return c.ApplyNode([]byte(n.NodeID), enc(t, schemas.Nodes, n))
		},
		"coordinates": func() error {
			return c.ApplyNode([]byte("W2"), enc(t, schemas.Nodes, &schemas.Node{NodeID: "W2", Type: schemas.Warehouse, Lat: math.NaN()}))
		},
		"safety stock": func() error {
			return c.ApplyNode([]byte("W2"), enc(t, schemas.Nodes, &schemas.Node{NodeID: "W2", Type: schemas.Warehouse, SafetyStock: -1}))
		},
		"sku safety stock": func() error {
			n := &schemas.Node{NodeID: "W2", Type: schemas.Warehouse, SKUSafetyStock: map[string]int32{"A": -5}}
			return c.ApplyNode([]byte("W2"), enc(t, schemas.Nodes, n))
		},
		"capacity": func() error {
			return c.ApplyNode([]byte("W2"), enc(t, schemas.Nodes, &schemas.Node{NodeID: "W2", Type: schemas.Warehouse, DailyCapacity: -1}))
		},
		"channel id": func() error {
			return c.ApplyChannel([]byte("b\n"), enc(t, schemas.Channels, &schemas.Channel{ChannelID: "b\n"}))
		},
		"channel key": func() error {
			return c.ApplyChannel([]byte("z"), enc(t, schemas.Channels, &schemas.Channel{ChannelID: "b"}))
		},
	} {
		snap := c.Snapshot()
		if err := apply(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if c.Snapshot() != snap {
			t.Errorf("%s: snapshot changed", name)
		}
	}
	if err := c.ApplyNode([]byte("X"), []byte{1}); err == nil || strings.Contains(err.Error(), "panic") {
		t.Errorf("bad bytes: %v", err)
	}
}

// A channel written by the inventory-only version (the channels topic is
// compacted: its records outlive an upgrade) is still a channel.
func TestChannelOfTheInventoryOnlyVersion(t *testing.T) {
	c := New(nil)
	old := &schemas.Channel{ChannelID: "web", BufferUnits: 3}
	if err := c.ApplyChannel([]byte("web"), enc(t, schemas.ChannelsV1, old)); err != nil {
		t.Fatal(err)
	}
	if ch := c.Snapshot().Channel("web"); ch == nil || ch.BufferUnits != 3 || ch.MaxOrderValueCents != 0 || len(ch.ShipCountries) != 0 {
		t.Fatalf("channel: %+v", ch)
	}
}

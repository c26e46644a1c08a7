package inventory

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/invroute/invroute/schemas"
)

// Ids the rules cannot keep are invalid input: too long to store for
// every node of a SKU, or holding a control character, which would make
// two different (order, line) pairs one reservation key (state keys join
// ids with NUL) and two different (sku, movement_id) pairs one hash.
func TestValidateIDs(t *testing.T) {
	long := strings.Repeat("x", schemas.MaxIDBytes+1)
	ok := strings.Repeat("x", schemas.MaxIDBytes)
	for _, tc := range []struct {
		name string
		m    schemas.StockMovement
		want string // "" = valid
	}{
		{"longest ids", schemas.StockMovement{MovementID: ok, SKU: ok, NodeID: ok}, ""},
		{"long movement_id", schemas.StockMovement{MovementID: long, SKU: "A", NodeID: "W1"}, "movement_id is 257 bytes"},
		{"long sku", schemas.StockMovement{MovementID: "m", SKU: long, NodeID: "W1"}, "sku is 257 bytes"},
		{"long node_id", schemas.StockMovement{MovementID: "m", SKU: "A", NodeID: long}, "node_id is 257 bytes"},
		{"NUL in sku", schemas.StockMovement{MovementID: "m", SKU: "A\x00", NodeID: "W1"}, "sku holds control character 0x00 at byte 1"},
		{"NUL in movement_id", schemas.StockMovement{MovementID: "\x00B", SKU: "A", NodeID: "W1"}, "movement_id holds control character"},
		{"DEL in node_id", schemas.StockMovement{MovementID: "m", SKU: "A", NodeID: "W\x7f"}, "node_id holds control character 0x7f"},
		{"non-ASCII is fine", schemas.StockMovement{MovementID: "m", SKU: "Größe-42", NodeID: "Zürich"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			m.Type, m.Qty = schemas.Receipt, 1
			err := Validate([]byte(m.SKU), &m, 0)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (!IsInvalid(err) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an invalid-input error with %q", err, tc.want)
			}
		})
	}
	c := schemas.ReservationCommand{OrderID: "o", LineID: "1\x00x", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: 5}
	if err := ValidateCommand([]byte("A"), &c); !IsInvalid(err) || !strings.Contains(err.Error(), "line_id holds control character") {
		t.Fatalf("ValidateCommand with NUL in line_id = %v", err)
	}
	// A RELEASE finds a reservation that an older version may have made
	// with such ids: it is let through.
	c.Type, c.Qty = schemas.Release, 0
	if err := ValidateCommand([]byte("A"), &c); err != nil {
		t.Fatalf("RELEASE with NUL in line_id = %v, want nil", err)
	}
	c = schemas.ReservationCommand{OrderID: "o", LineID: "1", Type: schemas.Reserve, SKU: "A", NodeID: "W1", Qty: schemas.MaxQty + 1}
	if err := ValidateCommand([]byte("A"), &c); !IsInvalid(err) {
		t.Fatalf("ValidateCommand with qty %d = %v, want invalid", c.Qty, err)
	}
}

// A SKU's node list is bounded in bytes, so that its state and its
// AtsUpdate can always be encoded: movements at ever new nodes (valid,
// stock at unconfigured nodes is kept) are applied until the bound, then
// refused, and the state stays encodable and unchanged by the refusal.
func TestNodeListBound(t *testing.T) {
	st := newMemStore()
	p := New(Config{})
	id := func(i int) string { return fmt.Sprintf("%04d", i) + strings.Repeat("n", schemas.MaxIDBytes-4) }
	applied := 0
	var refused error
	for i := 0; i < 5000 && refused == nil; i++ {
		m := &schemas.StockMovement{MovementID: fmt.Sprint(i), SKU: "A", NodeID: id(i), Type: schemas.Receipt, Qty: 1, OccurredAt: 1}
		if _, err := p.Movement(st, []byte("A"), m, 1); err != nil {
			refused = err
			break
		}
		applied++
	}
	if !IsInvalid(refused) || !strings.Contains(refused.Error(), "more than") {
		t.Fatalf("after %d nodes: %v, want an invalid-input error for the node list's size", applied, refused)
	}
	if want := maxNodesBytes / nodeBytes(id(0)); applied != want {
		t.Fatalf("%d nodes applied, want %d", applied, want)
	}
	// The refused movement is not remembered: sent again (a WMS retry), it
	// is refused again, not taken for a duplicate of itself.
	again := &schemas.StockMovement{MovementID: fmt.Sprint(applied), SKU: "A", NodeID: id(applied), Type: schemas.Receipt, Qty: 1, OccurredAt: 1}
	if _, err := p.Movement(st, []byte("A"), again, 1); !IsInvalid(err) || p.Stats.Duplicates != 0 {
		t.Fatalf("the refused movement sent again: %v (duplicates %d), want refused again", err, p.Stats.Duplicates)
	}
	tables := &memTables{nodes: map[string]*schemas.Node{}, channels: map[string]*schemas.Channel{}}
	for i := 0; i < applied; i++ { // every node active: every entry of the AtsUpdate filled
		tables.nodes[id(i)] = &schemas.Node{NodeID: id(i), Active: true}
	}
	for i := 0; i < 100; i++ {
		c := fmt.Sprintf("channel-%03d", i)
		tables.channels[c] = &schemas.Channel{ChannelID: c}
	}
	var ats *schemas.AtsUpdate
	if err := p.Flush(st, tables, func(u *schemas.AtsUpdate) error { ats = u; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(st.skus["A"].Nodes) != applied {
		t.Fatalf("state has %d nodes, want %d", len(st.skus["A"].Nodes), applied)
	}
	if _, err := (skuStateCodec{}).Append(nil, st.skus["A"]); err != nil {
		t.Fatalf("state at the bound does not encode: %v", err)
	}
	if ats == nil || ats.ATS != int64(applied) {
		t.Fatalf("ATS update %v, want ats %d", ats, applied)
	}
	if _, err := schemas.AtsUpdates.Encode(ats); err != nil {
		t.Fatalf("AtsUpdate at the bound does not encode: %v", err)
	}
}

// The channel rule, computed so that it cannot overflow, equals the
// formula of the README wherever the formula does not overflow, and stays
// exact and non-negative where it would.
func TestChannelATS(t *testing.T) {
	for _, sum := range []int64{0, 1, 7, 99, 100, 101, 12345, 1 << 40, math.MaxInt64 / 100} {
		for _, pct := range []int32{0, 1, 10, 33, 99, 100} {
			for _, units := range []int32{0, 1, 5, 1000} {
				c := &schemas.Channel{BufferPercent: pct, BufferUnits: units}
				want := max(0, sum*int64(100-pct)/100-int64(units))
				if got := ChannelATS(sum, c); got != want {
					t.Fatalf("ChannelATS(%d, %d%%, %d) = %d, want %d", sum, pct, units, got, want)
				}
			}
		}
	}
	// Past where sum x 100 overflows: floor(MaxInt64 x 90 / 100) exactly.
	if got, want := ChannelATS(math.MaxInt64, &schemas.Channel{BufferPercent: 10}), int64(8301034833169298226); got != want {
		t.Fatalf("ChannelATS(MaxInt64, 10%%) = %d, want %d", got, want)
	}
	// Two huge nodes: ATS and channel ATS saturate, never wrap negative.
	st := &schemas.SKUState{SKU: "B", Nodes: []schemas.NodeStock{{NodeID: "DE1", OnHand: 5e18}, {NodeID: "FR1", OnHand: 5e18}}}
	tables := &memTables{
		nodes:    map[string]*schemas.Node{"DE1": {NodeID: "DE1", Active: true}, "FR1": {NodeID: "FR1", Active: true}},
		channels: map[string]*schemas.Channel{"web": {ChannelID: "web", BufferPercent: 10}},
	}
	u := ComputeATS(st, tables, 1)
	if u.ATS != math.MaxInt64 || u.Channels[0].ATS != 8301034833169298226 {
		t.Fatalf("ats %d, web %d: want saturated MaxInt64 and its 90%%", u.ATS, u.Channels[0].ATS)
	}
}

// A movement's order link (order_id, line_id) is only looked up (a
// reservation to consume, a notice for the router): ids an older version
// accepted still reach their order.
func TestMovementOrderLinkNotChecked(t *testing.T) {
	order, line := strings.Repeat("o", schemas.MaxIDBytes+1), "1\x00x"
	m := &schemas.StockMovement{MovementID: "m2", SKU: "A", NodeID: "W1", Type: schemas.Shipment, Qty: 2, OrderID: &order, LineID: &line, OccurredAt: 1}
	if err := Validate([]byte("A"), m, 0); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	st := newMemStore()
	p := New(Config{})
	notice, err := p.Movement(st, []byte("A"), m, 1)
	if err != nil || notice == nil || notice.OrderID != order || notice.LineID != line {
		t.Fatalf("Movement = %+v, %v; want a CONSUME notice for the order", notice, err)
	}
}

// TestWindowBlockBound: a transaction of more movements than a block holds
// seals a block at blockIDs ids and opens another, so that no stored block
// outgrows its 64 KiB (a review's mutation dropping the seal passed every
// test, none of which had more than 8,192 movements in a transaction).
func TestWindowBlockBound(t *testing.T) {
	st := newMemStore()
	p := New(Config{})
	for i := range blockIDs + 1 {
		m := &schemas.StockMovement{MovementID: fmt.Sprint("m", i), SKU: "A", NodeID: "W", Type: schemas.Receipt, Qty: 1, OccurredAt: 1}
		if _, err := p.Movement(st, []byte("A"), m, 1); err != nil {
			t.Fatal(err)
		}
	}
	tables := &memTables{nodes: map[string]*schemas.Node{}, channels: map[string]*schemas.Channel{}}
	if err := p.Flush(st, tables, func(*schemas.AtsUpdate) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range p.win.blocks {
		sizes = append(sizes, len(b.ids))
	}
	if len(sizes) != 2 || sizes[0] != blockIDs || sizes[1] != 1 {
		t.Errorf("blocks of %v ids, want [%d 1]", sizes, blockIDs)
	}
}

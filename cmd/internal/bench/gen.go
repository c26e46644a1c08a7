package bench

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/invroute/invroute/cmd/internal/demo"
	"github.com/invroute/invroute/schemas"
)

// benchNodes and benchChannels are the demo's EU network, used by the
// throughput and latency phases.
var (
	benchNodes    = demo.Nodes()
	benchChannels = demo.Channels()
)

// scaleNodes returns n warehouse nodes for the state-at-scale section.
func scaleNodes(n int) []schemas.Node {
	out := make([]schemas.Node, n)
	for i := range out {
		out[i] = schemas.Node{NodeID: fmt.Sprintf("WH-%03d", i), Type: schemas.Warehouse, Country: "DE",
			Active: true, ShipEnabled: true, SafetyStock: 1}
	}
	return out
}

// record is one input record, key and encoded value.
type record struct{ key, value []byte }

// generator makes a realistic stream of stock movements: SKU popularity is
// Zipf-skewed (s=1.1, v=10: the hottest SKU gets about 1.5% of the traffic
// with 100k SKUs), the mix is receipts, shipments (with order and line ids),
// returns, counts, transfers (two records), damage and adjustments, 1% are
// WMS retries (a repeated movement id) and one record in 5000 is
// undecodable. It keeps on_hand per (sku, node) so that shipments and
// transfers stay plausible. Not safe for concurrent use.
type generator struct {
	rnd    *rand.Rand
	zipf   *rand.Zipf
	seq    int64
	onHand map[uint64][]int64
	recent []record
	moves  []demo.Move
}

func newGenerator(seed int64, skus int) *generator {
	rnd := rand.New(rand.NewSource(seed))
	return &generator{
		rnd:    rnd,
		zipf:   rand.NewZipf(rnd, 1.1, 10, uint64(skus-1)),
		onHand: map[uint64][]int64{},
	}
}

func skuName(i uint64) string { return fmt.Sprintf("SKU-%07d", i) }

// batch returns n records.
func (g *generator) batch(n int) []record {
	out := make([]record, 0, n+1)
	for len(out) < n {
		out = g.next(out)
	}
	return out[:n]
}

// next appends the records of one event (a transfer is two) to out.
func (g *generator) next(out []record) []record {
	g.seq++
	if g.seq%5000 == 0 {
		return append(out, record{key: []byte(skuName(g.zipf.Uint64())), value: []byte{0xde, 0xad, 0xbe, 0xef}})
	}
	if len(g.recent) > 0 && g.rnd.Intn(100) == 0 {
		return append(out, g.recent[g.rnd.Intn(len(g.recent))]) // a WMS retry
	}
	sku := g.zipf.Uint64()
	oh := g.onHand[sku]
	if oh == nil {
		oh = make([]int64, len(benchNodes))
		g.onHand[sku] = oh
	}
	ni := g.rnd.Intn(len(benchNodes))
	g.moves = demo.NextEvent(g.rnd, len(benchNodes), ni, oh[ni], g.moves[:0])
	name := skuName(sku)
	now := time.Now().UnixMilli()
	for i, mv := range g.moves {
		m := schemas.StockMovement{
			MovementID: fmt.Sprintf("WMS-%012d-%d", g.seq, i),
			SKU:        name,
			NodeID:     benchNodes[mv.Node].NodeID,
			Type:       mv.Type,
			Qty:        mv.Qty,
			OccurredAt: now,
		}
		if m.Type == schemas.Shipment {
			order, line := fmt.Sprintf("ORD-%010d", g.seq), "1"
			m.OrderID, m.LineID = &order, &line
		}
		switch m.Type {
		case schemas.Receipt, schemas.TransferIn, schemas.ReturnRestock, schemas.Adjustment:
			oh[mv.Node] += m.Qty
		case schemas.Count:
			oh[mv.Node] = m.Qty
		default:
			oh[mv.Node] -= m.Qty
		}
		r := record{key: []byte(name), value: mustEncode(&m)}
		out = append(out, r)
		g.recent = append(g.recent, r) // retries come from the last 64, as in the demo
		if len(g.recent) > 64 {
			g.recent = g.recent[1:]
		}
	}
	return out
}

// probe is a RECEIPT of one unit of a SKU of its own, so that coalescing
// cannot hide its AtsUpdate behind another movement's.
func probe(sku string) record {
	m := schemas.StockMovement{MovementID: "PROBE-" + sku, SKU: sku, NodeID: benchNodes[0].NodeID,
		Type: schemas.Receipt, Qty: 1, OccurredAt: time.Now().UnixMilli()}
	return record{key: []byte(sku), value: mustEncode(&m)}
}

// receipt is the state-at-scale section's movement: qty units of sku at node.
func receipt(sku, node string, qty int64, now int64) record {
	m := schemas.StockMovement{MovementID: "RCV-" + node + "-" + sku, SKU: sku, NodeID: node,
		Type: schemas.Receipt, Qty: qty, OccurredAt: now}
	return record{key: []byte(sku), value: mustEncode(&m)}
}

func mustEncode(m *schemas.StockMovement) []byte {
	b, err := schemas.StockMovements.Encode(m)
	if err != nil {
		panic(fmt.Sprintf("bench: encoding a generated movement: %v", err)) // the generator builds valid movements
	}
	return b
}

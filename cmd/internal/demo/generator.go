package demo

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// demoNodes are the sample EU fulfillment nodes.
var demoNodes = []schemas.Node{
	{NodeID: "WH-FR-PAR", Type: schemas.Warehouse, Country: "FR", Lat: 48.8566, Lon: 2.3522, Active: true, ShipEnabled: true, DailyCapacity: 20000, ShipmentCostCents: 450, SafetyStock: 2},
	{NodeID: "WH-DE-BER", Type: schemas.Warehouse, Country: "DE", Lat: 52.5200, Lon: 13.4050, Active: true, ShipEnabled: true, DailyCapacity: 15000, ShipmentCostCents: 420, SafetyStock: 2},
	{NodeID: "3PL-NL-VEN", Type: schemas.ThreePL, Country: "NL", Lat: 51.3704, Lon: 6.1724, Active: true, ShipEnabled: true, DailyCapacity: 8000, ShipmentCostCents: 390},
	{NodeID: "ST-IT-MIL", Type: schemas.Store, Country: "IT", Lat: 45.4642, Lon: 9.1900, Active: true, ShipEnabled: true, PickupEnabled: true, DailyCapacity: 200, ShipmentCostCents: 650, SafetyStock: 1},
	{NodeID: "ST-ES-MAD", Type: schemas.Store, Country: "ES", Lat: 40.4168, Lon: -3.7038, Active: true, ShipEnabled: false, PickupEnabled: true, DailyCapacity: 150, ShipmentCostCents: 700, SafetyStock: 1},
}

// demoChannels are the sample sales channels.
var demoChannels = []schemas.Channel{
	{ChannelID: "amazon-de", NodeTypes: []schemas.NodeType{schemas.Warehouse, schemas.ThreePL}, BufferUnits: 2, BufferPercent: 10},
	{ChannelID: "pos", NodeTypes: []schemas.NodeType{schemas.Store}},
	{ChannelID: "web"},
}

// Nodes returns the demo's EU network of fulfillment nodes.
func Nodes() []schemas.Node { return slices.Clone(demoNodes) }

// Channels returns the demo's sales channels.
func Channels() []schemas.Channel { return slices.Clone(demoChannels) }

func produceNode(ctx context.Context, cl *kgo.Client, prefix string, n *schemas.Node) error {
	b, err := schemas.Nodes.Encode(n)
	if err != nil {
		return err
	}
	return cl.ProduceSync(ctx, &kgo.Record{Topic: prefix + string(inventory.TopicNodes), Key: []byte(n.NodeID), Value: b}).FirstErr()
}

func seedCatalog(ctx context.Context, cl *kgo.Client, prefix string) error {
	for i := range demoNodes {
		if err := produceNode(ctx, cl, prefix, &demoNodes[i]); err != nil {
			return fmt.Errorf("demo: seeding nodes: %w", err)
		}
	}
	for i := range demoChannels {
		b, err := schemas.Channels.Encode(&demoChannels[i])
		if err != nil {
			return err
		}
		r := &kgo.Record{Topic: prefix + string(inventory.TopicChannels), Key: []byte(demoChannels[i].ChannelID), Value: b}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			return fmt.Errorf("demo: seeding channels: %w", err)
		}
	}
	return nil
}

// generator produces stock movements with Zipf-skewed SKU popularity,
// receipts, shipments, counts, returns, transfers, damage, adjustments,
// bursts, WMS retries (duplicate movement ids) and a few undecodable
// records. It keeps its own model of on_hand to check the engine against.
type generator struct {
	o      Options
	prefix string // of the topics
	rnd    *rand.Rand
	zipf   *rand.Zipf
	seq    int64
	nodes  []schemas.Node // current node config (the demo closes a store halfway)

	// mu orders the model's changes and the records' production alike:
	// a record is handed to the client in the order the model applied it,
	// so a SKU's partition holds its movements in the model's order, from
	// whichever goroutine (movements, orders' follow-ups) they come.
	mu     sync.Mutex
	onHand map[string]map[string]int64
	recent []*kgo.Record // for WMS retries
	moves  []Move

	movements atomic.Int64 // distinct movements sent
	retries   atomic.Int64
	bad       atomic.Int64
}

func newGenerator(o Options, prefix string) *generator {
	rnd := rand.New(rand.NewSource(o.Seed))
	return &generator{
		o:      o,
		prefix: prefix,
		rnd:    rnd,
		zipf:   rand.NewZipf(rnd, 1.1, 1, uint64(o.SKUs-1)),
		nodes:  append([]schemas.Node(nil), demoNodes...),
		onHand: map[string]map[string]int64{},
	}
}

func skuName(i uint64) string { return fmt.Sprintf("SKU-%05d", i) }

func (g *generator) run(ctx context.Context, cl *kgo.Client) error {
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	closed := false
	var errOnce atomic.Pointer[error]
	var budget float64
	for {
		select {
		case <-ctx.Done():
			if err := cl.Flush(context.Background()); err != nil {
				return err
			}
			if p := errOnce.Load(); p != nil {
				return *p
			}
			return ctx.Err()
		case <-t.C:
		}
		rate := float64(g.o.Rate)
		if time.Since(start)%(10*time.Second) < time.Second {
			rate *= 4 // a burst every ten seconds
		}
		if g.o.Duration > 0 && !closed && time.Since(start) > g.o.Duration/2 {
			closed = true // the Madrid store closes: it stops selling within a commit or two
			g.mu.Lock()
			g.nodes[4].Active = false
			n := g.nodes[4]
			g.mu.Unlock()
			if err := produceNode(context.Background(), cl, g.prefix, &n); err != nil {
				return err
			}
		}
		budget += rate * tick.Seconds()
		for ; budget >= 1; budget-- {
			// The model counts these records: produce them whatever happens
			// to ctx (Flush above waits for them), and fail loudly.
			g.next(func(r *kgo.Record) {
				cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
					if err != nil {
						errOnce.CompareAndSwap(nil, &err)
					}
				})
			})
		}
	}
}

// next sends the records of one generated event (a transfer is two),
// under mu (see generator).
func (g *generator) next(send func(*kgo.Record)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	if g.o.BadEvery > 0 && g.seq%int64(g.o.BadEvery) == 0 {
		g.bad.Add(1)
		send(&kgo.Record{Topic: g.prefix + string(inventory.TopicMovements), Key: []byte(skuName(g.zipf.Uint64())),
			Value: []byte{0xde, 0xad, 0xbe, 0xef}})
		return
	}
	if len(g.recent) > 0 && g.rnd.Intn(100) == 0 {
		g.retries.Add(1) // a WMS retry: same movement id, same content
		r := g.recent[g.rnd.Intn(len(g.recent))]
		send(&kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value})
		return
	}
	sku := skuName(g.zipf.Uint64())
	ni := g.rnd.Intn(len(g.nodes))
	g.moves = NextEvent(g.rnd, len(g.nodes), ni, g.onHand[sku][g.nodes[ni].NodeID], g.moves[:0])
	ms := make([]schemas.StockMovement, len(g.moves))
	for i, mv := range g.moves {
		ms[i] = schemas.StockMovement{SKU: sku, NodeID: g.nodes[mv.Node].NodeID, Type: mv.Type, Qty: mv.Qty}
	}
	for i := range ms {
		m := &ms[i]
		m.MovementID = fmt.Sprintf("mv-%d-%d-%d", g.o.Seed, g.seq, i)
		m.OccurredAt = time.Now().UnixMilli()
		g.apply(m)
		b, err := schemas.StockMovements.Encode(m)
		if err != nil {
			panic(err) // the generator builds valid movements
		}
		r := &kgo.Record{Topic: g.prefix + string(inventory.TopicMovements), Key: []byte(m.SKU), Value: b}
		send(r)
		g.movements.Add(1)
		// Retries come from the last 64 movements: a WMS retries soon, well
		// inside the idempotency window (dedupe_max ids per partition).
		g.recent = append(g.recent, r)
		if len(g.recent) > 64 {
			g.recent = g.recent[1:]
		}
	}
}

// Move is one stock movement of a generated WMS event: a node (index), a
// type and a quantity.
type Move struct {
	Node int
	Type schemas.MovementType
	Qty  int64
}

// NextEvent draws one realistic WMS event at node ni (of nodes) for a SKU
// with on_hand cur there, appending its movements to out: a receipt when
// the node has none; otherwise shipments 35%, receipts 15%, returns 10%,
// cycle counts 6%, transfers to another node 10% (two movements), damage
// 6%, adjustments 18%. The demo and the bench share it.
func NextEvent(rnd *rand.Rand, nodes, ni int, cur int64, out []Move) []Move {
	add := func(node int, ty schemas.MovementType, qty int64) { out = append(out, Move{node, ty, qty}) }
	switch x := rnd.Float64(); {
	case cur <= 0 || x < 0.15:
		add(ni, schemas.Receipt, 10+rnd.Int63n(40))
	case x < 0.50:
		add(ni, schemas.Shipment, 1+rnd.Int63n(min(3, cur)))
	case x < 0.60:
		add(ni, schemas.ReturnRestock, 1)
	case x < 0.66:
		add(ni, schemas.Count, max(0, cur+rnd.Int63n(5)-2))
	case x < 0.76 && nodes > 1:
		to := (ni + 1 + rnd.Intn(nodes-1)) % nodes
		q := 1 + rnd.Int63n(min(5, cur))
		add(ni, schemas.TransferOut, q)
		add(to, schemas.TransferIn, q)
	case x < 0.82:
		add(ni, schemas.Damage, 1)
	default:
		q := 1 + rnd.Int63n(3)
		if rnd.Intn(2) == 0 {
			q = -q
		}
		add(ni, schemas.Adjustment, q)
	}
	return out
}

// apply is the generator's own model of a movement's effect.
func (g *generator) apply(m *schemas.StockMovement) {
	if g.onHand[m.SKU] == nil {
		g.onHand[m.SKU] = map[string]int64{}
	}
	switch m.Type {
	case schemas.Receipt, schemas.TransferIn, schemas.ReturnRestock, schemas.Adjustment:
		g.onHand[m.SKU][m.NodeID] += m.Qty
	case schemas.Count:
		g.onHand[m.SKU][m.NodeID] = m.Qty
	default:
		g.onHand[m.SKU][m.NodeID] -= m.Qty
	}
}

// check compares the watcher's last ATS of every SKU with the model: the
// on_hand of every node must be the model's, and the ATS the sum over
// active nodes of on_hand - reserved - safety (reserved is what the router
// holds for orders, which the model does not predict).
func (g *generator) check(w *watcher) (ok, total int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for sku, nodes := range g.onHand {
		total++
		u, seen := w.ats[sku]
		good := seen
		reserved := map[string]int64{}
		for _, n := range u.Nodes {
			reserved[n.NodeID] = n.Reserved
			if n.OnHand != nodes[n.NodeID] {
				good = false
			}
		}
		var want int64
		for _, n := range g.nodes {
			if n.Active {
				want += max(0, nodes[n.NodeID]-reserved[n.NodeID]-int64(n.SafetyStock))
			}
		}
		if good && u.ATS == want {
			ok++
		} else if g.o.Verbose {
			fmt.Printf("mismatch %s: ats %+v (seen %t), model ats %d, on_hand %v\n", sku, u, seen, want, nodes)
		}
	}
	return ok, total
}

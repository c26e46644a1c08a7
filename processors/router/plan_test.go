package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/invroute/invroute/schemas"
)

// testNet is an in-memory Network for tests.
type testNet struct {
	nodes    map[string]*schemas.Node
	channels map[string]*schemas.Channel
	stock    map[[2]string]schemas.NodeATS // (sku, node)
	used     map[string]int64              // shipments taken today
}

func newTestNet() *testNet {
	return &testNet{nodes: map[string]*schemas.Node{}, channels: map[string]*schemas.Channel{},
		stock: map[[2]string]schemas.NodeATS{}, used: map[string]int64{}}
}

func (n *testNet) Node(id string) *schemas.Node       { return n.nodes[id] }
func (n *testNet) Channel(id string) *schemas.Channel { return n.channels[id] }
func (n *testNet) Nodes() []*schemas.Node {
	var out []*schemas.Node
	for _, id := range slices.Sorted(mapsKeys(n.nodes)) {
		out = append(out, n.nodes[id])
	}
	return out
}
func (n *testNet) Stock(sku, node string) (schemas.NodeATS, bool) {
	s, ok := n.stock[[2]string{sku, node}]
	return s, ok
}
func (n *testNet) ShipmentsLeft(node string) int64 {
	nd := n.nodes[node]
	if nd == nil || nd.DailyCapacity == 0 {
		return -1
	}
	return max(0, int64(nd.DailyCapacity)-n.used[node])
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type args struct {
	t *testing.T
	d *datadriven.TestData
}

func (a args) str(key, def string) string {
	for _, kv := range a.d.CmdArgs {
		if kv.Key == key {
			return strings.Join(kv.Vals, ",")
		}
	}
	return def
}

func (a args) num(key string, def float64) float64 {
	s := a.str(key, "")
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		a.t.Fatalf("%s: bad %s=%q", a.d.Pos, key, s)
	}
	return v
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parseLines reads "L1:SKU:QTY[:PRICE],...".
func parseLines(a args, s string) []schemas.OrderLine {
	var out []schemas.OrderLine
	for _, f := range list(s) {
		p := strings.Split(f, ":")
		if len(p) < 3 {
			a.t.Fatalf("%s: bad line %q", a.d.Pos, f)
		}
		q, _ := strconv.ParseInt(p[2], 10, 64)
		l := schemas.OrderLine{LineID: p[0], SKU: p[1], Qty: q}
		if len(p) > 3 {
			l.UnitPriceCents, _ = strconv.ParseInt(p[3], 10, 64)
		}
		out = append(out, l)
	}
	return out
}

// netCommand handles the commands that describe the network; it reports
// whether it knew cmd.
func netCommand(a args, net *testNet) (string, bool) {
	switch a.d.Cmd {
	case "node":
		n := &schemas.Node{
			NodeID:            a.str("id", ""),
			Type:              schemas.NodeType(a.str("type", "WAREHOUSE")),
			Country:           a.str("country", "FR"),
			Lat:               a.num("lat", 0),
			Lon:               a.num("lon", 0),
			Active:            a.str("active", "true") == "true",
			ShipEnabled:       a.str("ship", "true") == "true",
			PickupEnabled:     a.str("pickup", "false") == "true",
			DailyCapacity:     int32(a.num("capacity", 0)),
			ShipmentCostCents: int32(a.num("cost", 0)),
			SafetyStock:       int32(a.num("safety", 0)),
		}
		net.nodes[n.NodeID] = n
		return "ok", true
	case "channel":
		c := &schemas.Channel{ChannelID: a.str("id", ""), Nodes: list(a.str("nodes", "")),
			MaxOrderValueCents: int64(a.num("max-value", 0)), ShipCountries: list(a.str("countries", ""))}
		for _, t := range list(a.str("types", "")) {
			c.NodeTypes = append(c.NodeTypes, schemas.NodeType(t))
		}
		net.channels[c.ChannelID] = c
		return "ok", true
	case "stock":
		net.stock[[2]string{a.str("sku", ""), a.str("node", "")}] = schemas.NodeATS{
			NodeID: a.str("node", ""), OnHand: int64(a.num("on-hand", 0)), Reserved: int64(a.num("reserved", 0)),
		}
		return "ok", true
	case "used":
		net.used[a.str("node", "")] = int64(a.num("n", 0))
		return "ok", true
	}
	return "", false
}

// orderFrom builds a PLACED order from the command's arguments.
func orderFrom(a args) *schemas.OrderEvent {
	o := &schemas.OrderEvent{
		OrderID:        a.str("id", "o1"),
		Type:           schemas.EventPlaced,
		ChannelID:      a.str("channel", "web"),
		CustomerID:     a.str("customer", "c1"),
		CustomerTier:   schemas.CustomerTier(a.str("tier", "STANDARD")),
		Priority:       schemas.Priority(a.str("priority", "STANDARD")),
		DeliveryMethod: schemas.DeliveryMethod(a.str("method", "SHIP")),
		Policy:         schemas.FulfillmentPolicy(a.str("policy", "SHIP_COMPLETE")),
		Lines:          parseLines(a, a.str("lines", "")),
		PlacedAt:       int64(a.num("at", 0)),
		OccurredAt:     int64(a.num("at", 0)),
	}
	if p := a.str("pickup", ""); p != "" {
		o.PickupNodeID = &p
	}
	if to := list(a.str("to", "")); len(to) == 2 {
		lat, _ := strconv.ParseFloat(to[0], 64)
		lon, _ := strconv.ParseFloat(to[1], 64)
		o.ShipTo = &schemas.Address{Country: a.str("country", "FR"), PostalCode: "00000", Lat: lat, Lon: lon}
	}
	return o
}

func formatPlan(p *Plan, reject string) string {
	if reject != "" {
		return "reject: " + reject + "\n"
	}
	var b strings.Builder
	for _, s := range p.Shipments {
		fmt.Fprintf(&b, "ship %s (%.1f km, %d c):", s.NodeID, s.DistanceKm, s.CostCents)
		for _, l := range s.Lines {
			fmt.Fprintf(&b, " %s %s x%d", l.LineID, l.SKU, l.Qty)
		}
		b.WriteString("\n")
	}
	for _, l := range p.Unplanned {
		fmt.Fprintf(&b, "unplanned %s %s x%d\n", l.LineID, l.SKU, l.Qty)
	}
	km, c := p.Totals()
	fmt.Fprintf(&b, "total %.1f km, %d c, split=%t exact=%t\n", km, c, p.Split(), p.Exact)
	for _, r := range p.Reasons {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	return b.String()
}

// TestPlan runs the planner scripts in testdata/plan. Commands:
//
//	node id=.. [type=..] [lat=..] [lon=..] [cost=CENTS] [capacity=N] [active=..] [ship=..] [pickup=..] [safety=N]
//	channel id=.. [nodes=a,b] [types=STORE,..]
//	stock sku=.. node=.. on-hand=N [reserved=N]
//	used node=.. n=N                    shipments the node already took today
//	plan [channel=..] [tier=VIP] [priority=RUSH] [method=PICKUP pickup=..] [to=LAT,LON] [safety-for-vip=false] lines=ID:SKU:QTY,...
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata/plan", func(t *testing.T, path string) {
		net := newTestNet()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			a := args{t, d}
			if out, ok := netCommand(a, net); ok {
				return out
			}
			if d.Cmd != "plan" {
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			o := orderFrom(a)
			useSafety := o.CustomerTier == schemas.TierVIP && a.str("safety-for-vip", "true") == "true"
			cfg := PlanConfig{ExactMaxLines: int(a.num("exact-max-lines", 0))}
			cands, reasons, reject := Eligible(cfg, o, o.Lines, net, useSafety, nil)
			if reject != "" {
				return formatPlan(nil, reject)
			}
			p := PlanOrder(cfg, o.Lines, cands, o.Priority == schemas.PriorityRush)
			p.Reasons = append(p.Reasons, reasons...)
			return formatPlan(p, "")
		})
	})
}

// TestPlanOptimal compares the planner with brute force (every line to
// every node that has it) on random small orders: the number of shipments
// and then the cost must be the optimum.
func TestPlanOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		nLines, nNodes := 1+rng.IntN(6), 1+rng.IntN(8)
		rush := rng.IntN(4) == 0
		var lines []schemas.OrderLine
		for i := range nLines {
			lines = append(lines, schemas.OrderLine{LineID: fmt.Sprint(i), SKU: fmt.Sprint("S", i), Qty: 1 + int64(rng.IntN(3))})
		}
		var cands []Candidate
		for n := range nNodes {
			c := Candidate{NodeID: fmt.Sprint("N", n), Available: map[string]int64{},
				DistanceKm: float64(rng.IntN(1000)), CostCents: int64(100 + rng.IntN(900))}
			for _, l := range lines {
				if rng.IntN(2) == 0 {
					c.Available[l.SKU] = l.Qty + int64(rng.IntN(2))
				}
			}
			cands = append(cands, c)
		}
		// Every line must be coverable whole by some node.
		for i, l := range lines {
			if !slices.ContainsFunc(cands, func(c Candidate) bool { return c.Available[l.SKU] >= l.Qty }) {
				cands[i%nNodes].Available[l.SKU] = l.Qty
			}
		}
		w := func(used map[int]bool) weight {
			var out weight
			for ci := range used {
				out.ships++
				out.cost += cands[ci].CostCents
				if rush {
					out.km += cands[ci].DistanceKm
				}
			}
			return out
		}
		var best *weight
		var rec func(i int, used map[int]bool)
		rec = func(i int, used map[int]bool) {
			if i == len(lines) {
				if cur := w(used); best == nil || cur.less(*best) {
					best = &cur
				}
				return
			}
			for ci, c := range cands {
				if c.Available[lines[i].SKU] < lines[i].Qty {
					continue
				}
				had := used[ci]
				used[ci] = true
				rec(i+1, used)
				if !had {
					delete(used, ci)
				}
			}
		}
		rec(0, map[int]bool{})
		p := PlanOrder(PlanConfig{}, lines, cands, rush)
		got := weight{ships: len(p.Shipments)}
		for _, s := range p.Shipments {
			got.cost += s.CostCents
			if rush {
				got.km += s.DistanceKm
			}
		}
		if len(p.Unplanned) > 0 || got != *best || !p.Exact {
			t.Fatalf("iteration %d: plan %+v weighs %+v, optimum %+v", iter, p, got, *best)
		}
	}
}

// TestPlanSharedSKU: two lines of one SKU must both fit the node that
// ships them. A has 1 S at 100 c, B has 2 at 500 c: B alone (one shipment)
// beats A plus B.
func TestPlanSharedSKU(t *testing.T) {
	lines := []schemas.OrderLine{{LineID: "1", SKU: "S", Qty: 1}, {LineID: "2", SKU: "S", Qty: 1}}
	cands := []Candidate{
		{NodeID: "A", Available: map[string]int64{"S": 1}, CostCents: 100},
		{NodeID: "B", Available: map[string]int64{"S": 2}, CostCents: 500},
	}
	p := PlanOrder(PlanConfig{}, lines, cands, false)
	if len(p.Shipments) != 1 || p.Shipments[0].NodeID != "B" || len(p.Shipments[0].Lines) != 2 || !p.Exact {
		t.Fatalf("plan %+v, want both lines from B (exact)", p)
	}
}

// TestPlanOptimalShared: random orders whose lines repeat SKUs. Brute force
// gives every line to one node with the lines' summed quantity per SKU;
// whenever the planner says its plan is exact, it must be optimal, and it
// must say so for most orders.
func TestPlanOptimalShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	exact := 0
	const iters = 1000
	for iter := range iters {
		nLines, nNodes := 2+rng.IntN(4), 1+rng.IntN(6)
		var lines []schemas.OrderLine
		for i := range nLines {
			lines = append(lines, schemas.OrderLine{LineID: fmt.Sprint(i), SKU: fmt.Sprint("S", rng.IntN(2)), Qty: 1 + int64(rng.IntN(2))})
		}
		var cands []Candidate
		for n := range nNodes {
			c := Candidate{NodeID: fmt.Sprint("N", n), Available: map[string]int64{}, CostCents: int64(100 + rng.IntN(900))}
			for _, sku := range []string{"S0", "S1"} {
				if rng.IntN(3) > 0 {
					c.Available[sku] = int64(1 + rng.IntN(5))
				}
			}
			cands = append(cands, c)
		}
		var best *weight
		used := make([]map[string]int64, len(cands))
		for i := range used {
			used[i] = map[string]int64{}
		}
		var rec func(i int)
		rec = func(i int) {
			if i == len(lines) {
				var cur weight
				for ci := range cands {
					if len(used[ci]) > 0 {
						cur = cur.add(weight{1, 0, cands[ci].CostCents})
					}
				}
				if best == nil || cur.less(*best) {
					best = &cur
				}
				return
			}
			l := lines[i]
			for ci, c := range cands {
				if c.Available[l.SKU] < used[ci][l.SKU]+l.Qty {
					continue
				}
				used[ci][l.SKU] += l.Qty
				rec(i + 1)
				if used[ci][l.SKU] -= l.Qty; used[ci][l.SKU] == 0 {
					delete(used[ci], l.SKU)
				}
			}
		}
		rec(0)
		p := PlanOrder(PlanConfig{}, lines, cands, false)
		if best == nil || len(p.Unplanned) > 0 || !p.Exact {
			continue // no whole-line plan exists, or the planner says it did not search exactly
		}
		exact++
		got := weight{ships: len(p.Shipments)}
		for _, s := range p.Shipments {
			got.cost += s.CostCents
		}
		if got != *best {
			t.Fatalf("iteration %d: exact plan %+v weighs %+v, optimum %+v", iter, p, got, *best)
		}
	}
	if exact < iters/3 {
		t.Errorf("only %d of %d orders planned exactly", exact, iters)
	}
	t.Logf("%d of %d orders planned exactly and optimal", exact, iters)
}

package bench

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
)

// The routing quality section: pure computation, no broker. The same
// orders are planned in the same sequence by invroute's planner and by two
// line-by-line baselines, each against its own copy of the stock and
// consuming it as it routes, so that scarcity evolves alike for all three.
// Every strategy obeys the order's policy the same way: a SHIP_COMPLETE
// order that cannot ship whole ships nothing (all its units backordered),
// a SHIP_AVAILABLE one ships what it can.

// Goals of the routing quality figures.
const (
	goalSplitRatio   = 0.70 // invroute's split rate <= 0.7 x the first baseline's
	goalOptimalShare = 1.0
	optMaxLines      = 5 // orders this small are solved exhaustively
	optMaxNodes      = 8 // nodes of the random small instances
	optInstances     = 2000
	optBudget        = 2000000 // node sets examined per order at most (all of up to 5 of 48 nodes)
)

// part is units of one line from one node.
type part struct {
	node, line int
	qty        int64
}

// strategy plans one order against the stock left, without consuming it.
type strategy struct {
	name string
	plan func(sim *simulation, o *scenarioOrder) []part
}

// simulation is one strategy's run over the scenario: its own stock.
type simulation struct {
	sc   *scenario
	left [][]int64 // [node][sku]
	net  *simNet
	opt  *optStats // exhaustive check of invroute's plans on small orders; nil: none
	st   stratStats
}

// stratStats is what a strategy did over every order.
type stratStats struct {
	name        string
	orders      int
	shipped     int // orders with at least one shipment
	split       int // orders with more than one shipment
	shipments   int
	km          float64 // node -> ship-to, each node once per order
	cost        int64   // shipment cost + distance cost, per node and order
	units       int64
	backordered int64
	splitLines  int   // lines shipped from more than one node
	overplanned int64 // units planned at a node that did not have them
}

func (s *stratStats) splitRate() float64 { return ratioOf(float64(s.split), float64(s.shipped)) }
func (s *stratStats) meanKm() float64    { return ratioOf(s.km, float64(s.shipped)) }
func (s *stratStats) meanCost() float64  { return ratioOf(float64(s.cost), float64(s.shipped)) }

func ratioOf(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// qualityResult is the quality section's outcome.
type qualityResult struct {
	orders   int
	skus     int
	nodes    int
	dcs      int
	stock    int64
	demand   int64
	strats   []stratStats // invroute, first, nearest
	scenOpt  optStats     // invroute's plans of the scenario's small orders
	randOpt  optStats     // random small instances, distinct SKUs
	repOpt   optStats     // random small instances, one SKU on two lines
	took     time.Duration
	firstIDs string // the first nodes of the first baseline's order
}

// routingQuality generates the scenario and runs the three strategies and
// the optimality checks.
func routingQuality(seed int64, orders int) *qualityResult {
	t0 := time.Now()
	sc := newScenario(seed, orders)
	q := &qualityResult{orders: orders, skus: len(sc.skus), nodes: len(sc.nodes), dcs: len(routeNetwork)}
	for _, row := range sc.stock {
		for _, n := range row {
			q.stock += n
		}
	}
	for _, o := range sc.orders {
		for _, l := range o.ev.Lines {
			q.demand += l.Qty
		}
	}
	var ids []string
	for _, n := range sc.nodes[:3] {
		ids = append(ids, n.NodeID)
	}
	q.firstIDs = strings.Join(ids, ", ")
	for _, s := range strategies(router.PlanConfig{}) {
		sim := newSimulation(sc)
		if s.name == "invroute" {
			sim.opt = &q.scenOpt
		}
		sim.run(s)
		q.strats = append(q.strats, sim.st)
	}
	q.randOpt = optimalityBatch(seed+7, optInstances, false)
	q.repOpt = optimalityBatch(seed+8, optInstances/4, true)
	q.took = time.Since(t0)
	return q
}

// strategies are invroute and the two baselines, invroute first.
func strategies(cfg router.PlanConfig) []strategy {
	return []strategy{
		{name: "invroute", plan: func(sim *simulation, o *scenarioOrder) []part {
			return sim.invroute(cfg, o)
		}},
		{name: "first", plan: func(sim *simulation, o *scenarioOrder) []part {
			return sim.lineByLine(o, sim.fixedOrder())
		}},
		{name: "nearest", plan: func(sim *simulation, o *scenarioOrder) []part {
			return sim.lineByLine(o, sim.byDistance(o.ev.ShipTo))
		}},
	}
}

func newSimulation(sc *scenario) *simulation {
	sim := &simulation{sc: sc, left: make([][]int64, len(sc.stock))}
	for i, row := range sc.stock {
		sim.left[i] = slices.Clone(row)
	}
	sim.net = newSimNet(sc.nodes, sc.skus, sim.left)
	return sim
}

// run plans every order in sequence and applies each plan.
func (sim *simulation) run(s strategy) {
	sim.st = stratStats{name: s.name}
	for i := range sim.sc.orders {
		o := &sim.sc.orders[i]
		sim.apply(o, s.plan(sim, o))
	}
}

// apply takes a plan's stock, by the order's policy, and counts it.
func (sim *simulation) apply(o *scenarioOrder, parts []part) {
	st := &sim.st
	st.orders++
	planned := make([]int64, len(o.ev.Lines))
	for _, p := range parts {
		planned[p.line] += p.qty
	}
	var units, short int64
	for i, l := range o.ev.Lines {
		units += l.Qty
		short += max(0, l.Qty-planned[i])
	}
	st.units += units
	if short > 0 && o.ev.Policy == schemas.ShipComplete {
		st.backordered += units
		return
	}
	st.backordered += short
	var nodes []int
	lineNodes := make([][]int, len(o.ev.Lines))
	for _, p := range parts {
		if p.qty <= 0 {
			continue
		}
		sku := o.skus[p.line]
		if sim.left[p.node][sku] < p.qty {
			// A plan beyond the stock would be a planner bug: counted and
			// reported, the units not taken.
			st.overplanned += p.qty
			continue
		}
		sim.left[p.node][sku] -= p.qty
		if !containsInt(nodes, p.node) {
			nodes = append(nodes, p.node)
		}
		if !containsInt(lineNodes[p.line], p.node) {
			lineNodes[p.line] = append(lineNodes[p.line], p.node)
		}
	}
	for _, ns := range lineNodes {
		if len(ns) > 1 {
			st.splitLines++
		}
	}
	if len(nodes) == 0 {
		return
	}
	st.shipped++
	st.shipments += len(nodes)
	if len(nodes) > 1 {
		st.split++
	}
	for _, n := range nodes {
		km := router.HaversineKm(sim.sc.lat[n], sim.sc.lon[n], o.ev.ShipTo.Lat, o.ev.ShipTo.Lon)
		st.km += km
		st.cost += int64(sim.sc.nodes[n].ShipmentCostCents) + int64(math.Round(km)) // 1 cent per km, the router's default
	}
}

// shippable are the nodes that may ship at all.
func (sim *simulation) shippable(n int) bool {
	nd := &sim.sc.nodes[n]
	return nd.Active && nd.ShipEnabled
}

// fixedOrder is the first baseline's node order: the network's list order
// (DCs and 3PLs, then stores).
func (sim *simulation) fixedOrder() []int {
	out := make([]int, 0, len(sim.sc.nodes))
	for n := range sim.sc.nodes {
		if sim.shippable(n) {
			out = append(out, n)
		}
	}
	return out
}

// byDistance is the nearest baseline's node order for one ship-to.
func (sim *simulation) byDistance(to *schemas.Address) []int {
	out := sim.fixedOrder()
	km := make([]float64, len(sim.sc.nodes))
	for _, n := range out {
		km[n] = router.HaversineKm(sim.sc.lat[n], sim.sc.lon[n], to.Lat, to.Lon)
	}
	slices.SortStableFunc(out, func(a, b int) int {
		switch {
		case km[a] < km[b]:
			return -1
		case km[a] > km[b]:
			return 1
		}
		return 0
	})
	return out
}

// lineByLine is both baselines: each line whole from the first node in
// order that has its quantity, else split across the nodes in that order;
// what none has is backordered. Lines of one order share a node's stock.
func (sim *simulation) lineByLine(o *scenarioOrder, order []int) []part {
	var parts []part
	taken := map[[2]int]int64{} // (node, sku) taken by earlier lines of the order
	has := func(n, sku int) int64 { return sim.left[n][sku] - taken[[2]int{n, sku}] }
	for li, l := range o.ev.Lines {
		sku := o.skus[li]
		whole := slices.IndexFunc(order, func(n int) bool { return has(n, sku) >= l.Qty })
		if whole >= 0 {
			n := order[whole]
			taken[[2]int{n, sku}] += l.Qty
			parts = append(parts, part{node: n, line: li, qty: l.Qty})
			continue
		}
		need := l.Qty
		for _, n := range order {
			if need == 0 {
				break
			}
			if take := min(need, has(n, sku)); take > 0 {
				taken[[2]int{n, sku}] += take
				parts = append(parts, part{node: n, line: li, qty: take})
				need -= take
			}
		}
	}
	return parts
}

// invroute plans the order as the router does: Eligible over the stock
// left (capacity unlimited, no safety stock in the scenario), then
// PlanOrder; on small orders it also checks the plan against the optimum.
func (sim *simulation) invroute(cfg router.PlanConfig, o *scenarioOrder) []part {
	useSafety := o.ev.CustomerTier == schemas.TierVIP
	cands, _, reject := router.Eligible(cfg, &o.ev, o.ev.Lines, sim.net, useSafety, nil)
	if reject != "" {
		return nil
	}
	rush := o.ev.Priority == schemas.PriorityRush
	p := router.PlanOrder(cfg, o.ev.Lines, cands, rush)
	if sim.opt != nil && len(o.ev.Lines) <= optMaxLines {
		sim.opt.check(o.ev.OrderID, o.ev.Lines, cands, rush, p)
	}
	var parts []part
	for _, s := range p.Shipments {
		n := sim.net.nodeIdx[s.NodeID]
		for _, l := range s.Lines {
			li := slices.IndexFunc(o.ev.Lines, func(x schemas.OrderLine) bool { return x.LineID == l.LineID })
			parts = append(parts, part{node: n, line: li, qty: l.Qty})
		}
	}
	return parts
}

// simNet is router.Network over a simulation's stock: every node active
// with unlimited capacity, the scenario's one channel fed by every node.
type simNet struct {
	nodes   []schemas.Node
	sorted  []*schemas.Node
	left    [][]int64
	nodeIdx map[string]int
	skuIdx  map[string]int
	ch      schemas.Channel
}

func newSimNet(nodes []schemas.Node, skus []string, left [][]int64) *simNet {
	n := &simNet{nodes: nodes, left: left, nodeIdx: map[string]int{}, skuIdx: map[string]int{},
		ch: schemas.Channel{ChannelID: routeChannel}}
	for i := range nodes {
		n.nodeIdx[nodes[i].NodeID] = i
		n.sorted = append(n.sorted, &n.nodes[i])
	}
	slices.SortFunc(n.sorted, func(a, b *schemas.Node) int { return strings.Compare(a.NodeID, b.NodeID) })
	for i, s := range skus {
		n.skuIdx[s] = i
	}
	return n
}

func (n *simNet) Node(id string) *schemas.Node {
	if i, ok := n.nodeIdx[id]; ok {
		return &n.nodes[i]
	}
	return nil
}

func (n *simNet) Nodes() []*schemas.Node { return n.sorted }

func (n *simNet) Channel(id string) *schemas.Channel {
	if id == n.ch.ChannelID {
		return &n.ch
	}
	return nil
}

func (n *simNet) Stock(sku, node string) (schemas.NodeATS, bool) {
	ni, ok1 := n.nodeIdx[node]
	si, ok2 := n.skuIdx[sku]
	if !ok1 || !ok2 || n.left[ni][si] <= 0 {
		return schemas.NodeATS{}, false
	}
	return schemas.NodeATS{NodeID: node, OnHand: n.left[ni][si]}, true
}

func (n *simNet) ShipmentsLeft(string) int64 { return -1 }

// planWeight orders plans as the planner's objective does: shipments, then
// distance (RUSH only), then cost.
type planWeight struct {
	ships int
	km    float64
	cost  int64
}

// kmEps absorbs the order in which distances are summed.
const kmEps = 1e-6

func (a planWeight) less(b planWeight) bool {
	if a.ships != b.ships {
		return a.ships < b.ships
	}
	if math.Abs(a.km-b.km) > kmEps {
		return a.km < b.km
	}
	return a.cost < b.cost
}

func (a planWeight) String() string {
	if a.km != 0 {
		return fmt.Sprintf("%d shipments, %.1f km, %d c", a.ships, a.km, a.cost)
	}
	return fmt.Sprintf("%d shipments, %d c", a.ships, a.cost)
}

// weightOf is a plan's weight; rush counts distance.
func weightOf(p *router.Plan, rush bool) planWeight {
	w := planWeight{ships: len(p.Shipments)}
	for _, s := range p.Shipments {
		w.cost += s.CostCents
		if rush {
			w.km += s.DistanceKm
		}
	}
	return w
}

// optimum is the lightest way to ship every line whole from cands, by
// exhaustive search: every assignment of lines to nodes that have their
// quantity (lines of one SKU sharing a node's units), enumerated as node
// sets by size (the fewest shipments come first, so the search stops at
// the first size with a solution; every node of a minimal set ships a
// line). ok is false if there is no such assignment; complete is false if
// more than budget node sets would have to be examined.
func optimum(lines []schemas.OrderLine, cands []router.Candidate, rush bool, budget int) (best planWeight, ok, complete bool) {
	// Which lines each candidate has whole; candidates with none never
	// ship in a whole-line assignment.
	var useful []int
	var masks []uint64
	for ci, c := range cands {
		var m uint64
		for li, l := range lines {
			if c.Available[l.SKU] >= l.Qty {
				m |= 1 << li
			}
		}
		if m != 0 {
			useful, masks = append(useful, ci), append(masks, m)
		}
	}
	full := uint64(1)<<len(lines) - 1
	var all uint64
	for _, m := range masks {
		all |= m
	}
	if all != full {
		return best, false, true // some line no node has whole
	}
	shared := repeatsSKU(lines)
	seen := 0
	set := make([]int, 0, len(lines))
	for k := 1; k <= min(len(lines), len(useful)); k++ {
		if seen += binomial(len(useful), k); seen > budget {
			return best, false, false
		}
		forCombinations(len(useful), k, func(idx []int) {
			var m uint64
			for _, x := range idx {
				m |= masks[x]
			}
			if m != full {
				return
			}
			set = set[:0]
			for _, x := range idx {
				set = append(set, useful[x])
			}
			// With distinct SKUs covering each line is enough; a SKU on
			// two lines needs an assignment within the nodes' units.
			if shared && !feasible(lines, cands, set) {
				return
			}
			w := planWeight{ships: k}
			for _, ci := range set {
				w.cost += cands[ci].CostCents
				if rush {
					w.km += cands[ci].DistanceKm
				}
			}
			if !ok || w.less(best) {
				best, ok = w, true
			}
		})
		if ok {
			return best, true, true
		}
	}
	return best, false, true
}

func repeatsSKU(lines []schemas.OrderLine) bool {
	for i := range lines {
		for j := range i {
			if lines[i].SKU == lines[j].SKU {
				return true
			}
		}
	}
	return false
}

// feasible reports whether every line can ship whole from the nodes of
// set, lines of one SKU sharing a node's units.
func feasible(lines []schemas.OrderLine, cands []router.Candidate, set []int) bool {
	used := map[string]int64{} // member/sku -> units given to earlier lines
	var assign func(li int) bool
	assign = func(li int) bool {
		if li == len(lines) {
			return true
		}
		l := lines[li]
		for m, ci := range set {
			k := fmt.Sprint(m, "/", l.SKU)
			if cands[ci].Available[l.SKU]-used[k] < l.Qty {
				continue
			}
			used[k] += l.Qty
			if assign(li + 1) {
				return true
			}
			used[k] -= l.Qty
		}
		return false
	}
	return assign(0)
}

func binomial(n, k int) int {
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
		if r > 1<<40 {
			return r
		}
	}
	return r
}

// forCombinations calls f with every k-subset of 0..n-1, as increasing
// indexes (f must not keep the slice).
func forCombinations(n, k int, f func([]int)) {
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	for {
		f(idx)
		i := k - 1
		for i >= 0 && idx[i] == n-k+i {
			i--
		}
		if i < 0 {
			return
		}
		idx[i]++
		for j := i + 1; j < k; j++ {
			idx[j] = idx[j-1] + 1
		}
	}
}

// optStats counts plans compared with the optimum.
type optStats struct {
	checked int // plans compared
	equal   int // of which the planner's weight is the optimum's
	split   int // skipped: some line no node has whole (split by quantity)
	large   int // skipped: too many node sets to enumerate
	misses  []string
}

func (s *optStats) share() float64 { return ratioOf(float64(s.equal), float64(s.checked)) }

// check compares the planner's plan p of lines over cands with the
// optimum.
func (s *optStats) check(id string, lines []schemas.OrderLine, cands []router.Candidate, rush bool, p *router.Plan) {
	best, ok, complete := optimum(lines, cands, rush, optBudget)
	switch {
	case !complete:
		s.large++
		return
	case !ok:
		s.split++
		return
	}
	s.checked++
	got := weightOf(p, rush)
	if len(p.Unplanned) == 0 && !got.less(best) && !best.less(got) {
		s.equal++
		return
	}
	if len(s.misses) < 3 {
		var ls []string
		for _, l := range lines {
			ls = append(ls, fmt.Sprintf("%s %dx%s", l.LineID, l.Qty, l.SKU))
		}
		s.misses = append(s.misses, fmt.Sprintf("%s [%s] over %d nodes: planner %s (%d unplanned), optimum %s",
			id, strings.Join(ls, ", "), len(cands), got, len(p.Unplanned), best))
	}
}

// optimalityBatch plans n random small instances (1 to 5 lines, 1 to 8
// nodes of the EU network, ship-to anywhere in it, 1 in 4 RUSH) whose
// lines each some node has whole, and compares with the optimum. With
// repeated, one SKU is on two lines of every instance (an order may name a
// SKU twice, for instance with two prices).
func optimalityBatch(seed int64, n int, repeated bool) optStats {
	rnd := rand.New(rand.NewSource(seed))
	sc := newScenario(seed, 0)
	var s optStats
	for s.checked < n {
		nLines := 1 + rnd.Intn(optMaxLines)
		if repeated {
			nLines = 2 + rnd.Intn(optMaxLines-1)
		}
		var lines []schemas.OrderLine
		var skus []string
		for i := range nLines {
			sku := fmt.Sprint("S", i)
			if repeated && i == nLines-1 {
				sku = "S0"
			}
			lines = append(lines, schemas.OrderLine{LineID: fmt.Sprint(i + 1), SKU: sku, Qty: 1 + int64(rnd.Intn(3))})
			if !slices.Contains(skus, sku) {
				skus = append(skus, sku)
			}
		}
		perm := rnd.Perm(len(sc.nodes))[:1+rnd.Intn(optMaxNodes)]
		var nodes []schemas.Node
		for _, i := range perm {
			nodes = append(nodes, sc.nodes[i])
		}
		left := make([][]int64, len(nodes))
		for ni := range nodes {
			left[ni] = make([]int64, len(skus))
			for si := range skus {
				if rnd.Intn(2) == 0 {
					left[ni][si] = int64(1 + rnd.Intn(4))
				}
			}
		}
		// Every line some node has whole.
		for li, l := range lines {
			si := slices.Index(skus, l.SKU)
			if !slices.ContainsFunc(left, func(row []int64) bool { return row[si] >= l.Qty }) {
				left[li%len(nodes)][si] = l.Qty
			}
		}
		to := randomShipTo(rnd)
		o := schemas.OrderEvent{OrderID: fmt.Sprint("R-", s.checked+s.split), Type: schemas.EventPlaced, ChannelID: routeChannel,
			DeliveryMethod: schemas.DeliveryShip, ShipTo: to, Lines: lines}
		cands, _, _ := router.Eligible(router.PlanConfig{}, &o, lines, newSimNet(nodes, skus, left), false, nil)
		rush := rnd.Intn(4) == 0
		p := router.PlanOrder(router.PlanConfig{}, lines, cands, rush)
		s.check(o.OrderID, lines, cands, rush, p) // an instance without a whole-line solution counts in split and is replaced
	}
	return s
}

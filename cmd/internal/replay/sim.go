package replay

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
)

// Settings are the router settings a replay plans with.
type Settings struct {
	CentsPerKm       float64
	VIPSafetyStock   bool
	RejectIncomplete bool
}

// sim is one rule set's replay: its catalog (the recorded one, with its
// rules applied), what its own decisions hold, the shipments it gave each
// node today, and where it shipped differently from the recorded
// shipments.
type sim struct {
	set      Settings
	rules    *Rules // nil: the recorded catalog as it is
	stock    *stock // recorded on-hand, shared
	nodes    map[string]*schemas.Node
	sorted   []*schemas.Node
	channels map[string]*schemas.Channel
	// reserved[sku][node]: units its decisions hold; diverted[sku][node]:
	// its on-hand minus the recorded on-hand (shipments of order lines it
	// routed elsewhere).
	reserved map[string]map[string]int64
	diverted map[string]map[string]int64
	holds    map[string][]hold              // order -> what it holds
	shipping map[string]*shipping           // order -> its shipments that may still give capacity back
	held     map[string]*schemas.OrderEvent // orders ON_HOLD, waiting for RELEASED
	load     map[string][2]int64            // node -> (day, shipments)
	Stats    Stats
	matched  map[string]bool // rule nodes found in the catalog
	today    int64           // UTC day of the order being decided
}

type hold struct {
	line, sku, node string
	qty             int64
}

// shipping is what the router keeps of an order to give capacity back
// (processors/router: cancelRequests): its shipments that took capacity,
// each with the lines it still has (a shipped line stays in its shipment;
// a cancelled one leaves it), and the state of those lines. A shipment
// gives its node the capacity back when its last line is cancelled on the
// day it was routed. One with a line shipped in full can never lose that
// line: it is dropped, and the order once none is left.
type shipping struct {
	ships []ship
	lines map[string]*lineQty
}

type ship struct {
	node  string
	day   int64 // UTC day it took capacity
	lines []string
}

// lineQty is an order line's units as the router counts them.
type lineQty struct{ qty, shipped, cancelled int64 }

func (l *lineQty) open() int64 { return l.qty - l.cancelled - l.shipped }

// prune drops the shipments that can no longer give capacity back (a line
// with nothing open: shipped in full), and the lines no shipment has; it
// reports whether any shipment is left.
func (sp *shipping) prune() bool {
	sp.ships = slices.DeleteFunc(sp.ships, func(sh ship) bool {
		return slices.ContainsFunc(sh.lines, func(id string) bool { return sp.lines[id].open() <= 0 })
	})
	for id := range sp.lines {
		if !slices.ContainsFunc(sp.ships, func(sh ship) bool { return slices.Contains(sh.lines, id) }) {
			delete(sp.lines, id)
		}
	}
	return len(sp.ships) > 0
}

// stock is the on-hand units per SKU and node as the recorded stock
// movements left them.
type stock struct{ onHand map[string]map[string]int64 }

func add(m map[string]map[string]int64, sku, node string, d int64) {
	if m[sku] == nil {
		m[sku] = map[string]int64{}
	}
	m[sku][node] += d
}

func newSim(set Settings, rules *Rules, st *stock) *sim {
	s := &sim{set: set, rules: rules, stock: st, nodes: map[string]*schemas.Node{}, channels: map[string]*schemas.Channel{},
		reserved: map[string]map[string]int64{}, diverted: map[string]map[string]int64{}, holds: map[string][]hold{}, shipping: map[string]*shipping{},
		held: map[string]*schemas.OrderEvent{}, load: map[string][2]int64{}, Stats: newStats(), matched: map[string]bool{}}
	if rules != nil {
		if rules.CentsPerKm != nil {
			s.set.CentsPerKm = *rules.CentsPerKm
		}
		if rules.VIPSafetyStock != nil {
			s.set.VIPSafetyStock = *rules.VIPSafetyStock
		}
		if rules.RejectIncomplete != nil {
			s.set.RejectIncomplete = *rules.RejectIncomplete
		}
		for _, n := range rules.added() {
			s.nodes[n.NodeID] = n
		}
		s.sortNodes()
	}
	return s
}

func (s *sim) sortNodes() {
	s.sorted = s.sorted[:0]
	for _, n := range s.nodes {
		s.sorted = append(s.sorted, n)
	}
	slices.SortFunc(s.sorted, func(a, b *schemas.Node) int { return strings.Compare(a.NodeID, b.NodeID) })
}

// node applies a record of the nodes topic (nil: a tombstone).
func (s *sim) node(id string, n *schemas.Node) {
	if n != nil && s.rules != nil {
		if r, ok := s.rules.Nodes[id]; ok {
			s.matched[id] = true
			n = r.apply(n)
		}
	}
	if n == nil {
		delete(s.nodes, id)
	} else {
		s.nodes[id] = n
	}
	s.sortNodes()
}

func (s *sim) channel(id string, c *schemas.Channel) {
	if c == nil {
		delete(s.channels, id)
		return
	}
	s.channels[id] = c
}

// The router.Network of the planner.

func (s *sim) Node(id string) *schemas.Node { return s.nodes[id] }
func (s *sim) Nodes() []*schemas.Node       { return s.sorted }
func (s *sim) Channel(id string) *schemas.Channel {
	return s.channels[id]
}
func (s *sim) Stock(sku, node string) (schemas.NodeATS, bool) {
	oh, ok := s.stock.onHand[sku][node]
	if !ok {
		return schemas.NodeATS{}, false
	}
	return schemas.NodeATS{NodeID: node, OnHand: oh + s.diverted[sku][node], Reserved: s.reserved[sku][node]}, true
}

func (s *sim) ShipmentsLeft(node string) int64 {
	n := s.nodes[node]
	if n == nil || n.DailyCapacity <= 0 {
		return -1
	}
	l := s.load[node]
	if l[0] != s.today {
		return int64(n.DailyCapacity)
	}
	return max(0, int64(n.DailyCapacity)-l[1])
}

const dayMillis = 24 * 60 * 60 * 1000

// shipment consumes a SHIPMENT movement of an order line: the units leave
// the nodes where this replay holds the line (the recorded node first),
// the rest leaves the recorded node. It returns nothing: the recorded
// on-hand is changed by the caller.
func (s *sim) shipment(m *schemas.StockMovement) {
	if sp := s.shipping[*m.OrderID]; sp != nil {
		// The router's line count (processors/router: shipped): nothing
		// open, nothing counted.
		if l := sp.lines[*m.LineID]; l != nil && l.open() > 0 {
			l.shipped = min(l.qty-l.cancelled, l.shipped+m.Qty)
			if !sp.prune() {
				delete(s.shipping, *m.OrderID)
			}
		}
	}
	hs := s.holds[*m.OrderID]
	left := m.Qty
	order := slices.Clone(hs)
	// the recorded node first, then the others in node order
	slices.SortStableFunc(order, func(a, b hold) int {
		return cmp.Compare(boolInt(a.node != m.NodeID), boolInt(b.node != m.NodeID))
	})
	for _, h := range order {
		if h.line != *m.LineID || left == 0 {
			continue
		}
		c := min(left, h.qty)
		left -= c
		add(s.reserved, h.sku, h.node, -c)
		if h.node != m.NodeID {
			// it ships from h.node in this replay, not from the recorded node
			add(s.diverted, h.sku, h.node, -c)
			add(s.diverted, h.sku, m.NodeID, c)
		}
		for i := range hs {
			if hs[i].line == h.line && hs[i].node == h.node {
				hs[i].qty -= c
			}
		}
	}
	hs = slices.DeleteFunc(hs, func(h hold) bool { return h.qty <= 0 })
	if len(hs) == 0 {
		delete(s.holds, *m.OrderID)
	} else {
		s.holds[*m.OrderID] = hs
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cancel releases what the order holds for lines (every line when empty),
// and gives a node its capacity back as the router does: when the order's
// shipment there loses its last line on the day it was routed (a line
// shipped in full is not cancelled and stays in its shipment).
func (s *sim) cancel(id string, lines []string, ts int64) {
	if ev, ok := s.held[id]; ok {
		if len(lines) == 0 {
			delete(s.held, id)
		} else {
			ev.Lines = slices.DeleteFunc(slices.Clone(ev.Lines), func(l schemas.OrderLine) bool { return slices.Contains(lines, l.LineID) })
			if len(ev.Lines) == 0 {
				delete(s.held, id)
			}
		}
	}
	s.cancelShipments(id, lines, ts/dayMillis)
	hs, ok := s.holds[id]
	if !ok {
		return
	}
	var keep []hold
	for _, h := range hs {
		if len(lines) == 0 || slices.Contains(lines, h.line) {
			add(s.reserved, h.sku, h.node, -h.qty)
			continue
		}
		keep = append(keep, h)
	}
	if len(keep) == 0 {
		delete(s.holds, id)
	} else {
		s.holds[id] = keep
	}
}

// cancelShipments is the router's cancel (processors/router: cancel,
// cancelRequests) for the capacity: the lines cancelled are those asked
// for (every line when empty) with units open; they leave their
// shipments, and a shipment left with no line gives its node a shipment
// back if it was routed on day.
func (s *sim) cancelShipments(id string, lines []string, day int64) {
	sp := s.shipping[id]
	if sp == nil {
		return
	}
	var cancelled []string
	for lid, l := range sp.lines {
		if (len(lines) == 0 || slices.Contains(lines, lid)) && l.open() > 0 {
			l.cancelled += l.open()
			cancelled = append(cancelled, lid)
		}
	}
	kept := sp.ships[:0]
	for _, sh := range sp.ships {
		sh.lines = slices.DeleteFunc(sh.lines, func(l string) bool { return slices.Contains(cancelled, l) })
		if len(sh.lines) > 0 {
			kept = append(kept, sh)
			continue
		}
		// the whole shipment: capacity back, the same day only
		if l := s.load[sh.node]; sh.day == day && l[0] == day && l[1] > 0 {
			s.load[sh.node] = [2]int64{day, l[1] - 1}
		}
	}
	sp.ships = kept
	if !sp.prune() {
		delete(s.shipping, id)
	}
}

// holdReasons are the router's reasons to put a new order ON_HOLD
// (processors/router: channel value limit, ship-to country, no
// coordinates).
func (s *sim) holdReasons(ev *schemas.OrderEvent) bool {
	ch := s.channels[ev.ChannelID]
	if ch != nil && ch.MaxOrderValueCents > 0 && router.OrderValue(ev.Lines) > ch.MaxOrderValueCents {
		return true
	}
	if ev.DeliveryMethod == schemas.DeliveryShip && ev.ShipTo != nil {
		if ch != nil && len(ch.ShipCountries) > 0 && !slices.Contains(ch.ShipCountries, ev.ShipTo.Country) {
			return true
		}
		if ev.ShipTo.Lat == 0 && ev.ShipTo.Lon == 0 {
			return true
		}
	}
	return false
}

// placed handles a new order: ON_HOLD, or decided now. It returns the
// decision, or nil when held.
func (s *sim) placed(ev *schemas.OrderEvent, ts int64) *Decision {
	s.Stats.Orders++
	if s.holdReasons(ev) {
		s.held[ev.OrderID] = ev
		return nil
	}
	return s.decide(ev, ts)
}

// released decides an order ON_HOLD; nil if it is not held.
func (s *sim) released(id string, ts int64) *Decision {
	ev, ok := s.held[id]
	if !ok {
		return nil
	}
	delete(s.held, id)
	return s.decide(ev, ts)
}

// decide plans an order as the router's first planning round does when no
// reservation is refused: the planner over this replay's availability,
// then the order's policy; it takes the stock and the capacity.
func (s *sim) decide(ev *schemas.OrderEvent, ts int64) *Decision {
	s.today = ts / dayMillis
	cfg := router.PlanConfig{CentsPerKm: s.set.CentsPerKm}
	useSafety := ev.CustomerTier == schemas.TierVIP && s.set.VIPSafetyStock
	d := &Decision{OrderID: ev.OrderID}
	lines := ev.Lines
	cands, _, reject := router.Eligible(cfg, ev, lines, s, useSafety, nil)
	var plan *router.Plan
	if reject == "" {
		plan = router.PlanOrder(cfg, lines, cands, ev.Priority == schemas.PriorityRush)
	}
	if reject != "" || (len(plan.Unplanned) > 0 && ev.Policy == schemas.ShipComplete) {
		d.Backordered = slices.Clone(lines)
		d.Status = schemas.DecisionBackordered
		if reject != "" || s.set.RejectIncomplete {
			d.Status = schemas.DecisionRejected
		}
		s.Stats.add(d)
		return d
	}
	cpk := cfg.CentsPerKm
	if cpk <= 0 {
		cpk = 1
	}
	for _, sh := range plan.Shipments {
		out := Shipment{NodeID: sh.NodeID, Lines: sh.Lines}
		n := s.nodes[sh.NodeID]
		if ev.DeliveryMethod == schemas.DeliveryShip && ev.ShipTo != nil {
			km := router.HaversineKm(n.Lat, n.Lon, ev.ShipTo.Lat, ev.ShipTo.Lon)
			out.DistanceKm = math.Round(km*10) / 10
			out.CostCents = int64(n.ShipmentCostCents) + int64(km*cpk+0.5)
			day := s.today
			l := s.load[sh.NodeID]
			if l[0] != day {
				l = [2]int64{day, 0}
			}
			s.load[sh.NodeID] = [2]int64{day, l[1] + 1}
			s.addShipping(ev, sh.NodeID, day, sh.Lines)
		}
		for _, l := range sh.Lines {
			add(s.reserved, l.SKU, sh.NodeID, l.Qty)
			s.holds[ev.OrderID] = append(s.holds[ev.OrderID], hold{line: l.LineID, sku: l.SKU, node: sh.NodeID, qty: l.Qty})
		}
		d.Shipments = append(d.Shipments, out)
	}
	d.Backordered = plan.Unplanned
	switch {
	case len(d.Shipments) == 0:
		d.Status = schemas.DecisionBackordered
	case len(d.Backordered) > 0:
		d.Status = schemas.DecisionPartiallyRouted
	default:
		d.Status = schemas.DecisionRouted
	}
	s.Stats.add(d)
	return d
}

// addShipping records a shipment of ev that took node's capacity on day,
// with its lines (their units: what ev ordered, as the router counts).
func (s *sim) addShipping(ev *schemas.OrderEvent, node string, day int64, lines []schemas.OrderLine) {
	sp := s.shipping[ev.OrderID]
	if sp == nil {
		sp = &shipping{lines: map[string]*lineQty{}}
		s.shipping[ev.OrderID] = sp
	}
	sh := ship{node: node, day: day}
	for _, l := range lines {
		sh.lines = append(sh.lines, l.LineID)
		if sp.lines[l.LineID] != nil {
			continue
		}
		q := l.Qty
		if i := slices.IndexFunc(ev.Lines, func(o schemas.OrderLine) bool { return o.LineID == l.LineID }); i >= 0 {
			q = ev.Lines[i].Qty
		}
		sp.lines[l.LineID] = &lineQty{qty: q}
	}
	sp.ships = append(sp.ships, sh)
}

// Decision is a routing decision, the replay's or a recorded one.
type Decision struct {
	OrderID     string
	Status      schemas.DecisionStatus
	Shipments   []Shipment
	Backordered []schemas.OrderLine
}

// Shipment is one node's part of a decision.
type Shipment struct {
	NodeID     string
	Lines      []schemas.OrderLine
	DistanceKm float64
	CostCents  int64
}

// FromRecorded converts a recorded decision.
func FromRecorded(r *schemas.RoutingDecision) *Decision {
	d := &Decision{OrderID: r.OrderID, Status: r.Status, Backordered: r.Backordered}
	for _, s := range r.Shipments {
		d.Shipments = append(d.Shipments, Shipment{NodeID: s.NodeID, Lines: s.Lines, DistanceKm: s.DistanceKm, CostCents: s.CostCents})
	}
	return d
}

// Signature identifies what a decision does: status, the units of every
// line per node, the units backordered per line. Two decisions agree iff
// their signatures are equal.
func (d *Decision) Signature() string {
	var parts []string
	for _, s := range d.Shipments {
		for _, l := range s.Lines {
			parts = append(parts, fmt.Sprintf("%s:%s=%d", s.NodeID, l.LineID, l.Qty))
		}
	}
	slices.Sort(parts)
	var bo []string
	for _, l := range d.Backordered {
		bo = append(bo, fmt.Sprintf("%s=%d", l.LineID, l.Qty))
	}
	slices.Sort(bo)
	return string(d.Status) + " " + strings.Join(parts, ",") + " bo:" + strings.Join(bo, ",")
}

// String is the decision for people: status, shipments as node[line x
// qty, ...], backordered lines.
func (d *Decision) String() string {
	var b strings.Builder
	b.WriteString(string(d.Status))
	ships := slices.Clone(d.Shipments)
	slices.SortFunc(ships, func(a, b Shipment) int { return strings.Compare(a.NodeID, b.NodeID) })
	for _, s := range ships {
		var ls []string
		for _, l := range s.Lines {
			ls = append(ls, fmt.Sprintf("%sx%d", l.LineID, l.Qty))
		}
		fmt.Fprintf(&b, " %s[%s]", s.NodeID, strings.Join(ls, " "))
	}
	if len(d.Backordered) > 0 {
		var ls []string
		for _, l := range d.Backordered {
			ls = append(ls, fmt.Sprintf("%sx%d", l.LineID, l.Qty))
		}
		fmt.Fprintf(&b, " backordered[%s]", strings.Join(ls, " "))
	}
	return b.String()
}

// Stats aggregates decisions.
type Stats struct {
	Orders      int64 // PLACED orders (the replays) seen
	Decided     int64
	Routed      int64 // decisions with at least one shipment
	Split       int64 // decisions with more than one shipment
	Shipments   int64
	Km          float64 // sum over shipments
	CostCents   int64
	Units       int64 // in decisions: shipped + backordered
	Backordered int64 // units
	Status      map[schemas.DecisionStatus]int64
	PerNode     map[string]*NodeStats
}

// NodeStats is what decisions gave one node.
type NodeStats struct {
	Shipments int64
	Units     int64
}

func newStats() Stats {
	return Stats{Status: map[schemas.DecisionStatus]int64{}, PerNode: map[string]*NodeStats{}}
}

func (s *Stats) add(d *Decision) {
	s.Decided++
	s.Status[d.Status]++
	if len(d.Shipments) > 0 {
		s.Routed++
	}
	if len(d.Shipments) > 1 {
		s.Split++
	}
	for _, sh := range d.Shipments {
		s.Shipments++
		s.Km += sh.DistanceKm
		s.CostCents += sh.CostCents
		ns := s.PerNode[sh.NodeID]
		if ns == nil {
			ns = &NodeStats{}
			s.PerNode[sh.NodeID] = ns
		}
		ns.Shipments++
		for _, l := range sh.Lines {
			s.Units += l.Qty
			ns.Units += l.Qty
		}
	}
	for _, l := range d.Backordered {
		s.Units += l.Qty
		s.Backordered += l.Qty
	}
}

// SplitRate is split decisions over routed ones.
func (s *Stats) SplitRate() float64 { return ratio(float64(s.Split), float64(s.Routed)) }

// MeanKm is the distance per routed order.
func (s *Stats) MeanKm() float64 { return ratio(s.Km, float64(s.Routed)) }

// MeanCost is the cost per routed order, in cents.
func (s *Stats) MeanCost() float64 { return ratio(float64(s.CostCents), float64(s.Routed)) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

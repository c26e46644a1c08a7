// Package router is the order router: it plans which node(s) fulfil each
// order, has the inventory processor reserve the stock, and follows the
// order through its life.
//
// This file is the planner: a pure function from an order's open lines and
// a snapshot of the network (nodes, their availability per SKU, capacity
// left today) to shipments. It reads no clock and does no I/O.
//
// # Objective
//
// In order: fewest shipments (a node that has every line beats any split);
// then lowest cost (the node's shipment cost plus a distance cost, Haversine
// from node to ship-to), or for RUSH orders lowest distance, then cost; then
// node ids (deterministic tie-break).
//
// A line ships whole from one node when some node has its quantity. The
// search over which nodes to use is exact: a dynamic programme over subsets
// of lines (set cover with weights (shipments, cost)), 2^lines x candidates
// steps, used up to Config.ExactMaxLines lines (default 12) and
// Config.ExactMaxCandidates nodes (default 64). Beyond that a greedy cover
// (the node covering most open lines, then the cheapest) is used, and the
// plan's reasons say so.
//
// A line no single node can cover is split across nodes by quantity:
// first the nodes already shipping, then by cost. What no node has stays
// unplanned (backorder or reject, by the order's policy; the caller
// decides).
package router

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/invroute/invroute/schemas"
)

// PlanConfig tunes the planner. Zero fields mean defaults.
type PlanConfig struct {
	// CentsPerKm is the distance part of a shipment's cost. Default 1.
	CentsPerKm float64
	// ExactMaxLines and ExactMaxCandidates bound the exact search.
	// Defaults 12 and 64.
	ExactMaxLines      int
	ExactMaxCandidates int
}

// CheckCentsPerKm refuses a distance cost the planner cannot use: 0 (which
// PlanConfig takes for unset, the default 1), negative, NaN or infinite
// (every cost would overflow).
func CheckCentsPerKm(v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("cents_per_km %g must be a positive, finite number (0 cannot turn distance off; a small value makes it count little)", v)
	}
	return nil
}

func (c PlanConfig) withDefaults() PlanConfig {
	if c.CentsPerKm <= 0 {
		c.CentsPerKm = 1
	}
	if c.ExactMaxLines <= 0 {
		c.ExactMaxLines = 12
	}
	if c.ExactMaxCandidates <= 0 {
		c.ExactMaxCandidates = 64
	}
	return c
}

// Candidate is a node that may fulfil part of an order, with what it can
// give: units reservable now per SKU (already including or excluding
// safety stock, as the order may use it).
type Candidate struct {
	NodeID     string
	Available  map[string]int64 // sku -> reservable units
	DistanceKm float64          // node to ship-to; 0 for pickups
	CostCents  int64            // shipment cost + distance cost
}

// Shipment is one node's part of a plan.
type Shipment struct {
	NodeID     string
	Lines      []schemas.OrderLine
	DistanceKm float64
	CostCents  int64
}

// Plan is the planner's answer.
type Plan struct {
	Shipments []Shipment          // in node id order
	Unplanned []schemas.OrderLine // lines, or their rest, that no node can give now
	Reasons   []string
	Exact     bool // the node choice is provably optimal
}

// Split reports whether the plan ships from more than one node.
func (p *Plan) Split() bool { return len(p.Shipments) > 1 }

// Totals returns the plan's distance and cost.
func (p *Plan) Totals() (km float64, cents int64) {
	for _, s := range p.Shipments {
		km += s.DistanceKm
		cents += s.CostCents
	}
	return km, cents
}

// maxCoverLines is how many lines the node choice handles (one bit each);
// lines beyond it are placed like lines no node covers whole.
const maxCoverLines = 64

// weight orders plans: shipments, then distance (RUSH only), then cost.
type weight struct {
	ships int
	km    float64 // RUSH only; 0 otherwise
	cost  int64
}

func (a weight) less(b weight) bool {
	if a.ships != b.ships {
		return a.ships < b.ships
	}
	if a.km != b.km {
		return a.km < b.km
	}
	return a.cost < b.cost
}

func (a weight) add(b weight) weight {
	return weight{a.ships + b.ships, a.km + b.km, a.cost + b.cost}
}

// PlanOrder plans lines over cands. rush prefers near nodes over cheap ones.
// cands may come in any order; the result does not depend on it.
func PlanOrder(cfg PlanConfig, lines []schemas.OrderLine, cands []Candidate, rush bool) *Plan {
	cfg = cfg.withDefaults()
	cands = slices.Clone(cands)
	slices.SortFunc(cands, func(a, b Candidate) int { return strings.Compare(a.NodeID, b.NodeID) })
	p := &Plan{Exact: true}
	w := func(c *Candidate) weight {
		if rush {
			return weight{1, c.DistanceKm, c.CostCents}
		}
		return weight{1, 0, c.CostCents}
	}

	// Lines some node can cover whole take part in the cover; the others
	// are split by quantity afterwards.
	var whole, split []int
	for i, l := range lines {
		if len(whole) < maxCoverLines && slices.ContainsFunc(cands, func(c Candidate) bool { return c.Available[l.SKU] >= l.Qty }) {
			whole = append(whole, i)
		} else {
			split = append(split, i)
		}
	}
	var chosen []int // candidate indexes
	var picks []pick // the exact search's lines per node, when SKUs repeat
	if repeatsSKU(lines, whole) && len(whole) <= exactRepeatLines && len(cands) <= cfg.ExactMaxCandidates {
		picks = exactCoverShared(lines, whole, cands, w)
		for _, pk := range picks {
			chosen = append(chosen, pk.ci)
		}
	}
	if picks == nil && len(whole) > 0 {
		masks := make([]uint64, len(cands))
		for ci, c := range cands {
			for bi, li := range whole {
				if c.Available[lines[li].SKU] >= lines[li].Qty {
					masks[ci] |= 1 << bi
				}
			}
		}
		switch {
		case repeatsSKU(lines, whole):
			// Two lines of one SKU may not both fit a node that has either:
			// the node choice below does not know, the assignment copes.
			chosen = greedyCover(len(whole), masks, cands, w)
			p.Exact = false
			p.Reasons = append(p.Reasons, fmt.Sprintf("%d lines repeat a SKU: greedy node choice", len(whole)))
		case len(whole) <= cfg.ExactMaxLines && len(cands) <= cfg.ExactMaxCandidates:
			chosen = exactCover(len(whole), masks, cands, w)
		default:
			chosen = greedyCover(len(whole), masks, cands, w)
			p.Exact = false
			p.Reasons = append(p.Reasons, fmt.Sprintf("large order (%d lines, %d candidate nodes): greedy node choice", len(lines), len(cands)))
		}
	}

	// Assign each whole line to a chosen node: the cheapest (RUSH: nearest)
	// that still has its units (two lines of one SKU share a node's stock).
	left := make([]map[string]int64, len(cands))
	for ci := range cands {
		left[ci] = map[string]int64{}
		for sku, n := range cands[ci].Available {
			left[ci][sku] = n
		}
	}
	byPref := slices.Clone(chosen)
	pref := func(a, b int) int {
		wa, wb := w(&cands[a]), w(&cands[b])
		switch {
		case wa.less(wb):
			return -1
		case wb.less(wa):
			return 1
		}
		return cmp.Compare(a, b)
	}
	slices.SortFunc(byPref, pref)
	assigned := map[int][]schemas.OrderLine{}
	for _, pk := range picks {
		for bi, li := range whole {
			if pk.mask&(1<<bi) != 0 {
				l := lines[li]
				left[pk.ci][l.SKU] -= l.Qty
				assigned[pk.ci] = append(assigned[pk.ci], l)
			}
		}
	}
	for _, li := range whole {
		if picks != nil {
			break // placed by the picks
		}
		l := lines[li]
		placed := false
		for _, ci := range byPref {
			if left[ci][l.SKU] >= l.Qty {
				left[ci][l.SKU] -= l.Qty
				assigned[ci] = append(assigned[ci], l)
				placed = true
				break
			}
		}
		if !placed {
			split = append(split, li)
		}
	}
	slices.Sort(split)

	// Split the rest by quantity: nodes already shipping first, then the
	// others by preference.
	others := make([]int, 0, len(cands))
	for ci := range cands {
		if !slices.Contains(chosen, ci) {
			others = append(others, ci)
		}
	}
	slices.SortFunc(others, pref)
	for _, li := range split {
		l := lines[li]
		need := l.Qty
		var parts int
		for _, ci := range append(slices.Clone(byPref), others...) {
			if need == 0 {
				break
			}
			take := min(need, left[ci][l.SKU])
			if take <= 0 {
				continue
			}
			left[ci][l.SKU] -= take
			need -= take
			part := l
			part.Qty = take
			assigned[ci] = append(assigned[ci], part)
			parts++
		}
		if parts > 1 {
			p.Reasons = append(p.Reasons, fmt.Sprintf("line %s split across %d nodes: no node has %d units of %s", l.LineID, parts, l.Qty, l.SKU))
		}
		if need > 0 {
			p.Reasons = append(p.Reasons, fmt.Sprintf("line %s: %d of %d units of %s available now", l.LineID, l.Qty-need, l.Qty, l.SKU))
			rest := l
			rest.Qty = need
			p.Unplanned = append(p.Unplanned, rest)
		}
	}

	for ci := range cands {
		if ls := assigned[ci]; len(ls) > 0 {
			c := &cands[ci]
			p.Shipments = append(p.Shipments, Shipment{NodeID: c.NodeID, Lines: ls, DistanceKm: c.DistanceKm, CostCents: c.CostCents})
		}
	}
	switch {
	case len(p.Shipments) == 1 && len(p.Unplanned) == 0:
		p.Reasons = append([]string{fmt.Sprintf("one node covers all lines: %s", p.Shipments[0].NodeID)}, p.Reasons...)
	case len(p.Shipments) > 1:
		p.Reasons = append([]string{fmt.Sprintf("split into %d shipments: no single node has all lines", len(p.Shipments))}, p.Reasons...)
	}
	if rush && len(p.Shipments) > 0 {
		p.Reasons = append(p.Reasons, "RUSH: nearest nodes preferred over cheapest")
	}
	return p
}

// exactCover returns the candidates of a minimum-weight cover of n lines:
// best[m] is the lightest set of nodes covering exactly the lines in m or
// more, built mask by mask (each node at most once in an optimal cover, as
// weights are positive). Ties keep the first found, which with candidates
// in node id order and masks in increasing order is deterministic.
func exactCover(n int, masks []uint64, cands []Candidate, w func(*Candidate) weight) []int {
	full := uint64(1)<<n - 1
	type cell struct {
		ok   bool
		w    weight
		prev uint64
		node int
	}
	best := make([]cell, full+1)
	best[0] = cell{ok: true}
	for m := uint64(0); m <= full; m++ {
		if !best[m].ok {
			continue
		}
		for ci := range cands {
			if masks[ci]&^m == 0 {
				continue // adds no line
			}
			next := m | masks[ci]
			nw := best[m].w.add(w(&cands[ci]))
			if !best[next].ok || nw.less(best[next].w) {
				best[next] = cell{ok: true, w: nw, prev: m, node: ci}
			}
		}
	}
	var out []int
	for m := full; m != 0; m = best[m].prev {
		out = append(out, best[m].node)
	}
	return out
}

// exactRepeatLines bounds the exact search when SKUs repeat: it enumerates
// subsets of lines per node, 3^lines x candidates steps.
const exactRepeatLines = 8

// pick is one node of a cover with the lines (bits over whole) it ships.
type pick struct {
	ci   int
	mask uint64
}

// repeatsSKU reports whether two of the lines whole names share a SKU.
func repeatsSKU(lines []schemas.OrderLine, whole []int) bool {
	seen := map[string]bool{}
	for _, li := range whole {
		if seen[lines[li].SKU] {
			return true
		}
		seen[lines[li].SKU] = true
	}
	return false
}

// exactCoverShared is the exact node choice when lines share SKUs: a node
// takes a set of lines only if it has the sum of their quantities per
// SKU. best[m] is the lightest way to ship exactly the lines in m; each
// step gives the lowest line not yet shipped, with any other open lines,
// to one node. A node chosen twice (its two sets together may exceed its
// stock) is not a valid plan: then it returns nil and the caller falls back
// to the greedy choice.
func exactCoverShared(lines []schemas.OrderLine, whole []int, cands []Candidate, w func(*Candidate) weight) []pick {
	n := len(whole)
	full := uint64(1)<<n - 1
	fits := func(ci int, m uint64) bool {
		need := map[string]int64{}
		for bi, li := range whole {
			if m&(1<<bi) != 0 {
				need[lines[li].SKU] += lines[li].Qty
			}
		}
		for sku, q := range need {
			if cands[ci].Available[sku] < q {
				return false
			}
		}
		return true
	}
	type cell struct {
		ok   bool
		w    weight
		prev uint64
		pick pick
	}
	best := make([]cell, full+1)
	best[0] = cell{ok: true}
	for m := uint64(0); m < full; m++ {
		if !best[m].ok {
			continue
		}
		rem := full &^ m
		low := rem & -rem
		for s := rem; s > 0; s = (s - 1) & rem {
			if s&low == 0 {
				continue
			}
			for ci := range cands {
				if !fits(ci, s) {
					continue
				}
				nw := best[m].w.add(w(&cands[ci]))
				if next := m | s; !best[next].ok || nw.less(best[next].w) {
					best[next] = cell{ok: true, w: nw, prev: m, pick: pick{ci, s}}
				}
			}
		}
	}
	if !best[full].ok {
		return nil
	}
	var out []pick
	used := map[int]bool{}
	for m := full; m != 0; m = best[m].prev {
		pk := best[m].pick
		if used[pk.ci] {
			// The lightest plan ships twice from one node: search the
			// plans that use each node once, depth first.
			return searchShared(lines, whole, cands, w)
		}
		used[pk.ci] = true
		out = append(out, pk)
	}
	return out
}

// searchBudget bounds searchShared's steps; past it the caller falls back
// to the greedy choice.
const searchBudget = 200_000

// searchShared gives each line (of whole) to a node that still has its
// quantity, every node at most once in the plan, and keeps the lightest
// plan; a branch heavier than the best so far is cut. It returns nil when
// no plan exists or the budget runs out.
func searchShared(lines []schemas.OrderLine, whole []int, cands []Candidate, w func(*Candidate) weight) []pick {
	left := make([]map[string]int64, len(cands))
	for ci := range cands {
		left[ci] = maps.Clone(cands[ci].Available)
	}
	masks := make([]uint64, len(cands))
	var best []pick
	var bestW weight
	steps := 0
	var rec func(i int, cur weight) bool
	rec = func(i int, cur weight) bool {
		if steps++; steps > searchBudget {
			return false
		}
		if best != nil && !cur.less(bestW) {
			return true
		}
		if i == len(whole) {
			best, bestW = best[:0], cur
			for ci, m := range masks {
				if m != 0 {
					best = append(best, pick{ci, m})
				}
			}
			return true
		}
		l := lines[whole[i]]
		for ci := range cands {
			if left[ci][l.SKU] < l.Qty {
				continue
			}
			next := cur
			if masks[ci] == 0 {
				next = cur.add(w(&cands[ci]))
			}
			left[ci][l.SKU] -= l.Qty
			masks[ci] |= 1 << i
			ok := rec(i+1, next)
			masks[ci] &^= 1 << i
			left[ci][l.SKU] += l.Qty
			if !ok {
				return false
			}
		}
		return true
	}
	if !rec(0, weight{}) || best == nil {
		return nil
	}
	return best
}

// greedyCover picks, until every line is covered, the node covering most
// open lines, then the lightest.
func greedyCover(n int, masks []uint64, cands []Candidate, w func(*Candidate) weight) []int {
	full := uint64(math.MaxUint64)
	if n < 64 {
		full = uint64(1)<<n - 1
	}
	var out []int
	for open := full; open != 0; {
		bestCI, bestN := -1, 0
		for ci := range cands {
			k := bits.OnesCount64(masks[ci] & open)
			if k == 0 {
				continue
			}
			if k > bestN || (k == bestN && w(&cands[ci]).less(w(&cands[bestCI]))) {
				bestCI, bestN = ci, k
			}
		}
		if bestCI < 0 {
			break
		}
		out = append(out, bestCI)
		open &^= masks[bestCI]
	}
	return out
}

// HaversineKm is the great-circle distance between two points, in km.
func HaversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088 // mean Earth radius, km
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Package replay is `invroute replay`: it re-runs the routing over the
// recorded history with the current rules and with an alternative rule
// set, and reports what would change.
//
// # What it reads and how
//
// The topics nodes, channels, stock-movements, orders and
// routing-decisions, read_committed from their start to their end as of
// the start of the replay, merged into one stream by record timestamp (at
// equal timestamps: nodes, channels, movements, orders, decisions). Each
// topic's partitions are read in order; partitions whose queue is full are
// paused, so memory does not grow with the history.
//
// # The model
//
//   - The catalog evolves as recorded: a node or channel record changes the
//     tables from its timestamp on (the alternative applies its rules to
//     every node record).
//   - On-hand stock is what the recorded stock movements (valid ones, each
//     movement id once) left at each order's timestamp. The engine sees a
//     movement about one commit interval later; the replay at once, or
//     --lag after its timestamp.
//   - Reservations are the replay's own: each decision holds what it
//     routes. A SHIPMENT movement naming an order line takes the units from
//     where the replay holds that line (if the replay routed it elsewhere
//     than the recorded node, the units leave that node instead: the
//     replay's on-hand there and at the recorded node differ from the
//     recorded ones by what was diverted); a CANCELLED event releases the
//     lines' holds and gives the day's capacity back like the router: only
//     for a shipment whose every line is cancelled (a line shipped in full
//     stays in its shipment), on the day it was routed.
//   - Each order is decided once, at PLACED (or at RELEASED if its channel
//     rules put it ON_HOLD), as the router's first planning round decides
//     when no reservation is refused: router.Eligible, router.PlanOrder,
//     then the order's policy. Daily capacities count the replay's own
//     shipments per UTC day.
//
// Not modelled: re-plans after a refused reservation (orders planned
// concurrently on the same stock), short picks and rejections
// (fulfillment-feedback), address changes, retries of backorders (by
// RELEASED, or when stock arrives: only an order's first decision is
// compared), the customer screen. So a recorded decision can differ from
// the replay under the current rules; the agreement figure says how often.
//
// Memory: the on-hand table (per SKU and node, like the router's ats
// table), the holds of orders not yet shipped or cancelled, the shipments
// that may still give capacity back (no line shipped in full), 8-byte hashes
// of the order ids seen (duplicates, first decisions) and of the last
// 2^20 movement ids, per-node aggregates, the first N changed decisions,
// and the decisions of orders whose recorded (or replayed) counterpart has
// not come yet (at most 2^20); decisions themselves are not kept.
package replay

import (
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
)

// Change is an order decided differently under the alternative rules.
type Change struct {
	OrderID     string
	Current     string
	Alternative string
}

// Disagreement is an order the replay under the current rules decided
// differently from the engine.
type Disagreement struct {
	OrderID  string
	Replay   string
	Recorded string
}

// Report is a replay's outcome.
type Report struct {
	Current, Alternative, Recorded Stats
	CurrentSettings                Settings
	AlternativeSettings            Settings
	Movements                      int64 // applied
	MovementDuplicates             int64
	Invalid                        map[string]int64 // per topic: undecodable or invalid records skipped
	DuplicateOrders                int64
	CatalogRecords                 int64
	// Changed counts orders whose decision differs between the rule sets;
	// Changes are the first of them.
	Changed int64
	Changes []Change
	// Compared counts orders with both a replayed (current rules) and a
	// recorded first decision; Agreed of them are equal.
	Compared, Agreed int64
	Disagreements    []Disagreement
	// OnlyReplayed: orders the replay decided (current rules) without a
	// recorded decision; OnlyRecorded: recorded first decisions of orders
	// the replay did not decide.
	OnlyReplayed, OnlyRecorded int64
	// HeldCurrent, HeldAlternative: orders still ON_HOLD at the end.
	HeldCurrent, HeldAlternative int64
	// UnmatchedRules are nodes of the rules that never appeared and were
	// not complete enough to be added.
	UnmatchedRules []string
}

// Agreement is Agreed / Compared.
func (r *Report) Agreement() float64 { return ratio(float64(r.Agreed), float64(r.Compared)) }

// Replay consumes the merged stream.
type Replay struct {
	cur, alt *sim
	stock    *stock
	top      int
	ids      schemas.SchemaIDs // accepted Confluent schema ids (SetSchemaIDs)
	rep      Report
	seed     maphash.Seed
	orders   map[uint64]struct{} // PLACED orders seen
	firstRec map[uint64]struct{} // orders with a recorded decision seen
	// pendingCur: current-rules signatures waiting for the recorded first
	// decision; pendingRec: recorded signatures waiting for the replay's.
	pendingCur map[string]string
	pendingRec map[string]string
	movRing    []uint64
	movSet     map[uint64]struct{}
	movNext    int
	// lag delays movements (ms): the engine's router sees a movement's
	// effect on the ats topic a commit interval or more after it.
	lag     int64
	delayed []delayedMovement
}

type delayedMovement struct {
	ts int64
	m  schemas.StockMovement
}

// SetSchemaIDs sets the Confluent schema ids accepted on inputs, as the
// engine's schema_ids (none: Confluent framing is invalid).
func (r *Replay) SetSchemaIDs(ids schemas.SchemaIDs) { r.ids = ids }

// SetLag makes a movement count from lag after its timestamp.
func (r *Replay) SetLag(lag time.Duration) { r.lag = lag.Milliseconds() }

// flush applies the delayed movements due at ts.
func (r *Replay) flush(ts int64) {
	n := 0
	for _, d := range r.delayed {
		if d.ts+r.lag > ts {
			break
		}
		r.movement(&d.m)
		n++
	}
	if n > 0 {
		r.delayed = append(r.delayed[:0], r.delayed[n:]...)
	}
}

const movWindow = 1 << 20

// maxPending bounds the decisions waiting for their counterpart (a
// history without recorded decisions would otherwise keep every order's);
// beyond it they are not compared.
var maxPending = 1 << 20

// New returns a replay of current settings against rules; top bounds the
// changes and disagreements listed.
func New(current Settings, rules *Rules, top int) *Replay {
	st := &stock{onHand: map[string]map[string]int64{}}
	r := &Replay{stock: st, top: top, seed: maphash.MakeSeed(),
		orders: map[uint64]struct{}{}, firstRec: map[uint64]struct{}{},
		pendingCur: map[string]string{}, pendingRec: map[string]string{}, movSet: map[uint64]struct{}{}}
	r.cur = newSim(current, nil, st)
	r.alt = newSim(current, rules, st)
	r.rep.Invalid = map[string]int64{}
	r.rep.Recorded = newStats()
	return r
}

func (r *Replay) hash(s string) uint64 { return maphash.String(r.seed, s) }

// Topics of the replay, in tie-break order.
var Topics = []string{"nodes", "channels", "stock-movements", "orders", "routing-decisions"}

// Record applies one record of topic (without the prefix), in timestamp
// order.
func (r *Replay) Record(topic string, key, value []byte, ts int64) {
	if topic != "stock-movements" {
		r.flush(ts)
	}
	switch topic {
	case "nodes":
		r.rep.CatalogRecords++
		var n *schemas.Node
		if len(value) > 0 {
			n = new(schemas.Node)
			if err := schemas.Nodes.DecodeInput(value, n, r.ids); err != nil || n.NodeID != string(key) || catalog.CheckNode(n) != nil {
				r.rep.Invalid[topic]++
				return
			}
		}
		r.cur.node(string(key), n)
		if n != nil {
			c := *n
			n = &c
		}
		r.alt.node(string(key), n)
	case "channels":
		r.rep.CatalogRecords++
		var c *schemas.Channel
		if len(value) > 0 {
			c = new(schemas.Channel)
			if err := schemas.DecodeChannel(value, c, r.ids); err != nil || c.ChannelID != string(key) || catalog.CheckChannel(c) != nil {
				r.rep.Invalid[topic]++
				return
			}
		}
		r.cur.channel(string(key), c)
		r.alt.channel(string(key), c)
	case "stock-movements":
		var m schemas.StockMovement
		if err := schemas.StockMovements.DecodeInput(value, &m, r.ids); err != nil || inventory.Validate(key, &m, ts) != nil {
			r.rep.Invalid[topic]++
			return
		}
		h := r.hash(m.SKU + "\x00" + m.MovementID)
		if _, dup := r.movSet[h]; dup {
			r.rep.MovementDuplicates++
			return
		}
		if len(r.movRing) < movWindow {
			r.movRing = append(r.movRing, h)
		} else {
			delete(r.movSet, r.movRing[r.movNext])
			r.movRing[r.movNext] = h
			r.movNext = (r.movNext + 1) % movWindow
		}
		r.movSet[h] = struct{}{}
		r.rep.Movements++
		if r.lag > 0 {
			r.flush(ts)
			r.delayed = append(r.delayed, delayedMovement{ts, m})
			return
		}
		r.movement(&m)
	case "orders":
		var ev schemas.OrderEvent
		if err := schemas.OrderEvents.DecodeInput(value, &ev, r.ids); err != nil || eventCheck.ValidateEvent(key, &ev) != nil {
			r.rep.Invalid[topic]++
			return
		}
		r.order(&ev, ts)
	case "routing-decisions":
		var d schemas.RoutingDecision
		if err := schemas.RoutingDecisions.Decode(value, &d); err != nil {
			r.rep.Invalid[topic]++
			return
		}
		h := r.hash(d.OrderID)
		if _, seen := r.firstRec[h]; seen {
			return // a later decision of the order (re-plan, retry)
		}
		r.firstRec[h] = struct{}{}
		rd := FromRecorded(&d)
		r.rep.Recorded.add(rd)
		if sig, ok := r.pendingCur[d.OrderID]; ok {
			delete(r.pendingCur, d.OrderID)
			r.compare(d.OrderID, sig, rd.Signature(), rd.String())
		} else if len(r.pendingRec) < maxPending {
			r.pendingRec[d.OrderID] = rd.Signature() + "\x00" + rd.String()
		} else {
			r.rep.OnlyRecorded++
		}
	}
}

func (r *Replay) movement(m *schemas.StockMovement) {
	if m.Type == schemas.Shipment && m.OrderID != nil && m.LineID != nil {
		r.cur.shipment(m)
		r.alt.shipment(m)
	}
	switch m.Type {
	case schemas.Receipt, schemas.TransferIn, schemas.ReturnRestock, schemas.Adjustment:
		add(r.stock.onHand, m.SKU, m.NodeID, m.Qty)
	case schemas.Shipment, schemas.TransferOut, schemas.Damage:
		add(r.stock.onHand, m.SKU, m.NodeID, -m.Qty)
	case schemas.Count:
		add(r.stock.onHand, m.SKU, m.NodeID, 0)
		r.stock.onHand[m.SKU][m.NodeID] = m.Qty
	}
}

// eventCheck checks order events as the engine's router does.
var eventCheck = router.New(router.Config{})

func (r *Replay) order(ev *schemas.OrderEvent, ts int64) {
	var cd, ad *Decision
	switch ev.Type {
	case schemas.EventPlaced:
		h := r.hash(ev.OrderID)
		if _, dup := r.orders[h]; dup {
			r.rep.DuplicateOrders++
			return
		}
		if eventCheck.ValidatePlaced(ev, ts) != nil {
			r.rep.Invalid["orders"]++
			return
		}
		r.orders[h] = struct{}{}
		cd, ad = r.cur.placed(ev, ts), r.alt.placed(ev, ts)
	case schemas.EventReleased:
		cd, ad = r.cur.released(ev.OrderID, ts), r.alt.released(ev.OrderID, ts)
	case schemas.EventCancelled:
		r.cur.cancel(ev.OrderID, ev.LineIDs, ts)
		r.alt.cancel(ev.OrderID, ev.LineIDs, ts)
		return
	default:
		return
	}
	if cd != nil {
		sig := cd.Signature()
		if rec, ok := r.pendingRec[ev.OrderID]; ok {
			delete(r.pendingRec, ev.OrderID)
			recSig, recStr, _ := cut(rec)
			r.compare(ev.OrderID, sig+"\x00"+cd.String(), recSig, recStr)
		} else if len(r.pendingCur) < maxPending {
			r.pendingCur[ev.OrderID] = sig + "\x00" + cd.String()
		} else {
			r.rep.OnlyReplayed++
		}
	}
	if cd != nil || ad != nil {
		var cs, as string
		if cd != nil {
			cs = cd.Signature()
		}
		if ad != nil {
			as = ad.Signature()
		}
		if cs != as {
			r.rep.Changed++
			if len(r.rep.Changes) < r.top {
				r.rep.Changes = append(r.rep.Changes, Change{OrderID: ev.OrderID, Current: describeDecision(cd), Alternative: describeDecision(ad)})
			}
		}
	}
}

func describeDecision(d *Decision) string {
	if d == nil {
		return "ON_HOLD"
	}
	return d.String()
}

func cut(s string) (a, b string, ok bool) {
	for i := range len(s) {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// compare counts one order with both decisions: cur is the replay's
// "signature\x00text".
func (r *Replay) compare(id, cur, recSig, recStr string) {
	curSig, curStr, _ := cut(cur)
	r.rep.Compared++
	if curSig == recSig {
		r.rep.Agreed++
		return
	}
	if len(r.rep.Disagreements) < r.top {
		r.rep.Disagreements = append(r.rep.Disagreements, Disagreement{OrderID: id, Replay: curStr, Recorded: recStr})
	}
}

// Finish returns the report.
func (r *Replay) Finish() *Report {
	r.flush(math.MaxInt64 - r.lag)
	rep := r.rep
	rep.Current, rep.Alternative = r.cur.Stats, r.alt.Stats
	rep.CurrentSettings, rep.AlternativeSettings = r.cur.set, r.alt.set
	rep.HeldCurrent, rep.HeldAlternative = int64(len(r.cur.held)), int64(len(r.alt.held))
	rep.OnlyReplayed += int64(len(r.pendingCur))
	rep.OnlyRecorded += int64(len(r.pendingRec))
	if r.alt.rules != nil {
		for id, nr := range r.alt.rules.Nodes {
			if !r.alt.matched[id] && (nr.Remove || nr.Type == nil || nr.Lat == nil || nr.Lon == nil) {
				rep.UnmatchedRules = append(rep.UnmatchedRules, id)
			}
		}
		slices.Sort(rep.UnmatchedRules)
	}
	return &rep
}

// String of settings, for the report.
func (s Settings) String() string {
	return fmt.Sprintf("cents_per_km %g, vip_safety_stock %t, reject_incomplete %t", s.CentsPerKm, s.VIPSafetyStock, s.RejectIncomplete)
}

package router

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/invroute/invroute/schemas"
)

// Config holds the router's settings. Zero fields mean defaults.
type Config struct {
	Plan PlanConfig
	// MaxAttempts bounds the planning attempts of one round: after a
	// refused reservation the router re-plans with fresh availability at
	// most MaxAttempts-1 times. Default 3.
	MaxAttempts int
	// NoVIPSafetyStock keeps VIP orders out of safety stock (by default
	// they may draw on it).
	NoVIPSafetyStock bool
	// RejectIncomplete rejects SHIP_COMPLETE orders that cannot be
	// completed, instead of backordering them.
	RejectIncomplete bool
	// MaxLines bounds the lines of an order; larger orders are invalid.
	// Default 500.
	MaxLines int
	// CustomerMaxOrders, if positive, holds an order whose customer placed
	// that many orders or more within CustomerWindow before it (checked by
	// the customer screen, partitioned by customer id).
	CustomerMaxOrders int
	CustomerWindow    time.Duration
	// OrderRetention, if positive, bounds the router's state: an order
	// that is finished (see finished: every line shipped, picked up,
	// returned, cancelled or rejected, nothing held, no round open) is
	// forgotten once the partition's stream time (Store.Now) is this far
	// past the time it finished (never before its placed_at): its state
	// is deleted and its status tombstoned (Purge). A PLACED event
	// without placed_at, or placed at or before the newest finish time of
	// an order forgotten (Store.Horizon, at most this long before the
	// stream time; it outlives a change of this setting, to 0 included),
	// is then invalid, since its order may be one forgotten and would be
	// routed again. 0 keeps every order.
	OrderRetention time.Duration
	// NoBackorderRetry turns off the automatic retry of backordered lines
	// (RetryBackorders); a RELEASED event still retries an order.
	NoBackorderRetry bool
}

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MaxLines <= 0 {
		c.MaxLines = 500
	}
	if c.CustomerWindow <= 0 {
		c.CustomerWindow = 24 * time.Hour
	}
	// the screen counts in whole milliseconds, at least one
	c.CustomerWindow = max(c.CustomerWindow, time.Millisecond)
	c.Plan = c.Plan.withDefaults()
	return c
}

// Store is the router's view of its partition's state. Writes belong to
// the open transaction. A returned value must not be modified.
type Store interface {
	Order(id string) (*schemas.RouterOrder, error)
	PutOrder(o *schemas.RouterOrder)
	// Now is the partition's stream time, in ms: the newest time of the
	// order events it accepted before the one being processed (kept only
	// with Config.OrderRetention). Horizon is the newest finish time of an
	// order forgotten (0: none), and Forgot raises it.
	Now() int64
	Horizon() int64
	Forgot(at int64)
	// Expire records that order id finished at stream time at (0: it is
	// not finished). Due lists up to max finished orders whose at is at
	// or before t, earliest first; Unlist deletes the entry at of order id
	// (and the one Expire recorded); Forget deletes the order and Unlists
	// it.
	Expire(id string, at int64) error
	Due(t int64, max int) ([]Finished, error)
	Unlist(id string, at int64) error
	Forget(id string, at int64) error
	// IndexBackorders records that order id, placed at placedAt, waits
	// for stock of skus (sorted), instead of old (what it waited for
	// before). Backorders lists up to max orders waiting for sku after
	// position after (the zero Waiting: from the first), earliest placed
	// first.
	IndexBackorders(id string, placedAt int64, old, skus []string) error
	Backorders(sku string, after Waiting, max int) ([]Waiting, error)
	// Load is how many shipments this partition gave node on day (days
	// since the epoch, UTC); AddLoad changes it and returns the day the
	// change went to. Each node has one count, of the newest day counted
	// (see loadOn and loadDay).
	Load(node string, day int64) (int64, error)
	AddLoad(node string, day int64, delta int64) (int64, error)
}

// World is what the router reads of the rest of the system: the node and
// channel tables, per-node stock from the ats topic, and the shipments the
// other partitions gave each node today.
type World interface {
	Node(id string) *schemas.Node
	Nodes() []*schemas.Node // sorted by NodeID
	Channel(id string) *schemas.Channel
	Stock(sku, node string) (schemas.NodeATS, bool)
	OtherLoad(node string, day int64) int64
}

// Out receives what the router emits, in order.
type Out interface {
	Command(c *schemas.ReservationCommand) // key sku
	Decision(d *schemas.RoutingDecision)   // key order_id
	Request(r *schemas.FulfillmentRequest) // key node_id
	Status(s *schemas.OrderStatus)         // key order_id
	Check(c *schemas.CustomerCheck)        // key customer_id
	Forget(orderID string)                 // a tombstone for the order's status
}

// Stats counts what the router saw.
type Stats struct {
	Orders      int64 // PLACED orders accepted
	Duplicates  int64 // PLACED events for known orders, feedback seen again
	Holds       int64 // orders put ON_HOLD
	Decisions   int64
	Routed      int64 // decisions ROUTED
	Partial     int64 // decisions PARTIALLY_ROUTED
	Backordered int64
	Rejected    int64
	Splits      int64 // decisions with more than one shipment
	Replans     int64 // attempts after a refusal
	Stale       int64 // results of attempts no longer open
	Forgotten   int64 // finished orders forgotten after OrderRetention
	Indexed     int64 // orders finished without OrderRetention, listed for it (Task.migrate)
	Retried     int64 // backordered orders retried when stock arrived
	// Gen identifies the processor that counted: a new one for the same
	// partition (after a rebalance) starts its counts at 0.
	Gen uint64
}

// gens numbers the routers (Stats.Gen).
var gens atomic.Uint64

// Router is the router processor of one partition. It is deterministic:
// no clock, no I/O; time comes from the input records.
type Router struct {
	cfg   Config
	Stats Stats
}

// New returns a router with the given configuration.
func New(cfg Config) *Router { return &Router{cfg: cfg.withDefaults(), Stats: Stats{Gen: gens.Add(1)}} }

// InvalidError marks input that can never be applied (dead letter).
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "router: invalid input: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err marks bad input.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

const dayMillis = 24 * 60 * 60 * 1000

// day is the UTC day of ts (documented: capacity resets at midnight UTC).
func day(ts int64) int64 { return ts / dayMillis }

// step is one input's work on one order.
type step struct {
	r   *Router
	st  Store
	w   World
	out Out
	o   *schemas.RouterOrder
	ts  int64
	err error // the first store error of the step
	// prev is the stored order before the step (nil for a new one): the
	// status is emitted only when what it shows changes.
	prev *schemas.RouterOrder
}

// OrderEvent applies an event of the orders topic.
func (r *Router) OrderEvent(st Store, w World, out Out, key []byte, ev *schemas.OrderEvent, ts int64) error {
	if err := r.ValidateEvent(key, ev); err != nil {
		return err
	}
	ev.Reason = clip(ev.Reason, maxReasonBytes)
	cur, err := st.Order(ev.OrderID)
	if err != nil {
		return err
	}
	if ev.Type == schemas.EventPlaced {
		if cur != nil {
			r.Stats.Duplicates++
			return nil
		}
		// A forgotten order was placed at or before it finished, which
		// was at or before the horizon.
		if h := st.Horizon(); r.cfg.OrderRetention > 0 || h > 0 {
			switch {
			case ev.PlacedAt <= 0:
				return invalid("order %s: no placed_at, which order_retention needs to tell a new order from one forgotten", ev.OrderID)
			case ev.PlacedAt <= h:
				return invalid("order %s: placed_at %d is not after %d, when the newest order this partition forgot (order_retention) finished: "+
					"it may be one of them, which would be routed again", ev.OrderID, ev.PlacedAt, h)
			}
		}
		if err := r.ValidatePlaced(ev, ts); err != nil {
			return err
		}
		r.Stats.Orders++
		s := &step{r: r, st: st, w: w, out: out, ts: ts, o: newOrder(ev, ts)}
		return s.placed()
	}
	if cur == nil {
		return invalid("%s for unknown order %q", ev.Type, ev.OrderID)
	}
	s := &step{r: r, st: st, w: w, out: out, ts: ts, o: cloneOrder(cur), prev: cur}
	switch ev.Type {
	case schemas.EventCancelled:
		return s.cancel(ev.LineIDs, ev.Reason)
	case schemas.EventReleased:
		return s.release(ev.Reason)
	case schemas.EventAddressChanged:
		return s.addressChanged(ev.ShipTo)
	case schemas.EventReturnAuthorized:
		return s.returnAuthorized(ev.LineIDs)
	}
	return invalid("unknown order event type %q", ev.Type)
}

// ValidateEvent checks what the router refuses of an order event (of a
// record with key) before it reads the order: an empty order_id, one that
// disagrees with the key, too many or too long line_ids, an ADDRESS_CHANGED
// without a usable ship_to. A PLACED event also needs ValidatePlaced.
//
// A new order's id is checked in full (ValidatePlaced); an event for an
// order the router keeps names it by the id it was stored under, which a
// version before the id rules may have accepted.
func (r *Router) ValidateEvent(key []byte, ev *schemas.OrderEvent) error {
	if ev.OrderID == "" {
		return invalid("empty order_id")
	}
	if len(ev.LineIDs) > r.cfg.MaxLines {
		return invalid("order %s: %d line_ids, more than %d", ev.OrderID, len(ev.LineIDs), r.cfg.MaxLines)
	}
	for _, id := range ev.LineIDs {
		if len(id) > schemas.MaxIDBytes {
			return invalid("order %s: a line_id of %d bytes, more than %d", ev.OrderID, len(id), schemas.MaxIDBytes)
		}
	}
	if string(key) != ev.OrderID {
		return invalid("record key %q disagrees with order_id %q", key, ev.OrderID)
	}
	if ev.Type == schemas.EventAddressChanged {
		if ev.ShipTo == nil {
			return invalid("ADDRESS_CHANGED for %s without ship_to", ev.OrderID)
		}
		return checkAddress(ev.OrderID, ev.ShipTo)
	}
	return nil
}

// Bounds of order lines (the order value, summed over them, saturates: see
// OrderValue).
const (
	maxQty   = schemas.MaxQty
	maxPrice = 1e9
)

// maxLinesIDBytes bounds the line ids and SKUs of an order, summed: the
// router keeps them several times over in the order's state (the order as
// placed, the lines' status, holds, shipments), which must stay well under
// schemas.MaxRecordBytes. 500 lines (MaxLines' default) with ids of 64
// bytes fit; with ids of schemas.MaxIDBytes, 128 lines.
const maxLinesIDBytes = 64 << 10

// maxReasonBytes bounds the free text of an event or a feedback: longer
// text is cut (clip). An order's own reason, which quotes them and ids, is
// cut at maxOrderReasonBytes when it is stored.
const (
	maxReasonBytes      = 1024
	maxOrderReasonBytes = 4096
)

// clip cuts s to at most n bytes, at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - len("…")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// checkIDs checks (field, id) pairs with schemas.CheckID; an optional id
// (channel_id, customer_id) is passed only when set.
func checkIDs(fieldIDs ...string) error {
	if err := schemas.CheckIDs(fieldIDs...); err != nil {
		return &InvalidError{Reason: err.Error()}
	}
	return nil
}

// checkAddress refuses a ship-to the router cannot keep or measure.
func checkAddress(order string, a *schemas.Address) error {
	if a == nil {
		return nil
	}
	if len(a.Country) > schemas.MaxIDBytes || len(a.PostalCode) > schemas.MaxIDBytes {
		return invalid("order %s: ship_to country or postal_code longer than %d bytes", order, schemas.MaxIDBytes)
	}
	if err := schemas.CheckCoordinates(a.Lat, a.Lon); err != nil {
		return invalid("order %s: ship_to %v", order, err)
	}
	return nil
}

// OrderValue is the sum of qty x unit price over the lines, saturated at
// math.MaxInt64 (each product fits: both factors are at most 1e9); the
// replay checks orders with it too.
func OrderValue(lines []schemas.OrderLine) int64 {
	var v int64
	for _, l := range lines {
		p := l.Qty * l.UnitPriceCents
		if v > math.MaxInt64-p {
			return math.MaxInt64
		}
		v += p
	}
	return v
}

// maxSkew is how far after its record's timestamp an order's placed_at may
// lie: beyond it the time is taken for garbage (a producer writing
// microseconds), which would otherwise move the customer screen's clock.
const maxSkew = time.Hour

// ValidatePlaced checks a PLACED event, of a record stamped ts (ms; 0:
// unknown), as the router does before it takes a new order: an
// *InvalidError says why it goes to the dead-letter topic.
func (r *Router) ValidatePlaced(ev *schemas.OrderEvent, ts int64) error {
	switch {
	case ts > 0 && ev.PlacedAt > ts+maxSkew.Milliseconds():
		return invalid("order %s: placed_at %d lies more than %v after the record's timestamp %d", ev.OrderID, ev.PlacedAt, maxSkew, ts)
	case len(ev.Lines) == 0:
		return invalid("order %s has no lines", ev.OrderID)
	case len(ev.Lines) > r.cfg.MaxLines:
		return invalid("order %s has %d lines, more than %d", ev.OrderID, len(ev.Lines), r.cfg.MaxLines)
	case ev.DeliveryMethod == schemas.DeliveryShip && ev.ShipTo == nil:
		return invalid("SHIP order %s without ship_to", ev.OrderID)
	case ev.DeliveryMethod == schemas.DeliveryPickup && (ev.PickupNodeID == nil || *ev.PickupNodeID == ""):
		return invalid("PICKUP order %s without pickup_node_id", ev.OrderID)
	}
	if err := checkIDs("order_id", ev.OrderID); err != nil {
		return err
	}
	if ev.ChannelID != "" {
		if err := checkIDs("channel_id", ev.ChannelID); err != nil {
			return err
		}
	}
	if ev.CustomerID != "" {
		if err := checkIDs("customer_id", ev.CustomerID); err != nil {
			return err
		}
	}
	if ev.PickupNodeID != nil {
		if err := checkIDs("pickup_node_id", *ev.PickupNodeID); err != nil {
			return err
		}
	}
	if err := checkAddress(ev.OrderID, ev.ShipTo); err != nil {
		return err
	}
	ids := map[string]bool{}
	idBytes := 0
	for _, l := range ev.Lines {
		if err := checkIDs("line_id", l.LineID, "sku", l.SKU); err != nil {
			return err
		}
		if idBytes += len(l.LineID) + len(l.SKU); idBytes > maxLinesIDBytes {
			return invalid("order %s: the line ids and skus of its lines take more than %d bytes", ev.OrderID, maxLinesIDBytes)
		}
		switch {
		case l.Qty <= 0 || l.Qty > maxQty:
			return invalid("order %s line %s: qty must be in [1, %d], got %d", ev.OrderID, l.LineID, int64(maxQty), l.Qty)
		case l.UnitPriceCents < 0 || l.UnitPriceCents > maxPrice:
			return invalid("order %s line %s: unit_price_cents must be in [0, %d], got %d", ev.OrderID, l.LineID, int64(maxPrice), l.UnitPriceCents)
		case ids[l.LineID]:
			return invalid("order %s: line_id %s appears twice", ev.OrderID, l.LineID)
		}
		ids[l.LineID] = true
	}
	return nil
}

func newOrder(ev *schemas.OrderEvent, ts int64) *schemas.RouterOrder {
	o := &schemas.RouterOrder{OrderID: ev.OrderID, Placed: *ev, State: schemas.StatePlaced,
		RoundLines: []string{}, Holds: []schemas.Hold{}, Caps: []schemas.Cap{}, Shipments: []schemas.RoutedShipment{},
		FeedbackIDs: []string{}, NextShipment: 1, ShipmentDays: map[string]int64{}}
	o.Placed.LineIDs = []string{}
	for _, l := range ev.Lines {
		o.Lines = append(o.Lines, schemas.LineStatus{LineID: l.LineID, SKU: l.SKU, Qty: l.Qty,
			State: schemas.StatePlaced, UnitPriceCents: l.UnitPriceCents, UpdatedAt: ts})
	}
	return o
}

func cloneOrder(o *schemas.RouterOrder) *schemas.RouterOrder {
	c := *o
	c.RoundLines = slices.Clone(o.RoundLines)
	c.Lines = slices.Clone(o.Lines)
	c.Holds = slices.Clone(o.Holds)
	c.Caps = slices.Clone(o.Caps)
	c.FeedbackIDs = slices.Clone(o.FeedbackIDs)
	c.ShipmentDays = maps.Clone(o.ShipmentDays)
	if c.ShipmentDays == nil {
		c.ShipmentDays = map[string]int64{}
	}
	c.Shipments = make([]schemas.RoutedShipment, len(o.Shipments))
	for i, s := range o.Shipments {
		s.Lines = slices.Clone(s.Lines)
		c.Shipments[i] = s
	}
	return &c
}

// placed checks a new order and starts routing it, or holds it. With the
// customer rule on, the order first waits for the customer screen.
func (s *step) placed() error {
	ev := &s.o.Placed
	if s.r.cfg.CustomerMaxOrders > 0 && ev.CustomerID != "" {
		s.o.Screening = true
		s.out.Check(&schemas.CustomerCheck{OrderID: ev.OrderID, CustomerID: ev.CustomerID, ChannelID: ev.ChannelID,
			PlacedAt: ev.PlacedAt, MaxOrders: int32(s.r.cfg.CustomerMaxOrders), WindowMs: s.r.cfg.CustomerWindow.Milliseconds()})
		return s.save()
	}
	return s.screened("")
}

// screened continues a new order once the customer screen (if any) has
// answered: held is its reason to hold, empty if none.
func (s *step) screened(held string) error {
	why := s.holdReasons()
	if held != "" {
		why = append(why, held)
	}
	if len(why) > 0 {
		s.r.Stats.Holds++
		s.o.State = schemas.StateOnHold
		s.o.Reason = strings.Join(why, "; ")
		for i := range s.o.Lines {
			s.setLine(i, schemas.StateOnHold)
		}
		return s.save()
	}
	s.startRound(s.allOpenLines())
	return s.save()
}

// holdReasons are the validation and fraud rules that put an order ON_HOLD
// for review instead of routing it.
func (s *step) holdReasons() []string {
	ev := &s.o.Placed
	var why []string
	ch := s.w.Channel(ev.ChannelID)
	if ch != nil && ch.MaxOrderValueCents > 0 {
		if v := OrderValue(ev.Lines); v > ch.MaxOrderValueCents {
			why = append(why, fmt.Sprintf("order value %d exceeds channel %s limit %d", v, ch.ChannelID, ch.MaxOrderValueCents))
		}
	}
	if ev.DeliveryMethod == schemas.DeliveryShip && ev.ShipTo != nil {
		why = append(why, addressReasons(ch, ev.ShipTo)...)
	}
	return why
}

// addressReasons are the hold rules of a ship-to address under channel ch
// (nil: not configured).
func addressReasons(ch *schemas.Channel, to *schemas.Address) []string {
	var why []string
	if ch != nil && len(ch.ShipCountries) > 0 && !slices.Contains(ch.ShipCountries, to.Country) {
		why = append(why, fmt.Sprintf("ship-to country %q not served by channel %s", to.Country, ch.ChannelID))
	}
	if to.Lat == 0 && to.Lon == 0 {
		why = append(why, "ship-to address has no coordinates")
	}
	return why
}

func (s *step) line(id string) int {
	return slices.IndexFunc(s.o.Lines, func(l schemas.LineStatus) bool { return l.LineID == id })
}

func (s *step) setLine(i int, state schemas.OrderState) {
	switch state {
	case schemas.StateRouted, schemas.StateReadyForPickup, schemas.StateBackordered:
		if s.o.Lines[i].QtyShipped > 0 {
			// Its rest routed again (a retry, a re-plan after a short
			// pick): what shipped stays shown.
			state = schemas.StatePartiallyShipped
		}
	}
	if s.o.Lines[i].State != state {
		s.o.Lines[i].State = state
		s.o.Lines[i].UpdatedAt = s.ts
	}
}

// held is what the inventory holds for line i: committed (in shipments),
// tentative (for the open round).
func (s *step) held(id string) (committed, tentative int64) {
	for _, h := range s.o.Holds {
		if h.LineID != id {
			continue
		}
		if h.Tentative {
			tentative += h.Qty
		} else {
			committed += h.Qty
		}
	}
	return committed, tentative
}

// need is what line i still needs routed, besides committed holds.
func (s *step) need(i int) int64 {
	l := &s.o.Lines[i]
	committed, _ := s.held(l.LineID)
	return max(0, l.Qty-l.QtyCancelled-l.QtyShipped-committed)
}

func (s *step) allOpenLines() []string {
	var ids []string
	for i, l := range s.o.Lines {
		if s.need(i) > 0 {
			ids = append(ids, l.LineID)
		}
	}
	return ids
}

// startRound opens a planning round for lines (its first attempt) and
// plans it.
func (s *step) startRound(lines []string) {
	s.o.Attempt = s.o.AttemptBase + 1
	s.o.Refused = false
	s.o.Caps = keepShorts(s.o.Caps)
	s.o.RoundLines = lines
	s.o.State = schemas.StatePlaced
	s.plan()
}

// plan plans the open round with what the order may use, and asks the
// inventory to hold it: RESERVE where the plan differs from what is held,
// RELEASE where it no longer wants stock.
func (s *step) plan() {
	ev := &s.o.Placed
	p, reject, useSafety := s.planLines(s.o.RoundLines)
	if s.roundAttempt() > 1 {
		var at, short []string
		for _, c := range s.o.Caps {
			switch {
			case c.Available >= 0:
				at = append(at, c.SKU+"@"+c.NodeID)
			case s.shortHolds(c):
				short = append(short, c.SKU+"@"+c.NodeID)
			}
		}
		why := fmt.Sprintf("attempt %d: re-planned", s.roundAttempt())
		if len(at) > 0 {
			why += fmt.Sprintf(" after reservations were refused (%s)", strings.Join(at, ", "))
		}
		if len(short) > 0 {
			why += fmt.Sprintf(" without what was short-picked (%s)", strings.Join(short, ", "))
		}
		p.Reasons = append(p.Reasons, why)
	}
	s.o.Reason = strings.Join(p.Reasons, "\n")
	if reject != "" {
		s.o.Reason = "rejected: " + reject
	}

	if len(p.Unplanned) > 0 && ev.Policy == schemas.ShipComplete {
		// It cannot complete: reserve nothing (not even for a moment, so
		// that other orders may have the stock); finishRound releases
		// what the round holds and backorders.
		p.Shipments = nil
	}
	want := map[[2]string]int64{} // (line, node) -> qty
	for _, sh := range p.Shipments {
		for _, l := range sh.Lines {
			want[[2]string{l.LineID, sh.NodeID}] += l.Qty
		}
	}
	// Tentative holds the plan no longer wants are released. (A new slice:
	// committedAt reads s.o.Holds whole meanwhile.)
	holds := make([]schemas.Hold, 0, len(s.o.Holds))
	for _, h := range s.o.Holds {
		if h.Tentative {
			if _, ok := want[[2]string{h.LineID, h.NodeID}]; !ok {
				switch {
				case h.Pending: // its RESERVE is in flight: state the whole hold after it
					s.setHeld(h.LineID, h.SKU, h.NodeID, s.committedAt(h.LineID, h.NodeID))
				case h.Qty > 0:
					s.lowerHeld(h.LineID, h.SKU, h.NodeID, h.Qty, s.committedAt(h.LineID, h.NodeID))
				}
				continue
			}
		}
		holds = append(holds, h)
	}
	s.o.Holds = holds
	// Then every wanted (line, node) not held at that quantity is reserved.
	for _, sh := range p.Shipments {
		for _, l := range sh.Lines {
			k := [2]string{l.LineID, sh.NodeID}
			q, ok := want[k]
			if !ok {
				continue // already handled (a line split into parts at one node cannot happen, but be safe)
			}
			delete(want, k)
			j := slices.IndexFunc(s.o.Holds, func(h schemas.Hold) bool {
				return h.Tentative && h.LineID == l.LineID && h.NodeID == sh.NodeID
			})
			if j >= 0 && s.o.Holds[j].Qty == q && !s.o.Holds[j].Pending {
				continue
			}
			if j < 0 {
				s.o.Holds = append(s.o.Holds, schemas.Hold{LineID: l.LineID, SKU: l.SKU, NodeID: sh.NodeID, Tentative: true})
				j = len(s.o.Holds) - 1
			}
			s.o.Holds[j].Pending = true
			s.command(schemas.Reserve, l.LineID, l.SKU, sh.NodeID, s.committedAt(l.LineID, sh.NodeID)+q, useSafety)
		}
	}
	if !s.pending() {
		s.finishRound()
	}
}

// planLines plans what lines (ids) still need with what the order may use
// now; reject is the reason the order cannot ship at all, if any.
func (s *step) planLines(ids []string) (p *Plan, reject string, useSafety bool) {
	ev := &s.o.Placed
	var lines []schemas.OrderLine
	for _, id := range ids {
		i := s.line(id)
		if i < 0 {
			continue
		}
		committed, _ := s.held(id)
		l := &s.o.Lines[i]
		if n := l.Qty - l.QtyCancelled - l.QtyShipped - committed; n > 0 {
			lines = append(lines, schemas.OrderLine{LineID: id, SKU: l.SKU, Qty: n, UnitPriceCents: l.UnitPriceCents})
		}
	}
	useSafety = ev.CustomerTier == schemas.TierVIP && !s.r.cfg.NoVIPSafetyStock
	net := &orderNetwork{s: s, day: day(s.ts)}
	cands, reasons, reject := Eligible(s.r.cfg.Plan, ev, lines, net, useSafety, s.adjust)
	if reject != "" {
		return &Plan{Unplanned: lines, Reasons: []string{reject}}, reject, useSafety
	}
	p = PlanOrder(s.r.cfg.Plan, lines, cands, ev.Priority == schemas.PriorityRush)
	p.Reasons = append(p.Reasons, reasons...)
	if useSafety && len(p.Shipments) > 0 {
		p.Reasons = append(p.Reasons, "VIP: safety stock usable")
	}
	return p, "", useSafety
}

// adjust gives the order back what it holds itself at a node (its own
// holds are part of the node's reserved) and caps a node by what a refusal
// in this round reported.
func (s *step) adjust(sku, node string, v int64) int64 {
	var own int64
	for _, h := range s.o.Holds {
		if h.Tentative && h.SKU == sku && h.NodeID == node {
			own += h.Qty
		}
	}
	for _, c := range s.o.Caps {
		if c.SKU == sku && c.NodeID == node {
			if c.Available >= 0 {
				v = min(v, c.Available)
			} else if s.shortHolds(c) {
				v = 0
			}
		}
	}
	return v + own
}

func (s *step) command(op schemas.ReservationOp, line, sku, node string, qty int64, safety bool) {
	s.out.Command(&schemas.ReservationCommand{OrderID: s.o.OrderID, LineID: line, Type: op, SKU: sku, NodeID: node,
		Qty: qty, Attempt: s.o.Attempt, AllowSafetyStock: safety, IssuedAt: s.ts})
}

// committedAt is what line holds at node in its shipments. The inventory
// keeps one quantity per (order line, node): what the router holds there,
// committed plus tentative, so every command about a (line, node) sets
// that sum.
func (s *step) committedAt(line, node string) int64 {
	var n int64
	for _, h := range s.o.Holds {
		if !h.Tentative && h.LineID == line && h.NodeID == node {
			n += h.Qty
		}
	}
	return n
}

// setHeld tells the inventory to hold qty for line at node: a RELEASE for
// nothing, else a RESERVE at attempt 0, which no open round takes for its
// answer; setting a hold lower is always granted.
func (s *step) setHeld(line, sku, node string, qty int64) {
	if qty == 0 {
		s.command(schemas.Release, line, sku, node, 0, false)
		return
	}
	s.out.Command(&schemas.ReservationCommand{OrderID: s.o.OrderID, LineID: line, Type: schemas.Reserve, SKU: sku,
		NodeID: node, Qty: qty, Attempt: 0, AllowSafetyStock: true, IssuedAt: s.ts})
}

// lowerHeld tells the inventory that line now holds left at node, by units
// fewer than it did as the router knows it: a RELEASE when left is 0, else a
// DECREASE by the difference. Both commute with a SHIPMENT of the line the
// router has not heard of yet (setHeld's absolute RESERVE would undo its
// decrement), and both are always granted.
func (s *step) lowerHeld(line, sku, node string, by, left int64) {
	switch {
	case left == 0:
		s.command(schemas.Release, line, sku, node, 0, false)
	case by > 0:
		s.out.Command(&schemas.ReservationCommand{OrderID: s.o.OrderID, LineID: line, Type: schemas.Decrease,
			SKU: sku, NodeID: node, Qty: by, Attempt: 0, IssuedAt: s.ts})
	}
}

func (s *step) pending() bool {
	return slices.ContainsFunc(s.o.Holds, func(h schemas.Hold) bool { return h.Pending })
}

// finishRound turns the round's tentative holds into shipments, by the
// order's policy, and emits the decision, the requests and the status.
func (s *step) finishRound() {
	ev := &s.o.Placed
	d := &schemas.RoutingDecision{OrderID: s.o.OrderID, Attempts: s.roundAttempt(), DecidedAt: s.ts,
		Shipments: []schemas.RoutedShipment{}, Backordered: []schemas.OrderLine{}, Reasons: []string{}}
	if s.o.Reason != "" {
		d.Reasons = strings.Split(s.o.Reason, "\n")
	}
	complete := true
	short := map[string]int64{} // line -> units not held
	for _, id := range s.o.RoundLines {
		i := s.line(id)
		if i < 0 {
			continue
		}
		committed, tentative := s.held(id)
		l := &s.o.Lines[i]
		if n := l.Qty - l.QtyCancelled - l.QtyShipped - committed - tentative; n > 0 {
			short[id] = n
			complete = false
		}
	}
	rejected := strings.HasPrefix(s.o.Reason, "rejected: ")
	if rejected || (!complete && ev.Policy == schemas.ShipComplete) {
		// Ship nothing: give back what the round holds (every answer is in).
		holds := make([]schemas.Hold, 0, len(s.o.Holds))
		for _, h := range s.o.Holds {
			if h.Tentative {
				if h.Qty > 0 {
					s.lowerHeld(h.LineID, h.SKU, h.NodeID, h.Qty, s.committedAt(h.LineID, h.NodeID))
				}
				continue
			}
			holds = append(holds, h)
		}
		s.o.Holds = holds
		for _, id := range s.o.RoundLines {
			if i := s.line(id); i >= 0 {
				if n := s.need(i); n > 0 {
					l := s.o.Lines[i]
					d.Backordered = append(d.Backordered, schemas.OrderLine{LineID: id, SKU: l.SKU, Qty: n, UnitPriceCents: l.UnitPriceCents})
				}
			}
		}
		switch {
		case rejected || s.r.cfg.RejectIncomplete:
			d.Status = schemas.DecisionRejected
			s.r.Stats.Rejected++
			if !rejected {
				d.Reasons = append(d.Reasons, "SHIP_COMPLETE: not every line can be routed, order rejected")
			}
			for _, id := range s.o.RoundLines {
				if i := s.line(id); i >= 0 && s.need(i) > 0 {
					s.setLine(i, schemas.StateRejected)
				}
			}
		default:
			d.Status = schemas.DecisionBackordered
			s.r.Stats.Backordered++
			d.Reasons = append(d.Reasons, "SHIP_COMPLETE: not every line can be routed, nothing ships yet")
			for _, id := range s.o.RoundLines {
				if i := s.line(id); i >= 0 && s.need(i) > 0 {
					if c, _ := s.held(id); c == 0 {
						s.o.Lines[i].NodeID = nil
					}
					s.setLine(i, schemas.StateBackordered)
				}
			}
		}
		s.closeRound()
		s.emitDecision(d)
		return
	}

	// Ship what the round holds, one shipment per node.
	method := ev.DeliveryMethod
	defer s.mergeHolds()
	byNode := map[string][]schemas.OrderLine{}
	var nodes []string
	for i := range s.o.Holds {
		h := &s.o.Holds[i]
		if !h.Tentative || h.Qty == 0 {
			continue
		}
		h.Tentative = false
		if _, ok := byNode[h.NodeID]; !ok {
			nodes = append(nodes, h.NodeID)
		}
		price := int64(0)
		if j := s.line(h.LineID); j >= 0 {
			price = s.o.Lines[j].UnitPriceCents
		}
		byNode[h.NodeID] = append(byNode[h.NodeID], schemas.OrderLine{LineID: h.LineID, SKU: h.SKU, Qty: h.Qty, UnitPriceCents: price})
	}
	slices.Sort(nodes)
	today := day(s.ts)
	for _, nid := range nodes {
		sh := schemas.RoutedShipment{ShipmentID: fmt.Sprintf("%s/%d", s.o.OrderID, s.o.NextShipment), NodeID: nid,
			Method: method, Lines: byNode[nid]}
		s.o.NextShipment++
		if n := s.w.Node(nid); n != nil && method == schemas.DeliveryShip && ev.ShipTo != nil {
			km := HaversineKm(n.Lat, n.Lon, ev.ShipTo.Lat, ev.ShipTo.Lon)
			sh.DistanceKm = roundKm(km)
			sh.CostCents = int64(n.ShipmentCostCents) + int64(km*s.r.cfg.Plan.CentsPerKm+0.5)
		}
		s.o.Shipments = append(s.o.Shipments, sh)
		d.Shipments = append(d.Shipments, sh)
		d.DistanceKm += sh.DistanceKm
		d.CostCents += sh.CostCents
		req := &schemas.FulfillmentRequest{OrderID: s.o.OrderID, ShipmentID: sh.ShipmentID, NodeID: nid,
			Type: schemas.ActionShip, Priority: ev.Priority, Lines: sh.Lines, ShipTo: ev.ShipTo, RequestedAt: s.ts}
		if method == schemas.DeliveryPickup {
			req.Type, req.ShipTo = schemas.ActionHoldForPickup, nil
		} else {
			// the day it is counted on: today, or the newest day counted
			// at the node if this record is stamped before it (loadDay)
			s.o.ShipmentDays[sh.ShipmentID] = s.addLoad(nid, today, 1)
		}
		s.out.Request(req)
		for _, l := range sh.Lines {
			if i := s.line(l.LineID); i >= 0 {
				node := nid
				s.o.Lines[i].NodeID = &node
			}
		}
	}
	d.DistanceKm = roundKm(d.DistanceKm)
	d.Split = len(d.Shipments) > 1
	routedState := schemas.StateRouted
	if method == schemas.DeliveryPickup {
		routedState = schemas.StateReadyForPickup
	}
	for _, id := range s.o.RoundLines {
		i := s.line(id)
		if i < 0 {
			continue
		}
		if n := short[id]; n > 0 {
			l := s.o.Lines[i]
			d.Backordered = append(d.Backordered, schemas.OrderLine{LineID: id, SKU: l.SKU, Qty: n, UnitPriceCents: l.UnitPriceCents})
		}
		committed, _ := s.held(id)
		switch {
		case committed > 0:
			s.setLine(i, routedState)
		case short[id] > 0:
			s.o.Lines[i].NodeID = nil
			s.setLine(i, schemas.StateBackordered)
		}
	}
	switch {
	case len(d.Shipments) == 0:
		d.Status = schemas.DecisionBackordered
		s.r.Stats.Backordered++
	case len(d.Backordered) > 0:
		d.Status = schemas.DecisionPartiallyRouted
		s.r.Stats.Partial++
	default:
		d.Status = schemas.DecisionRouted
		s.r.Stats.Routed++
	}
	if d.Split {
		s.r.Stats.Splits++
	}
	s.closeRound()
	s.emitDecision(d)
}

// mergeHolds keeps at most one committed and one tentative hold per
// (line, node), like the inventory's one quantity; merged tentative holds
// are pending if either was (the answer then sets their sum).
func (s *step) mergeHolds() {
	var out []schemas.Hold
	for _, h := range s.o.Holds {
		if j := slices.IndexFunc(out, func(o schemas.Hold) bool {
			return o.Tentative == h.Tentative && o.LineID == h.LineID && o.NodeID == h.NodeID
		}); j >= 0 {
			out[j].Qty += h.Qty
			out[j].Pending = out[j].Pending || h.Pending
			continue
		}
		out = append(out, h)
	}
	s.o.Holds = out
}

func roundKm(km float64) float64 { return float64(int64(km*10+0.5)) / 10 }

func (s *step) addLoad(node string, day, delta int64) int64 {
	d, err := s.st.AddLoad(node, day, delta)
	if err != nil {
		s.err = cmp.Or(s.err, err)
		return day
	}
	return d
}

// roundAttempt is the open round's attempt counted from 1 (s.o.Attempt
// counts on from the order's earlier rounds: AttemptBase).
func (s *step) roundAttempt() int32 { return s.o.Attempt - s.o.AttemptBase }

func (s *step) closeRound() {
	s.o.AttemptBase = max(s.o.AttemptBase, s.o.Attempt) // the next round numbers its attempts after this one's
	s.o.Attempt = 0
	s.o.RoundLines = s.o.RoundLines[:0]
	s.o.Caps = keepShorts(s.o.Caps)
	s.o.Refused = false
}

func (s *step) emitDecision(d *schemas.RoutingDecision) {
	// The plan's summary may no longer hold (refusals changed it): say
	// what was decided, then the plan's other reasons.
	reasons := []string{}
	switch {
	case len(d.Shipments) == 1 && len(d.Backordered) == 0:
		reasons = append(reasons, "one node covers all lines: "+d.Shipments[0].NodeID)
	case len(d.Shipments) > 1:
		reasons = append(reasons, fmt.Sprintf("split into %d shipments: no single node has all lines", len(d.Shipments)))
	}
	if len(d.Backordered) > 0 && d.Status != schemas.DecisionRejected {
		var parts []string
		for _, l := range d.Backordered {
			parts = append(parts, fmt.Sprintf("%s (%d x %s)", l.LineID, l.Qty, l.SKU))
		}
		reasons = append(reasons, "not available now: line "+strings.Join(parts, ", line "))
	}
	for _, r := range d.Reasons {
		if !strings.HasPrefix(r, "one node covers") && !strings.HasPrefix(r, "split into") &&
			!(len(d.Backordered) > 0 && strings.HasSuffix(r, "available now")) {
			reasons = append(reasons, r)
		}
	}
	d.Reasons = reasons
	s.o.Reason = strings.Join(reasons, "\n")
	s.r.Stats.Decisions++
	s.out.Decision(d)
}

// Verdict applies the customer screen's answer to an order waiting for it.
func (r *Router) Verdict(st Store, w World, out Out, key []byte, v *schemas.CustomerVerdict, ts int64) error {
	if string(key) != v.OrderID {
		return invalid("record key %q disagrees with order_id %q", key, v.OrderID)
	}
	cur, err := st.Order(v.OrderID)
	if err != nil {
		return err
	}
	if cur == nil || !cur.Screening {
		r.Stats.Stale++
		return nil
	}
	s := &step{r: r, st: st, w: w, out: out, ts: ts, o: cloneOrder(cur), prev: cur}
	s.o.Screening = false
	if s.allCancelled() {
		return s.save() // cancelled while screened
	}
	held := ""
	if v.Hold {
		held = v.Reason
	}
	return s.screened(held)
}

// Result applies an answer or notice of the inventory processor.
func (r *Router) Result(st Store, w World, out Out, key []byte, res *schemas.ReservationResult, ts int64) error {
	if string(key) != res.OrderID {
		return invalid("record key %q disagrees with order_id %q", key, res.OrderID)
	}
	cur, err := st.Order(res.OrderID)
	if err != nil {
		return err
	}
	if cur == nil {
		r.Stats.Stale++ // a shipment or return of an order the router does not know
		return nil
	}
	s := &step{r: r, st: st, w: w, out: out, ts: ts, o: cloneOrder(cur), prev: cur}
	switch res.Type {
	case schemas.Reserve:
		return s.reserved(res)
	case schemas.Consume:
		return s.shipped(res)
	case schemas.Restock:
		return s.restocked(res)
	}
	return nil // RELEASE answers need nothing
}

func (s *step) reserved(res *schemas.ReservationResult) error {
	j := slices.IndexFunc(s.o.Holds, func(h schemas.Hold) bool {
		return h.Pending && h.Tentative && h.LineID == res.LineID && h.NodeID == res.NodeID
	})
	if res.Attempt != s.o.Attempt || j < 0 {
		s.r.Stats.Stale++
		return nil
	}
	h := &s.o.Holds[j]
	h.Pending = false
	if res.OK {
		h.Qty = max(0, res.Qty-s.committedAt(res.LineID, res.NodeID)) // the inventory holds the sum
		s.capToOpen(h)
	} else {
		s.o.Refused = true
		s.o.Caps = append(s.o.Caps, schemas.Cap{SKU: res.SKU, NodeID: res.NodeID, Available: max(0, res.Available)}) // < 0: a short pick's
		if h.Qty == 0 {
			s.o.Holds = slices.Delete(s.o.Holds, j, j+1)
		}
	}
	if !s.pending() {
		if s.o.Refused && s.roundAttempt() < int32(s.r.cfg.MaxAttempts) {
			s.r.Stats.Replans++
			s.o.Attempt++
			s.o.Refused = false
			s.plan()
		} else {
			s.finishRound()
		}
	}
	return s.save()
}

// capToOpen lowers a granted tentative hold h to what its line still has
// open, and the inventory's hold with it. A SHIPMENT counted while the
// RESERVE was in flight (a retry racing the node's shipment of the line's
// first units) consumed the committed hold the command's quantity counted
// on: without the cap the round would hold, and ask the node to ship,
// units that already left. Only settled holds count against the line
// (another pending answer caps itself when it comes). The inventory is
// told with lowerHeld (a DECREASE by the cut, or a RELEASE when nothing
// stays held there), which is always granted and commutes with a shipment
// the router has not heard of yet.
func (s *step) capToOpen(h *schemas.Hold) {
	i := s.line(h.LineID)
	if i < 0 {
		return
	}
	l := &s.o.Lines[i]
	held := int64(0)
	for _, o := range s.o.Holds {
		if o.LineID == h.LineID && !o.Pending {
			held += o.Qty
		}
	}
	excess := held - max(0, l.Qty-l.QtyCancelled-l.QtyShipped)
	if excess <= 0 || h.Qty == 0 {
		return
	}
	by := min(excess, h.Qty)
	h.Qty -= by
	s.lowerHeld(h.LineID, h.SKU, h.NodeID, by, s.committedAt(h.LineID, h.NodeID)+h.Qty)
}

// shipped applies a SHIPMENT of an order line (the inventory consumed the
// reservation).
func (s *step) shipped(res *schemas.ReservationResult) error {
	i := s.line(res.LineID)
	if i < 0 {
		s.r.Stats.Stale++
		return nil
	}
	// The inventory consumed from its one quantity at (line, node):
	// committed first, then a round's settled tentative part.
	left := res.Qty
	for _, tentative := range []bool{false, true} {
		for j := range s.o.Holds {
			h := &s.o.Holds[j]
			if h.Tentative == tentative && !h.Pending && h.LineID == res.LineID && h.NodeID == res.NodeID {
				c := min(left, h.Qty)
				h.Qty -= c
				left -= c
			}
		}
	}
	s.o.Holds = slices.DeleteFunc(s.o.Holds, func(h schemas.Hold) bool { return h.Qty == 0 && !h.Pending })
	l := &s.o.Lines[i]
	if l.Qty-l.QtyCancelled-l.QtyShipped <= 0 {
		// Nothing open: the node shipped after the line was cancelled (it
		// had not seen the CANCEL yet) or beyond what was ordered. The
		// units left the node (the inventory counted them); the line
		// keeps its state, and the order says what happened.
		s.r.Stats.Stale++
		s.o.Reason = fmt.Sprintf("%s shipped %d x %s of line %s, which had nothing open (%d ordered, %d cancelled, %d shipped)",
			res.NodeID, res.Qty, res.SKU, l.LineID, l.Qty, l.QtyCancelled, l.QtyShipped)
		return s.save()
	}
	l.QtyShipped = min(l.Qty-l.QtyCancelled, l.QtyShipped+res.Qty)
	if l.QtyShipped == l.Qty-l.QtyCancelled {
		// Complete, wherever it shipped from: what the line still holds
		// anywhere (another node, a routed part the WMS shipped elsewhere)
		// goes back.
		s.releaseLine(l.LineID)
		s.lineLeftRound(l.LineID)
		l.ShippedAt = s.ts
		if s.o.Placed.DeliveryMethod == schemas.DeliveryPickup {
			s.setLine(i, schemas.StatePickedUp)
		} else {
			s.setLine(i, schemas.StateShipped)
		}
	} else {
		s.setLine(i, schemas.StatePartiallyShipped)
	}
	s.o.Reason = ""
	return s.save()
}

// restocked applies a RETURN_RESTOCK of an order line: the units are back
// in stock (and in ATS) already; the line is RETURNED once all shipped
// units are back.
func (s *step) restocked(res *schemas.ReservationResult) error {
	i := s.line(res.LineID)
	if i < 0 {
		s.r.Stats.Stale++
		return nil
	}
	l := &s.o.Lines[i]
	l.QtyReturned = min(l.QtyShipped, l.QtyReturned+res.Qty)
	if l.QtyReturned > 0 && l.QtyReturned == l.QtyShipped {
		s.setLine(i, schemas.StateReturned)
	}
	s.o.Reason = ""
	return s.save()
}

// cancel cancels lines (all when ids is empty) that have not shipped.
func (s *step) cancel(ids []string, why string) error {
	var refused, cancelled []string
	for _, id := range ids {
		if s.line(id) < 0 {
			refused = append(refused, id)
		}
	}
	for i := range s.o.Lines {
		l := &s.o.Lines[i]
		if len(ids) > 0 && !slices.Contains(ids, l.LineID) {
			continue
		}
		open := l.Qty - l.QtyCancelled - l.QtyShipped
		if open <= 0 {
			if l.QtyShipped > 0 {
				refused = append(refused, l.LineID)
			}
			continue
		}
		l.QtyCancelled += open
		cancelled = append(cancelled, l.LineID)
		if l.QtyShipped > 0 {
			s.setLine(i, schemas.StateShipped)
		} else {
			s.setLine(i, schemas.StateCancelled)
		}
		s.releaseLine(l.LineID)
		s.o.RoundLines = slices.DeleteFunc(s.o.RoundLines, func(id string) bool { return id == l.LineID })
	}
	s.cancelRequests(func(line string) bool { return slices.Contains(cancelled, line) })
	for _, id := range cancelled {
		s.lineLeftRound(id)
	}
	switch {
	case len(refused) > 0:
		s.o.Reason = fmt.Sprintf("cancellation refused for line(s) %s: already shipped or unknown", strings.Join(refused, ", "))
	case len(cancelled) > 0 && why != "":
		s.o.Reason = "cancelled: " + why
	case len(cancelled) > 0:
		s.o.Reason = "cancelled"
	}
	if s.o.Attempt > 0 && len(s.o.RoundLines) == 0 {
		s.closeRound()
	}
	if s.allCancelled() {
		s.o.State = schemas.StateCancelled
	} else if s.o.Attempt > 0 && !s.pending() {
		s.finishRound()
	}
	return s.save()
}

func (s *step) allCancelled() bool {
	return !slices.ContainsFunc(s.o.Lines, func(l schemas.LineStatus) bool { return l.QtyCancelled < l.Qty })
}

// lineLeftRound takes a line that needs nothing more (shipped in full,
// cancelled) out of the open round, and closes or finishes the round if it
// was waiting only for that line.
func (s *step) lineLeftRound(id string) {
	if s.o.Attempt == 0 || !slices.Contains(s.o.RoundLines, id) {
		return
	}
	s.o.RoundLines = slices.DeleteFunc(s.o.RoundLines, func(l string) bool { return l == id })
	switch {
	case len(s.o.RoundLines) == 0:
		s.closeRound()
	case !s.pending():
		s.finishRound()
	}
}

// releaseLine releases every hold of a line, when it is done (shipped in
// full or cancelled).
//
// It also releases at every node the line was requested from unless the
// line was routed once, in full, and its order had no feedback: otherwise
// commands may have followed its first reservation, and such a command may
// have reached the inventory after a SHIPMENT it did not know of, and its
// absolute quantity then undid the shipment's decrement, a hold the
// router's view does not have (the known defect under Guarantees). A
// RELEASE sets the line's hold at the node to 0 whatever it is, so the
// leak ends with the line instead of never. Lines routed once, in full,
// to one node, with no feedback (nearly all) cost no extra command.
func (s *step) releaseLine(id string) {
	type requested struct{ sku, node string }
	var at []requested
	var routed int64
	for _, sh := range s.o.Shipments {
		for _, l := range sh.Lines {
			if l.LineID == id {
				at = append(at, requested{l.SKU, sh.NodeID})
				routed += l.Qty
			}
		}
	}
	// Routed once, in full, without feedback: no command followed the
	// first reservation. A line routed in part may have had retry rounds
	// whose absolute commands (hold what is committed) raced a shipment
	// without adding a shipment.
	i := s.line(id)
	everywhere := len(s.o.FeedbackIDs) > 0 || len(at) > 1 || (i >= 0 && routed != s.o.Lines[i].Qty)
	var released map[string]bool
	if everywhere {
		released = map[string]bool{}
	}
	s.o.Holds = slices.DeleteFunc(s.o.Holds, func(h schemas.Hold) bool {
		if h.LineID != id {
			return false
		}
		if h.Qty > 0 || h.Pending {
			s.command(schemas.Release, h.LineID, h.SKU, h.NodeID, 0, false)
			if everywhere {
				released[h.NodeID] = true
			}
		}
		return true
	})
	if !everywhere {
		return
	}
	for _, r := range at {
		if !released[r.node] {
			s.command(schemas.Release, id, r.sku, r.node, 0, false)
			released[r.node] = true
		}
	}
}

// cancelRequests sends CANCEL for the lines of requested shipments that
// match, drops them from the shipments, and gives a node its capacity back
// when a whole shipment of today goes.
func (s *step) cancelRequests(match func(line string) bool) {
	today := day(s.ts)
	kept := s.o.Shipments[:0]
	for _, sh := range s.o.Shipments {
		var gone, stay []schemas.OrderLine
		for _, l := range sh.Lines {
			if match(l.LineID) {
				gone = append(gone, l)
			} else {
				stay = append(stay, l)
			}
		}
		if len(gone) > 0 {
			req := &schemas.FulfillmentRequest{OrderID: s.o.OrderID, ShipmentID: sh.ShipmentID, NodeID: sh.NodeID,
				Type: schemas.ActionCancel, Priority: s.o.Placed.Priority, Lines: gone, RequestedAt: s.ts}
			if len(stay) == 0 {
				req.Lines = []schemas.OrderLine{} // the whole shipment
				// capacity back to the day the shipment was counted on, while
				// that day is counted: the same day, or a later one it was
				// counted on as a late record (AddLoad drops it once the
				// node's count has moved past that day)
				if d, ok := s.o.ShipmentDays[sh.ShipmentID]; ok && d >= today {
					s.addLoad(sh.NodeID, d, -1)
				}
				delete(s.o.ShipmentDays, sh.ShipmentID)
			}
			s.out.Request(req)
		}
		if len(stay) > 0 {
			sh.Lines = stay
			kept = append(kept, sh)
		}
	}
	s.o.Shipments = kept
}

// release resumes an order ON_HOLD (a review tool's verdict), or retries
// the backordered lines of an order.
func (s *step) release(why string) error {
	if s.allCancelled() {
		if s.o.Screening {
			// Cancelled while screened: the release stands for the
			// verdict that may never come, and the order is finished.
			s.o.Screening = false
			return s.save()
		}
		return nil
	}
	if s.o.Screening {
		// A review tool's release stands for the screen's verdict (the
		// screen may have been turned off since the order was placed).
		s.o.Screening = false
		if err := s.screened(""); err != nil {
			return err
		}
		if why != "" && s.o.State != schemas.StateOnHold {
			s.o.Reason = joinReason(s.o.Reason, "released: "+why)
			return s.save()
		}
		return nil
	}
	if s.o.State != schemas.StateOnHold {
		open := s.allOpenLines()
		if s.o.Attempt > 0 || len(open) == 0 || s.o.State == schemas.StateRejected || s.o.State == schemas.StateCancelled {
			return nil // nothing to resume: a late or repeated verdict
		}
		s.o.Caps = dropShorts(s.o.Caps) // the operator's call: short picks no longer keep nodes away
		s.startRound(open)
		s.o.Reason = joinReason(s.o.Reason, "retried: "+cmp.Or(why, "RELEASED"))
		return s.save()
	}
	s.o.Reason = ""
	for i := range s.o.Lines {
		if s.o.Lines[i].State == schemas.StateOnHold {
			s.setLine(i, schemas.StatePlaced)
		}
	}
	s.startRound(s.allOpenLines())
	if why != "" {
		s.o.Reason = joinReason(s.o.Reason, "released: "+why)
	}
	return s.save()
}

// A node's short pick (or rejection) of a line keeps the order's plans,
// this round's and later ones (a backorder retry's), away from that (SKU,
// node) until the end of the next UTC day (when the task's day trigger
// looks at every order waiting), or until the node's on_hand rises above
// what it was then (a receipt): the short pick leaves on_hand as it was,
// and the stock the node shows may not be there. A RELEASED event clears
// them. It is kept as a Cap with a negative Available, -1 - (minute << 30
// | on_hand), minute being the feedback's time in minutes since the epoch
// and on_hand the node's then (refusals, which last one round, are >= 0);
// an order keeps its maxShorts newest.
const (
	maxShorts  = 16
	shortLimit = 1<<30 - 1
)

func shortCap(sku, node string, ts, onHand int64) schemas.Cap {
	minute := min(max(0, ts/60_000), 1<<33-1)
	return schemas.Cap{SKU: sku, NodeID: node, Available: -1 - (minute<<30 | min(max(0, onHand), shortLimit))}
}

// shortHolds reports whether short cap c still keeps the order away from
// its node: at ts, no later than the UTC day after the short pick's, and
// the node's on_hand no higher.
func (s *step) shortHolds(c schemas.Cap) bool { return shortHolds(c, s.ts, s.w) }

// stocker is what shortHolds reads: a World, or the ats table itself.
type stocker interface {
	Stock(sku, node string) (schemas.NodeATS, bool)
}

func shortHolds(c schemas.Cap, ts int64, w stocker) bool {
	x := -1 - c.Available
	minute, onHand := x>>30, x&shortLimit
	if day(ts) > day(minute*60_000)+1 {
		return false
	}
	a, _ := w.Stock(c.SKU, c.NodeID)
	return a.OnHand <= onHand
}

// keepShorts drops the caps of refusals: what survives a round.
func keepShorts(caps []schemas.Cap) []schemas.Cap {
	return slices.DeleteFunc(caps, func(c schemas.Cap) bool { return c.Available >= 0 })
}

// dropShorts drops the short caps (a RELEASED event: the operator's call).
func dropShorts(caps []schemas.Cap) []schemas.Cap {
	return slices.DeleteFunc(caps, func(c schemas.Cap) bool { return c.Available < 0 })
}

func (s *step) addShort(sku, node string) {
	a, _ := s.w.Stock(sku, node)
	isShort := func(c schemas.Cap) bool { return c.Available < 0 }
	s.o.Caps = slices.DeleteFunc(s.o.Caps, func(c schemas.Cap) bool { return isShort(c) && c.SKU == sku && c.NodeID == node })
	if len(keepShorts(slices.Clone(s.o.Caps))) >= maxShorts {
		i := slices.IndexFunc(s.o.Caps, isShort) // the oldest
		s.o.Caps = slices.Delete(s.o.Caps, i, i+1)
	}
	s.o.Caps = append(s.o.Caps, shortCap(sku, node, s.ts, a.OnHand))
}

// joinReason adds line to an order's reasons.
func joinReason(reason, line string) string {
	if reason == "" {
		return line
	}
	return reason + "\n" + line
}

// addressChanged re-plans an order whose shipments have not shipped; after
// a shipment it is refused.
func (s *step) addressChanged(to *schemas.Address) error { // checked by ValidateEvent
	if s.o.Placed.DeliveryMethod != schemas.DeliveryShip {
		s.o.Reason = "address change ignored: a pickup order"
		return s.save()
	}
	if slices.ContainsFunc(s.o.Lines, func(l schemas.LineStatus) bool { return l.QtyShipped > 0 }) {
		s.o.Reason = "address change refused: part of the order has shipped"
		return s.save()
	}
	// An address the order could not have been placed with (a country its
	// channel does not serve, no coordinates) is refused: the order keeps
	// the one it has.
	if why := addressReasons(s.w.Channel(s.o.Placed.ChannelID), to); len(why) > 0 {
		s.o.Reason = "address change refused: " + strings.Join(why, "; ")
		return s.save()
	}
	s.o.Placed.ShipTo = to
	if s.o.State == schemas.StateOnHold || s.o.Screening || s.allCancelled() {
		s.o.Reason = "address changed"
		return s.save()
	}
	// Every requested shipment is cancelled at its node; what it held
	// becomes the new round's own stock, so the new plan may keep a node.
	s.cancelRequests(func(string) bool { return true })
	for i := range s.o.Holds {
		s.o.Holds[i].Tentative = true
	}
	s.mergeHolds() // a committed and a tentative hold at one (line, node) are one quantity
	if s.o.Attempt > 0 {
		// The open round re-plans for the new address when its answers
		// are in (as after a refusal, within the round's attempts).
		s.o.RoundLines = s.allOpenLines()
		s.o.Refused = true
		s.o.Reason = "address changed; re-planning"
		return s.save()
	}
	s.startRound(s.allOpenLines())
	if s.o.Attempt == 0 {
		s.o.Reason = "address changed; re-planned\n" + s.o.Reason
	}
	return s.save()
}

// returnAuthorized marks shipped lines RETURN_PENDING (an RMA).
func (s *step) returnAuthorized(ids []string) error {
	var refused []string
	for _, id := range ids {
		if s.line(id) < 0 {
			refused = append(refused, id)
		}
	}
	for i, l := range s.o.Lines {
		if len(ids) > 0 && !slices.Contains(ids, l.LineID) {
			continue
		}
		// A line with units still to ship is refused: its next shipment
		// would overwrite RETURN_PENDING, and the order could finish, and
		// be forgotten, before the return lands.
		// (A rejected rest never ships: the return is taken.)
		if l.QtyShipped == 0 || l.QtyReturned >= l.QtyShipped || (l.Qty-l.QtyCancelled-l.QtyShipped > 0 && l.State != schemas.StateRejected) {
			refused = append(refused, l.LineID)
			continue
		}
		s.setLine(i, schemas.StateReturnPending)
	}
	s.o.Reason = "return authorized"
	if len(refused) > 0 {
		s.o.Reason = fmt.Sprintf("return refused for line(s) %s: unknown, nothing shipped to return, or units still to ship", strings.Join(refused, ", "))
	}
	return s.save()
}

// ValidateFeedback checks what the router refuses of a feedback (of a
// record with key) before it reads the order.
func ValidateFeedback(key []byte, f *schemas.FulfillmentFeedback) error {
	switch {
	case string(key) != f.OrderID:
		return invalid("record key %q disagrees with order_id %q", key, f.OrderID)
	case f.QtyShort <= 0 || f.QtyShort > maxQty:
		return invalid("%s qty_short must be in [1, %d], got %d", f.Type, int64(maxQty), f.QtyShort)
	case f.FeedbackID == "" || len(f.FeedbackID) > schemas.MaxIDBytes:
		// Kept (the last 64 of an order, to drop repeats).
		return invalid("feedback_id of %d bytes: it must have 1 to %d", len(f.FeedbackID), schemas.MaxIDBytes)
	}
	return nil
}

// Feedback applies a node's short pick or rejection: the missing units are
// released there and routed elsewhere.
func (r *Router) Feedback(st Store, w World, out Out, key []byte, f *schemas.FulfillmentFeedback, ts int64) error {
	if err := ValidateFeedback(key, f); err != nil {
		return err
	}
	// line_id and node_id are only compared with the order's lines and
	// holds (feedback for anything else is ignored, and says so).
	f.Reason = clip(f.Reason, maxReasonBytes)
	cur, err := st.Order(f.OrderID)
	if err != nil {
		return err
	}
	if cur == nil {
		return invalid("feedback for unknown order %q", f.OrderID)
	}
	if slices.Contains(cur.FeedbackIDs, f.FeedbackID) {
		r.Stats.Duplicates++
		return nil
	}
	s := &step{r: r, st: st, w: w, out: out, ts: ts, o: cloneOrder(cur), prev: cur}
	s.o.FeedbackIDs = append(s.o.FeedbackIDs, f.FeedbackID)
	if n := len(s.o.FeedbackIDs); n > 64 { // bounded: feedback ids are retried soon or never
		s.o.FeedbackIDs = s.o.FeedbackIDs[n-64:]
	}
	i := s.line(f.LineID)
	j := slices.IndexFunc(s.o.Holds, func(h schemas.Hold) bool {
		return !h.Tentative && h.LineID == f.LineID && h.NodeID == f.NodeID
	})
	if i < 0 || j < 0 {
		s.o.Reason = fmt.Sprintf("feedback %s ignored: line %s is not held at %s", f.FeedbackID, clip(f.LineID, 64), clip(f.NodeID, 64))
		return s.save()
	}
	h := &s.o.Holds[j]
	short := min(f.QtyShort, h.Qty)
	h.Qty -= short
	sku, node := h.SKU, h.NodeID
	if h.Qty == 0 {
		s.o.Holds = slices.Delete(s.o.Holds, j, j+1)
	}
	// The node is short: what the open round asked of it for this line goes
	// too (an answer still in flight is then stale), and the inventory
	// holds only the committed rest there.
	dropped, inFlight := false, false
	var settled int64 // what answered tentative holds there added to the inventory's quantity
	s.o.Holds = slices.DeleteFunc(s.o.Holds, func(t schemas.Hold) bool {
		if t.Tentative && t.LineID == f.LineID && t.NodeID == node {
			dropped = true
			if t.Pending {
				inFlight = true
			} else {
				settled += t.Qty
			}
			return true
		}
		return false
	})
	// Re-plan the round when its other answers are in: its plan for this
	// line is gone, or (a round open for other lines) it had none.
	if s.o.Attempt > 0 && (dropped || s.pending()) {
		s.o.Refused = true
	}
	if left := s.committedAt(f.LineID, node); inFlight && left > 0 {
		// A round's RESERVE for this (line, node) is in flight, with a
		// quantity the router does not know it will be granted: state the
		// whole hold after it (absolute, so a SHIPMENT of the line that
		// overtakes this command can still leave a hold: see releaseLine).
		s.setHeld(f.LineID, sku, node, left)
	} else {
		// Lower the hold by what is short and what the dropped tentative
		// holds added: a difference (or a RELEASE, when nothing is left
		// there, which also clears a hold leaked before), which commutes
		// with the SHIPMENT of the picked units the WMS sends at the same
		// time (it may reach the inventory first).
		s.lowerHeld(f.LineID, sku, node, short+settled, left)
	}
	s.dropFromShipments(f.LineID, f.NodeID, short)
	why := fmt.Sprintf("node %s %s %d unit(s) of line %s", f.NodeID, strings.ToLower(strings.ReplaceAll(string(f.Type), "_", "-")), short, f.LineID)
	if f.Reason != "" {
		why += " (" + f.Reason + ")"
	}
	// Route the missing units, never again from that node in this round.
	sku = s.o.Lines[i].SKU
	if s.o.Attempt == 0 {
		s.o.Attempt = s.o.AttemptBase + 1
		s.o.Caps = keepShorts(s.o.Caps)
		s.o.RoundLines = []string{f.LineID}
	} else if !slices.Contains(s.o.RoundLines, f.LineID) {
		s.o.RoundLines = append(s.o.RoundLines, f.LineID)
	}
	s.addShort(sku, f.NodeID)
	if !s.pending() {
		s.plan()
		s.o.Reason = "re-routed: " + why + "\n" + s.o.Reason
	}
	return s.save()
}

// dropFromShipments removes qty units of a line from the order's shipments
// at node.
func (s *step) dropFromShipments(line, node string, qty int64) {
	for k := range s.o.Shipments {
		sh := &s.o.Shipments[k]
		if sh.NodeID != node {
			continue
		}
		for m := range sh.Lines {
			if sh.Lines[m].LineID == line {
				sh.Lines[m].Qty -= min(qty, sh.Lines[m].Qty)
			}
		}
		sh.Lines = slices.DeleteFunc(sh.Lines, func(l schemas.OrderLine) bool { return l.Qty == 0 })
	}
	s.o.Shipments = slices.DeleteFunc(s.o.Shipments, func(sh schemas.RoutedShipment) bool { return len(sh.Lines) == 0 })
}

// save derives the order's state from its lines, stores it and emits its
// status.
func (s *step) save() error {
	if s.err != nil {
		return s.err
	}
	s.o.State = s.deriveState()
	s.o.Reason = clip(s.o.Reason, maxOrderReasonBytes)
	if p := s.prev; p == nil || p.State != s.o.State || p.Reason != s.o.Reason || !slices.Equal(p.Lines, s.o.Lines) {
		s.o.Version++
		s.out.Status(s.status())
	}
	s.st.PutOrder(s.o)
	if err := s.indexBackorders(); err != nil {
		return err
	}
	switch {
	case s.r.cfg.OrderRetention > 0 && finished(s.o):
		// Never before placed_at: a PLACED event of the order is
		// refused (OrderEvent) for as long as it may be forgotten.
		return s.st.Expire(s.o.OrderID, max(s.st.Now(), s.o.Placed.PlacedAt))
	case s.prev != nil && finished(s.prev) && !finished(s.o):
		// Back in business: not listed any more, with the option set or
		// not (an entry kept while it was unset would forget the order
		// by its first finish once it is set again).
		return s.st.Expire(s.o.OrderID, 0)
	}
	return nil
}

// finished reports whether nothing more is expected of an order: every
// line is done (shipped, picked up, returned, cancelled or rejected), it
// holds no stock and has no round or customer check open. A return
// authorization, or an address change that re-plans rejected lines,
// brings it back.
func finished(o *schemas.RouterOrder) bool {
	if o.State == schemas.StateOnHold || o.Attempt != 0 || len(o.Holds) > 0 || o.Screening {
		return false
	}
	for _, l := range o.Lines {
		switch l.State {
		case schemas.StateShipped, schemas.StatePickedUp, schemas.StateReturned, schemas.StateCancelled, schemas.StateRejected:
		default:
			return false
		}
	}
	return true
}

// Finished is an order Store.Due lists: finished at stream time At.
type Finished struct {
	ID string
	At int64
}

// Purge forgets up to max orders finished OrderRetention or more before
// the partition's stream time: each still finished is deleted and its
// status tombstoned. It returns how many it handled: max means more may be
// due.
func (r *Router) Purge(st Store, out Out, max int) (int, error) {
	due, err := st.Due(st.Now()-r.cfg.OrderRetention.Milliseconds(), max)
	if err != nil {
		return 0, err
	}
	for _, f := range due {
		o, err := st.Order(f.ID)
		if err != nil {
			return 0, err
		}
		if o != nil && !finished(o) { // not expected: save clears the entry
			if err := st.Unlist(f.ID, f.At); err != nil {
				return 0, err
			}
			continue
		}
		if err := st.Forget(f.ID, f.At); err != nil {
			return 0, err
		}
		st.Forgot(f.At)
		if o != nil {
			out.Forget(f.ID)
			r.Stats.Forgotten++
		}
	}
	return len(due), nil
}

// deriveState is the order's state for "where is my order", from its
// lines: the least advanced active line wins, except that a return or a
// shipment in progress shows.
func (s *step) deriveState() schemas.OrderState {
	switch s.o.State {
	case schemas.StateOnHold:
		if !s.allCancelled() {
			return s.o.State
		}
	}
	count := map[schemas.OrderState]int{}
	active := 0
	for _, l := range s.o.Lines {
		if l.State == schemas.StateCancelled {
			continue
		}
		active++
		count[l.State]++
	}
	shipped := count[schemas.StateShipped] + count[schemas.StatePickedUp] + count[schemas.StateReturnPending] + count[schemas.StateReturned]
	switch {
	case active == 0:
		return schemas.StateCancelled
	case count[schemas.StateReturnPending] > 0:
		return schemas.StateReturnPending
	case count[schemas.StateReturned] == active:
		return schemas.StateReturned
	case shipped == active && count[schemas.StatePickedUp] > 0:
		return schemas.StatePickedUp
	case shipped == active:
		return schemas.StateShipped
	case shipped > 0 || count[schemas.StatePartiallyShipped] > 0:
		return schemas.StatePartiallyShipped
	case count[schemas.StateReadyForPickup] > 0:
		return schemas.StateReadyForPickup
	case count[schemas.StateRouted] > 0:
		return schemas.StateRouted
	case count[schemas.StateBackordered] > 0:
		return schemas.StateBackordered
	case count[schemas.StateRejected] > 0:
		return schemas.StateRejected
	}
	return schemas.StatePlaced
}

func (s *step) status() *schemas.OrderStatus {
	st := &schemas.OrderStatus{OrderID: s.o.OrderID, ChannelID: s.o.Placed.ChannelID, PlacedAt: s.o.Placed.PlacedAt,
		State: s.o.State, Lines: slices.Clone(s.o.Lines), Reason: strings.ReplaceAll(s.o.Reason, "\n", "; "),
		Version: s.o.Version, UpdatedAt: s.ts}
	return st
}

// orderNetwork is the planner's Network for one order: the world, with
// capacity left today from this partition's load and the others'.
type orderNetwork struct {
	s   *step
	day int64
}

func (n *orderNetwork) Node(id string) *schemas.Node       { return n.s.w.Node(id) }
func (n *orderNetwork) Nodes() []*schemas.Node             { return n.s.w.Nodes() }
func (n *orderNetwork) Channel(id string) *schemas.Channel { return n.s.w.Channel(id) }
func (n *orderNetwork) Stock(sku, node string) (schemas.NodeATS, bool) {
	return n.s.w.Stock(sku, node)
}

// ShipmentsLeft counts every shipment a node was given on the day,
// whatever this order holds there: capacity is taken when a round is
// decided (finishRound), and a shipment of this order cancelled in the same
// step on the same day has given its unit back already. (A node the order
// held tentatively used to count as having room: after an address change
// on a later day, that kept a node already full that day.)
func (n *orderNetwork) ShipmentsLeft(node string) int64 {
	nd := n.s.w.Node(node)
	if nd == nil || nd.DailyCapacity <= 0 {
		return -1
	}
	mine, err := n.s.st.Load(node, n.day)
	if err != nil {
		n.s.err = cmp.Or(n.s.err, err)
		return 0
	}
	return max(0, int64(nd.DailyCapacity)-mine-n.s.w.OtherLoad(node, n.day))
}

// A partition counts each node's shipments of one day, the newest it has
// counted. A record stamped with an earlier day (a producer's clock behind
// another's, a backlog processed after the new day's retry) is counted
// against that newest day: loadOn gives it the newest day's count, and
// loadDay moves its new shipment there. Counting it on no day, as before,
// let every late record past a full node. Giving back (delta <= 0) for an
// earlier day changes nothing: that day's count is gone.
func loadOn(slotDay, count, day int64) int64 {
	if slotDay < day {
		return 0 // a new day: the count starts again
	}
	return count
}

// loadDay is the day a change of delta to day's count goes to, given the
// newest day counted, and whether it is made.
func loadDay(slotDay, day, delta int64) (int64, bool) {
	if slotDay > day {
		return slotDay, delta > 0
	}
	return day, true
}

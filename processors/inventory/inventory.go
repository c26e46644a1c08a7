// Package inventory is the inventory processor: it owns the stock of every
// SKU at every node for the partitions it is given, applies stock movements
// exactly once per movement id, and computes Available-To-Sell (ATS).
//
// The processor is a deterministic function of its state, its input and the
// replicated node and channel tables: it reads no clock, does no I/O and
// knows nothing of Kafka. The runtime in package topology feeds it records,
// gives it a transactional Store, and calls Flush before every commit.
//
// # Rules
//
// Effect of a movement on on_hand:
//
//	RECEIPT, TRANSFER_IN, RETURN_RESTOCK   on_hand += qty   (qty > 0)
//	SHIPMENT, TRANSFER_OUT, DAMAGE         on_hand -= qty   (qty > 0)
//	ADJUSTMENT                             on_hand += qty   (qty != 0, signed)
//	COUNT                                  on_hand  = qty   (qty >= 0)
//
// on_hand may go below zero when a WMS reports out of order; availability is
// clamped at zero. Node availability = max(0, on_hand - reserved - safety)
// at an active node, 0 elsewhere (stock at a node with no configuration yet is
// kept but not sold). ATS = sum of node availability. A channel's ATS is
// max(0, floor(sum over its nodes x (100 - buffer_percent) / 100) - buffer_units).
//
// # Idempotency
//
// Each partition remembers the (sku, movement_id) pairs of the movements
// applied to it, oldest first (see window). A pair is forgotten when it is
// older than Config.DedupeWindow (by occurred_at, measured against the
// partition's newest movement) or when at least Config.DedupeMax newer pairs
// are remembered. Within that window a repeated movement_id for the same SKU
// is ignored (and counted); outside it, it would be applied again.
//
// # Reservations
//
// The inventory processor is the only authority on reservations, so that
// nothing is oversold. A RESERVE command holds exactly qty units of an
// order line at a node if the node can cover the difference with what it
// has (on_hand - reserved - safety stock, unless the command may use
// safety stock); otherwise it changes nothing and says how much is left.
// RELEASE holds nothing any more. Both set a state, so a repeat changes
// nothing. Node reserved = the sum of its reservations. A SHIPMENT movement
// naming an order line consumes the line's reservation at that node
// (on_hand and reserved both drop); it and a RETURN_RESTOCK naming an order
// line are reported to the router as CONSUME and RESTOCK results.
//
// # Coalescing
//
// Movements mark their SKU dirty. Flush, called once per transaction, emits
// one AtsUpdate per dirty SKU with the latest value and a version one above
// the last emitted, stored with the SKU's state so that versions strictly
// increase across restarts and partition moves.
package inventory

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unique"

	"github.com/cespare/xxhash/v2"
	"github.com/invroute/invroute/schemas"
)

// Config holds the processor's settings. Zero fields mean defaults.
type Config struct {
	// DedupeWindow is how long (by occurred_at) a movement id is
	// remembered. Default 24h.
	DedupeWindow time.Duration
	// DedupeMax bounds how many movement ids a partition remembers (plus
	// at most one block of 8192). Default 200000.
	DedupeMax int
	// ReemitBatch bounds how many SKUs one transaction re-emits after a
	// channel change; the rest follow in the next transactions. Default 5000.
	ReemitBatch int
}

func (c Config) withDefaults() Config {
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 24 * time.Hour
	}
	if c.DedupeMax <= 0 {
		c.DedupeMax = 200_000
	}
	if c.ReemitBatch <= 0 {
		c.ReemitBatch = 5000
	}
	return c
}

// Store is the processor's view of its partition's state. Writes are part of
// the open transaction; reads see them. A value returned by Get must not be
// modified: the processor copies, modifies and puts.
type Store interface {
	SeenStore
	Get(sku string) (*schemas.SKUState, error)
	Put(st *schemas.SKUState)
	// Index records that sku has a stock record at node.
	Index(node, sku string) error
	// SKUsAt calls fn for at most limit SKUs with a stock record at node
	// greater than after, in order, and says whether more follow.
	SKUsAt(node, after string, limit int, fn func(sku string) error) (more bool, err error)
	// SKUsAfter calls fn for at most limit SKUs greater than after, in
	// order, and says whether more follow.
	SKUsAfter(after string, limit int, fn func(sku string) error) (more bool, err error)
	// Reemit returns the re-emit cursor: active is false when no re-emit is
	// in progress; after is the last SKU re-emitted; ts the change's time.
	Reemit() (after string, ts int64, active bool, err error)
	// SetReemit stores the cursor (active false clears it).
	SetReemit(after string, ts int64, active bool)
	// NodeReemits returns the cursors of the node re-emits in progress,
	// by node id. It must not be modified.
	NodeReemits() ([]NodeReemit, error)
	// SetNodeReemits stores them (none: no node re-emit in progress).
	SetNodeReemits(c []NodeReemit)
	// Reservation returns what order line (order, line) holds of sku at
	// node, nil if nothing. It must not be modified.
	Reservation(sku, order, line, node string) (*schemas.Reservation, error)
	// PutReservation stores r; a zero Qty deletes it.
	PutReservation(r *schemas.Reservation)
}

// Tables is a consistent snapshot of the replicated node and channel
// configuration.
type Tables interface {
	Node(id string) *schemas.Node
	// Channels returns every channel, sorted by ChannelID.
	Channels() []*schemas.Channel
}

// Stats counts what the processor saw. The runtime turns them into metrics.
type Stats struct {
	Reserved   int64 // RESERVE commands granted
	Refused    int64 // RESERVE commands refused
	Released   int64 // RELEASE commands
	Applied    int64 // movements applied
	Duplicates int64 // movements ignored as already applied
	Negative   int64 // movements that left a node's on_hand below zero
	Emitted    int64 // ATS updates emitted
	// Gen identifies the processor that counted: a new one for the same
	// partition (after a rebalance) starts its counts at 0.
	Gen uint64
}

// gens numbers the processors (Stats.Gen).
var gens atomic.Uint64

// Processor is the inventory processor of one partition. It is not safe for
// concurrent use.
type Processor struct {
	cfg   Config
	skus  map[string]int32  // sku -> its entry in txn
	txn   []skuTxn          // the SKUs this transaction read or touched
	order []int32           // dirty entries in first-touch order (deterministic output order)
	win   window            // the idempotency window
	ats   schemas.AtsUpdate // scratch of Flush
	nodes []*schemas.Node   // scratch of Flush
	hash  *xxhash.Digest
	// nodeReemitted counts the SKUs node changes marked dirty in this
	// transaction: together they take at most Config.ReemitBatch.
	nodeReemitted int
	Stats         Stats
}

// New returns a processor with the given configuration.
func New(cfg Config) *Processor {
	return &Processor{
		Stats: Stats{Gen: gens.Add(1)},
		cfg:   cfg.withDefaults(),
		skus:  make(map[string]int32),
		hash:  xxhash.New(),
	}
}

// InvalidError is returned for input that can never be applied. The runtime
// sends such records to the dead-letter topic.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "inventory: invalid input: " + e.Reason }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// IsInvalid reports whether err marks bad input.
func IsInvalid(err error) bool {
	if err == nil {
		return false
	}
	var ie *InvalidError
	return errors.As(err, &ie)
}

// Validate checks a decoded movement against its record key and, when ts
// (the record's time, ms) is set, its occurred_at against ts.
func Validate(key []byte, m *schemas.StockMovement, ts int64) error {
	if err := checkIDs("movement_id", m.MovementID, "sku", m.SKU, "node_id", m.NodeID); err != nil {
		return err
	}
	if ts > 0 && m.OccurredAt > ts+maxSkew.Milliseconds() {
		return invalid("occurred_at %d lies more than %v after the record's timestamp %d", m.OccurredAt, maxSkew, ts)
	}
	if string(key) != m.SKU {
		return invalid("record key %q disagrees with sku %q", key, m.SKU)
	}
	switch m.Type {
	case schemas.Receipt, schemas.TransferIn, schemas.ReturnRestock,
		schemas.Shipment, schemas.TransferOut, schemas.Damage:
		if m.Qty <= 0 || m.Qty > schemas.MaxQty {
			return invalid("%s qty must be in [1, %d], got %d", m.Type, schemas.MaxQty, m.Qty)
		}
	case schemas.Adjustment:
		if m.Qty == 0 || m.Qty < -schemas.MaxQty || m.Qty > schemas.MaxQty {
			return invalid("ADJUSTMENT qty must be non-zero and in [-%d, %d], got %d", schemas.MaxQty, schemas.MaxQty, m.Qty)
		}
	case schemas.Count:
		if m.Qty < 0 || m.Qty > schemas.MaxQty {
			return invalid("COUNT qty must be in [0, %d], got %d", schemas.MaxQty, m.Qty)
		}
	default:
		return invalid("unknown movement type %q", m.Type)
	}
	return nil
}

// checkIDs checks (field, id) pairs with schemas.CheckID.
func checkIDs(fieldIDs ...string) error {
	if err := schemas.CheckIDs(fieldIDs...); err != nil {
		return &InvalidError{Reason: err.Error()}
	}
	return nil
}

// maxSkew is how far after its record's timestamp a movement's occurred_at
// may lie: beyond it the time is taken for garbage (a WMS writing
// microseconds), which would otherwise move the idempotency window's clock
// and age every remembered id out. Within it, the window is at least
// dedupe_window minus maxSkew long.
const maxSkew = time.Hour

// Movement applies one stock movement. ts is the input record's time in
// milliseconds; it becomes the AtsUpdate's updated_at. An *InvalidError means
// the record must go to the dead-letter topic; state is then unchanged. A
// SHIPMENT or RETURN_RESTOCK that names an order line returns the notice
// for the router (CONSUME or RESTOCK); other movements return nil.
func (p *Processor) Movement(st Store, key []byte, m *schemas.StockMovement, ts int64) (*schemas.ReservationResult, error) {
	if err := Validate(key, m, ts); err != nil {
		return nil, err
	}
	if err := p.win.load(st); err != nil {
		return nil, err
	}
	h := p.movementHash(m)
	if !p.win.claim(h) {
		p.Stats.Duplicates++
		return nil, nil
	}
	// From here on h is claimed: added below, released for a legacy
	// duplicate; any error aborts the transaction, which resets the window.
	e := p.entry(m.SKU)
	next, err := p.own(st, e)
	if err != nil {
		return nil, err
	}
	if p.legacySeen(next, m) {
		p.win.release(h)
		p.Stats.Duplicates++
		return nil, nil
	}
	i, found := findNode(next.Nodes, m.NodeID)
	if !found {
		if n := nodesBytes(next.Nodes) + nodeBytes(m.NodeID); n > maxNodesBytes {
			p.win.release(h)
			return nil, invalid("sku %s has stock at %d nodes: one more (%s) would take its node list to %d bytes, more than %d",
				m.SKU, len(next.Nodes), m.NodeID, n, maxNodesBytes)
		}
		// The canonical copy of the id (states live long in the cache;
		// m.NodeID is a slice of the whole record).
		next.Nodes = slices.Insert(next.Nodes, i, schemas.NodeStock{NodeID: unique.Make(m.NodeID).Value()})
		if err := st.Index(m.NodeID, m.SKU); err != nil {
			return nil, err
		}
	}
	ns := &next.Nodes[i]
	switch m.Type {
	case schemas.Receipt, schemas.TransferIn, schemas.ReturnRestock, schemas.Adjustment:
		ns.OnHand = schemas.SatAdd(ns.OnHand, m.Qty)
	case schemas.Shipment, schemas.TransferOut, schemas.Damage:
		ns.OnHand = schemas.SatAdd(ns.OnHand, -m.Qty)
	case schemas.Count:
		ns.OnHand = m.Qty
	}
	if ns.OnHand < 0 {
		p.Stats.Negative++
	}
	var notice *schemas.ReservationResult
	if m.OrderID != nil && m.LineID != nil && (m.Type == schemas.Shipment || m.Type == schemas.ReturnRestock) {
		notice = &schemas.ReservationResult{OrderID: *m.OrderID, LineID: *m.LineID, Type: schemas.Restock,
			SKU: m.SKU, NodeID: m.NodeID, Qty: m.Qty, OK: true, DecidedAt: ts}
		if m.Type == schemas.Shipment {
			notice.Type = schemas.Consume
			if err := p.consume(st, ns, m); err != nil {
				return nil, err
			}
		}
	}
	p.win.add(st, h, m.OccurredAt)
	p.Stats.Applied++
	p.touch(e, ts) // Flush stores it
	return notice, nil
}

// maxNodesBytes bounds a SKU's node list as nodesBytes counts it, so that
// its state and its AtsUpdate (an entry per node, plus one per channel)
// stay well under schemas.MaxRecordBytes: a movement that would add a node
// beyond it is invalid. With ids of 16 bytes that is 8,192 nodes; with ids
// of schemas.MaxIDBytes, 1,724.
const maxNodesBytes = 512 << 10

// nodeBytes is what one node's entry is counted for: its id and the
// encoded numbers of a NodeATS.
func nodeBytes(id string) int { return len(id) + 48 }

func nodesBytes(nodes []schemas.NodeStock) int {
	n := 0
	for i := range nodes {
		n += nodeBytes(nodes[i].NodeID)
	}
	return n
}

// consume lowers the reservation of the shipped order line at the node,
// and the node's reserved with it, by what shipped (at most what it held).
//
// ns.Reserved is the sum of the reservations held of the SKU at the node
// (Command and consume change both together), so at zero there is none to
// look up: a shipment that names an order line without a reservation here
// (a marketplace's own order, a router that did not reserve) costs no
// store read.
func (p *Processor) consume(st Store, ns *schemas.NodeStock, m *schemas.StockMovement) error {
	if ns.Reserved <= 0 {
		return nil
	}
	r, err := st.Reservation(m.SKU, *m.OrderID, *m.LineID, m.NodeID)
	if err != nil || r == nil {
		return err
	}
	c := min(m.Qty, r.Qty)
	next := *r
	next.Qty -= c
	ns.Reserved -= c
	st.PutReservation(&next)
	return nil
}

// ValidateCommand checks a decoded reservation command against its key.
func ValidateCommand(key []byte, c *schemas.ReservationCommand) error {
	// A RESERVE makes a key of the ids: they must pass CheckID. A RELEASE
	// or DECREASE only finds one, maybe made before the id rules: non-empty
	// is enough.
	if c.Type == schemas.Release || c.Type == schemas.Decrease {
		if c.OrderID == "" || c.LineID == "" || c.SKU == "" || c.NodeID == "" {
			return invalid("%s with an empty order_id, line_id, sku or node_id", c.Type)
		}
	} else if err := checkIDs("order_id", c.OrderID, "line_id", c.LineID, "sku", c.SKU, "node_id", c.NodeID); err != nil {
		return err
	}
	if string(key) != c.SKU {
		return invalid("record key %q disagrees with sku %q", key, c.SKU)
	}
	switch c.Type {
	case schemas.Reserve, schemas.Decrease:
		if c.Qty <= 0 || c.Qty > schemas.MaxQty {
			return invalid("%s qty must be in [1, %d], got %d", c.Type, schemas.MaxQty, c.Qty)
		}
	case schemas.Release:
	default:
		return invalid("%s is not a command", c.Type)
	}
	return nil
}

// Command applies a reservation command under the node table t and returns
// the answer for the router. ts is the input record's time.
func (p *Processor) Command(st Store, t Tables, key []byte, c *schemas.ReservationCommand, ts int64) (*schemas.ReservationResult, error) {
	if err := ValidateCommand(key, c); err != nil {
		return nil, err
	}
	res := &schemas.ReservationResult{OrderID: c.OrderID, LineID: c.LineID, Type: c.Type, SKU: c.SKU,
		NodeID: c.NodeID, Qty: c.Qty, Attempt: c.Attempt, DecidedAt: c.IssuedAt}
	cur, err := st.Reservation(c.SKU, c.OrderID, c.LineID, c.NodeID)
	if err != nil {
		return nil, err
	}
	var held int64
	if cur != nil {
		held = cur.Qty
	}
	e := p.entry(c.SKU)
	next, err := p.own(st, e)
	if err != nil {
		return nil, err
	}
	i, found := findNode(next.Nodes, c.NodeID)
	var ns *schemas.NodeStock
	if found {
		ns = &next.Nodes[i]
	}
	n := t.Node(c.NodeID)
	room := func() int64 { // what the node can still give this command
		if ns == nil {
			return 0
		}
		return Available(n, c.SKU, ns.OnHand, ns.Reserved, c.AllowSafetyStock)
	}
	want := c.Qty
	switch c.Type {
	case schemas.Release:
		want = 0
		res.Qty = held
	case schemas.Decrease: // a difference: commutes with a shipment's consume
		want = max(0, held-c.Qty)
		res.Qty = held - want
	}
	switch delta := want - held; {
	case delta > room():
		res.Reason = refusal(c, n, room(), held)
		res.Available = room()
		p.Stats.Refused++
		return res, nil
	case delta != 0:
		if ns == nil { // releasing at a node without stock record: nothing held
			break
		}
		ns.Reserved += delta
		r := schemas.Reservation{OrderID: c.OrderID, LineID: c.LineID, SKU: c.SKU, NodeID: c.NodeID,
			Qty: want, Attempt: c.Attempt, ReservedAt: c.IssuedAt}
		st.PutReservation(&r)
		p.touch(e, ts) // Flush stores next
	}
	if c.Type == schemas.Reserve {
		p.Stats.Reserved++
	} else {
		p.Stats.Released++ // RELEASE, DECREASE
	}
	res.OK = true
	res.Available = room()
	return res, nil
}

func refusal(c *schemas.ReservationCommand, n *schemas.Node, room, held int64) string {
	switch {
	case n == nil:
		return fmt.Sprintf("node %s is not configured", c.NodeID)
	case !n.Active:
		return fmt.Sprintf("node %s is not active", c.NodeID)
	case held > 0:
		return fmt.Sprintf("insufficient stock at %s: %d more available, %d asked on top of %d held", c.NodeID, room, c.Qty-held, held)
	}
	return fmt.Sprintf("insufficient stock at %s: %d available, %d asked", c.NodeID, room, c.Qty)
}

// movementHash is the 64-bit xxhash of (sku, movement_id), as remembered in
// the window. Two distinct pairs collide with probability 2^-64; a new
// movement is taken for a duplicate with probability dedupe_max x 2^-64.
func (p *Processor) movementHash(m *schemas.StockMovement) int64 {
	p.hash.Reset()
	p.hash.WriteString(m.SKU)
	p.hash.Write([]byte{0})
	p.hash.WriteString(m.MovementID)
	return int64(p.hash.Sum64())
}

// legacySeen honours the per-SKU ids that versions before the partition
// window kept in SKUState.Seen (hashes of the movement id alone): a repeat
// of one is a duplicate. Entries older than the window, measured against
// this movement, are dropped, so the list empties as the SKU moves on.
func (p *Processor) legacySeen(st *schemas.SKUState, m *schemas.StockMovement) bool {
	if len(st.Seen) == 0 {
		return false
	}
	h := int64(xxhash.Sum64String(m.MovementID))
	if slices.ContainsFunc(st.Seen, func(s schemas.SeenMovement) bool { return s.IDHash == h }) {
		return true
	}
	cut := m.OccurredAt - p.cfg.DedupeWindow.Milliseconds()
	st.Seen = slices.DeleteFunc(st.Seen, func(s schemas.SeenMovement) bool { return s.OccurredAt < cut })
	return false
}

// NodeReemit is the cursor of the re-emit of one node's SKUs.
type NodeReemit struct {
	Node  string
	After string // the last SKU re-emitted ("" none yet)
	TS    int64  // the change's time
}

// NodeChanged re-emits the ATS of the SKUs stocked at node, found through
// the node -> SKU index, so the work is proportional to the SKUs at that
// node. Node changes mark up to Config.ReemitBatch SKUs dirty per
// transaction in all (every SKU of most nodes at once: the next Flush
// re-emits them); the rest follows like a channel change, a batch per Flush
// from a cursor per node kept in the store. A node stocking a million SKUs would otherwise make one
// transaction of a million updates, longer than the transaction timeout,
// which would abort it at every retry.
func (p *Processor) NodeChanged(st Store, node string, ts int64) error {
	c := NodeReemit{Node: node, TS: ts}
	more := true // with no budget left this transaction, all of it later
	if budget := p.cfg.ReemitBatch - p.nodeReemitted; budget > 0 {
		var err error
		if _, more, err = p.reemitNode(st, &c, budget); err != nil {
			return err
		}
	}
	cur, err := st.NodeReemits()
	if err != nil {
		return err
	}
	i, found := slices.BinarySearchFunc(cur, node, func(c NodeReemit, n string) int { return strings.Compare(c.Node, n) })
	switch {
	case found && more:
		next := slices.Clone(cur)
		next[i] = c
		st.SetNodeReemits(next)
	case found:
		st.SetNodeReemits(slices.Delete(slices.Clone(cur), i, i+1))
	case more:
		st.SetNodeReemits(slices.Insert(slices.Clone(cur), i, c))
	}
	return nil
}

// reemitNode marks dirty at most limit SKUs at c.Node after c.After and
// moves c.After on; more says whether SKUs remain.
func (p *Processor) reemitNode(st Store, c *NodeReemit, limit int) (n int, more bool, err error) {
	more, err = st.SKUsAt(c.Node, c.After, limit, func(sku string) error {
		p.touch(p.entry(sku), c.TS)
		c.After = sku
		n++
		return nil
	})
	p.nodeReemitted += n
	return n, more, err
}

// ChannelsChanged starts (or restarts) a re-emit of every SKU of the
// partition: a channel's buffers or node set change the channel ATS of
// every SKU. The re-emit runs Config.ReemitBatch SKUs per Flush, from a
// cursor kept in the store, so memory and transaction size stay bounded
// and a crash resumes where the last commit left off.
func (p *Processor) ChannelsChanged(st Store, ts int64) error {
	st.SetReemit("", ts, true)
	return nil
}

// Pending reports whether a re-emit is in progress, so that the runtime
// calls Flush even when no input arrives.
func (p *Processor) Pending(st Store) (bool, error) {
	_, _, active, err := st.Reemit()
	if err != nil || active {
		return active, err
	}
	nodes, err := st.NodeReemits()
	return len(nodes) > 0, err
}

// continueReemit marks the next batch of SKUs dirty and moves the cursor.
func (p *Processor) continueReemit(st Store) error {
	after, ts, active, err := st.Reemit()
	if err != nil {
		return err
	}
	if !active {
		return p.continueNodeReemits(st)
	}
	last := after
	more, err := st.SKUsAfter(after, p.cfg.ReemitBatch, func(sku string) error {
		p.touch(p.entry(sku), ts)
		last = sku
		return nil
	})
	if err != nil {
		return err
	}
	st.SetReemit(last, ts, more)
	return p.continueNodeReemits(st)
}

// continueNodeReemits marks the next Config.ReemitBatch SKUs of the node
// re-emits dirty, node by node, and moves their cursors.
func (p *Processor) continueNodeReemits(st Store) error {
	budget := p.cfg.ReemitBatch - p.nodeReemitted
	if budget <= 0 {
		return nil
	}
	cur, err := st.NodeReemits()
	if err != nil || len(cur) == 0 {
		return err
	}
	next := slices.Clone(cur)
	for i := range next {
		if budget == 0 {
			break
		}
		n, more, err := p.reemitNode(st, &next[i], budget)
		if err != nil {
			return err
		}
		budget -= n
		if !more {
			next[i].Node = "" // done
		}
	}
	st.SetNodeReemits(slices.DeleteFunc(next, func(c NodeReemit) bool { return c.Node == "" }))
	return nil
}

// skuTxn is what a transaction holds of one SKU.
type skuTxn struct {
	sku   string
	st    *schemas.SKUState // the transaction's own copy; nil until owned
	dirty bool              // in order: Flush emits and stores it
	ts    int64             // newest input time that touched it
}

// entry returns the index of sku's entry in the transaction, made if new:
// one map look-up per SKU and record, shared by own and touch.
func (p *Processor) entry(sku string) int32 {
	if i, ok := p.skus[sku]; ok {
		return i
	}
	i := int32(len(p.txn))
	p.txn = append(p.txn, skuTxn{sku: sku})
	p.skus[sku] = i
	return i
}

// touch marks entry i dirty: Flush emits its ATS and stores its state.
func (p *Processor) touch(i int32, ts int64) {
	e := &p.txn[i]
	if !e.dirty {
		e.dirty = true
		p.order = append(p.order, i)
	}
	e.ts = max(e.ts, ts)
}

// Dirty returns how many SKUs wait for the next Flush.
func (p *Processor) Dirty() int { return len(p.order) }

// Flush emits one AtsUpdate per dirty SKU, in first-touch order, bumps each
// SKU's version and stores it. It must be called once before every commit;
// afterwards nothing is dirty. The update emit is given is reused after emit
// returns: emit must not keep it.
func (p *Processor) Flush(st Store, t Tables, emit func(*schemas.AtsUpdate) error) error {
	if err := p.continueReemit(st); err != nil {
		return err
	}
	for _, i := range p.order {
		next, err := p.own(st, i)
		if err != nil {
			return err
		}
		if len(next.Nodes) == 0 && next.Version == 0 {
			continue // marked by an index entry whose state is gone
		}
		next.Version++
		p.nodes = computeATS(&p.ats, p.nodes, next, t, p.txn[i].ts)
		st.Put(next)
		if err := emit(&p.ats); err != nil {
			return err
		}
		p.Stats.Emitted++
	}
	p.win.flush(st, p.cfg)
	p.clearTxn()
	clear(p.nodes[:cap(p.nodes)]) // do not pin replaced nodes
	return nil
}

func (p *Processor) clearTxn() {
	p.nodeReemitted = 0
	if len(p.skus) > 1<<16 {
		p.skus = make(map[string]int32) // do not keep a re-emit's map
		p.txn, p.order = nil, nil
	} else {
		clear(p.skus)
		clear(p.txn) // do not pin the states
		p.txn, p.order = p.txn[:0], p.order[:0]
	}
}

// Reset forgets the transaction's work after an abort: the dirty set and
// the in-memory idempotency window, which the next movement reloads from
// the committed store.
func (p *Processor) Reset() {
	p.clearTxn()
	p.win.reset()
}

// own returns the transaction's own, modifiable copy of entry i's state:
// the committed state is copied once per transaction, not once per movement.
func (p *Processor) own(st Store, i int32) (*schemas.SKUState, error) {
	e := &p.txn[i]
	if e.st != nil {
		return e.st, nil
	}
	cur, err := st.Get(e.sku)
	if err != nil {
		return nil, err
	}
	e.st = clone(cur, e.sku)
	return e.st, nil
}

// findNode is slices.BinarySearchFunc over nodes (sorted by NodeID) for id,
// without the call per comparison.
func findNode(nodes []schemas.NodeStock, id string) (int, bool) {
	lo, hi := 0, len(nodes)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if nodes[m].NodeID < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(nodes) && nodes[lo].NodeID == id
}

// clone returns a deep copy of st (or a new state for sku when st is nil).
func clone(st *schemas.SKUState, sku string) *schemas.SKUState {
	if st == nil {
		return &schemas.SKUState{SKU: sku}
	}
	c := *st
	c.Nodes = slices.Clone(st.Nodes)
	c.Seen = slices.Clone(st.Seen)
	return &c
}

// SafetyStock is the units held back for sku at node n.
func SafetyStock(n *schemas.Node, sku string) int64 {
	if v, ok := n.SKUSafetyStock[sku]; ok {
		return int64(v)
	}
	return int64(n.SafetyStock)
}

// Available is what node n can give of sku: max(0, on_hand - reserved -
// safety stock), or without the safety stock when useSafety (VIP orders);
// 0 at a node that is unknown or not active. ATS, reservations and the
// router's plans all count with it.
func Available(n *schemas.Node, sku string, onHand, reserved int64, useSafety bool) int64 {
	if n == nil || !n.Active {
		return 0
	}
	v := onHand - reserved
	if !useSafety {
		v -= SafetyStock(n, sku)
	}
	return max(0, v)
}

// Feeds reports whether node n feeds channel c.
func Feeds(c *schemas.Channel, n *schemas.Node) bool {
	if len(c.Nodes) == 0 && len(c.NodeTypes) == 0 {
		return true
	}
	return slices.Contains(c.Nodes, n.NodeID) || slices.Contains(c.NodeTypes, n.Type)
}

// ComputeATS computes the AtsUpdate of one SKU state under the given tables.
// It is a pure function.
func ComputeATS(st *schemas.SKUState, t Tables, updatedAt int64) *schemas.AtsUpdate {
	u := &schemas.AtsUpdate{Nodes: []schemas.NodeATS{}, Channels: []schemas.ChannelATS{}} // empty, not nil
	computeATS(u, nil, st, t, updatedAt)
	return u
}

// computeATS is ComputeATS into u, reusing u's slices and nodes (scratch);
// it returns nodes for the next call.
func computeATS(u *schemas.AtsUpdate, nodes []*schemas.Node, st *schemas.SKUState, t Tables, updatedAt int64) []*schemas.Node {
	*u = schemas.AtsUpdate{SKU: st.SKU, Version: st.Version, UpdatedAt: updatedAt,
		Nodes: slices.Grow(u.Nodes[:0], len(st.Nodes))[:len(st.Nodes)], Channels: u.Channels[:0]}
	nodes = slices.Grow(nodes[:0], len(st.Nodes))[:len(st.Nodes)]
	for i, ns := range st.Nodes {
		na := schemas.NodeATS{NodeID: ns.NodeID, OnHand: ns.OnHand, Reserved: ns.Reserved}
		nodes[i] = nil // not active: feeds no channel
		if n := t.Node(ns.NodeID); n != nil {
			na.SafetyStock = SafetyStock(n, st.SKU)
			if n.Active {
				nodes[i] = n
				na.Active = true
				na.Available = Available(n, st.SKU, ns.OnHand, ns.Reserved, false)
			}
		}
		u.ATS = schemas.SatAdd(u.ATS, na.Available)
		u.Nodes[i] = na
	}
	chans := t.Channels()
	u.Channels = slices.Grow(u.Channels, len(chans))[:len(chans)]
	for i, c := range chans {
		var sum int64
		for j, n := range nodes {
			if n != nil && Feeds(c, n) {
				sum = schemas.SatAdd(sum, u.Nodes[j].Available)
			}
		}
		u.Channels[i] = schemas.ChannelATS{ChannelID: c.ChannelID, ATS: ChannelATS(sum, c)}
	}
	return nodes
}

// ChannelATS is the rule for a channel fed by nodes whose availability sums
// to sum (at least 0): max(0, floor(sum x (100 - buffer_percent) / 100) -
// buffer_units), with buffer_percent clamped to [0, 100]. It is computed as
// (sum / 100) x (100 - pct) + (sum mod 100) x (100 - pct) / 100, which is
// the same floor for any sum >= 0 and cannot overflow.
func ChannelATS(sum int64, c *schemas.Channel) int64 {
	pct := int64(min(max(c.BufferPercent, 0), 100))
	v := sum/100*(100-pct) + sum%100*(100-pct)/100
	return max(0, schemas.SatAdd(v, -int64(c.BufferUnits)))
}

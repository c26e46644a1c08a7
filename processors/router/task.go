package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/screen"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// Topic names of the router topology, before the prefix.
const (
	TopicOrders    topology.Topic = "orders"
	TopicFeedback  topology.Topic = "fulfillment-feedback"
	TopicDecisions topology.Topic = "routing-decisions"
	TopicRequests  topology.Topic = "fulfillment-requests"
	TopicStatus    topology.Topic = "order-status"
	TopicLoad      topology.Topic = "invroute-node-load"
	TopicChangelog topology.Topic = "invroute-router-changelog"
	StoreName                     = "router"
)

// Key spaces of the router store.
//
//	o/<order_id>   format byte (1) + RouterOrder (Avro)
//	l/<node_id>    day (8 bytes) + shipments (8 bytes), big endian: this partition's load today
//
// With Config.OrderRetention:
//
//	t/                          stream time, ms (8 bytes, big endian), then the horizon (8 bytes)
//	u/<order_id>                when the finished order finished, ms (8 bytes): its x/ key
//	x/<at, 16 hex>/<order_id>   empty: the finished orders, in the order they finished
//	m/                          how far the indexing of orders finished without an entry got (migrate):
//	                            the last order id looked at, or migrated when done
//
// Unless Config.NoBackorderRetry:
//
//	b/<sku> 0x00 <placed_at, 16 hex, sign bit flipped>/<order_id>   empty: the orders waiting for stock of sku
const (
	prefixOrder  = "o/"
	prefixLoad   = "l/"
	keyNow       = "t/"
	prefixExpiry = "u/"
	prefixDue    = "x/"
	prefixWait   = "b/"
	keyMigrated  = "m/"
	migrated     = "\xff" // no order id: IDs are valid UTF-8
)

// purgeBatch bounds the orders forgotten per transaction and partition
// (Task.purgeBatch); purgeEvery is how much stream time passes between two
// looks for orders due (unless the last look found purgeBatch of them).
const (
	purgeBatch = 1000
	purgeEvery = time.Minute
)

// retryBatch bounds the waiting orders (or SKUs without any) looked at per
// transaction and partition for the retry of backordered lines
// (Task.retryBatch).
const retryBatch = 200

// TopologyOptions configure the router topology.
type TopologyOptions struct {
	Group        string           // consumer group; default "invroute-router"
	Config       Config           // router settings
	Catalog      *catalog.Catalog // replicated node and channel tables; required
	Availability *Availability    // replicated ats table; required
	Loads        *Loads           // replicated node-load table; required
	SchemaIDs    schemas.SchemaIDs
	// OnFlush, if set, is called with the router's stats after every Flush.
	OnFlush func(partition int32, s Stats)
}

// Topology returns the router's topology: orders, reservation results and
// fulfillment feedback in (all keyed by order_id); decisions, fulfillment
// requests, order status, reservation commands and node loads out.
func Topology(o TopologyOptions) *topology.Topology {
	if o.Group == "" {
		o.Group = "invroute-router"
	}
	return &topology.Topology{
		Group:  o.Group,
		Inputs: []topology.Input{{Topic: TopicOrders}, {Topic: inventory.TopicResults}, {Topic: TopicFeedback}, {Topic: screen.TopicVerdicts}},
		Stores: []topology.Store{{Name: StoreName, Changelog: TopicChangelog}},
		Outputs: []topology.Output{
			{Topic: TopicDecisions, CoPartitioned: true},
			{Topic: TopicStatus, CoPartitioned: true, Compacted: true},
			{Topic: TopicRequests},           // keyed by node_id
			{Topic: inventory.TopicCommands}, // keyed by sku, for the inventory
			{Topic: TopicLoad, Compacted: true},
			{Topic: screen.TopicChecks}, // keyed by customer_id, for the customer screen
		},
		Globals: []topology.Global{
			{Topic: inventory.TopicNodes, Apply: o.Catalog.ApplyNode, Silent: true},
			{Topic: inventory.TopicChannels, Apply: o.Catalog.ApplyChannel, Silent: true},
			{Topic: inventory.TopicATS, Apply: o.Availability.Apply, Silent: true, Partitioned: true},
			{Topic: TopicLoad, Apply: o.Loads.Apply, Silent: true},
		},
		DeadLetter: inventory.TopicDeadLetter,
		NewTask: func(tc topology.TaskContext) (topology.Task, error) {
			st := tc.Stores[StoreName]
			t := &Task{
				r:          New(o.Config),
				purgeBatch: purgeBatch,
				retryBatch: retryBatch,
				queued:     map[string]uint8{},
				cursors:    map[string]Waiting{},
				claims:     map[claimKey]*claim{},
				phantoms:   map[[2]string]schemas.Cap{},
				opened:     map[string]uint64{},
				now:        time.Now,
				part:       tc.Partition,
				ids:        o.SchemaIDs,
				opts:       o,
				store:      &pebbleStore{st: st, orders: state.NewTable[schemas.RouterOrder](st, prefixOrder, orderCodec{}, tc.CacheEntries), dirty: map[string]int64{}},
			}
			if !o.Config.NoBackorderRetry {
				t.store.onPut = t.noteOrder
				t.store.onFall = t.noteFall
				t.fallSeq = o.Loads.FallSeq() // the start looks at every SKU waited for anyway
			}
			return t, nil
		},
	}
}

// Task runs the router for one partition.
type Task struct {
	r     *Router
	part  int32
	ids   schemas.SchemaIDs
	opts  TopologyOptions
	store *pebbleStore
	// nextPurge is the stream time of the next look for orders to forget
	// (0: at the next flush); purgeBatch bounds what one look forgets.
	nextPurge  int64
	purgeBatch int
	// migrated says migrate has nothing (more) to do in this task's life,
	// or until an abort.
	migrated bool
	// The retry of backordered lines (see retry): riseSeq is the
	// position in the ats table's log of rises;
	// queue the SKUs to look at, in turn (queued: 1, or 2 if it rose again
	// while its orders were being looked at); cursors the position in the
	// orders of a SKU whose look goes on; claims the units retries asked
	// for, until the inventory answers (or claimFor passes); phantoms the
	// short picks of the partition's orders, which keep retries of every
	// order away from that stock as they keep their own order's plans;
	// seq the table's log position at the start of the record or look
	// being processed; opened that position when each order with a round
	// open was first seen so (noteOrder); snap and day the catalog and
	// the UTC day (of now) at the last look; fallSeq the position in the
	// node-load table's log of falls, and freed the nodes that got
	// capacity back when full, since the last look (noteFall, and the
	// other partitions' falls); retryBatch bounds the orders one
	// transaction looks at; now is the clock of the retries.
	riseSeq    uint64
	fallSeq    uint64
	freed      map[string]int64 // node -> day
	queue      []string
	queued     map[string]uint8
	cursors    map[string]Waiting
	claims     map[claimKey]*claim
	phantoms   map[[2]string]schemas.Cap // (sku, node) -> the newest short pick seen there
	seq        uint64
	opened     map[string]uint64
	snap       *catalog.Snapshot // the catalog, and the UTC day, at the last look
	day        int64
	retryBatch int
	now        func() time.Time
	ev         schemas.OrderEvent
	res        schemas.ReservationResult
	fb         schemas.FulfillmentFeedback
}

// world is the router's World for one task.
type world struct {
	snap *catalog.Snapshot
	t    *Task
}

func (w world) Node(id string) *schemas.Node       { return w.snap.Node(id) }
func (w world) Nodes() []*schemas.Node             { return w.snap.Nodes() }
func (w world) Channel(id string) *schemas.Channel { return w.snap.Channel(id) }
func (w world) Stock(sku, node string) (schemas.NodeATS, bool) {
	return w.t.opts.Availability.Stock(sku, node)
}
func (w world) OtherLoad(node string, day int64) int64 {
	return w.t.opts.Loads.Other(node, day, w.t.part)
}

// out encodes what the router emits.
type out struct {
	em  topology.Emitter
	err error
}

func emit[T any](o *out, c *schemas.Codec[T], topic topology.Topic, key string, v *T) {
	if o.err != nil {
		return
	}
	b, err := c.Encode(v)
	if err != nil {
		o.err = err
		return
	}
	o.em.Emit(topic, []byte(key), b)
}

func (o *out) Command(c *schemas.ReservationCommand) {
	emit(o, schemas.ReservationCommands, inventory.TopicCommands, c.SKU, c)
}
func (o *out) Decision(d *schemas.RoutingDecision) {
	emit(o, schemas.RoutingDecisions, TopicDecisions, d.OrderID, d)
}
func (o *out) Request(r *schemas.FulfillmentRequest) {
	emit(o, schemas.FulfillmentRequests, TopicRequests, r.NodeID, r)
}
func (o *out) Status(s *schemas.OrderStatus) {
	emit(o, schemas.OrderStatuses, TopicStatus, s.OrderID, s)
}
func (o *out) Check(c *schemas.CustomerCheck) {
	emit(o, schemas.CustomerChecks, screen.TopicChecks, c.CustomerID, c)
}
func (o *out) Forget(orderID string) {
	if o.err == nil {
		o.em.Emit(TopicStatus, []byte(orderID), nil)
	}
}

// Process decodes and applies one record of an input.
func (t *Task) Process(r *topology.Record, em topology.Emitter) error {
	o := &out{em: em}
	w := world{snap: t.opts.Catalog.Snapshot(), t: t}
	if err := t.store.loadNow(); err != nil { // every input's saves and PLACED events read it
		return err
	}
	if t.store.onPut != nil {
		t.seq = t.opts.Availability.Seq() // before any plan reads the table (noteOrder)
	}
	var err error
	switch topology.Topic(r.Topic) {
	case TopicOrders:
		t.ev = schemas.OrderEvent{}
		if err := schemas.OrderEvents.DecodeInput(r.Value, &t.ev, t.ids); err != nil {
			return topology.BadInput("decode", err)
		}
		retain := t.r.cfg.OrderRetention > 0 || t.store.horizon > 0
		if retain && t.ev.Type == schemas.EventPlaced && r.Polled > 0 && t.ev.PlacedAt > streamTime(r)+maxSkew.Milliseconds() {
			// Beyond what ValidatePlaced allows of a record stamped no
			// later than streamTime: such an order would finish, and be
			// forgotten, only then.
			return topology.BadInput("validate", fmt.Errorf("router: order %s: placed_at %d lies more than %v after the wall clock of its poll, %d",
				t.ev.OrderID, t.ev.PlacedAt, 2*maxSkew, r.Polled))
		}
		err = t.r.OrderEvent(t.store, w, o, r.Key, &t.ev, r.Timestamp)
		if err == nil && o.err == nil && t.r.cfg.OrderRetention > 0 {
			t.store.advance(streamTime(r)) // accepted: the stream time moves
		}
	case inventory.TopicResults:
		t.res = schemas.ReservationResult{}
		if err := schemas.ReservationResults.Decode(r.Value, &t.res); err != nil {
			return topology.BadInput("decode", err)
		}
		err = t.r.Result(t.store, w, o, r.Key, &t.res, r.Timestamp)
		if k := (claimKey{sku: t.res.SKU, node: t.res.NodeID, order: t.res.OrderID}); err == nil && t.claims[k] != nil {
			delete(t.claims, k) // answered: the table shows it, or it was refused
			if !t.res.OK {
				t.enqueue(k.sku) // the units may serve another order
			}
		}
	case screen.TopicVerdicts:
		var v schemas.CustomerVerdict
		if err := schemas.CustomerVerdicts.Decode(r.Value, &v); err != nil {
			return topology.BadInput("decode", err)
		}
		err = t.r.Verdict(t.store, w, o, r.Key, &v, r.Timestamp)
	case TopicFeedback:
		t.fb = schemas.FulfillmentFeedback{}
		if err := schemas.FulfillmentFeedbacks.DecodeInput(r.Value, &t.fb, t.ids); err != nil {
			return topology.BadInput("decode", err)
		}
		ts := r.Timestamp
		if r.Polled > 0 { // a WMS clock far off must not make a short pick last too long or not at all
			ts = min(max(ts, r.Polled-maxSkew.Milliseconds()), r.Polled+maxSkew.Milliseconds())
		}
		err = t.r.Feedback(t.store, w, o, r.Key, &t.fb, ts)
	default:
		return fmt.Errorf("router: record of unexpected topic %q", r.Topic)
	}
	if IsInvalid(err) {
		return topology.BadInput("validate", err)
	}
	if err != nil {
		return err
	}
	return o.err
}

// GlobalChanged: the router reads its tables when it plans; nothing to do.
func (t *Task) GlobalChanged(topology.Topic, []byte, int64, topology.Emitter) error { return nil }

// Flush publishes this partition's load of the nodes it routed to in the
// transaction, so that other partitions see the capacity it used.
func (t *Task) Flush(em topology.Emitter) error {
	if err := t.retry(em); err != nil {
		return err
	}
	nodes := make([]string, 0, len(t.store.dirty))
	for n := range t.store.dirty {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		d := t.store.dirty[n]
		v, err := t.store.Load(n, d)
		if err != nil {
			return err
		}
		b, err := schemas.NodeLoads.Encode(&schemas.NodeLoad{NodeID: n, Partition: t.part, Day: d, Shipments: v})
		if err != nil {
			return err
		}
		em.Emit(TopicLoad, []byte(LoadKey(n, t.part)), b)
	}
	clear(t.store.dirty)
	if err := t.migrate(); err != nil {
		return err
	}
	if err := t.purge(em); err != nil {
		return err
	}
	if t.opts.OnFlush != nil {
		t.opts.OnFlush(t.part, t.r.Stats)
	}
	return nil
}

// streamTime is the time an accepted order event gives the partition's
// stream time: its record's, but never more than an hour past the wall
// clock of its poll, so that one record stamped far ahead cannot make
// every finished order look old.
func streamTime(r *topology.Record) int64 {
	if r.Polled > 0 {
		return min(r.Timestamp, r.Polled+maxSkew.Milliseconds())
	}
	return r.Timestamp
}

// purge forgets the orders due (Config.OrderRetention), at most purgeBatch
// of them, once per purgeEvery of stream time, and stores the stream time.
func (t *Task) purge(em topology.Emitter) error {
	if t.r.cfg.OrderRetention <= 0 {
		return nil
	}
	if err := t.store.loadNow(); err != nil {
		return err
	}
	now := t.store.now
	if now > 0 && now >= t.nextPurge {
		o := &out{em: em}
		n, err := t.r.Purge(t.store, o, t.purgeBatch)
		if err == nil {
			err = o.err
		}
		if err != nil {
			return err
		}
		if t.nextPurge = now + purgeEvery.Milliseconds(); n == t.purgeBatch {
			t.nextPurge = now // more due: go on at the next flush
		}
	}
	return t.store.saveNow()
}

// migrate indexes the orders that finished without an entry in the index
// of finished orders (u/, x/): those finished before order_retention was
// set, or while it was unset. Each is taken as finished at the stream time
// of the flush that indexes it (or at its placed_at, if later), never
// earlier than it did: it is forgotten order_retention after that. It
// looks at purgeBatch stored orders per flush, from where it stopped
// (keyMigrated), until done; it waits for a stream time (the first
// accepted order event, if the option is new). While the option is unset,
// the first flush of a task deletes keyMigrated, so that setting it again
// indexes the orders finished meanwhile.
func (t *Task) migrate() error {
	if t.migrated {
		return nil
	}
	tx := t.store.st.Txn()
	cursor, ok, err := tx.Get([]byte(keyMigrated))
	if err != nil {
		return err
	}
	if t.r.cfg.OrderRetention <= 0 {
		t.migrated = true
		if ok {
			return tx.Delete([]byte(keyMigrated))
		}
		return nil
	}
	if ok && string(cursor) == migrated {
		t.migrated = true
		return nil
	}
	if err := t.store.loadNow(); err != nil || t.store.now <= 0 {
		return err
	}
	ids, more, err := tx.KeysAfter(prefixOrder, string(cursor), t.purgeBatch)
	if err != nil {
		return err
	}
	for _, id := range ids {
		_, listed, err := tx.Get([]byte(prefixExpiry + id))
		if err != nil {
			return err
		}
		if listed {
			continue
		}
		o, err := t.store.Order(id)
		if err != nil {
			return err
		}
		if o == nil || !finished(o) {
			continue // forgotten in this transaction, or open: save lists it when it finishes
		}
		if err := t.store.Expire(id, max(t.store.now, o.Placed.PlacedAt)); err != nil {
			return err
		}
		t.r.Stats.Indexed++
	}
	if !more {
		t.migrated = true
		return tx.Set([]byte(keyMigrated), []byte(migrated))
	}
	return tx.Set([]byte(keyMigrated), []byte(ids[len(ids)-1]))
}

// Pending reports whether stock arrived for orders of the partition that
// wait for it (the runtime then flushes the task even without input).
func (t *Task) Pending() bool {
	if err := t.collectRises(); err != nil {
		return true // the flush meets it again and reports it
	}
	return len(t.queue) > 0
}

// collectRises queues the SKUs whose availability rose since the last look
// and which orders of the partition wait for; after a start or an abort,
// every SKU waited for.
func (t *Task) collectRises() error {
	if t.r.cfg.NoBackorderRetry {
		return nil
	}
	if t.store.waiting == nil {
		if err := t.store.loadWaiting(); err != nil {
			return err
		}
		t.queueAll()
	}
	// A node or channel changed (a node activated, given ship or pickup
	// rights), or a new day gave the nodes their capacity back: every SKU
	// waited for is looked at once.
	now := t.now()
	if snap, d := t.opts.Catalog.Snapshot(), day(now.UnixMilli()); snap != t.snap || d != t.day {
		if t.snap != nil {
			t.queueAll()
		}
		if d != t.day {
			for k, c := range t.phantoms {
				if !shortHolds(c, now.UnixMilli(), t.opts.Availability) {
					delete(t.phantoms, k)
				}
			}
		}
		t.snap, t.day = snap, d
	}
	for k, c := range t.claims {
		if now.Sub(c.at) >= claimFor { // never answered in time: the units count again
			delete(t.claims, k)
			t.enqueue(k.sku)
		}
	}
	var lost bool
	t.riseSeq, lost = t.opts.Availability.Rises(t.riseSeq, func(sku string) {
		if t.store.waiting[sku] {
			t.enqueue(sku)
		}
	})
	if lost {
		t.queueAll()
	}
	// A node at its daily capacity got some back (a whole shipment of
	// today cancelled, here or in another partition): the SKUs waited for
	// that it has in stock, if it has capacity left now.
	var falls []Fall
	next, lostFalls := t.opts.Loads.Falls(t.fallSeq, func(f Fall) {
		if f.Partition != t.part { // this partition's own are noted as they happen
			falls = append(falls, f)
		}
	})
	for _, f := range falls {
		own, err := t.store.Load(f.Node, f.Day)
		if err != nil {
			return err // looked at again next time
		}
		t.noteFreed(f.Node, f.Day, f.BeforeWith(t.part, own))
	}
	t.fallSeq = next
	if lostFalls {
		t.queueAll()
	}
	if len(t.freed) > 0 {
		var back []string
		for _, node := range slices.Sorted(maps.Keys(t.freed)) {
			d := t.freed[node]
			left, err := t.capacityLeft(node, d)
			if err != nil {
				return err
			}
			if left && d == day(now.UnixMilli()) {
				back = append(back, node)
			}
		}
		clear(t.freed)
		if len(back) > 0 {
			t.queueStocked(back)
		}
	}
	return nil
}

// noteFall sees this partition's count of node's shipments on day fall
// from before (the store's onFall).
func (t *Task) noteFall(node string, day, before int64) {
	t.noteFreed(node, day, before+t.opts.Loads.Other(node, day, t.part))
}

// noteFreed notes node if it was at its daily capacity (before, every
// partition's shipments) when a count of its shipments fell on day.
func (t *Task) noteFreed(node string, day, before int64) {
	n := t.opts.Catalog.Snapshot().Node(node)
	if n == nil || n.DailyCapacity <= 0 || before < int64(n.DailyCapacity) {
		return
	}
	if t.freed == nil {
		t.freed = map[string]int64{}
	}
	t.freed[node] = max(t.freed[node], day)
}

// capacityLeft says whether node has a daily capacity and shipments of it
// left on day, counting every partition's.
func (t *Task) capacityLeft(node string, d int64) (bool, error) {
	n := t.snap.Node(node)
	if n == nil || n.DailyCapacity <= 0 {
		return false, nil
	}
	mine, err := t.store.Load(node, d)
	if err != nil {
		return false, err
	}
	return mine+t.opts.Loads.Other(node, d, t.part) < int64(n.DailyCapacity), nil
}

// queueStocked queues the SKUs waited for that one of nodes has available.
func (t *Task) queueStocked(nodes []string) {
	var skus []string
	for sku := range t.store.waiting {
		for _, n := range nodes {
			if st, ok := t.opts.Availability.Stock(sku, n); ok && st.OnHand-st.Reserved > 0 {
				skus = append(skus, sku)
				break
			}
		}
	}
	slices.Sort(skus)
	for _, sku := range skus {
		t.enqueue(sku)
	}
}

func (t *Task) queueAll() {
	for _, sku := range slices.Sorted(maps.Keys(t.store.waiting)) {
		t.enqueue(sku)
	}
}

func (t *Task) enqueue(sku string) {
	switch _, resumed := t.cursors[sku]; {
	case t.queued[sku] == 0:
		t.queued[sku] = 1
		t.queue = append(t.queue, sku)
	case resumed:
		t.queued[sku] = 2 // look at its orders before the cursor again
	}
}

// noteOrder sees every order saved (prev: as stored before), with the
// retry on (it is the store's onPut then). Stock that
// rose while an order had a round open could not retry it (it did not wait
// then): when the round ends with the order waiting, the SKUs it waits for
// that rose meanwhile are looked at.
func (t *Task) noteOrder(prev, o *schemas.RouterOrder) {
	a := t.opts.Availability
	for _, c := range o.Caps {
		if c.Available < 0 && (prev == nil || !slices.Contains(prev.Caps, c)) {
			t.phantoms[[2]string{c.SKU, c.NodeID}] = c
		}
	}
	if o.Attempt != 0 || o.Screening {
		if _, ok := t.opened[o.OrderID]; !ok {
			t.opened[o.OrderID] = t.seq
		}
		return
	}
	since, ok := t.opened[o.OrderID]
	delete(t.opened, o.OrderID)
	if !ok {
		if prev == nil || prev.Attempt == 0 && !prev.Screening {
			return // no round was open
		}
		// Opened before a restart or an abort: any rise counts.
	}
	for _, sku := range waitingSKUs(o) {
		if a.RoseAt(sku) > since {
			t.enqueue(sku)
		}
	}
}

// retry retries the orders waiting for the queued SKUs (RetryBackorders),
// looking at up to retryBatch orders (a SKU with none, or with no stock
// left, counts as one); a SKU whose orders fill the batch goes to the end
// of the queue, and on from its cursor at its next turn.
func (t *Task) retry(em topology.Emitter) error {
	if err := t.collectRises(); err != nil {
		return err
	}
	if len(t.queue) == 0 {
		return nil
	}
	if err := t.store.loadNow(); err != nil { // saves read it (order_retention)
		return err
	}
	a := t.opts.Availability
	now := t.now()
	claimed := map[[2]string]int64{} // units asked for, not answered yet, as RetryBackorders counts them
	for k, c := range t.claims {
		claimed[[2]string{k.sku, k.node}] += c.qty
	}
	onClaim := func(order, sku, node string, qty int64) {
		k := claimKey{sku: sku, node: node, order: order}
		if t.claims[k] == nil {
			t.claims[k] = &claim{}
		}
		t.claims[k].qty += qty
		t.claims[k].at = now
	}
	o := &out{em: em}
	w := retryWorld{world: world{snap: t.opts.Catalog.Snapshot(), t: t}, now: now.UnixMilli()}
	for budget := t.retryBatch; budget > 0 && len(t.queue) > 0; {
		sku := t.queue[0]
		from, resumed := t.cursors[sku]
		t.seq = a.Seq()
		look, err := t.r.RetryBackorders(t.store, w, o, sku, from, now.UnixMilli(), budget, claimed, onClaim)
		if err == nil {
			err = o.err
		}
		if err != nil {
			return err
		}
		budget -= max(1, look.Looked)
		if !look.Done { // more may wait: the others' turn first
			t.cursors[sku] = look.Next
			t.queue = append(t.queue[1:], sku)
			continue
		}
		t.queue = t.queue[1:]
		delete(t.cursors, sku)
		if t.queued[sku] == 2 {
			t.queued[sku] = 1
			t.queue = append(t.queue, sku)
		} else {
			delete(t.queued, sku)
		}
		if look.Looked == 0 && !look.NoStock && !resumed {
			delete(t.store.waiting, sku) // nobody waits for it (the set is read again after an abort)
		}
	}
	return nil
}

// claimFor bounds how long units a retry asked for stay claimed when the
// inventory's answer does not come.
const claimFor = 30 * time.Second

// claimKey is units a retry asked of node for an order: they count as
// reserved until the order's answer for sku there (Process).
type claimKey struct{ sku, node, order string }

type claim struct {
	qty int64
	at  time.Time
}

// retryWorld is the World of retries: stock that a short pick of one of
// the partition's orders showed may not be there counts as reserved.
type retryWorld struct {
	world
	now int64
}

func (w retryWorld) Stock(sku, node string) (schemas.NodeATS, bool) {
	a, ok := w.world.Stock(sku, node)
	if c, short := w.t.phantoms[[2]string{sku, node}]; short && ok && shortHolds(c, w.now, w.world) {
		a.Reserved = max(a.Reserved, a.OnHand)
	}
	return a, ok
}

// Aborted forgets the transaction's load changes, stream time, purges and
// retries (the store forgets their writes itself; everything waiting is
// looked at again).
func (t *Task) Aborted() {
	t.store.waiting, t.queue = nil, nil
	clear(t.freed) // noted in the transaction aborted; the next look is at every SKU waited for
	clear(t.queued)
	clear(t.cursors)
	clear(t.claims)
	clear(t.opened)
	clear(t.store.dirty)
	t.store.now, t.store.horizon, t.store.nowLoaded, t.store.nowDirty = 0, 0, false, false
	t.nextPurge = 0
	t.migrated = false
}

// orderFormat tags stored orders, like inventory's SKU states: 2 since
// attempt_base; 1, before it, is still read (schemas.RouterOrdersV1).
const orderFormat byte = 2

type orderCodec struct{}

func (orderCodec) Append(dst []byte, v *schemas.RouterOrder) ([]byte, error) {
	return schemas.RouterOrders.Append(append(dst, orderFormat), v)
}

func (orderCodec) Decode(b []byte, v *schemas.RouterOrder) error { return DecodeStoredOrder(b, v) }

// DecodeStoredOrder decodes an order as the router stores it (its store
// and changelog): a format byte, then the Avro record.
func DecodeStoredOrder(b []byte, v *schemas.RouterOrder) error {
	switch {
	case len(b) > 0 && b[0] == orderFormat:
		return schemas.RouterOrders.Decode(b[1:], v)
	case len(b) > 0 && b[0] == 1:
		*v = schemas.RouterOrder{}
		return schemas.RouterOrdersV1.Decode(b[1:], v)
	}
	return fmt.Errorf("router: stored order has format %v, this version reads 1 and %d", b[:min(len(b), 1)], orderFormat)
}

// pebbleStore is the router's Store on a state.Store.
type pebbleStore struct {
	st     *state.Store
	orders *state.Table[schemas.RouterOrder]
	dirty  map[string]int64 // node -> day whose load changed in this transaction
	// now is the stream time and horizon the newest finish time of an
	// order forgotten (keyNow), read at first use after an abort, moved by
	// accepted order events and purges, written at the flush if they moved.
	now, horizon        int64
	nowLoaded, nowDirty bool
	// waiting holds every SKU with orders waiting for it in the backorder
	// index, and maybe more (nil: not read yet; read again after an abort).
	waiting map[string]bool
	// onPut, if set, sees every order saved, and the order as stored
	// before.
	onPut func(prev, o *schemas.RouterOrder)
	// onFall, if set, sees the partition's count of node's shipments on
	// day fall from before.
	onFall func(node string, day, before int64)
}

func (s *pebbleStore) loadNow() error {
	if s.nowLoaded {
		return nil
	}
	v, ok, err := s.st.Txn().Get([]byte(keyNow))
	if err != nil {
		return err
	}
	s.now, s.horizon = 0, 0
	if ok {
		if len(v) != 16 {
			return fmt.Errorf("router: corrupt stream time: %d bytes", len(v))
		}
		s.now, s.horizon = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
	}
	s.nowLoaded = true
	return nil
}

// advance moves the stream time to ts if later (loadNow first).
func (s *pebbleStore) advance(ts int64) {
	if ts > s.now {
		s.now, s.nowDirty = ts, true
	}
}

func (s *pebbleStore) saveNow() error {
	if !s.nowDirty {
		return nil
	}
	s.nowDirty = false
	v := binary.BigEndian.AppendUint64(nil, uint64(s.now))
	return s.st.Txn().Set([]byte(keyNow), binary.BigEndian.AppendUint64(v, uint64(s.horizon)))
}

func (s *pebbleStore) Now() int64     { return s.now }
func (s *pebbleStore) Horizon() int64 { return s.horizon }
func (s *pebbleStore) Forgot(at int64) {
	if at > s.horizon {
		s.horizon, s.nowDirty = at, true
	}
}

func dueKey(at int64, id string) []byte {
	return fmt.Appendf(nil, "%s%016x/%s", prefixDue, uint64(at), id)
}

func (s *pebbleStore) Expire(id string, at int64) error {
	tx := s.st.Txn()
	v, ok, err := tx.Get([]byte(prefixExpiry + id))
	if err != nil {
		return err
	}
	if ok {
		if len(v) != 8 {
			return fmt.Errorf("router: corrupt expiry of order %s: %d bytes", id, len(v))
		}
		old := int64(binary.BigEndian.Uint64(v))
		if old == at {
			return nil
		}
		if err := tx.Delete(dueKey(old, id)); err != nil {
			return err
		}
	}
	if at <= 0 {
		if !ok {
			return nil
		}
		return tx.Delete([]byte(prefixExpiry + id))
	}
	if err := tx.Set(dueKey(at, id), nil); err != nil {
		return err
	}
	return tx.Set([]byte(prefixExpiry+id), binary.BigEndian.AppendUint64(nil, uint64(at)))
}

var errEnough = errors.New("enough")

func (s *pebbleStore) Due(t int64, max int) ([]Finished, error) {
	var due []Finished
	if t < 0 {
		return nil, nil
	}
	bound := dueKey(t, "")
	err := s.st.Txn().Iterate([]byte(prefixDue), func(k, _ []byte) error {
		if len(due) == max || string(k) > string(bound) && !bytes.HasPrefix(k, bound) {
			return errEnough
		}
		at, err := strconv.ParseUint(string(k[len(prefixDue):len(bound)-1]), 16, 64)
		if err != nil {
			return fmt.Errorf("router: corrupt key %q: %w", k, err)
		}
		due = append(due, Finished{ID: string(k[len(bound):]), At: int64(at)})
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return due, nil
}

// Unlist deletes x/<at>/<id> (the entry Due listed, whatever u/<id> says)
// and the entry u/<id> names.
func (s *pebbleStore) Unlist(id string, at int64) error {
	if err := s.st.Txn().Delete(dueKey(at, id)); err != nil {
		return err
	}
	return s.Expire(id, 0)
}

func (s *pebbleStore) Forget(id string, at int64) error {
	s.orders.Put(id, nil)
	return s.Unlist(id, at)
}

// waitKey is the backorder index's key of order id, placed at placedAt,
// waiting for sku (IDs hold no control characters: 0x00 ends the SKU).
func waitKey(sku string, w Waiting) []byte {
	return fmt.Appendf(nil, "%s%s\x00%016x/%s", prefixWait, sku, uint64(w.PlacedAt)^1<<63, w.ID)
}

func (s *pebbleStore) IndexBackorders(id string, placedAt int64, old, skus []string) error {
	tx := s.st.Txn()
	w := Waiting{PlacedAt: placedAt, ID: id}
	for _, sku := range old {
		if !slices.Contains(skus, sku) {
			if err := tx.Delete(waitKey(sku, w)); err != nil {
				return err
			}
		}
	}
	for _, sku := range skus {
		if err := tx.Set(waitKey(sku, w), nil); err != nil {
			return err
		}
		if s.waiting != nil {
			s.waiting[sku] = true
		}
	}
	return nil
}

func (s *pebbleStore) Backorders(sku string, after Waiting, max int) ([]Waiting, error) {
	prefix := fmt.Appendf(nil, "%s%s\x00", prefixWait, sku)
	var from []byte
	if after.ID != "" {
		from = append(waitKey(sku, after), 0) // the first key after it
	}
	var list []Waiting
	err := s.st.Txn().IterateFrom(prefix, from, func(k, _ []byte) error {
		if len(list) == max {
			return errEnough
		}
		if w, err := parseWait(k[len(prefix):]); err == nil {
			list = append(list, w)
		} // else the key of a SKU that holds 0x00 (accepted before the id rules): never retried
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return list, nil
}

// parseWait reads "<placed_at, 16 hex>/<order_id>".
func parseWait(b []byte) (Waiting, error) {
	if len(b) < 18 || b[16] != '/' {
		return Waiting{}, errors.New("want <16 hex digits>/<order id>")
	}
	at, err := strconv.ParseUint(string(b[:16]), 16, 64)
	if err != nil {
		return Waiting{}, err
	}
	return Waiting{PlacedAt: int64(at ^ 1<<63), ID: string(b[17:])}, nil
}

// loadWaiting reads the SKUs with orders waiting (pebbleStore.waiting):
// one seek per SKU.
func (s *pebbleStore) loadWaiting() error {
	m := map[string]bool{}
	var from []byte
	for {
		var sku []byte
		err := s.st.Txn().IterateFrom([]byte(prefixWait), from, func(k, _ []byte) error {
			sku, _, _ = bytes.Cut(k[len(prefixWait):], []byte{0})
			sku = bytes.Clone(sku)
			return errEnough
		})
		if err != nil && !errors.Is(err, errEnough) {
			return err
		}
		if sku == nil {
			break
		}
		m[string(sku)] = true
		from = append(append([]byte(prefixWait), sku...), 1) // past its orders
	}
	s.waiting = m
	return nil
}

func (s *pebbleStore) Order(id string) (*schemas.RouterOrder, error) { return s.orders.Get(id) }
func (s *pebbleStore) PutOrder(o *schemas.RouterOrder) {
	if s.onPut != nil {
		prev, err := s.orders.Get(o.OrderID)
		if err != nil {
			prev = nil // a hint only: the save's own reads report a failing store
		}
		s.onPut(prev, o)
	}
	s.orders.Put(o.OrderID, o)
}

func (s *pebbleStore) Load(node string, day int64) (int64, error) {
	v, ok, err := s.st.Txn().Get([]byte(prefixLoad + node))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 16 {
		return 0, fmt.Errorf("router: corrupt load of node %s: %d bytes", node, len(v))
	}
	return loadOn(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), day), nil
}

func (s *pebbleStore) AddLoad(node string, day int64, delta int64) (int64, error) {
	v, ok, err := s.st.Txn().Get([]byte(prefixLoad + node))
	if err != nil {
		return day, err
	}
	if ok && len(v) == 16 {
		var keep bool
		if day, keep = loadDay(int64(binary.BigEndian.Uint64(v)), day, delta); !keep {
			return day, nil
		}
	}
	cur, err := s.Load(node, day)
	if err != nil {
		return day, err
	}
	next := binary.BigEndian.AppendUint64(nil, uint64(day))
	next = binary.BigEndian.AppendUint64(next, uint64(max(0, cur+delta)))
	if err := s.st.Txn().Set([]byte(prefixLoad+node), next); err != nil {
		return day, err
	}
	s.dirty[node] = day
	if delta < 0 && cur > 0 && s.onFall != nil {
		s.onFall(node, day, cur)
	}
	return day, nil
}

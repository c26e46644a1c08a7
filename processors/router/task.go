package router

import (
	"encoding/binary"
	"fmt"
	"slices"

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
const (
	prefixOrder = "o/"
	prefixLoad  = "l/"
)

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
				r:     New(o.Config),
				part:  tc.Partition,
				ids:   o.SchemaIDs,
				opts:  o,
				store: &pebbleStore{st: st, orders: state.NewTable[schemas.RouterOrder](st, prefixOrder, orderCodec{}, tc.CacheEntries), dirty: map[string]int64{}},
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
	ev    schemas.OrderEvent
	res   schemas.ReservationResult
	fb    schemas.FulfillmentFeedback
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

// Process decodes and applies one record of an input.
func (t *Task) Process(r *topology.Record, em topology.Emitter) error {
	o := &out{em: em}
	w := world{snap: t.opts.Catalog.Snapshot(), t: t}
	var err error
	switch topology.Topic(r.Topic) {
	case TopicOrders:
		t.ev = schemas.OrderEvent{}
		if err := schemas.OrderEvents.DecodeInput(r.Value, &t.ev, t.ids); err != nil {
			return topology.BadInput("decode", err)
		}
		err = t.r.OrderEvent(t.store, w, o, r.Key, &t.ev, r.Timestamp)
	case inventory.TopicResults:
		t.res = schemas.ReservationResult{}
		if err := schemas.ReservationResults.Decode(r.Value, &t.res); err != nil {
			return topology.BadInput("decode", err)
		}
		err = t.r.Result(t.store, w, o, r.Key, &t.res, r.Timestamp)
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
		err = t.r.Feedback(t.store, w, o, r.Key, &t.fb, r.Timestamp)
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
	if t.opts.OnFlush != nil {
		t.opts.OnFlush(t.part, t.r.Stats)
	}
	return nil
}

// Aborted forgets the transaction's load changes (the store forgets them
// itself).
func (t *Task) Aborted() { clear(t.store.dirty) }

// orderFormat tags stored orders, like inventory's SKU states.
const orderFormat byte = 1

type orderCodec struct{}

func (orderCodec) Append(dst []byte, v *schemas.RouterOrder) ([]byte, error) {
	return schemas.RouterOrders.Append(append(dst, orderFormat), v)
}

func (orderCodec) Decode(b []byte, v *schemas.RouterOrder) error {
	if len(b) == 0 || b[0] != orderFormat {
		return fmt.Errorf("router: stored order has format %v, this version reads %d", b[:min(len(b), 1)], orderFormat)
	}
	return schemas.RouterOrders.Decode(b[1:], v)
}

// pebbleStore is the router's Store on a state.Store.
type pebbleStore struct {
	st     *state.Store
	orders *state.Table[schemas.RouterOrder]
	dirty  map[string]int64 // node -> day whose load changed in this transaction
}

func (s *pebbleStore) Order(id string) (*schemas.RouterOrder, error) { return s.orders.Get(id) }
func (s *pebbleStore) PutOrder(o *schemas.RouterOrder)               { s.orders.Put(o.OrderID, o) }

func (s *pebbleStore) Load(node string, day int64) (int64, error) {
	v, ok, err := s.st.Txn().Get([]byte(prefixLoad + node))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 16 {
		return 0, fmt.Errorf("router: corrupt load of node %s: %d bytes", node, len(v))
	}
	if int64(binary.BigEndian.Uint64(v)) != day {
		return 0, nil // another day: the count starts again
	}
	return int64(binary.BigEndian.Uint64(v[8:])), nil
}

func (s *pebbleStore) AddLoad(node string, day int64, delta int64) error {
	v, ok, err := s.st.Txn().Get([]byte(prefixLoad + node))
	if err != nil {
		return err
	}
	if ok && len(v) == 16 && int64(binary.BigEndian.Uint64(v)) > day {
		return nil // a record stamped with an earlier day: today's count stays
	}
	cur, err := s.Load(node, day)
	if err != nil {
		return err
	}
	next := binary.BigEndian.AppendUint64(nil, uint64(day))
	next = binary.BigEndian.AppendUint64(next, uint64(max(0, cur+delta)))
	if err := s.st.Txn().Set([]byte(prefixLoad+node), next); err != nil {
		return err
	}
	s.dirty[node] = day
	return nil
}

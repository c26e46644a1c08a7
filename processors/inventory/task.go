package inventory

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unique"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// Topic names of the inventory topology, before the prefix.
const (
	TopicMovements  topology.Topic = "stock-movements"
	TopicCommands   topology.Topic = "invroute-reservation-commands"
	TopicResults    topology.Topic = "invroute-reservation-results"
	TopicNodes      topology.Topic = "nodes"
	TopicChannels   topology.Topic = "channels"
	TopicATS        topology.Topic = "ats"
	TopicDeadLetter topology.Topic = "dead-letter"
	TopicChangelog  topology.Topic = "invroute-inventory-changelog"
	StoreName                      = "inventory"
)

// Key spaces of the inventory store.
//
//	s/<sku>             format byte (1) + SKUState (Avro)
//	n/<node>\x00<sku>   "1": sku has a stock record at node (index)
//	m/reemit            re-emit cursor of a channel change
//	e/nodes             re-emit cursors of node changes (NodeReemit list)
//	d/<seq>             a block of the idempotency window (seq: 8 bytes, big endian)
//	r/<sku>\x00<order>\x00<line>\x00<node>   format byte (1) + Reservation (Avro)
const (
	prefixSKU   = "s/"
	prefixIndex = "n/"
	prefixMeta  = "m/"
	prefixSeen  = "d/"
	prefixRes   = "r/"
	prefixNodes = "e/"
)

// TopologyOptions configure the inventory topology.
type TopologyOptions struct {
	Group     string            // consumer group; default "invroute-inventory"
	Config    Config            // processor settings
	Catalog   *catalog.Catalog  // replicated node and channel tables; required
	SchemaIDs schemas.SchemaIDs // accepted Confluent schema ids on inputs
	// OnFlush, if set, is called with the processor's stats after every
	// Flush (metrics, demo progress). It must be fast.
	OnFlush func(partition int32, s Stats)
}

// Topology returns the inventory processor's topology: stock movements and
// reservation commands in (both keyed by sku), ATS and reservation results
// out, one inventory store, nodes and channels as global tables.
func Topology(o TopologyOptions) *topology.Topology {
	if o.Group == "" {
		o.Group = "invroute-inventory"
	}
	return &topology.Topology{
		Group:  o.Group,
		Inputs: []topology.Input{{Topic: TopicMovements}, {Topic: TopicCommands}},
		Stores: []topology.Store{{Name: StoreName, Changelog: TopicChangelog}},
		Outputs: []topology.Output{
			{Topic: TopicATS, CoPartitioned: true, Compacted: true},
			{Topic: TopicResults}, // keyed by order_id, for the router
		},
		Globals: []topology.Global{
			{Topic: TopicNodes, Apply: o.Catalog.ApplyNode},
			{Topic: TopicChannels, Apply: o.Catalog.ApplyChannel},
		},
		DeadLetter: TopicDeadLetter,
		NewTask: func(tc topology.TaskContext) (topology.Task, error) {
			st := tc.Stores[StoreName]
			return &Task{
				p:       New(o.Config),
				store:   newPebbleStore(st, tc.CacheEntries),
				catalog: o.Catalog,
				ids:     o.SchemaIDs,
				part:    tc.Partition,
				onFlush: o.OnFlush,
			}, nil
		},
	}
}

// Task runs the inventory processor for one partition.
type Task struct {
	p       *Processor
	store   *pebbleStore
	catalog *catalog.Catalog
	ids     schemas.SchemaIDs
	part    int32
	onFlush func(int32, Stats)
	m       schemas.StockMovement
	c       schemas.ReservationCommand
	buf     []byte
	arena   topology.Arena // keys and values of the records emitted
}

// Process decodes and applies one stock movement or reservation command.
func (t *Task) Process(r *topology.Record, out topology.Emitter) error {
	var res *schemas.ReservationResult
	var err error
	if r.Topic == string(TopicCommands) {
		if err := schemas.ReservationCommands.Decode(r.Value, &t.c); err != nil {
			return topology.BadInput("decode", err)
		}
		res, err = t.p.Command(t.store, t.catalog.Snapshot(), r.Key, &t.c, r.Timestamp)
	} else {
		if err := schemas.StockMovements.DecodeInput(r.Value, &t.m, t.ids); err != nil {
			return topology.BadInput("decode", err)
		}
		res, err = t.p.Movement(t.store, r.Key, &t.m, r.Timestamp)
	}
	if IsInvalid(err) {
		return topology.BadInput("validate", err)
	}
	if err != nil || res == nil {
		return err
	}
	return emit(t, out, TopicResults, res.OrderID, schemas.ReservationResults, res)
}

// emit encodes v with c into the task's scratch buffer and emits it, key
// and value copied into the arena (the producer holds them until the
// transaction ends).
func emit[T any](t *Task, out topology.Emitter, topic topology.Topic, key string, c *schemas.Codec[T], v *T) error {
	var err error
	if t.buf, err = c.Append(t.buf[:0], v); err != nil {
		return err
	}
	out.Emit(topic, t.arena.CopyString(key), t.arena.Copy(t.buf))
	return nil
}

// GlobalChanged re-emits the ATS of the SKUs a node or channel change affects.
func (t *Task) GlobalChanged(topic topology.Topic, key []byte, ts int64, _ topology.Emitter) error {
	switch {
	case key == nil: // any node or channel may have changed
		return t.p.ChannelsChanged(t.store, ts)
	case topic == TopicNodes:
		return t.p.NodeChanged(t.store, string(key), ts)
	case topic == TopicChannels:
		return t.p.ChannelsChanged(t.store, ts)
	}
	return nil
}

// Flush emits the coalesced ATS updates of the transaction.
func (t *Task) Flush(out topology.Emitter) error {
	err := t.p.Flush(t.store, t.catalog.Snapshot(), func(u *schemas.AtsUpdate) error {
		return emit(t, out, TopicATS, u.SKU, schemas.AtsUpdates, u)
	})
	if t.onFlush != nil {
		t.onFlush(t.part, t.p.Stats)
	}
	return err
}

// Aborted forgets the transaction's dirty SKUs.
func (t *Task) Aborted() { t.p.Reset() }

// skuStateFormat tags every stored SKU state (store and changelog): one
// byte in front of the Avro, so that a later schema can be told apart and
// migrated instead of misread.
const skuStateFormat byte = 1

// skuStateCodec is schemas.SKUStates behind the format byte.
type skuStateCodec struct{}

func (skuStateCodec) Append(dst []byte, v *schemas.SKUState) ([]byte, error) {
	return schemas.SKUStates.Append(append(dst, skuStateFormat), v)
}

func (skuStateCodec) Decode(b []byte, v *schemas.SKUState) error {
	if len(b) == 0 || b[0] != skuStateFormat {
		return fmt.Errorf("inventory: stored SKU state has format %v, this version reads %d (a newer invroute wrote it?)",
			b[:min(len(b), 1)], skuStateFormat)
	}
	if err := schemas.SKUStates.Decode(b[1:], v); err != nil {
		return err
	}
	// Decoded states live in the table's cache. hamba carves their strings
	// out of shared 1 KiB blocks, which the cache would pin (about 750 bytes
	// per cached state): keep a copy of the SKU and the one canonical copy
	// of each node id (a handful of nodes, shared by every state).
	v.SKU = strings.Clone(v.SKU)
	for i := range v.Nodes {
		v.Nodes[i].NodeID = unique.Make(v.Nodes[i].NodeID).Value()
	}
	return nil
}

// pebbleStore is the processor's Store on a state.Store.
type pebbleStore struct {
	st     *state.Store
	skus   *state.Table[schemas.SKUState]
	reemit *state.Table[reemitCursor] // one key; cached, so that asking whether a re-emit runs reads no Pebble
	nodes  *state.Table[nodeCursors]  // one key, cached alike
}

func newPebbleStore(st *state.Store, cacheEntries int) *pebbleStore {
	return &pebbleStore{
		st:     st,
		skus:   state.NewTable[schemas.SKUState](st, prefixSKU, skuStateCodec{}, cacheEntries),
		reemit: state.NewTable[reemitCursor](st, prefixMeta, reemitCodec{}, 1),
		nodes:  state.NewTable[nodeCursors](st, prefixNodes, nodeCursorsCodec{}, 1),
	}
}

func (s *pebbleStore) Get(sku string) (*schemas.SKUState, error) { return s.skus.Get(sku) }
func (s *pebbleStore) Put(st *schemas.SKUState)                  { s.skus.Put(st.SKU, st) }

func indexKey(node, sku string) []byte {
	return []byte(prefixIndex + node + "\x00" + sku)
}

func (s *pebbleStore) Index(node, sku string) error {
	return s.st.Txn().Set(indexKey(node, sku), []byte("1"))
}

func (s *pebbleStore) SKUsAt(node, after string, limit int, fn func(string) error) (bool, error) {
	prefix := prefixIndex + node + "\x00"
	return s.keysAfter(prefix, after, limit, fn)
}

func (s *pebbleStore) SKUsAfter(after string, limit int, fn func(string) error) (bool, error) {
	// Staged states of this transaction are not in the txn batch yet; they
	// are dirty already, so skipping a brand-new SKU here loses nothing.
	return s.keysAfter(prefixSKU, after, limit, fn)
}

// keysAfter calls fn for at most limit keys under prefix greater than
// prefix+after (without the prefix), in order, and says whether more follow.
func (s *pebbleStore) keysAfter(prefix, after string, limit int, fn func(string) error) (bool, error) {
	keys, more, err := s.st.Txn().KeysAfter(prefix, after, limit)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if err := fn(k); err != nil {
			return false, err
		}
	}
	return more, nil
}

func seenKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixSeen), seq)
}

func (s *pebbleStore) SeenBlocks(fn func(uint64, []byte) error) error {
	return s.st.Txn().Iterate([]byte(prefixSeen), func(k, v []byte) error {
		if len(k) != len(prefixSeen)+8 {
			return fmt.Errorf("inventory: corrupt idempotency key %q", k)
		}
		return fn(binary.BigEndian.Uint64(k[len(prefixSeen):]), v)
	})
}

func (s *pebbleStore) PutSeenBlock(seq uint64, b []byte) { s.must(s.st.Txn().Set(seenKey(seq), b)) }
func (s *pebbleStore) DeleteSeenBlock(seq uint64)        { s.must(s.st.Txn().Delete(seenKey(seq))) }

// must panics on a write error: only a closed store or a reserved key
// fail a batch write, and both are programmer errors.
func (s *pebbleStore) must(err error) {
	if err != nil {
		panic(err)
	}
}

func reservationKey(sku, order, line, node string) []byte {
	return []byte(prefixRes + sku + "\x00" + order + "\x00" + line + "\x00" + node)
}

// reservationFormat tags stored reservations, like skuStateFormat.
const reservationFormat byte = 1

func (s *pebbleStore) Reservation(sku, order, line, node string) (*schemas.Reservation, error) {
	v, ok, err := s.st.Txn().Get(reservationKey(sku, order, line, node))
	if err != nil || !ok {
		return nil, err
	}
	if len(v) == 0 || v[0] != reservationFormat {
		return nil, fmt.Errorf("inventory: stored reservation has format %v, this version reads %d", v[:min(len(v), 1)], reservationFormat)
	}
	r := new(schemas.Reservation)
	if err := schemas.Reservations.Decode(v[1:], r); err != nil {
		return nil, fmt.Errorf("inventory: stored reservation: %w", err)
	}
	return r, nil
}

func (s *pebbleStore) PutReservation(r *schemas.Reservation) {
	k := reservationKey(r.SKU, r.OrderID, r.LineID, r.NodeID)
	if r.Qty == 0 {
		s.must(s.st.Txn().Delete(k))
		return
	}
	b, err := schemas.Reservations.Append([]byte{reservationFormat}, r)
	s.must(err)
	s.must(s.st.Txn().Set(k, b))
}

// The re-emit cursor: m/reemit = ts (8 bytes, big endian) + last SKU done.
// It is read before every flush, and by Pending for every partition without
// input in a transaction, so it lives in a table whose cache remembers it,
// or its absence, across transactions (coherent with commits and aborts).
const reemitKey = "reemit"

type reemitCursor struct {
	ts    int64
	after string
}

type reemitCodec struct{}

func (reemitCodec) Append(dst []byte, c *reemitCursor) ([]byte, error) {
	return append(binary.BigEndian.AppendUint64(dst, uint64(c.ts)), c.after...), nil
}

func (reemitCodec) Decode(b []byte, c *reemitCursor) error {
	if len(b) < 8 {
		return fmt.Errorf("inventory: corrupt re-emit cursor %q", b)
	}
	c.ts, c.after = int64(binary.BigEndian.Uint64(b)), string(b[8:])
	return nil
}

func (s *pebbleStore) Reemit() (string, int64, bool, error) {
	c, err := s.reemit.Get(reemitKey)
	if err != nil || c == nil {
		return "", 0, false, err
	}
	return c.after, c.ts, true, nil
}

func (s *pebbleStore) SetReemit(after string, ts int64, active bool) {
	if active {
		s.reemit.Put(reemitKey, &reemitCursor{ts: ts, after: after})
	} else {
		s.reemit.Delete(reemitKey)
	}
}

// The node re-emit cursors: e/nodes = count, then per node (in node order)
// the node id, the last SKU done and the change's time (uvarint lengths,
// varint time).
const nodeCursorsKey = "nodes"

type nodeCursors struct{ list []NodeReemit }

type nodeCursorsCodec struct{}

func (nodeCursorsCodec) Append(dst []byte, c *nodeCursors) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(c.list)))
	for _, n := range c.list {
		dst = binary.AppendUvarint(dst, uint64(len(n.Node)))
		dst = append(dst, n.Node...)
		dst = binary.AppendUvarint(dst, uint64(len(n.After)))
		dst = append(dst, n.After...)
		dst = binary.AppendVarint(dst, n.TS)
	}
	return dst, nil
}

func (nodeCursorsCodec) Decode(b []byte, c *nodeCursors) error {
	bad := fmt.Errorf("inventory: corrupt node re-emit cursors %q", b)
	str := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return "", false
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, true
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return bad
	}
	b = b[n:]
	c.list = make([]NodeReemit, 0, count)
	for range count {
		node, ok1 := str()
		after, ok2 := str()
		if !ok1 || !ok2 {
			return bad
		}
		ts, n := binary.Varint(b)
		if n <= 0 {
			return bad
		}
		b = b[n:]
		c.list = append(c.list, NodeReemit{Node: node, After: after, TS: ts})
	}
	if len(b) != 0 {
		return bad
	}
	return nil
}

func (s *pebbleStore) NodeReemits() ([]NodeReemit, error) {
	c, err := s.nodes.Get(nodeCursorsKey)
	if err != nil || c == nil {
		return nil, err
	}
	return c.list, nil
}

func (s *pebbleStore) SetNodeReemits(list []NodeReemit) {
	if len(list) == 0 {
		s.nodes.Delete(nodeCursorsKey)
		return
	}
	s.nodes.Put(nodeCursorsKey, &nodeCursors{list: list})
}

// Pending reports whether a re-emit is in progress (the runtime then
// flushes this task even without input).
func (t *Task) Pending() bool {
	ok, err := t.p.Pending(t.store)
	return err == nil && ok
}

package app

// Interactive queries (README "HTTP API", api/openapi.yaml): any instance
// answers GET /v1/ats/{sku} and GET /v1/orders/{id}. The owner of a key is
// the member of the topology's consumer group that is assigned partition
// murmur2(key) of the topology's first input (Kafka's default partitioner,
// like every producer's); the group's members advertise their HTTP API in
// their Kafka client id (instance_id@host:port). The owner answers from
// its committed state (topology.Engine.Query); another instance forwards
// the request to it once and relays the answer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of forwarded queries and of every query answer.
const (
	HeaderForwarded = "X-Invroute-Forwarded-By" // set on a forwarded request: the forwarding instance
	HeaderServedBy  = "X-Invroute-Served-By"    // on answers: the instance that read its state
	HeaderPartition = "X-Invroute-Partition"    // on answers: the key's partition
	// HeaderBudget, on a forwarded request, is what is left of the
	// forwarder's query_timeout, in milliseconds, less a margin for the way
	// back: the owner answers within it, so that its own explanation (the
	// loop did not answer in time, the partition is moving) reaches the
	// client rather than the forwarder's timeout.
	HeaderBudget = "X-Invroute-Budget-Ms"
)

// maxForwardedBytes bounds an answer relayed from the owner.
const maxForwardedBytes = 16 << 20

type apiError struct {
	Error     string `json:"error"`
	Partition *int32 `json:"partition,omitempty"`
	Owner     string `json:"owner,omitempty"`
}

// ATSAnswer is the answer of GET /v1/ats/{sku}.
type ATSAnswer struct {
	SKU       string       `json:"sku"`
	Version   int64        `json:"version"` // of the last AtsUpdate emitted for the SKU
	ATS       int64        `json:"ats"`
	Channels  []ChannelATS `json:"channels"`
	Nodes     []NodeATS    `json:"nodes"`
	Partition int32        `json:"partition"`
	ServedBy  string       `json:"served_by"`
}

// ChannelATS is what one channel may sell.
type ChannelATS struct {
	ChannelID string `json:"channel_id"`
	ATS       int64  `json:"ats"`
}

// NodeATS is the SKU's stock at one node.
type NodeATS struct {
	NodeID      string `json:"node_id"`
	OnHand      int64  `json:"on_hand"`
	Reserved    int64  `json:"reserved"`
	SafetyStock int64  `json:"safety_stock"`
	Available   int64  `json:"available"`
	Active      bool   `json:"active"`
}

// OrderAnswer is the answer of GET /v1/orders/{id}: where the order is.
type OrderAnswer struct {
	OrderID    string      `json:"order_id"`
	State      string      `json:"state"`
	Reason     string      `json:"reason,omitempty"`
	ChannelID  string      `json:"channel_id"`
	CustomerID string      `json:"customer_id,omitempty"`
	PlacedAt   time.Time   `json:"placed_at"`
	Version    int64       `json:"version"` // of the last OrderStatus
	Screening  bool        `json:"screening"`
	Routing    bool        `json:"routing"` // a routing round is open
	Attempt    int32       `json:"attempt,omitempty"`
	Lines      []OrderLine `json:"lines"`
	Shipments  []Shipment  `json:"shipments"`
	Holds      []OrderHold `json:"holds"`
	Partition  int32       `json:"partition"`
	ServedBy   string      `json:"served_by"`
}

// OrderLine is one line's status.
type OrderLine struct {
	LineID       string    `json:"line_id"`
	SKU          string    `json:"sku"`
	Qty          int64     `json:"qty"`
	State        string    `json:"state"`
	NodeID       string    `json:"node_id,omitempty"`
	QtyShipped   int64     `json:"qty_shipped"`
	QtyCancelled int64     `json:"qty_cancelled"`
	QtyReturned  int64     `json:"qty_returned"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Shipment is one shipment of the routing decision.
type Shipment struct {
	ShipmentID string         `json:"shipment_id"`
	NodeID     string         `json:"node_id"`
	Method     string         `json:"method"`
	Lines      []ShipmentLine `json:"lines"`
	DistanceKm float64        `json:"distance_km"`
	CostCents  int64          `json:"cost_cents"`
}

// ShipmentLine is a line (or part of one) in a shipment.
type ShipmentLine struct {
	LineID string `json:"line_id"`
	SKU    string `json:"sku"`
	Qty    int64  `json:"qty"`
}

// OrderHold is stock the inventory holds (or is asked to hold) for a line.
type OrderHold struct {
	LineID    string `json:"line_id"`
	SKU       string `json:"sku"`
	NodeID    string `json:"node_id"`
	Qty       int64  `json:"qty"`
	Tentative bool   `json:"tentative"`
	Pending   bool   `json:"pending"`
}

// errNotFound: the owner has no state for the key.
var errNotFound = errors.New("not found")

// Keys of the processors' stores (processors/inventory and router
// task.go): one format byte, then Avro.
const (
	skuKeyPrefix   = "s/"
	orderKeyPrefix = "o/"
	storedFormat   = 1
)

func (e *Engine) handleATS(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	e.serveQuery(w, r, e.Inventory, sku, "sku "+strconv.Quote(sku), func(ctx context.Context, p int32) (any, error) {
		b, err := e.readKey(ctx, e.Inventory, p, inventory.StoreName, skuKeyPrefix+sku)
		if err != nil {
			return nil, err
		}
		var st schemas.SKUState
		if err := decodeStored(b, func(b []byte) error { return schemas.SKUStates.Decode(b, &st) }); err != nil {
			return nil, err
		}
		u := inventory.ComputeATS(&st, e.Catalog.Snapshot(), 0)
		a := &ATSAnswer{SKU: sku, Version: st.Version, ATS: u.ATS, Channels: []ChannelATS{}, Nodes: []NodeATS{}, Partition: p, ServedBy: e.opts.InstanceID}
		for _, c := range u.Channels {
			a.Channels = append(a.Channels, ChannelATS{ChannelID: c.ChannelID, ATS: c.ATS})
		}
		for _, n := range u.Nodes {
			a.Nodes = append(a.Nodes, NodeATS{NodeID: n.NodeID, OnHand: n.OnHand, Reserved: n.Reserved, SafetyStock: n.SafetyStock, Available: n.Available, Active: n.Active})
		}
		return a, nil
	})
}

func (e *Engine) handleOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if e.Router == nil {
		writeJSON(w, http.StatusNotImplemented, apiError{Error: "this instance does not run the router (router: false): ask one that does"})
		return
	}
	e.serveQuery(w, r, e.Router, id, "order "+strconv.Quote(id), func(ctx context.Context, p int32) (any, error) {
		b, err := e.readKey(ctx, e.Router, p, router.StoreName, orderKeyPrefix+id)
		if err != nil {
			return nil, err
		}
		var o schemas.RouterOrder
		if err := router.DecodeStoredOrder(b, &o); err != nil {
			return nil, err
		}
		return orderAnswer(&o, p, e.opts.InstanceID), nil
	})
}

func decodeStored(b []byte, dec func([]byte) error) error {
	if len(b) == 0 || b[0] != storedFormat {
		return fmt.Errorf("stored value has format %v, this version reads %d", b[:min(len(b), 1)], storedFormat)
	}
	return dec(b[1:])
}

func orderAnswer(o *schemas.RouterOrder, p int32, served string) *OrderAnswer {
	a := &OrderAnswer{OrderID: o.OrderID, State: string(o.State), Reason: o.Reason, ChannelID: o.Placed.ChannelID,
		CustomerID: o.Placed.CustomerID, PlacedAt: time.UnixMilli(o.Placed.PlacedAt).UTC(), Version: o.Version,
		Screening: o.Screening, Routing: o.Attempt > 0, Attempt: max(0, o.Attempt-o.AttemptBase), Partition: p, ServedBy: served,
		Lines: []OrderLine{}, Shipments: []Shipment{}, Holds: []OrderHold{}}
	for _, l := range o.Lines {
		ol := OrderLine{LineID: l.LineID, SKU: l.SKU, Qty: l.Qty, State: string(l.State), QtyShipped: l.QtyShipped,
			QtyCancelled: l.QtyCancelled, QtyReturned: l.QtyReturned, UpdatedAt: time.UnixMilli(l.UpdatedAt).UTC()}
		if l.NodeID != nil {
			ol.NodeID = *l.NodeID
		}
		a.Lines = append(a.Lines, ol)
	}
	for _, s := range o.Shipments {
		sh := Shipment{ShipmentID: s.ShipmentID, NodeID: s.NodeID, Method: string(s.Method), DistanceKm: s.DistanceKm, CostCents: s.CostCents, Lines: []ShipmentLine{}}
		for _, l := range s.Lines {
			sh.Lines = append(sh.Lines, ShipmentLine{LineID: l.LineID, SKU: l.SKU, Qty: l.Qty})
		}
		a.Shipments = append(a.Shipments, sh)
	}
	for _, h := range o.Holds {
		a.Holds = append(a.Holds, OrderHold{LineID: h.LineID, SKU: h.SKU, NodeID: h.NodeID, Qty: h.Qty, Tentative: h.Tentative, Pending: h.Pending})
	}
	return a
}

// readKey reads key from store of partition p, committed, on the engine's
// loop.
func (e *Engine) readKey(ctx context.Context, eng *topology.Engine, p int32, store, key string) ([]byte, error) {
	var val []byte
	var found bool
	err := eng.Query(ctx, p, func(stores map[string]*state.Store) error {
		st := stores[store]
		if st == nil {
			return fmt.Errorf("no store %s", store)
		}
		var err error
		val, found, err = st.Get([]byte(key))
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errNotFound
	}
	return val, nil
}

// serveQuery finds the owner of key's partition and answers locally or
// forwards.
func (e *Engine) serveQuery(w http.ResponseWriter, r *http.Request, eng *topology.Engine, key, what string,
	local func(context.Context, int32) (any, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), queryBudget(r, e.opts.QueryTimeout))
	defer cancel()
	topic := eng.Inputs()[0]
	p, owner, err := e.owner(ctx, eng, topic, key)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("finding the owner of %s: %v", what, err)})
		return
	}
	w.Header().Set(HeaderPartition, strconv.Itoa(int(p)))
	pp := &p
	if owner.id == "" {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("no instance owns partition %d of %s (the group %s is rebalancing or empty): retry", p, topic, eng.Group()), Partition: pp})
		return
	}
	if owner.client != clientID(e.opts) {
		if by := r.Header.Get(HeaderForwarded); by != "" {
			if by == e.opts.InstanceID && owner.id != e.opts.InstanceID {
				// Forwarded by this instance to itself: the owner's
				// advertised address reaches this instance.
				writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("partition %d belongs to instance %s, whose advertised address %s reaches instance %s instead: set http_advertise on %s to an address the other instances can reach it at", p, owner.id, owner.addr, e.opts.InstanceID, owner.id), Partition: pp, Owner: owner.id})
				return
			}
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("forwarded by %s, but partition %d belongs to %s here: ownership is moving, retry", by, p, owner.id), Partition: pp, Owner: owner.id})
			return
		}
		e.forward(ctx, w, r, owner, p)
		return
	}
	v, err := local(ctx, p)
	switch {
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: what + " not found", Partition: pp, Owner: owner.id})
	case errors.Is(err, topology.ErrNotOwner):
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("partition %d is moving (assigned here, not restored yet or revoked): retry", p), Partition: pp, Owner: owner.id})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("reading %s: %v", what, err), Partition: pp, Owner: owner.id})
	default:
		w.Header().Set(HeaderServedBy, e.opts.InstanceID)
		writeJSON(w, http.StatusOK, v)
	}
}

type member struct {
	id, addr, client string
}

// owner returns key's partition of topic and the group member that owns
// it (zero if none).
func (e *Engine) owner(ctx context.Context, eng *topology.Engine, topic, key string) (int32, member, error) {
	n, err := e.partitionCount(ctx, topic)
	if err != nil {
		return 0, member{}, err
	}
	p := int32(keyHasher.Partition(&kgo.Record{Key: []byte(key)}, int(n)))
	gs, err := e.adm.DescribeGroups(ctx, eng.Group())
	if err != nil {
		return p, member{}, err
	}
	g, ok := gs[eng.Group()]
	if !ok {
		return p, member{}, fmt.Errorf("group %s not described", eng.Group())
	}
	if errors.Is(g.Err, kerr.GroupIDNotFound) {
		return p, member{}, nil // no member yet (Kafka: state Dead, kfake: this error)
	}
	if g.Err != nil {
		return p, member{}, fmt.Errorf("group %s: %v", eng.Group(), g.Err)
	}
	for i := range g.Members {
		m := &g.Members[i]
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range c.Topics {
			if t.Topic != topic {
				continue
			}
			for _, q := range t.Partitions {
				if q == p {
					id, addr := memberAddr(m)
					return p, member{id: id, addr: addr, client: m.ClientID}, nil
				}
			}
		}
	}
	return p, member{}, nil
}

// keyHasher is Kafka's default partitioner (murmur2), as in topology.
var keyHasher = kgo.StickyKeyPartitioner(nil).ForTopic("")

// partitionCount is topic's partition count, cached (co-partitioned
// inputs never change it while the engine runs).
func (e *Engine) partitionCount(ctx context.Context, topic string) (int32, error) {
	e.countsMu.Lock()
	n, ok := e.counts[topic]
	e.countsMu.Unlock()
	if ok {
		return n, nil
	}
	td, err := e.adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	t, ok := td[topic]
	if !ok || t.Err != nil || len(t.Partitions) == 0 {
		return 0, fmt.Errorf("topic %s: no partitions (%v)", topic, t.Err)
	}
	n = int32(len(t.Partitions))
	e.countsMu.Lock()
	e.counts[topic] = n
	e.countsMu.Unlock()
	return n, nil
}

// forward asks the owner and relays its answer.
func (e *Engine) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, owner member, p int32) {
	pp := &p
	if owner.addr == "" {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("partition %d belongs to instance %s, which serves no HTTP API (http_addr not set)", p, owner.id), Partition: pp, Owner: owner.id})
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+owner.addr+r.URL.EscapedPath(), nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{Error: err.Error()})
		return
	}
	req.Header.Set(HeaderForwarded, e.opts.InstanceID)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		budget := left - forwardMargin(left)
		if budget < time.Millisecond {
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("finding the owner of partition %d (instance %s) took the whole query_timeout (%v): no time left to ask it", p, owner.id, e.opts.QueryTimeout), Partition: pp, Owner: owner.id})
			return
		}
		req.Header.Set(HeaderBudget, strconv.FormatInt(budget.Milliseconds(), 10))
	}
	unreachable := func(why string) {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: fmt.Sprintf("the owner of partition %d, instance %s at %s, %s", p, owner.id, owner.addr, why), Partition: pp, Owner: owner.id})
	}
	resp, err := e.httpClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			unreachable(fmt.Sprintf("did not answer within query_timeout (%v)", e.opts.QueryTimeout))
			return
		}
		unreachable("is unreachable: " + err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Not an instance's answer (they never redirect): something else
		// listens at the advertised address.
		unreachable(fmt.Sprintf("answered %s, which no instance does: is another server listening there?", resp.Status))
		return
	}
	relay := func() {
		for _, h := range []string{"Content-Type", HeaderServedBy, HeaderPartition} {
			if v := resp.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
	}
	if n := resp.ContentLength; n >= 0 && n <= maxForwardedBytes {
		// Its length known (instances send it): relayed as it comes, not
		// held in memory; a break-off shows as a body shorter than said.
		relay()
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, n))
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardedBytes+1))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		unreachable(fmt.Sprintf("did not finish its answer within query_timeout (%v)", e.opts.QueryTimeout))
		return
	case err != nil:
		unreachable("broke off its answer: " + err.Error())
		return
	case len(body) > maxForwardedBytes:
		writeJSON(w, http.StatusBadGateway, apiError{Error: fmt.Sprintf("the answer of the owner of partition %d, instance %s, is larger than %d bytes: ask it directly at %s", p, owner.id, maxForwardedBytes, owner.addr), Partition: pp, Owner: owner.id})
		return
	}
	relay()
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// forwardMargin is kept back from a forwarded request's budget for the
// way back: a tenth of what is left, at least 5 ms and at most 500 ms.
func forwardMargin(left time.Duration) time.Duration {
	return min(max(left/10, 5*time.Millisecond), 500*time.Millisecond)
}

// queryBudget is the time a query may take here: query_timeout, or less if
// it was forwarded with a smaller budget (HeaderBudget).
func queryBudget(r *http.Request, timeout time.Duration) time.Duration {
	if r.Header.Get(HeaderForwarded) == "" {
		return timeout
	}
	ms, err := strconv.ParseInt(r.Header.Get(HeaderBudget), 10, 64)
	if err != nil || ms >= timeout.Milliseconds() { // compared before multiplying: no overflow
		return timeout
	}
	return max(time.Duration(ms)*time.Millisecond, time.Millisecond)
}

// newForwardClient is the client of forwarded queries: it talks to the
// other instances directly (no HTTP proxy of the environment, which would
// see every key asked and may not reach the pods at all), follows no
// redirect (an instance never sends one), and keeps enough idle
// connections per instance for a steady query rate.
func newForwardClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 32
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// queryState is the Engine's state for queries.
type queryState struct {
	adm        *kadm.Client
	countsMu   sync.Mutex
	counts     map[string]int32
	httpClient *http.Client
}

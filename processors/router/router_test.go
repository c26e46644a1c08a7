package router

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/screen"
	"github.com/invroute/invroute/schemas"
)

// memStore is an in-memory router Store.
type memStore struct {
	orders map[string]*schemas.RouterOrder
	load   map[string][2]int64 // node -> (newest day, shipments)
	now    int64
	hz     int64            // Horizon
	due    map[string]int64 // finished order -> when it finished
	wait   map[string]map[Waiting]bool
}

func newMemStore() *memStore {
	return &memStore{orders: map[string]*schemas.RouterOrder{}, load: map[string][2]int64{}, due: map[string]int64{}, wait: map[string]map[Waiting]bool{}}
}

func (m *memStore) IndexBackorders(id string, placedAt int64, old, skus []string) error {
	w := Waiting{PlacedAt: placedAt, ID: id}
	for _, sku := range old {
		delete(m.wait[sku], w)
	}
	for _, sku := range skus {
		if m.wait[sku] == nil {
			m.wait[sku] = map[Waiting]bool{}
		}
		m.wait[sku][w] = true
	}
	return nil
}

func cmpWaiting(a, b Waiting) int {
	return cmp.Or(cmp.Compare(a.PlacedAt, b.PlacedAt), cmp.Compare(a.ID, b.ID))
}

func (m *memStore) Backorders(sku string, after Waiting, max int) ([]Waiting, error) {
	var list []Waiting
	for w := range m.wait[sku] {
		if after.ID == "" || cmpWaiting(w, after) > 0 {
			list = append(list, w)
		}
	}
	slices.SortFunc(list, cmpWaiting)
	return list[:min(len(list), max)], nil
}

func (m *memStore) Order(id string) (*schemas.RouterOrder, error) { return m.orders[id], nil }
func (m *memStore) PutOrder(o *schemas.RouterOrder)               { m.orders[o.OrderID] = o }
func (m *memStore) Now() int64                                    { return m.now }
func (m *memStore) Horizon() int64                                { return m.hz }
func (m *memStore) Forgot(at int64)                               { m.hz = max(m.hz, at) }
func (m *memStore) Unlist(id string, _ int64) error {
	delete(m.due, id)
	return nil
}
func (m *memStore) Expire(id string, at int64) error {
	if at <= 0 {
		delete(m.due, id)
	} else {
		m.due[id] = at
	}
	return nil
}
func (m *memStore) Due(t int64, max int) ([]Finished, error) {
	var due []Finished
	for id, at := range m.due {
		if at <= t {
			due = append(due, Finished{id, at})
		}
	}
	slices.SortFunc(due, func(a, b Finished) int { return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.ID, b.ID)) })
	return due[:min(len(due), max)], nil
}
func (m *memStore) Forget(id string, at int64) error {
	delete(m.orders, id)
	return m.Unlist(id, at)
}

// Load and AddLoad keep one count per node, of the newest day, as the
// Pebble store does.
func (m *memStore) Load(node string, day int64) (int64, error) {
	c := m.load[node]
	return loadOn(c[0], c[1], day), nil
}
func (m *memStore) AddLoad(node string, day int64, d int64) (int64, error) {
	c := m.load[node]
	day, ok := loadDay(c[0], day, d)
	if !ok {
		return day, nil
	}
	m.load[node] = [2]int64{day, max(0, loadOn(c[0], c[1], day)+d)}
	return day, nil
}

// testWorld is testNet as a router World; other partitions took nothing.
type testWorld struct{ *testNet }

func (testWorld) OtherLoad(string, int64) int64 { return 0 }

// capture records what the router emits.
type capture struct {
	cmds   []*schemas.ReservationCommand
	checks []*schemas.CustomerCheck
	b      strings.Builder
}

func (c *capture) Command(x *schemas.ReservationCommand) {
	c.cmds = append(c.cmds, x)
	fmt.Fprintf(&c.b, "%s %s/%s %s@%s", strings.ToLower(string(x.Type)), x.OrderID, x.LineID, x.SKU, x.NodeID)
	if x.Type == schemas.Reserve || x.Type == schemas.Decrease {
		fmt.Fprintf(&c.b, " qty=%d", x.Qty)
	}
	fmt.Fprintf(&c.b, " attempt=%d\n", x.Attempt)
}

func (c *capture) Forget(id string) { fmt.Fprintf(&c.b, "forget %s (status tombstone)\n", id) }

func (c *capture) Check(x *schemas.CustomerCheck) {
	c.checks = append(c.checks, x)
	fmt.Fprintf(&c.b, "check customer %s for %s (max %d in %dms)\n", x.CustomerID, x.OrderID, x.MaxOrders, x.WindowMs)
}

func (c *capture) Decision(d *schemas.RoutingDecision) {
	fmt.Fprintf(&c.b, "decision %s %s attempts=%d split=%t %.1f km %d c\n", d.OrderID, d.Status, d.Attempts, d.Split, d.DistanceKm, d.CostCents)
	for _, s := range d.Shipments {
		fmt.Fprintf(&c.b, "  shipment %s from %s:%s\n", s.ShipmentID, s.NodeID, lines(s.Lines))
	}
	if len(d.Backordered) > 0 {
		fmt.Fprintf(&c.b, "  backordered:%s\n", lines(d.Backordered))
	}
	for _, r := range d.Reasons {
		fmt.Fprintf(&c.b, "  - %s\n", r)
	}
}

func (c *capture) Request(r *schemas.FulfillmentRequest) {
	fmt.Fprintf(&c.b, "request %s to %s for %s %s:%s\n", r.Type, r.NodeID, r.ShipmentID, r.Priority, lines(r.Lines))
}

func (c *capture) Status(s *schemas.OrderStatus) {
	fmt.Fprintf(&c.b, "status %s v%d %s:", s.OrderID, s.Version, s.State)
	for _, l := range s.Lines {
		fmt.Fprintf(&c.b, " %s=%s", l.LineID, l.State)
		if l.NodeID != nil {
			fmt.Fprintf(&c.b, "@%s", *l.NodeID)
		}
		if l.QtyShipped > 0 || l.QtyCancelled > 0 || l.QtyReturned > 0 {
			fmt.Fprintf(&c.b, "(shipped %d, cancelled %d, returned %d)", l.QtyShipped, l.QtyCancelled, l.QtyReturned)
		}
	}
	if s.Reason != "" {
		fmt.Fprintf(&c.b, " [%s]", s.Reason)
	}
	c.b.WriteString("\n")
}

func lines(ls []schemas.OrderLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, " %s %s x%d", l.LineID, l.SKU, l.Qty)
	}
	if b.Len() == 0 {
		return " (all)"
	}
	return b.String()
}

// fakeInventory answers reservation commands the way the inventory
// processor does, on testNet's stock (reserved counts holds), so that the
// scripts show the whole round trip.
type fakeInventory struct {
	net   *testNet
	holds map[[4]string]int64 // sku, order, line, node
}

func (f *fakeInventory) answer(c *schemas.ReservationCommand, refuse bool) *schemas.ReservationResult {
	res := &schemas.ReservationResult{OrderID: c.OrderID, LineID: c.LineID, Type: c.Type, SKU: c.SKU, NodeID: c.NodeID,
		Qty: c.Qty, Attempt: c.Attempt, DecidedAt: c.IssuedAt}
	k := [4]string{c.SKU, c.OrderID, c.LineID, c.NodeID}
	held := f.holds[k]
	key := [2]string{c.SKU, c.NodeID}
	st := f.net.stock[key]
	n := f.net.nodes[c.NodeID]
	room := int64(0)
	if n != nil && n.Active {
		room = st.OnHand - st.Reserved
		if !c.AllowSafetyStock {
			room -= inventory.SafetyStock(n, c.SKU)
		}
		room = max(0, room)
	}
	want := c.Qty
	switch c.Type {
	case schemas.Release:
		want, res.Qty = 0, held
	case schemas.Decrease: // as the inventory: a difference, at least 0
		want = max(0, held-c.Qty)
		res.Qty = held - want
	}
	if refuse { // the ats table was stale: the node has none left
		res.Reason = "insufficient stock"
		return res
	}
	if delta := want - held; delta > room {
		res.Reason, res.Available = "insufficient stock", room
		return res
	}
	st.Reserved += want - held
	st.NodeID = c.NodeID
	f.net.stock[key] = st
	f.holds[k] = want
	res.OK, res.Available = true, max(0, room-(want-held))
	return res
}

// screenStore is the customer screen's store in the scripts.
type screenStore map[string]*schemas.CustomerHistory

func (m screenStore) Get(c string) (*schemas.CustomerHistory, error) { return m[c], nil }
func (m screenStore) Put(h *schemas.CustomerHistory)                 { m[h.CustomerID] = h }

// TestRouter runs the scripts in testdata/router. Besides the network
// commands of TestPlan:
//
//	order id=.. [plan args] [ts=MS]      a PLACED event
//	answer [refuse=LINE@NODE,...]         the inventory answers every queued command
//	auto                                  answer until nothing is queued
//	cancel|release|address|rma id=.. [lines=..] [to=LAT,LON] [reason=..]
//	ship|restock id=.. line=.. node=.. qty=N   a SHIPMENT / RETURN_RESTOCK of the line (inventory notice)
//	feedback id=.. fid=.. line=.. node=.. short=N [type=REJECTED]
//	holds id=..                           prints the order's holds and shipments
//	inventory                             prints what the fake inventory holds
//	check                                 compares the router's holds with the fake inventory's
//	config customer-max=N customer-window=MS retention=MS backorder-retry=off   a router with the customer rule, order retention, no backorder index
//	screen                                the customer screen answers every queued check
//	due                                   prints when each finished order finished
//	purge [now=MS] [max=N]                forgets the orders due (stream time: the last accepted order event's ts, or now)
//	waiting                               prints the backorder index
//	retry sku=.. [max=N] [after=ID]       stock of sku arrived: RetryBackorders
func TestRouter(t *testing.T) {
	datadriven.Walk(t, "testdata/router", func(t *testing.T, path string) {
		net := newTestNet()
		st := newMemStore()
		inv := &fakeInventory{net: net, holds: map[[4]string]int64{}}
		r := New(Config{})
		var queue []*schemas.ReservationCommand
		var checks []*schemas.CustomerCheck
		screens := screenStore{}
		var ts int64 = 1_800_000_000_000
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			a := args{t, d}
			ts = int64(a.num("ts", float64(ts+1000)))
			if out, ok := netCommand(a, net); ok {
				return out
			}
			out := &capture{}
			var err error
			ev := func(ty schemas.OrderEventType) *schemas.OrderEvent {
				e := &schemas.OrderEvent{OrderID: a.str("id", "o1"), Type: ty, LineIDs: list(a.str("lines", "")),
					Reason: a.str("reason", ""), OccurredAt: ts}
				if to := list(a.str("to", "")); len(to) == 2 {
					lat, _ := strconv.ParseFloat(to[0], 64)
					lon, _ := strconv.ParseFloat(to[1], 64)
					e.ShipTo = &schemas.Address{Country: a.str("country", "FR"), Lat: lat, Lon: lon}
				}
				return e
			}
			// answer n=K answers only the first K queued commands.
			limit := 0
			if d.Cmd == "answer" {
				limit = int(a.num("n", 0))
			}
			answerAll := func(refuse []string) {
				for len(queue) > 0 {
					batch := queue
					queue = nil
					if limit > 0 && len(batch) > limit {
						batch, queue = batch[:limit], batch[limit:]
					}
					out.cmds = nil
					for _, c := range batch {
						res := inv.answer(c, slices.Contains(refuse, c.LineID+"@"+c.NodeID))
						fmt.Fprintf(&out.b, "> %s %s/%s %s@%s ok=%t available=%d\n", res.Type, res.OrderID, res.LineID, res.SKU, res.NodeID, res.OK, res.Available)
						if err = r.Result(st, testWorld{net}, out, []byte(res.OrderID), res, ts); err != nil {
							return
						}
					}
					queue = append(queue, out.cmds...)
					if d.Cmd == "answer" {
						return
					}
				}
			}
			// An accepted order event moves the stream time (Task).
			if slices.Contains([]string{"order", "cancel", "release", "address", "rma"}, d.Cmd) {
				defer func() {
					if err == nil {
						st.now = max(st.now, ts)
					}
				}()
			}
			switch d.Cmd {
			case "order":
				o := orderFrom(a)
				err = r.OrderEvent(st, testWorld{net}, out, []byte(o.OrderID), o, ts)
			case "cancel":
				err = r.OrderEvent(st, testWorld{net}, out, []byte(a.str("id", "o1")), ev(schemas.EventCancelled), ts)
			case "release":
				err = r.OrderEvent(st, testWorld{net}, out, []byte(a.str("id", "o1")), ev(schemas.EventReleased), ts)
			case "address":
				err = r.OrderEvent(st, testWorld{net}, out, []byte(a.str("id", "o1")), ev(schemas.EventAddressChanged), ts)
			case "rma":
				err = r.OrderEvent(st, testWorld{net}, out, []byte(a.str("id", "o1")), ev(schemas.EventReturnAuthorized), ts)
			case "ship", "restock":
				res := &schemas.ReservationResult{OrderID: a.str("id", "o1"), LineID: a.str("line", ""), Type: schemas.Consume,
					SKU: a.str("sku", ""), NodeID: a.str("node", ""), Qty: int64(a.num("qty", 0)), OK: true}
				k := [2]string{res.SKU, res.NodeID}
				s := net.stock[k]
				if d.Cmd == "restock" {
					res.Type = schemas.Restock
					s.OnHand += res.Qty
				} else {
					hk := [4]string{res.SKU, res.OrderID, res.LineID, res.NodeID}
					c := min(res.Qty, inv.holds[hk])
					inv.holds[hk] -= c
					s.OnHand -= res.Qty
					s.Reserved -= c
				}
				net.stock[k] = s
				err = r.Result(st, testWorld{net}, out, []byte(res.OrderID), res, ts)
			case "feedback":
				f := &schemas.FulfillmentFeedback{FeedbackID: a.str("fid", ""), OrderID: a.str("id", "o1"), LineID: a.str("line", ""),
					NodeID: a.str("node", ""), Type: schemas.FeedbackType(a.str("type", "SHORT_PICKED")),
					QtyShort: int64(a.num("short", 0)), Reason: a.str("reason", "")}
				err = r.Feedback(st, testWorld{net}, out, []byte(f.OrderID), f, ts)
			case "config":
				r = New(Config{CustomerMaxOrders: int(a.num("customer-max", 0)),
					CustomerWindow:   time.Duration(a.num("customer-window", 0)) * time.Millisecond,
					OrderRetention:   time.Duration(a.num("retention", 0)) * time.Millisecond,
					NoBackorderRetry: a.str("backorder-retry", "on") == "off",
					NoVIPSafetyStock: a.str("vip-safety", "on") == "off",
					RejectIncomplete: a.str("reject-incomplete", "off") == "on"})
				return "ok"
			case "due":
				var rows []string
				for id, at := range st.due {
					rows = append(rows, fmt.Sprintf("%s finished at %d (%d ms ago)", id, at, st.now-at))
				}
				slices.Sort(rows)
				if len(rows) == 0 {
					return "none"
				}
				return strings.Join(rows, "\n")
			case "purge": // now=MS: the stream time later order events brought
				st.now = max(st.now, int64(a.num("now", 0)))
				var n int
				n, err = r.Purge(st, out, int(a.num("max", 100)))
				fmt.Fprintf(&out.b, "%d due, %d forgotten in all\n", n, r.Stats.Forgotten)
			case "waiting": // the backorder index
				var rows []string
				for sku, ws := range st.wait {
					for w := range ws {
						rows = append(rows, fmt.Sprintf("%s: %s placed at %d", sku, w.ID, w.PlacedAt))
					}
				}
				slices.Sort(rows)
				if len(rows) == 0 {
					return "none"
				}
				return strings.Join(rows, "\n")
			case "retry": // sku=.. [max=N] [after=ID]: stock of sku arrived at ts
				var after Waiting
				if id := a.str("after", ""); id != "" {
					after = Waiting{PlacedAt: st.orders[id].Placed.PlacedAt, ID: id}
				}
				var look Look
				look, err = r.RetryBackorders(st, testWorld{net}, out, a.str("sku", ""), after, ts, int(a.num("max", 100)), map[[2]string]int64{}, nil)
				fmt.Fprintf(&out.b, "looked at %d, last %q, done %t, no stock %t, %d retried in all\n", look.Looked, look.Next.ID, look.Done, look.NoStock, r.Stats.Retried)
			case "screen":
				for _, c := range checks {
					v, err := screen.Check(screens, []byte(c.CustomerID), c)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&out.b, "> verdict %s hold=%t\n", v.OrderID, v.Hold)
					if err := r.Verdict(st, testWorld{net}, out, []byte(v.OrderID), v, ts); err != nil {
						fmt.Fprintf(&out.b, "error: %v\n", err)
					}
				}
				checks = nil
				queue = append(queue, out.cmds...)
				out.cmds = nil
			case "answer", "auto":
				answerAll(list(a.str("refuse", "")))
				out.cmds = nil // queued by answerAll already
			case "holds":
				o := st.orders[a.str("id", "o1")]
				if o == nil {
					return "unknown order"
				}
				for _, h := range o.Holds {
					fmt.Fprintf(&out.b, "hold %s %s@%s qty=%d tentative=%t pending=%t\n", h.LineID, h.SKU, h.NodeID, h.Qty, h.Tentative, h.Pending)
				}
				for _, s := range o.Shipments {
					fmt.Fprintf(&out.b, "shipment %s from %s:%s\n", s.ShipmentID, s.NodeID, lines(s.Lines))
				}
				fmt.Fprintf(&out.b, "attempt=%d round=%v", o.Attempt, o.RoundLines)
				return out.b.String()
			case "check": // the router's holds against what the fake inventory holds
				var rows []string
				held := map[[4]string]int64{}
				for _, o := range st.orders {
					for _, h := range o.Holds {
						held[[4]string{h.SKU, o.OrderID, h.LineID, h.NodeID}] += h.Qty
					}
				}
				keys := map[[4]string]bool{}
				for k := range held {
					keys[k] = true
				}
				for k, v := range inv.holds {
					if v != 0 {
						keys[k] = true
					}
				}
				for k := range keys {
					if held[k] != inv.holds[k] {
						rows = append(rows, fmt.Sprintf("MISMATCH %s/%s %s@%s router=%d inventory=%d", k[1], k[2], k[0], k[3], held[k], inv.holds[k]))
					}
				}
				slices.Sort(rows)
				if len(rows) == 0 {
					return "consistent"
				}
				return strings.Join(rows, "\n")
			case "inventory":
				var rows []string
				for k, v := range net.stock {
					rows = append(rows, fmt.Sprintf("%s@%s on_hand=%d reserved=%d", k[0], k[1], v.OnHand, v.Reserved))
				}
				slices.Sort(rows)
				return strings.Join(rows, "\n")
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			if err != nil {
				fmt.Fprintf(&out.b, "error: %v\n", err)
			}
			queue = append(queue, out.cmds...)
			checks = append(checks, out.checks...)
			if out.b.Len() == 0 {
				return "nothing"
			}
			return out.b.String()
		})
	})
}

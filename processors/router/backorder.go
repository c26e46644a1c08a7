package router

import (
	"slices"

	"github.com/invroute/invroute/schemas"
)

// Backordered lines are retried when stock arrives. The router keeps an
// index of the orders waiting for each SKU (Store.IndexBackorders, kept by
// save); the task hands RetryBackorders the SKUs whose availability rose in
// the ats table, and it re-plans the orders waiting for them, earliest
// placed first, that the table now shows a way to ship.

// Waiting is an order waiting for stock of a SKU: its position in the
// SKU's list is (PlacedAt, ID).
type Waiting struct {
	PlacedAt int64
	ID       string
}

// waitingSKUs are the SKUs an order waits for: those of its lines that
// still need units routed (backordered, or routed in part), unless the
// order is rejected, cancelled or on hold, or a round or a customer check
// is open (sorted).
func waitingSKUs(o *schemas.RouterOrder) []string {
	if o == nil || o.Attempt != 0 || o.Screening {
		return nil
	}
	switch o.State {
	case schemas.StateOnHold, schemas.StateRejected, schemas.StateCancelled:
		return nil
	}
	s := &step{o: o}
	var skus []string
	for i, l := range o.Lines {
		if l.State != schemas.StateRejected && s.need(i) > 0 && !slices.Contains(skus, l.SKU) {
			skus = append(skus, l.SKU)
		}
	}
	slices.Sort(skus)
	return skus
}

// indexBackorders keeps the order's entries in the backorder index: every
// SKU it waits for now (written again, so that an order backordered before
// the index existed gets its entries at its next change), none of those it
// no longer waits for.
func (s *step) indexBackorders() error {
	var skus []string
	if !s.r.cfg.NoBackorderRetry {
		skus = waitingSKUs(s.o)
	}
	old := waitingSKUs(s.prev)
	if len(skus) == 0 && len(old) == 0 {
		return nil
	}
	return s.st.IndexBackorders(s.o.OrderID, s.o.Placed.PlacedAt, old, skus)
}

// Look is what RetryBackorders did.
type Look struct {
	Next    Waiting // the last order looked at (the cursor for the next look)
	Looked  int     // orders looked at
	Done    bool    // nothing left to look at: no order after Next, or no stock left
	NoStock bool    // it stopped because no node shows any of the SKU left
}

// RetryBackorders looks at up to max orders waiting for sku, after position
// after, earliest placed first, at time ts. An order is retried, like after
// a RELEASED event, if a plan of its open lines with the availability the
// router sees now would ship something (for SHIP_COMPLETE: everything). The
// units asked for by the orders retried are added to claimed ((sku, node)
// -> units), which counts as reserved on top of what w shows, and told to
// onClaim (if not nil): the caller keeps them until the inventory answers.
// The look stops once no node shows any of sku left.
func (r *Router) RetryBackorders(st Store, w World, out Out, sku string, after Waiting, ts int64, max int,
	claimed map[[2]string]int64, onClaim func(order, sku, node string, qty int64)) (Look, error) {
	look := Look{Next: after}
	cw := &claimWorld{World: w, claimed: claimed}
	if !cw.anyLeft(sku) {
		look.Done, look.NoStock = true, true
		return look, nil
	}
	list, err := st.Backorders(sku, after, max)
	if err != nil {
		return look, err
	}
	look.Done = len(list) < max
	co := &claimOut{Out: out}
	for i, e := range list {
		if i > 0 && !cw.anyLeft(sku) {
			look.Done, look.NoStock = true, true
			return look, nil
		}
		cur, err := st.Order(e.ID)
		if err != nil {
			return look, err
		}
		look.Next = e
		look.Looked++
		if cur == nil || !slices.Contains(waitingSKUs(cur), sku) {
			// Not expected (save keeps the index): drop the entry.
			if err := st.IndexBackorders(e.ID, e.PlacedAt, []string{sku}, nil); err != nil {
				return look, err
			}
			continue
		}
		s := &step{r: r, st: st, w: cw, out: co, ts: ts, o: cloneOrder(cur), prev: cur}
		open := s.allOpenLines()
		if len(open) == 0 || !s.wouldShip(open) {
			continue
		}
		r.Stats.Retried++
		co.cmds = co.cmds[:0]
		s.startRound(open)
		for _, c := range co.cmds { // what the round asks for beyond what the order held
			q := c.Qty - s.committedAt(c.LineID, c.NodeID)
			claimed[[2]string{c.SKU, c.NodeID}] += q
			if onClaim != nil {
				onClaim(c.OrderID, c.SKU, c.NodeID, q)
			}
		}
		s.o.Reason = joinReason(s.o.Reason, "retried: stock of "+sku+" arrived")
		if err := s.save(); err != nil {
			return look, err
		}
	}
	return look, nil
}

// wouldShip reports whether a round of lines planned now would ship
// something, and for a SHIP_COMPLETE order everything.
func (s *step) wouldShip(lines []string) bool {
	p, reject, _ := s.planLines(lines)
	if reject != "" || len(p.Shipments) == 0 {
		return false
	}
	return s.o.Placed.Policy != schemas.ShipComplete || len(p.Unplanned) == 0
}

// claimWorld is a World in which the reservations asked for so far count
// as reserved, until the ats table shows them.
type claimWorld struct {
	World
	claimed map[[2]string]int64 // (sku, node) -> units asked for
}

// anyLeft reports whether some node shows units of sku not reserved or
// claimed.
func (w *claimWorld) anyLeft(sku string) bool {
	for _, n := range w.Nodes() {
		if a, ok := w.Stock(sku, n.NodeID); ok && a.OnHand-a.Reserved > 0 {
			return true
		}
	}
	return false
}

func (w *claimWorld) Stock(sku, node string) (schemas.NodeATS, bool) {
	a, ok := w.World.Stock(sku, node)
	if ok {
		a.Reserved += w.claimed[[2]string{sku, node}]
	}
	return a, ok
}

// claimOut notes the RESERVE commands that pass.
type claimOut struct {
	Out
	cmds []*schemas.ReservationCommand
}

func (o *claimOut) Command(c *schemas.ReservationCommand) {
	if c.Type == schemas.Reserve {
		o.cmds = append(o.cmds, c)
	}
	o.Out.Command(c)
}

package router

import (
	"fmt"
	"math"
	"slices"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
)

// Network is what the router knows of the fulfillment network when it
// plans: the replicated node and channel tables, per-node availability
// from the ats topic, and the shipments each node may still take today.
type Network interface {
	Node(id string) *schemas.Node
	// Nodes returns every node, sorted by NodeID.
	Nodes() []*schemas.Node
	Channel(id string) *schemas.Channel
	// Stock returns the last known stock of sku at node.
	Stock(sku, node string) (schemas.NodeATS, bool)
	// ShipmentsLeft is how many more shipments node may take today; -1
	// means no limit.
	ShipmentsLeft(node string) int64
}

// Eligible lists the nodes that may fulfil lines of order o, with what
// each can give, and the reasons nodes that have stock were left out. A
// non-empty reject means the order cannot be planned at all (for instance
// an unknown pickup node). useSafety lets the order draw on safety stock
// (VIP orders, if configured).
//
// adjust, if not nil, corrects what a node can give of a SKU as the ats
// table shows it (the router adds what the order itself holds there, and
// caps it by what a refusal reported).
func Eligible(cfg PlanConfig, o *schemas.OrderEvent, lines []schemas.OrderLine, net Network, useSafety bool,
	adjust func(sku, node string, v int64) int64) (cands []Candidate, reasons []string, reject string) {
	cfg = cfg.withDefaults()
	avail := func(n *schemas.Node) map[string]int64 {
		m := map[string]int64{}
		for _, l := range lines {
			if _, done := m[l.SKU]; done {
				continue
			}
			var v int64
			if st, ok := net.Stock(l.SKU, n.NodeID); ok {
				v = inventory.Available(n, l.SKU, st.OnHand, st.Reserved, useSafety)
			}
			if adjust != nil {
				v = adjust(l.SKU, n.NodeID, v)
			}
			if v > 0 {
				m[l.SKU] = v
			}
		}
		return m
	}
	if o.DeliveryMethod == schemas.DeliveryPickup {
		id := ""
		if o.PickupNodeID != nil {
			id = *o.PickupNodeID
		}
		n := net.Node(id)
		switch {
		case n == nil:
			return nil, nil, fmt.Sprintf("pickup node %q unknown", id)
		case !n.Active:
			return nil, nil, fmt.Sprintf("pickup node %s is not active", id)
		case !n.PickupEnabled:
			return nil, nil, fmt.Sprintf("pickup node %s does not offer pickup", id)
		}
		// BOPIS: stock is reserved only at the pickup store.
		return []Candidate{{NodeID: id, Available: avail(n)}}, []string{"pickup at " + id + ": reserved there only"}, ""
	}
	if o.ShipTo == nil {
		return nil, nil, "no ship-to address"
	}
	ch := net.Channel(o.ChannelID)
	if ch == nil {
		reasons = append(reasons, fmt.Sprintf("channel %q not configured: every node may ship", o.ChannelID))
	}
	for _, n := range net.Nodes() {
		if !n.Active || !n.ShipEnabled || (ch != nil && !inventory.Feeds(ch, n)) {
			continue
		}
		a := avail(n)
		if len(a) == 0 {
			continue
		}
		if left := net.ShipmentsLeft(n.NodeID); left == 0 {
			reasons = append(reasons, fmt.Sprintf("node %s at daily capacity", n.NodeID))
			continue
		}
		km := HaversineKm(n.Lat, n.Lon, o.ShipTo.Lat, o.ShipTo.Lon)
		cands = append(cands, Candidate{
			NodeID:     n.NodeID,
			Available:  a,
			DistanceKm: math.Round(km*10) / 10,
			CostCents:  int64(n.ShipmentCostCents) + int64(math.Round(km*cfg.CentsPerKm)),
		})
	}
	slices.Sort(reasons)
	return cands, reasons, ""
}

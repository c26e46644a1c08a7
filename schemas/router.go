package schemas

// RouterOrder is the router's state of one order: the value of the router
// store and of its changelog (key: order_id). Internal.
type RouterOrder struct {
	OrderID string `avro:"order_id"`
	// Placed is the PLACED OrderEvent, ShipTo as last changed.
	Placed OrderEvent `avro:"placed"`
	State  OrderState `avro:"state"`
	// Attempt is the routing attempt of the open planning round (from
	// AttemptBase+1), 0 when no round is open; RoundLines are the lines it
	// routes.
	Attempt    int32    `avro:"attempt"`
	RoundLines []string `avro:"round_lines"`
	// Refused: a reservation of the current attempt was refused.
	Refused bool         `avro:"refused"`
	Version int64        `avro:"version"` // of the last OrderStatus
	Lines   []LineStatus `avro:"lines"`
	// Holds is the stock the inventory holds, or is asked to hold, for the
	// order, per line and node.
	Holds []Hold `avro:"holds"`
	// Caps is availability learnt from refusals in the open round
	// (Available >= 0), and the order's short picks, kept across rounds
	// (Available < 0: see the router's shortCap).
	Caps         []Cap            `avro:"caps"`
	Shipments    []RoutedShipment `avro:"shipments"` // requested, not cancelled
	NextShipment int32            `avro:"next_shipment"`
	FeedbackIDs  []string         `avro:"feedback_ids"`
	Reason       string           `avro:"reason"`
	Screening    bool             `avro:"screening"` // waiting for the customer screen
	// ShipmentDays is the UTC day each shipment took its node's capacity:
	// a cancellation gives it back only on that day.
	ShipmentDays map[string]int64 `avro:"shipment_days"`
	// AttemptBase is the number of attempts of the order's earlier
	// rounds: a round's attempts are AttemptBase+1, +2, ..., so that a
	// late answer to an earlier round's command (one the router gave up
	// on, after a short pick) is never taken for this round's.
	AttemptBase int32 `avro:"attempt_base"`
}

// Hold is stock held for one order line at one node.
type Hold struct {
	LineID    string `avro:"line_id"`
	SKU       string `avro:"sku"`
	NodeID    string `avro:"node_id"`
	Qty       int64  `avro:"qty"`
	Tentative bool   `avro:"tentative"` // for the open round, not yet shipped from
	Pending   bool   `avro:"pending"`   // a RESERVE awaits its answer
}

// Cap is what a node was found to have of a SKU when it refused a
// reservation, or (Available < 0) that it short-picked it.
type Cap struct {
	SKU       string `avro:"sku"`
	NodeID    string `avro:"node_id"`
	Available int64  `avro:"available"`
}

// NodeLoad is how many shipments one router partition gave one node on one
// UTC day. Internal topic (compacted, key node_id/partition): every router
// instance reads it whole, so that daily capacity is shared by partitions.
type NodeLoad struct {
	NodeID    string `avro:"node_id"`
	Partition int32  `avro:"partition"`
	Day       int64  `avro:"day"` // days since the epoch, UTC
	Shipments int64  `avro:"shipments"`
}

// CustomerCheck asks the customer screen (partitioned by customer_id)
// whether the customer placed more than MaxOrders orders within WindowMs
// before PlacedAt. Internal topic, key: customer_id.
type CustomerCheck struct {
	OrderID    string `avro:"order_id"`
	CustomerID string `avro:"customer_id"`
	ChannelID  string `avro:"channel_id"`
	PlacedAt   int64  `avro:"placed_at"`
	MaxOrders  int32  `avro:"max_orders"`
	WindowMs   int64  `avro:"window_ms"`
}

// CustomerVerdict is the screen's answer. Internal topic, key: order_id.
type CustomerVerdict struct {
	OrderID        string `avro:"order_id"`
	CustomerID     string `avro:"customer_id"`
	Hold           bool   `avro:"hold"`
	OrdersInWindow int32  `avro:"orders_in_window"`
	Reason         string `avro:"reason"`
}

// CustomerHistory is the screen's state of one customer (store value).
type CustomerHistory struct {
	CustomerID string          `avro:"customer_id"`
	Orders     []CustomerOrder `avro:"orders"` // newest, oldest first
}

// CustomerOrder is one order in a customer's history.
type CustomerOrder struct {
	OrderID  string `avro:"order_id"`
	PlacedAt int64  `avro:"placed_at"`
}

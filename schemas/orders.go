package schemas

// This file holds the types of order routing (issue 3). They are a first
// cut and may evolve with the router.
//
//	channels --orders--> router --reservation commands (key sku)--> inventory
//	                       ^  <--reservation results (key order_id)--'
//	                       |
//	WMS --fulfillment-feedback--'   router --> routing-decisions
//	                                       --> fulfillment-requests (key node_id) --> WMS
//	                                       --> order-status
//
// Every enum field must hold one of its symbols, also where the record's
// type makes it meaningless (a CANCELLED OrderEvent still carries a
// customer_tier): the zero value "" does not encode.

// OrderEventType is what happened to an order.
type OrderEventType string

// The order event types.
const (
	EventPlaced    OrderEventType = "PLACED"
	EventCancelled OrderEventType = "CANCELLED" // by the channel or a review tool
	// EventReleased releases an order ON_HOLD (a review tool's verdict).
	EventReleased OrderEventType = "RELEASED"
	// EventAddressChanged carries the new ShipTo.
	EventAddressChanged OrderEventType = "ADDRESS_CHANGED"
	// EventReturnAuthorized is an RMA for LineIDs (empty: every line).
	EventReturnAuthorized OrderEventType = "RETURN_AUTHORIZED"
)

// CustomerTier is the service level of a customer.
type CustomerTier string

// The customer tiers.
const (
	TierStandard CustomerTier = "STANDARD"
	TierVIP      CustomerTier = "VIP"
)

// Priority is how urgently an order is to be fulfilled.
type Priority string

// The priorities.
const (
	PriorityStandard Priority = "STANDARD"
	PriorityRush     Priority = "RUSH"
)

// DeliveryMethod is how the customer gets an order.
type DeliveryMethod string

// The delivery methods.
const (
	DeliveryShip   DeliveryMethod = "SHIP"   // shipped to ShipTo
	DeliveryPickup DeliveryMethod = "PICKUP" // collected at PickupNodeID (BOPIS)
)

// FulfillmentPolicy says whether an order may ship in part.
type FulfillmentPolicy string

// The fulfillment policies.
const (
	// ShipComplete ships nothing until every line can be routed.
	ShipComplete FulfillmentPolicy = "SHIP_COMPLETE"
	// ShipAvailable ships what can be routed and backorders the rest.
	ShipAvailable FulfillmentPolicy = "SHIP_AVAILABLE"
)

// Address is where an order ships to.
type Address struct {
	Country    string  `avro:"country"` // ISO 3166-1 alpha-2
	PostalCode string  `avro:"postal_code"`
	Lat        float64 `avro:"lat"`
	Lon        float64 `avro:"lon"`
}

// OrderLine is a quantity of one SKU in an order, a shipment or a request.
type OrderLine struct {
	LineID         string `avro:"line_id"` // unique within the order
	SKU            string `avro:"sku"`
	Qty            int64  `avro:"qty"`
	UnitPriceCents int64  `avro:"unit_price_cents"` // 0 when unknown
}

// OrderEvent is something that happened to an order. Topic: orders, key:
// order_id.
//
// A PLACED event carries the whole order. The others need only OrderID,
// Type and OccurredAt, plus LineIDs (CANCELLED, RETURN_AUTHORIZED; empty
// means every line) or ShipTo (ADDRESS_CHANGED); their other fields are
// ignored but their enum fields must still be valid symbols.
type OrderEvent struct {
	OrderID        string         `avro:"order_id"`
	Type           OrderEventType `avro:"type"`
	ChannelID      string         `avro:"channel_id"`
	PlacedAt       int64          `avro:"placed_at"` // timestamp-millis, UTC
	CustomerID     string         `avro:"customer_id"`
	CustomerTier   CustomerTier   `avro:"customer_tier"`
	Priority       Priority       `avro:"priority"`
	DeliveryMethod DeliveryMethod `avro:"delivery_method"`
	// PickupNodeID is the node the customer collects from; set iff
	// DeliveryMethod is DeliveryPickup.
	PickupNodeID *string `avro:"pickup_node_id"`
	// ShipTo is the delivery address; required when DeliveryMethod is
	// DeliveryShip.
	ShipTo     *Address          `avro:"ship_to"`
	Lines      []OrderLine       `avro:"lines"`
	Policy     FulfillmentPolicy `avro:"policy"`
	LineIDs    []string          `avro:"line_ids"`
	Reason     string            `avro:"reason"`      // CANCELLED, RELEASED: why, for people
	OccurredAt int64             `avro:"occurred_at"` // timestamp-millis, UTC
}

// ReservationOp is what a ReservationCommand asks of the inventory.
type ReservationOp string

// The reservation operations.
const (
	// Reserve holds Qty units of the line's SKU at the node, if available.
	Reserve ReservationOp = "RESERVE"
	// Release gives held units back (cancellation, re-plan, short pick).
	Release ReservationOp = "RELEASE"
	// Consume is never a command: a SHIPMENT movement naming the order line
	// turned held units into a shipment (on_hand and reserved both drop);
	// the inventory processor tells the router with a result of this type.
	Consume ReservationOp = "CONSUME"
	// Restock is never a command: a RETURN_RESTOCK movement naming the
	// order line put units back on hand; the router marks the line RETURNED.
	Restock ReservationOp = "RESTOCK"
	// Decrease lowers what the line holds at the node by Qty units (to no
	// less than 0), a difference, not a state: it commutes with a SHIPMENT
	// that consumes from the same hold, which an absolute quantity does not
	// (a command issued before the router knew of the shipment would undo
	// its decrement). The router uses it for a short pick. Always granted.
	Decrease ReservationOp = "DECREASE"
)

// ReservationCommand asks the inventory processor to hold (Reserve) or stop
// holding (Release) stock of one order line at one node, or to hold fewer
// units (Decrease). Internal topic, key: sku. Reserve and Release set a
// state, so a repeated one changes nothing: Reserve
// holds exactly Qty for (order, line, node) if the node can cover the
// difference; Release holds nothing for it any more.
type ReservationCommand struct {
	OrderID string        `avro:"order_id"`
	LineID  string        `avro:"line_id"`
	Type    ReservationOp `avro:"type"`
	SKU     string        `avro:"sku"`
	NodeID  string        `avro:"node_id"`
	Qty     int64         `avro:"qty"`
	// Attempt is the order's routing attempt, from 1; the router ignores
	// results of older attempts.
	Attempt int32 `avro:"attempt"`
	// AllowSafetyStock lets a Reserve dip into the node's safety stock.
	AllowSafetyStock bool `avro:"allow_safety_stock"`
	// IssuedAt is the time of the router input that caused the command
	// (timestamp-millis): processors read no clock.
	IssuedAt int64 `avro:"issued_at"`
}

// ReservationResult is the inventory processor's answer to one
// ReservationCommand. Internal topic, key: order_id.
type ReservationResult struct {
	OrderID string        `avro:"order_id"`
	LineID  string        `avro:"line_id"`
	Type    ReservationOp `avro:"type"`
	SKU     string        `avro:"sku"`
	NodeID  string        `avro:"node_id"`
	Qty     int64         `avro:"qty"`
	Attempt int32         `avro:"attempt"`
	OK      bool          `avro:"ok"`
	// Reason says why not OK; empty when OK.
	Reason string `avro:"reason"`
	// Available is what the node can still reserve of the SKU after the
	// command, so the router re-plans with fresh numbers.
	Available int64 `avro:"available"`
	DecidedAt int64 `avro:"decided_at"` // timestamp-millis: the command's IssuedAt
}

// Reservation is stock held for one order line at one node: the value of
// the inventory processor's reservation store and of its changelog (key: sku,
// order_id, line_id, node_id). The node totals of SKUState.Nodes[].Reserved are the
// sums of these.
type Reservation struct {
	OrderID    string `avro:"order_id"`
	LineID     string `avro:"line_id"`
	SKU        string `avro:"sku"`
	NodeID     string `avro:"node_id"`
	Qty        int64  `avro:"qty"`     // units held; Consume and Release lower it
	Attempt    int32  `avro:"attempt"` // the routing attempt that reserved them
	ReservedAt int64  `avro:"reserved_at"`
}

// DecisionStatus is the outcome of routing an order.
type DecisionStatus string

// The decision statuses.
const (
	// DecisionRouted: every line is reserved and requested.
	DecisionRouted DecisionStatus = "ROUTED"
	// DecisionPartiallyRouted: some lines are reserved and requested;
	// RoutingDecision.Backordered holds what waits for stock
	// (SHIP_AVAILABLE orders only).
	DecisionPartiallyRouted DecisionStatus = "PARTIALLY_ROUTED"
	// DecisionBackordered: nothing could be routed yet; the order waits.
	DecisionBackordered DecisionStatus = "BACKORDERED"
	// DecisionRejected: the order cannot be routed (unknown SKU or pickup
	// node, invalid order, attempts exhausted under a rejecting policy).
	DecisionRejected DecisionStatus = "REJECTED"
)

// RoutedShipment is the part of an order that one node fulfils.
type RoutedShipment struct {
	ShipmentID string         `avro:"shipment_id"` // unique per order
	NodeID     string         `avro:"node_id"`
	Method     DeliveryMethod `avro:"method"`
	Lines      []OrderLine    `avro:"lines"`
	DistanceKm float64        `avro:"distance_km"` // node to ship-to; 0 for pickups
	CostCents  int64          `avro:"cost_cents"`  // shipment cost + distance cost
}

// RoutingDecision is how one order is fulfilled. Topic: routing-decisions,
// key: order_id.
type RoutingDecision struct {
	OrderID   string           `avro:"order_id"`
	Status    DecisionStatus   `avro:"status"`
	Shipments []RoutedShipment `avro:"shipments"`
	// Backordered holds the lines, or parts of lines, that wait for stock.
	Backordered []OrderLine `avro:"backordered"`
	Split       bool        `avro:"split"`   // more than one shipment
	Reasons     []string    `avro:"reasons"` // why, for people, most important first
	DistanceKm  float64     `avro:"distance_km"`
	CostCents   int64       `avro:"cost_cents"`
	Attempts    int32       `avro:"attempts"`
	DecidedAt   int64       `avro:"decided_at"` // timestamp-millis
}

// FulfillmentAction is what a FulfillmentRequest asks of a node.
type FulfillmentAction string

// The fulfillment actions.
const (
	ActionShip          FulfillmentAction = "SHIP"
	ActionHoldForPickup FulfillmentAction = "HOLD_FOR_PICKUP"
	ActionCancel        FulfillmentAction = "CANCEL"
)

// FulfillmentRequest is an instruction to one node's WMS. Topic:
// fulfillment-requests, key: node_id.
type FulfillmentRequest struct {
	OrderID    string            `avro:"order_id"`
	ShipmentID string            `avro:"shipment_id"`
	NodeID     string            `avro:"node_id"`
	Type       FulfillmentAction `avro:"type"`
	Priority   Priority          `avro:"priority"`
	// Lines are the lines to ship or hold; for ActionCancel, the lines to
	// cancel, empty for the whole shipment.
	Lines       []OrderLine `avro:"lines"`
	ShipTo      *Address    `avro:"ship_to"` // ActionShip only
	RequestedAt int64       `avro:"requested_at"`
}

// OrderState is where an order, or one of its lines, is in its lifecycle.
type OrderState string

// The order states.
const (
	StatePlaced           OrderState = "PLACED"
	StateOnHold           OrderState = "ON_HOLD"
	StateRouted           OrderState = "ROUTED"
	StateBackordered      OrderState = "BACKORDERED"
	StateRejected         OrderState = "REJECTED"
	StateReadyForPickup   OrderState = "READY_FOR_PICKUP"
	StatePartiallyShipped OrderState = "PARTIALLY_SHIPPED"
	StateShipped          OrderState = "SHIPPED"
	StatePickedUp         OrderState = "PICKED_UP"
	StateCancelled        OrderState = "CANCELLED"
	StateReturnPending    OrderState = "RETURN_PENDING"
	StateReturned         OrderState = "RETURNED"
)

// LineStatus is where one order line is.
type LineStatus struct {
	LineID         string     `avro:"line_id"`
	SKU            string     `avro:"sku"`
	Qty            int64      `avro:"qty"`
	State          OrderState `avro:"state"`
	NodeID         *string    `avro:"node_id"` // once routed
	QtyShipped     int64      `avro:"qty_shipped"`
	QtyCancelled   int64      `avro:"qty_cancelled"`
	QtyReturned    int64      `avro:"qty_returned"`
	UnitPriceCents int64      `avro:"unit_price_cents"`
	ShippedAt      int64      `avro:"shipped_at"` // when the last unit shipped or was picked up; 0 before
	UpdatedAt      int64      `avro:"updated_at"` // when State last changed
}

// OrderStatus is where an order is, for "where is my order". Topic:
// order-status (compacted), key: order_id.
type OrderStatus struct {
	OrderID   string       `avro:"order_id"`
	ChannelID string       `avro:"channel_id"`
	PlacedAt  int64        `avro:"placed_at"`
	State     OrderState   `avro:"state"`
	Lines     []LineStatus `avro:"lines"`
	Reason    string       `avro:"reason"`  // for people; may be empty
	Version   int64        `avro:"version"` // strictly increasing per order
	UpdatedAt int64        `avro:"updated_at"`
}

// FeedbackType is what a node's WMS reports about a requested line it
// cannot fulfil. Shipments and pickups are not feedback: the WMS reports
// them as SHIPMENT stock movements naming order_id and line_id.
type FeedbackType string

// The feedback types.
const (
	// FeedbackShortPicked: QtyShipped units were picked (they ship), QtyShort
	// could not be and need routing elsewhere.
	FeedbackShortPicked FeedbackType = "SHORT_PICKED"
	// FeedbackRejected: the node refuses QtyShort units of the line.
	FeedbackRejected FeedbackType = "REJECTED"
)

// FulfillmentFeedback is a node's WMS saying it cannot fulfil (part of) one
// line of a FulfillmentRequest, for instance "I could ship only 1 of 2".
// Topic: fulfillment-feedback, key: order_id.
type FulfillmentFeedback struct {
	// FeedbackID is chosen by the sender; feedback seen again is ignored.
	FeedbackID string       `avro:"feedback_id"`
	OrderID    string       `avro:"order_id"`
	ShipmentID string       `avro:"shipment_id"`
	NodeID     string       `avro:"node_id"`
	LineID     string       `avro:"line_id"`
	Type       FeedbackType `avro:"type"`
	QtyShipped int64        `avro:"qty_shipped"`
	QtyShort   int64        `avro:"qty_short"`
	Reason     string       `avro:"reason"` // free text from the WMS
	OccurredAt int64        `avro:"occurred_at"`
}

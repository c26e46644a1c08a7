package schemas

import (
	"math"
	"strings"
)

// This file holds representative values of every record type, used by the
// round-trip, goavro and strictness tests and as the fuzz seed corpus.

func ptr[T any](v T) *T { return &v }

const t0 = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z

var stockMovementSamples = []StockMovement{
	{MovementID: "m-1", SKU: "SKU-1", NodeID: "WH-1", Type: Receipt, Qty: 100, OccurredAt: t0},
	{MovementID: "m-2", SKU: "SKU-1", NodeID: "ST-9", Type: Shipment, Qty: 2,
		OrderID: ptr("o-7"), LineID: ptr("1"), OccurredAt: t0 + 1},
	{MovementID: "m-3", SKU: "SKU-ü€😀", NodeID: "", Type: Adjustment, Qty: -5, OrderID: ptr(""), OccurredAt: -1},
	{MovementID: strings.Repeat("x", 200), SKU: "s", NodeID: "n", Type: Damage, Qty: math.MinInt64, OccurredAt: math.MaxInt64},
	{MovementID: "m-5", SKU: "s", NodeID: "n", Type: Count, Qty: math.MaxInt64, LineID: ptr("l")},
	{MovementID: "m-6", SKU: "s", NodeID: "n", Type: TransferOut, Qty: 1},
	{MovementID: "m-7", SKU: "s", NodeID: "n", Type: TransferIn, Qty: 1},
	{MovementID: "m-8", SKU: "s", NodeID: "n", Type: ReturnRestock, Qty: 1},
}

var nodeSamples = []Node{
	{NodeID: "WH-1", Type: Warehouse, Country: "DE", Lat: 52.52, Lon: 13.405, Active: true, ShipEnabled: true,
		DailyCapacity: 5000, ShipmentCostCents: 450, SafetyStock: 2, SKUSafetyStock: map[string]int32{}},
	{NodeID: "ST-9", Type: Store, Country: "FR", Lat: -33.9, Lon: math.Copysign(0, -1), Active: true, PickupEnabled: true,
		SKUSafetyStock: map[string]int32{"SKU-1": 1, "SKU-0": 0, "a": math.MaxInt32, "ü": math.MinInt32, "": -1}},
	{NodeID: "3PL", Type: ThreePL, Lat: math.Inf(1), Lon: math.SmallestNonzeroFloat64, DailyCapacity: -1,
		SKUSafetyStock: map[string]int32{"only": 3}},
}

var channelSamples = []Channel{
	{ChannelID: "shopify-eu", Nodes: []string{"WH-1", "ST-9"}, NodeTypes: []NodeType{}, BufferUnits: 1, BufferPercent: 10},
	{ChannelID: "amazon", Nodes: []string{}, NodeTypes: []NodeType{Warehouse, ThreePL, Store}},
	{ChannelID: "pos", Nodes: manyStrings(250), NodeTypes: []NodeType{Store}, BufferUnits: math.MaxInt32, BufferPercent: 100},
}

var atsUpdateSamples = []AtsUpdate{
	{SKU: "SKU-1", Version: 1, ATS: 0, Channels: []ChannelATS{}, Nodes: []NodeATS{}, UpdatedAt: t0},
	{SKU: "SKU-1", Version: 42, ATS: 97, UpdatedAt: t0 + 5,
		Channels: []ChannelATS{{ChannelID: "shopify-eu", ATS: 87}, {ChannelID: "amazon", ATS: 97}},
		Nodes: []NodeATS{
			{NodeID: "ST-9", OnHand: 10, Reserved: 2, SafetyStock: 1, Available: 7, Active: true},
			{NodeID: "WH-1", OnHand: 100, Reserved: 10, SafetyStock: 0, Available: 90, Active: true},
			{NodeID: "WH-2", OnHand: 5, Reserved: 0, SafetyStock: 0, Available: 0, Active: false},
		}},
}

var skuStateSamples = []SKUState{
	{SKU: "SKU-1", Version: 0, Nodes: []NodeStock{}, Seen: []SeenMovement{}},
	{SKU: "SKU-1", Version: 7,
		Nodes: []NodeStock{{NodeID: "ST-9", OnHand: 10, Reserved: 2}, {NodeID: "WH-1", OnHand: -3, Reserved: 0}},
		Seen:  []SeenMovement{{IDHash: -7460143592127358093, OccurredAt: t0}, {IDHash: 42, OccurredAt: t0 + 1}}},
}

var orderEventSamples = []OrderEvent{
	{OrderID: "o-1", Type: EventPlaced, ChannelID: "shopify-eu", PlacedAt: t0, CustomerID: "c-1",
		CustomerTier: TierVIP, Priority: PriorityRush, DeliveryMethod: DeliveryShip,
		ShipTo: &Address{Country: "DE", PostalCode: "10115", Lat: 52.53, Lon: 13.38},
		Lines:  []OrderLine{{LineID: "1", SKU: "SKU-1", Qty: 2}, {LineID: "2", SKU: "SKU-2", Qty: 1}},
		Policy: ShipAvailable, LineIDs: []string{}, OccurredAt: t0},
	{OrderID: "o-2", Type: EventPlaced, ChannelID: "pos", PlacedAt: t0, CustomerID: "c-2",
		CustomerTier: TierStandard, Priority: PriorityStandard, DeliveryMethod: DeliveryPickup,
		PickupNodeID: ptr("ST-9"), Lines: []OrderLine{{LineID: "1", SKU: "SKU-1", Qty: 1}},
		Policy: ShipComplete, LineIDs: []string{}, OccurredAt: t0},
	{OrderID: "o-1", Type: EventCancelled, CustomerTier: TierStandard, Priority: PriorityStandard,
		DeliveryMethod: DeliveryShip, Policy: ShipComplete, Lines: []OrderLine{},
		LineIDs: []string{"2"}, Reason: "customer request", OccurredAt: t0 + 60_000},
}

var fulfillmentFeedbackSamples = []FulfillmentFeedback{
	{FeedbackID: "f-1", OrderID: "o-1", ShipmentID: "o-1/1", NodeID: "WH-1", LineID: "1",
		Type: FeedbackShortPicked, QtyShipped: 1, QtyShort: 1, Reason: "bin empty", OccurredAt: t0},
	{FeedbackID: "f-3", OrderID: "o-2", ShipmentID: "o-2/1", NodeID: "ST-9", LineID: "1",
		Type: FeedbackRejected, QtyShort: 1, OccurredAt: t0},
}

var reservationCommandSamples = []ReservationCommand{
	{OrderID: "o-1", LineID: "1", Type: Reserve, SKU: "SKU-1", NodeID: "WH-1", Qty: 2, Attempt: 1,
		AllowSafetyStock: true, IssuedAt: t0},
	{OrderID: "o-1", LineID: "1", Type: Release, SKU: "SKU-1", NodeID: "WH-1", Qty: 2, Attempt: 1, IssuedAt: t0},
}

var reservationResultSamples = []ReservationResult{
	{OrderID: "o-1", LineID: "1", Type: Reserve, SKU: "SKU-1", NodeID: "WH-1", Qty: 2, Attempt: 1,
		OK: true, Available: 88, DecidedAt: t0},
	{OrderID: "o-1", LineID: "2", Type: Reserve, SKU: "SKU-2", NodeID: "WH-1", Qty: 5, Attempt: 1,
		Reason: "insufficient stock", Available: 3, DecidedAt: t0},
}

var reservationSamples = []Reservation{
	{OrderID: "o-1", LineID: "1", SKU: "SKU-1", NodeID: "WH-1", Qty: 2, Attempt: 1, ReservedAt: t0},
}

var routingDecisionSamples = []RoutingDecision{
	{OrderID: "o-1", Status: DecisionRouted, Split: true, Reasons: []string{"split: no single node has all lines"}, DistanceKm: 412.5, CostCents: 1350, Attempts: 1, DecidedAt: t0,
		Shipments: []RoutedShipment{
			{ShipmentID: "o-1/1", NodeID: "WH-1", Method: DeliveryShip, Lines: []OrderLine{{LineID: "1", SKU: "SKU-1", Qty: 2, UnitPriceCents: 4999}}, DistanceKm: 400, CostCents: 900},
			{ShipmentID: "o-1/2", NodeID: "ST-9", Method: DeliveryShip, Lines: []OrderLine{{LineID: "2", SKU: "SKU-2", Qty: 1}}, DistanceKm: 12.5, CostCents: 450},
		},
		Backordered: []OrderLine{}},
	{OrderID: "o-3", Status: DecisionBackordered, Shipments: []RoutedShipment{},
		Backordered: []OrderLine{{LineID: "1", SKU: "SKU-3", Qty: 4}}, Reasons: []string{"no node has stock"}, Attempts: 3, DecidedAt: t0},
	{OrderID: "o-4", Status: DecisionRejected, Shipments: []RoutedShipment{}, Backordered: []OrderLine{},
		Reasons: []string{"unknown pickup node"}, Attempts: 0, DecidedAt: t0},
}

var fulfillmentRequestSamples = []FulfillmentRequest{
	{OrderID: "o-1", ShipmentID: "o-1/1", NodeID: "WH-1", Type: ActionShip, Priority: PriorityRush,
		Lines:  []OrderLine{{LineID: "1", SKU: "SKU-1", Qty: 2}},
		ShipTo: &Address{Country: "DE", PostalCode: "10115", Lat: 52.53, Lon: 13.38}, RequestedAt: t0},
	{OrderID: "o-2", ShipmentID: "o-2/1", NodeID: "ST-9", Type: ActionHoldForPickup, Priority: PriorityStandard,
		Lines: []OrderLine{{LineID: "1", SKU: "SKU-1", Qty: 1}}, RequestedAt: t0},
	{OrderID: "o-1", ShipmentID: "o-1/1", NodeID: "WH-1", Type: ActionCancel, Priority: PriorityStandard,
		Lines: []OrderLine{}, RequestedAt: t0},
}

var orderStatusSamples = []OrderStatus{
	{OrderID: "o-1", ChannelID: "shopify-eu", PlacedAt: t0 - 1000, State: StatePartiallyShipped, Reason: "", Version: 3, UpdatedAt: t0,
		Lines: []LineStatus{
			{LineID: "1", SKU: "SKU-1", Qty: 2, State: StateShipped, NodeID: ptr("WH-1"), QtyShipped: 2, UnitPriceCents: 4999, ShippedAt: t0, UpdatedAt: t0},
			{LineID: "2", SKU: "SKU-2", Qty: 1, State: StateCancelled, QtyCancelled: 1},
			{LineID: "3", SKU: "SKU-3", Qty: 1, State: StateReturnPending, NodeID: ptr("ST-9"), QtyShipped: 1, QtyReturned: 0, UpdatedAt: t0},
		}},
	{OrderID: "o-9", ChannelID: "pos", State: StatePlaced, Lines: []LineStatus{}, Version: 1, UpdatedAt: t0},
}

var routerOrderSamples = []RouterOrder{
	{OrderID: "o-1", Placed: orderEventSamples[0], State: StateRouted, Attempt: 0, RoundLines: []string{}, Version: 2,
		Lines: []LineStatus{{LineID: "1", SKU: "SKU-1", Qty: 2, State: StateRouted, NodeID: ptr("WH-1"), UpdatedAt: t0}},
		Holds: []Hold{{LineID: "1", SKU: "SKU-1", NodeID: "WH-1", Qty: 2}},
		Caps:  []Cap{},
		Shipments: []RoutedShipment{{ShipmentID: "o-1/1", NodeID: "WH-1", Method: DeliveryShip,
			Lines: []OrderLine{{LineID: "1", SKU: "SKU-1", Qty: 2}}, DistanceKm: 3.5, CostCents: 504}},
		NextShipment: 2, FeedbackIDs: []string{}, Reason: "one node covers all lines: WH-1", ShipmentDays: map[string]int64{"o-1/1": 20_833}},
	{OrderID: "o-2", Placed: orderEventSamples[1], State: StatePlaced, Attempt: 2, RoundLines: []string{"1", "2"}, Refused: true,
		Lines: []LineStatus{}, Holds: []Hold{{LineID: "2", SKU: "S", NodeID: "N", Qty: 1, Tentative: true, Pending: true}},
		Caps: []Cap{{SKU: "S", NodeID: "M", Available: 0}}, Shipments: []RoutedShipment{}, FeedbackIDs: []string{"f-1"},
		ShipmentDays: map[string]int64{}},
}

var nodeLoadSamples = []NodeLoad{{NodeID: "WH-1", Partition: 3, Day: 20_833, Shipments: 1200}}

func manyStrings(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "N-" + strings.Repeat("x", i%7)
	}
	return s
}

// allStates lists every OrderState symbol, for the enum coverage test.
var allStates = []OrderState{StatePlaced, StateOnHold, StateRouted, StateBackordered, StateRejected,
	StateReadyForPickup, StatePartiallyShipped, StateShipped, StatePickedUp, StateCancelled,
	StateReturnPending, StateReturned}

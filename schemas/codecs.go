package schemas

import (
	"embed"
	"errors"
)

// avsc holds the schema of every record type, one .avsc file each.
//
//go:embed avro/*.avsc avro/legacy/*.avsc
var avsc embed.FS

func mustSchema(file string) string {
	b, err := avsc.ReadFile("avro/" + file)
	if err != nil {
		panic("schemas: " + err.Error())
	}
	return string(b)
}

// The codecs of every topic, by record type. Each validates its schema with
// goavro (the schema authority) and hamba when the package is initialised,
// and panics if either rejects it.
var (
	// StockMovements reads and writes the stock-movements topic (input).
	StockMovements = newCodec[StockMovement](mustSchema("stock_movement.avsc"))
	// Nodes reads and writes the nodes topic (input, compacted).
	Nodes = newCodec[Node](mustSchema("node.avsc"))
	// Channels reads and writes the channels topic (input, compacted).
	Channels = newCodec[Channel](mustSchema("channel.avsc"))
	// ChannelsV1 reads channel records written before max_order_value_cents
	// and ship_countries existed (the inventory-only version): the channels
	// topic is compacted, so they outlive an upgrade. Never written; read
	// through DecodeChannel.
	ChannelsV1 = newCodec[Channel](mustSchema("legacy/channel_v1.avsc"))
	// AtsUpdates reads and writes the ats topic (output, compacted). Only
	// invroute writes it: Append skips the strict pass.
	AtsUpdates = newInternalCodec[AtsUpdate](mustSchema("ats_update.avsc"))
	// SKUStates reads and writes the inventory store and its changelog. Only
	// invroute writes it: Append skips the strict pass.
	SKUStates = newInternalCodec[SKUState](mustSchema("sku_state.avsc"))

	// OrderEvents reads and writes the orders topic (input).
	OrderEvents = newCodec[OrderEvent](mustSchema("order_event.avsc"))
	// FulfillmentFeedbacks reads and writes the fulfillment-feedback topic
	// (input, from the nodes' WMS).
	FulfillmentFeedbacks = newCodec[FulfillmentFeedback](mustSchema("fulfillment_feedback.avsc"))
	// ReservationCommands reads and writes the internal reservation command
	// topic (key sku).
	ReservationCommands = newCodec[ReservationCommand](mustSchema("reservation_command.avsc"))
	// ReservationResults reads and writes the internal reservation result
	// topic (key order_id).
	ReservationResults = newCodec[ReservationResult](mustSchema("reservation_result.avsc"))
	// Reservations reads and writes the inventory processor's reservation
	// store and its changelog.
	Reservations = newCodec[Reservation](mustSchema("reservation.avsc"))
	// RoutingDecisions reads and writes the routing-decisions topic (output).
	RoutingDecisions = newCodec[RoutingDecision](mustSchema("routing_decision.avsc"))
	// FulfillmentRequests reads and writes the fulfillment-requests topic
	// (output).
	FulfillmentRequests = newCodec[FulfillmentRequest](mustSchema("fulfillment_request.avsc"))
	// OrderStatuses reads and writes the order-status topic (output,
	// compacted).
	OrderStatuses = newCodec[OrderStatus](mustSchema("order_status.avsc"))
	// RouterOrders reads and writes the router store and its changelog
	// (with the canonicalising pass: it holds a map).
	RouterOrders = newCodec[RouterOrder](mustSchema("router_order.avsc"))
	// RouterOrdersV1 reads router orders stored before attempt_base existed
	// (the router's format byte 1; AttemptBase decodes as 0). Never
	// written.
	RouterOrdersV1 = newCodec[RouterOrder](mustSchema("legacy/router_order_v1.avsc"))
	// CustomerChecks, CustomerVerdicts and CustomerHistories are the
	// customer screen's internal topics and store.
	CustomerChecks    = newCodec[CustomerCheck](mustSchema("customer_check.avsc"))
	CustomerVerdicts  = newCodec[CustomerVerdict](mustSchema("customer_verdict.avsc"))
	CustomerHistories = newInternalCodec[CustomerHistory](mustSchema("customer_history.avsc"))
	// NodeLoads reads and writes the internal node load topic.
	NodeLoads = newCodec[NodeLoad](mustSchema("node_load.avsc"))
)

// DecodeChannel reads a record of the channels topic (DecodeInput) of the
// current schema or of the one before it (ChannelsV1), whose fields are a
// prefix of the current one's: the fields added since take their schema
// defaults (0 and no countries). The two cannot be mistaken for each other:
// a record of the old schema ends where the current one wants more bytes
// (ErrTruncated), and one of the current schema leaves trailing bytes to the
// old. Any other failure is the current schema's error.
func DecodeChannel(b []byte, ch *Channel, ids SchemaIDs) error {
	err := Channels.DecodeInput(b, ch, ids)
	if err == nil || !errors.Is(err, ErrTruncated) {
		return err
	}
	var old Channel
	if ChannelsV1.DecodeInput(b, &old, ids) != nil {
		return err
	}
	old.ShipCountries = []string{}
	*ch = old
	return nil
}

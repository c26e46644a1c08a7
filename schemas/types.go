package schemas

// MovementType is the kind of a stock movement reported by a WMS, a 3PL or a
// store.
type MovementType string

// The movement types. Their effect on on_hand is defined by the inventory
// processor: RECEIPT, TRANSFER_IN and RETURN_RESTOCK add qty; SHIPMENT,
// TRANSFER_OUT and DAMAGE subtract it; ADJUSTMENT adds a signed, non-zero
// delta; COUNT sets on_hand to qty.
const (
	Receipt       MovementType = "RECEIPT"
	Adjustment    MovementType = "ADJUSTMENT"
	Count         MovementType = "COUNT"
	Shipment      MovementType = "SHIPMENT"
	TransferOut   MovementType = "TRANSFER_OUT"
	TransferIn    MovementType = "TRANSFER_IN"
	ReturnRestock MovementType = "RETURN_RESTOCK"
	Damage        MovementType = "DAMAGE"
)

// StockMovement is one change of physical stock of one SKU at one node.
// Topic: stock-movements, key: sku.
type StockMovement struct {
	MovementID string       `avro:"movement_id"`
	SKU        string       `avro:"sku"`
	NodeID     string       `avro:"node_id"`
	Type       MovementType `avro:"type"`
	Qty        int64        `avro:"qty"`
	OrderID    *string      `avro:"order_id"`
	LineID     *string      `avro:"line_id"`
	OccurredAt int64        `avro:"occurred_at"` // timestamp-millis, UTC
}

// NodeType is the kind of a fulfillment node.
type NodeType string

// The node types.
const (
	Warehouse NodeType = "WAREHOUSE"
	ThreePL   NodeType = "THREE_PL"
	Store     NodeType = "STORE"
)

// Node is the configuration of one fulfillment node. Topic: nodes (compacted),
// key: node_id. A tombstone (empty value) removes the node.
type Node struct {
	NodeID            string   `avro:"node_id"`
	Type              NodeType `avro:"type"`
	Country           string   `avro:"country"` // ISO 3166-1 alpha-2
	Lat               float64  `avro:"lat"`
	Lon               float64  `avro:"lon"`
	Active            bool     `avro:"active"`
	ShipEnabled       bool     `avro:"ship_enabled"`
	PickupEnabled     bool     `avro:"pickup_enabled"`
	DailyCapacity     int32    `avro:"daily_capacity"` // shipments per day; 0 = unlimited
	ShipmentCostCents int32    `avro:"shipment_cost_cents"`
	SafetyStock       int32    `avro:"safety_stock"` // units held back per SKU at this node
	// SKUSafetyStock overrides SafetyStock for the SKUs it names.
	SKUSafetyStock map[string]int32 `avro:"sku_safety_stock"`
}

// Channel is the configuration of one sales channel. Topic: channels
// (compacted), key: channel_id. A tombstone removes the channel.
type Channel struct {
	ChannelID string `avro:"channel_id"`
	// Nodes and NodeTypes name the nodes that feed this channel's ATS: a node
	// feeds the channel if its id is in Nodes or its type is in NodeTypes. Both
	// empty means every node.
	Nodes         []string   `avro:"nodes"`
	NodeTypes     []NodeType `avro:"node_types"`
	BufferUnits   int32      `avro:"buffer_units"`
	BufferPercent int32      `avro:"buffer_percent"` // 0..100
	// MaxOrderValueCents puts orders worth more ON_HOLD for review; 0: no
	// limit.
	MaxOrderValueCents int64 `avro:"max_order_value_cents"`
	// ShipCountries are the ISO countries the channel ships to; empty:
	// every country.
	ShipCountries []string `avro:"ship_countries"`
}

// NodeATS is one node's stock of one SKU as published in an AtsUpdate.
type NodeATS struct {
	NodeID      string `avro:"node_id"`
	OnHand      int64  `avro:"on_hand"`
	Reserved    int64  `avro:"reserved"`
	SafetyStock int64  `avro:"safety_stock"`
	Available   int64  `avro:"available"` // max(0, on_hand - reserved - safety_stock) at an active node, else 0
	Active      bool   `avro:"active"`
}

// ChannelATS is what one channel may sell of one SKU.
type ChannelATS struct {
	ChannelID string `avro:"channel_id"`
	ATS       int64  `avro:"ats"`
}

// AtsUpdate is the Available-To-Sell of one SKU. Topic: ats (compacted), key:
// sku. Version strictly increases per SKU, across restarts and partition
// moves.
type AtsUpdate struct {
	SKU       string       `avro:"sku"`
	Version   int64        `avro:"version"`
	ATS       int64        `avro:"ats"`
	Channels  []ChannelATS `avro:"channels"`
	Nodes     []NodeATS    `avro:"nodes"`
	UpdatedAt int64        `avro:"updated_at"` // timestamp-millis: the newest input record time that produced it
}

// NodeStock is the stored stock of one SKU at one node.
type NodeStock struct {
	NodeID   string `avro:"node_id"`
	OnHand   int64  `avro:"on_hand"`
	Reserved int64  `avro:"reserved"`
}

// SeenMovement is one recently applied movement, kept for idempotency: the
// 64-bit xxhash of its movement_id (a hash keeps the state small and the
// look-up a scan of integers) and its occurred_at.
type SeenMovement struct {
	IDHash     int64 `avro:"id_hash"`
	OccurredAt int64 `avro:"occurred_at"`
}

// SKUState is the inventory processor's stored state of one SKU: the value
// of the inventory store and of its changelog topic (key: sku).
type SKUState struct {
	SKU string `avro:"sku"`
	// Version is the version of the last AtsUpdate emitted for this SKU.
	Version int64       `avro:"version"`
	Nodes   []NodeStock `avro:"nodes"` // sorted by NodeID
	// Seen is legacy: the ids of recently applied movements that versions
	// before the partition window (processors/inventory) kept per SKU,
	// oldest first. They are honoured until they age out; nothing is added.
	Seen []SeenMovement `avro:"seen"`
}

// GetSeen returns s.Seen, or nil for a nil state.
func (s *SKUState) GetSeen() []SeenMovement {
	if s == nil {
		return nil
	}
	return s.Seen
}

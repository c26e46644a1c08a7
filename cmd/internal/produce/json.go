// Package produce is `invroute produce`: it reads events written in JSON
// (one object a line, or one JSON array of objects), checks them strictly,
// encodes them with invroute's Avro codecs and produces them to the input
// topics, keyed as the engine expects.
//
// Every object names its kind and carries the fields of the kind's Avro
// schema, by their schema names:
//
//	{"kind": "movement", "movement_id": "m1", "sku": "SKU-1", "node_id": "W-PAR", "type": "RECEIPT", "qty": 10}
//	{"kind": "node", "node_id": "W-PAR", "type": "WAREHOUSE", "country": "FR", "lat": 48.86, "lon": 2.35, "active": true, "ship_enabled": true}
//	{"kind": "order", "order_id": "o1", "type": "PLACED", "channel_id": "web", "policy": "SHIP_AVAILABLE",
//	 "ship_to": {"country": "FR", "postal_code": "75001", "lat": 48.86, "lon": 2.35},
//	 "lines": [{"line_id": "1", "sku": "SKU-1", "qty": 2}]}
//
// Kinds (and the topic and key of their records): movement
// (stock-movements, sku), node (nodes, node_id), channel (channels,
// channel_id), order (orders, order_id), feedback (fulfillment-feedback,
// order_id); the topic names work as kinds too. A node or channel with
// "delete": true is a tombstone (only its id is read).
//
// Decoding is strict: an unknown field, a field of the wrong type, an
// enum value that is not one of its symbols, a field set twice or a
// missing required field is an error naming the field and its line, and
// nothing is sent. An absent optional field takes its zero value (0,
// false, "", empty list, null), except: occurred_at defaults to now,
// placed_at of a PLACED order to its occurred_at, and an order's
// customer_tier, priority and delivery_method to STANDARD, STANDARD and
// SHIP (policy is required for PLACED). Timestamps are milliseconds since
// the epoch or RFC 3339 strings.
package produce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
)

// Event is one parsed input event, encoded and ready to produce.
type Event struct {
	Kind  string // movement, node, channel, order, feedback
	Topic string // without the prefix
	Key   string
	Value []byte // nil: a tombstone
	Line  int    // where the object starts in the input
	// Decoded is the value as decoded (a *schemas.StockMovement, ...), nil
	// for a tombstone.
	Decoded any
}

// kindSpec describes one kind of event.
type kindSpec struct {
	name     string
	topic    string
	required []string // fields that must be present
	newValue func() any
	// finish checks the decoded value, fills defaults, and returns the key
	// and the encoded value.
	finish func(v any, present map[string]bool, now time.Time) (key string, value []byte, err error)
	// deletable kinds accept "delete": true (a tombstone keyed by idField).
	idField string
}

var kinds = []*kindSpec{
	{name: "movement", topic: "stock-movements", required: []string{"movement_id", "sku", "node_id", "type", "qty"},
		newValue: func() any { return new(schemas.StockMovement) },
		finish: func(v any, present map[string]bool, now time.Time) (string, []byte, error) {
			m := v.(*schemas.StockMovement)
			if !present["occurred_at"] {
				m.OccurredAt = now.UnixMilli()
			}
			if err := inventory.Validate([]byte(m.SKU), m, now.UnixMilli()); err != nil {
				return "", nil, errors.New(strings.TrimPrefix(err.Error(), "inventory: invalid input: "))
			}
			if (m.OrderID == nil) != (m.LineID == nil) {
				return "", nil, errors.New("order_id and line_id go together: set both or neither")
			}
			b, err := schemas.StockMovements.Encode(m)
			return m.SKU, b, err
		}},
	{name: "node", topic: "nodes", idField: "node_id", required: []string{"node_id", "type"},
		newValue: func() any { return new(schemas.Node) },
		finish: func(v any, _ map[string]bool, _ time.Time) (string, []byte, error) {
			n := v.(*schemas.Node)
			switch err := schemas.CheckID("node_id", n.NodeID); {
			case err != nil:
				return "", nil, err
			case n.Lat < -90 || n.Lat > 90 || n.Lon < -180 || n.Lon > 180:
				return "", nil, fmt.Errorf("lat %g / lon %g out of range", n.Lat, n.Lon)
			case n.DailyCapacity < 0 || n.ShipmentCostCents < 0 || n.SafetyStock < 0:
				return "", nil, errors.New("daily_capacity, shipment_cost_cents and safety_stock must not be negative")
			}
			if err := catalog.CheckNode(n); err != nil { // what the engine's catalog skips
				return "", nil, err
			}
			if n.SKUSafetyStock == nil {
				n.SKUSafetyStock = map[string]int32{}
			}
			b, err := schemas.Nodes.Encode(n)
			return n.NodeID, b, err
		}},
	{name: "channel", topic: "channels", idField: "channel_id", required: []string{"channel_id"},
		newValue: func() any { return new(schemas.Channel) },
		finish: func(v any, _ map[string]bool, _ time.Time) (string, []byte, error) {
			c := v.(*schemas.Channel)
			switch err := schemas.CheckID("channel_id", c.ChannelID); {
			case err != nil:
				return "", nil, err
			case c.BufferPercent < 0 || c.BufferPercent > 100 || c.BufferUnits < 0:
				return "", nil, errors.New("buffer_percent must be in [0, 100] and buffer_units not negative")
			}
			if err := catalog.CheckChannel(c); err != nil { // what the engine's catalog skips
				return "", nil, err
			}
			c.Nodes, c.NodeTypes, c.ShipCountries = nonNil(c.Nodes), nonNil(c.NodeTypes), nonNil(c.ShipCountries)
			b, err := schemas.Channels.Encode(c)
			return c.ChannelID, b, err
		}},
	{name: "order", topic: "orders", required: []string{"order_id", "type"},
		newValue: func() any { return new(schemas.OrderEvent) },
		finish:   finishOrder},
	{name: "feedback", topic: "fulfillment-feedback",
		required: []string{"feedback_id", "order_id", "shipment_id", "node_id", "line_id", "type", "qty_short"},
		newValue: func() any { return new(schemas.FulfillmentFeedback) },
		finish: func(v any, present map[string]bool, now time.Time) (string, []byte, error) {
			f := v.(*schemas.FulfillmentFeedback)
			if !present["occurred_at"] {
				f.OccurredAt = now.UnixMilli()
			}
			switch {
			case f.FeedbackID == "" || f.OrderID == "":
				return "", nil, errors.New("feedback_id and order_id must not be empty")
			case f.QtyShort <= 0 || f.QtyShipped < 0:
				return "", nil, fmt.Errorf("qty_short must be positive (got %d) and qty_shipped not negative (got %d)", f.QtyShort, f.QtyShipped)
			}
			if err := router.ValidateFeedback([]byte(f.OrderID), f); err != nil { // and the router's checks
				return "", nil, routerError(err)
			}
			b, err := schemas.FulfillmentFeedbacks.Encode(f)
			return f.OrderID, b, err
		}},
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func finishOrder(v any, present map[string]bool, now time.Time) (string, []byte, error) {
	o := v.(*schemas.OrderEvent)
	if !present["occurred_at"] {
		o.OccurredAt = now.UnixMilli()
	}
	if !present["customer_tier"] {
		o.CustomerTier = schemas.TierStandard
	}
	if !present["priority"] {
		o.Priority = schemas.PriorityStandard
	}
	if !present["delivery_method"] {
		o.DeliveryMethod = schemas.DeliveryShip
	}
	if o.OrderID == "" {
		return "", nil, errors.New("order_id must not be empty")
	}
	if o.Type == schemas.EventPlaced {
		if !present["placed_at"] {
			o.PlacedAt = o.OccurredAt
		}
		var missing []string
		for _, f := range []string{"channel_id", "lines", "policy"} {
			if !present[f] {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			return "", nil, fmt.Errorf("a PLACED order needs %s", strings.Join(missing, ", "))
		}
		switch {
		case len(o.Lines) == 0:
			return "", nil, errors.New("a PLACED order needs at least one line")
		case o.DeliveryMethod == schemas.DeliveryShip && o.ShipTo == nil:
			return "", nil, errors.New("a SHIP order needs ship_to")
		case o.DeliveryMethod == schemas.DeliveryPickup && (o.PickupNodeID == nil || *o.PickupNodeID == ""):
			return "", nil, errors.New("a PICKUP order needs pickup_node_id")
		}
		ids := map[string]bool{}
		for _, l := range o.Lines {
			switch {
			case l.LineID == "" || l.SKU == "":
				return "", nil, errors.New("every line needs line_id and sku")
			case l.Qty <= 0:
				return "", nil, fmt.Errorf("line %s: qty must be positive, got %d", l.LineID, l.Qty)
			case l.UnitPriceCents < 0:
				return "", nil, fmt.Errorf("line %s: unit_price_cents must not be negative", l.LineID)
			case ids[l.LineID]:
				return "", nil, fmt.Errorf("line_id %s appears twice", l.LineID)
			}
			ids[l.LineID] = true
		}
		// Then all the router checks (ids, coordinates, ranges).
		if err := router.New(router.Config{}).ValidatePlaced(o, now.UnixMilli()); err != nil {
			return "", nil, routerError(err)
		}
	} else if !present["policy"] {
		o.Policy = schemas.ShipComplete // meaningless here, but an enum must hold a symbol
	}
	if o.Type == schemas.EventAddressChanged && o.ShipTo == nil {
		return "", nil, errors.New("ADDRESS_CHANGED needs ship_to")
	}
	if err := router.New(router.Config{}).ValidateEvent([]byte(o.OrderID), o); err != nil { // what every event needs
		return "", nil, routerError(err)
	}
	o.Lines, o.LineIDs = nonNil(o.Lines), nonNil(o.LineIDs)
	b, err := schemas.OrderEvents.Encode(o)
	return o.OrderID, b, err
}

// routerError is the router's refusal, without its prefix.
func routerError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "router: invalid input: "))
}

// kindByName finds a kind by its name or its topic's.
func kindByName(s string) *kindSpec {
	for _, k := range kinds {
		if s == k.name || s == k.topic {
			return k
		}
	}
	return nil
}

// KindNames lists the kinds, for messages.
func KindNames() string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.name+" ("+k.topic+")")
	}
	return strings.Join(out, ", ")
}

// enums are the symbols of every enum type of the input schemas.
var enums = map[reflect.Type][]string{
	reflect.TypeFor[schemas.MovementType]():      {"RECEIPT", "ADJUSTMENT", "COUNT", "SHIPMENT", "TRANSFER_OUT", "TRANSFER_IN", "RETURN_RESTOCK", "DAMAGE"},
	reflect.TypeFor[schemas.NodeType]():          {"WAREHOUSE", "THREE_PL", "STORE"},
	reflect.TypeFor[schemas.OrderEventType]():    {"PLACED", "CANCELLED", "RELEASED", "ADDRESS_CHANGED", "RETURN_AUTHORIZED"},
	reflect.TypeFor[schemas.CustomerTier]():      {"STANDARD", "VIP"},
	reflect.TypeFor[schemas.Priority]():          {"STANDARD", "RUSH"},
	reflect.TypeFor[schemas.DeliveryMethod]():    {"SHIP", "PICKUP"},
	reflect.TypeFor[schemas.FulfillmentPolicy](): {"SHIP_COMPLETE", "SHIP_AVAILABLE"},
	reflect.TypeFor[schemas.FeedbackType]():      {"SHORT_PICKED", "REJECTED"},
}

// timestampFields are the timestamp-millis fields: millis or RFC 3339.
var timestampFields = map[string]bool{"occurred_at": true, "placed_at": true}

// MaxInput is the most bytes of input read.
const MaxInput = 64 << 20

// Parse reads the events of data: JSON objects one after another (one a
// line, as JSON Lines), or one JSON array of objects. now fills absent
// timestamps. Every problem is reported with its line; the first stops
// the parse.
func Parse(data []byte, now time.Time) ([]Event, error) {
	p := &parser{data: data, now: now}
	for i, c := range data {
		if c == '\n' {
			p.newlines = append(p.newlines, i)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("no events in the input")
	}
	array := trimmed[0] == '['
	if array {
		if _, err := dec.Token(); err != nil {
			return nil, p.syntax(dec, err)
		}
	}
	var evs []Event
	for {
		if array && !dec.More() {
			if _, err := dec.Token(); err != nil { // ]
				return nil, p.syntax(dec, err)
			}
			if _, err := dec.Token(); err != io.EOF {
				return nil, fmt.Errorf("line %d: more input after the JSON array", p.line(int(dec.InputOffset())))
			}
			break
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF && !array {
			break
		}
		if err != nil {
			return nil, p.syntax(dec, err)
		}
		start := int(dec.InputOffset()) - len(raw)
		ev, err := p.event(raw, start)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, errors.New("no events in the input")
	}
	return evs, nil
}

type parser struct {
	data     []byte
	newlines []int // offsets of '\n'
	now      time.Time
}

// line is the 1-based line of byte offset off.
func (p *parser) line(off int) int {
	return sort.SearchInts(p.newlines, off) + 1
}

func (p *parser) syntax(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	off := int(dec.InputOffset())
	if errors.As(err, &se) {
		off = int(se.Offset)
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return fmt.Errorf("line %d: bad JSON: unexpected end of input", p.line(len(p.data)))
	}
	return fmt.Errorf("line %d: bad JSON: %v", p.line(max(0, off-1)), err)
}

// event decodes one object that starts at byte start.
func (p *parser) event(raw json.RawMessage, start int) (Event, error) {
	line := p.line(start)
	if len(raw) == 0 || raw[0] != '{' {
		return Event{}, fmt.Errorf("line %d: an event must be a JSON object, not %s", line, describe(raw))
	}
	var head struct {
		Kind   *string `json:"kind"`
		Delete *bool   `json:"delete"`
	}
	// Only to find the kind; the strict walk below checks everything.
	_ = json.Unmarshal(raw, &head)
	if head.Kind == nil {
		return Event{}, fmt.Errorf("line %d: the event has no \"kind\" (one of %s)", line, KindNames())
	}
	k := kindByName(*head.Kind)
	if k == nil {
		return Event{}, fmt.Errorf("line %d: unknown kind %q (one of %s)", line, *head.Kind, KindNames())
	}
	w := &walker{p: p, dec: json.NewDecoder(bytes.NewReader(raw)), base: start, present: map[string]bool{}, kind: k}
	w.dec.UseNumber()
	if head.Delete != nil && *head.Delete {
		if k.idField == "" {
			return Event{}, fmt.Errorf("line %d: %s events cannot be deleted (only node and channel)", line, k.name)
		}
		var id string
		if err := w.tombstone(&id); err != nil {
			return Event{}, err
		}
		return Event{Kind: k.name, Topic: k.topic, Key: id, Line: line}, nil
	}
	v := k.newValue()
	if err := w.object(reflect.ValueOf(v).Elem(), "", true); err != nil {
		return Event{}, err
	}
	var missing []string
	for _, f := range k.required {
		if !w.present[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return Event{}, fmt.Errorf("line %d: %s: missing field %s", line, k.name, strings.Join(missing, ", "))
	}
	key, value, err := k.finish(v, w.present, p.now)
	if err != nil {
		return Event{}, fmt.Errorf("line %d: %s: %w", line, k.name, err)
	}
	return Event{Kind: k.name, Topic: k.topic, Key: key, Value: value, Line: line, Decoded: v}, nil
}

func describe(raw []byte) string {
	switch {
	case len(raw) == 0:
		return "nothing"
	case raw[0] == '[':
		return "an array"
	case raw[0] == '"':
		return "a string"
	}
	return string(raw)
}

// walker decodes one object token by token, so that every error names its
// field and line.
type walker struct {
	p       *parser
	dec     *json.Decoder
	base    int // offset of the object in the input
	present map[string]bool
	kind    *kindSpec
}

func (w *walker) line() int { return w.p.line(w.base + int(w.dec.InputOffset())) }

func (w *walker) errf(field, format string, args ...any) error {
	return fmt.Errorf("line %d: %s: field %s: %s", w.line(), w.kind.name, field, fmt.Sprintf(format, args...))
}

func (w *walker) token() (json.Token, error) {
	t, err := w.dec.Token()
	if err != nil {
		return nil, fmt.Errorf("line %d: bad JSON: %v", w.line(), err)
	}
	return t, nil
}

// fields maps the schema names of a struct's fields to their indexes.
func fields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("avro"); name != "" {
			m[name] = i
		}
	}
	return m
}

// object decodes a JSON object into the struct v; top is the event itself
// (which has "kind" and "delete").
func (w *walker) object(v reflect.Value, path string, top bool) error {
	if t, err := w.token(); err != nil {
		return err
	} else if t != json.Delim('{') {
		return w.errf(strings.TrimSuffix(path, "."), "expected an object")
	}
	return w.objectBody(v, path, top, "fields of "+w.kind.name)
}

// value decodes the next JSON value into v, the field at path.
func (w *walker) value(v reflect.Value, path string) error {
	name := path[strings.LastIndex(path, ".")+1:]
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	if v.Kind() == reflect.Struct {
		return w.object(v, path+".", false)
	}
	t, err := w.token()
	if err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.Pointer:
		if t == nil {
			v.SetZero()
			return nil
		}
		nv := reflect.New(v.Type().Elem())
		if nv.Elem().Kind() == reflect.Struct {
			if t != json.Delim('{') {
				return w.errf(path, "expected an object or null, got %s", tokenKind(t))
			}
			// object() reads the '{' itself: decode the rest by hand.
			if err := w.objectBody(nv.Elem(), path+".", false, "fields"); err != nil {
				return err
			}
		} else if err := w.scalar(nv.Elem(), t, path, name); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	case reflect.Slice:
		if t != json.Delim('[') {
			return w.errf(path, "expected a list, got %s", tokenKind(t))
		}
		s := reflect.MakeSlice(v.Type(), 0, 0)
		for n := 0; w.dec.More(); n++ {
			e := reflect.New(v.Type().Elem()).Elem()
			if err := w.value(e, fmt.Sprintf("%s[%d]", path, n)); err != nil {
				return err
			}
			s = reflect.Append(s, e)
		}
		if _, err := w.token(); err != nil { // ]
			return err
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if t != json.Delim('{') {
			return w.errf(path, "expected an object, got %s", tokenKind(t))
		}
		m := reflect.MakeMap(v.Type())
		for w.dec.More() {
			kt, err := w.token()
			if err != nil {
				return err
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := w.value(e, path+"."+kt.(string)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(kt.(string)).Convert(v.Type().Key()), e)
		}
		if _, err := w.token(); err != nil {
			return err
		}
		v.Set(m)
		return nil
	}
	return w.scalar(v, t, path, name)
}

// objectBody is object after its '{' was read; an unknown field's error
// lists the fields after label.
func (w *walker) objectBody(v reflect.Value, path string, top bool, label string) error {
	idx := fields(v.Type())
	seen := map[string]bool{}
	for w.dec.More() {
		t, err := w.token()
		if err != nil {
			return err
		}
		name := t.(string)
		full := path + name
		if seen[name] {
			return w.errf(full, "set twice")
		}
		seen[name] = true
		if top && (name == "kind" || name == "delete") {
			if err := w.head(name); err != nil {
				return err
			}
			continue
		}
		i, ok := idx[name]
		if !ok {
			return w.errf(full, "unknown field (%s: %s)", label, strings.Join(slices.Sorted(maps.Keys(idx)), ", "))
		}
		if top {
			w.present[name] = true
		}
		if err := w.value(v.Field(i), full); err != nil {
			return err
		}
	}
	_, err := w.token() // }
	return err
}

func tokenKind(t json.Token) string {
	switch t := t.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return fmt.Sprintf("the string %q", t)
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return "a list"
	}
	return fmt.Sprint(t)
}

// scalar sets v from the scalar token t.
func (w *walker) scalar(v reflect.Value, t json.Token, path, name string) error {
	if d, ok := t.(json.Delim); ok {
		// skip the composite value so the message is about its type
		_ = d
		return w.errf(path, "expected %s, got %s", want(v, name), tokenKind(t))
	}
	if syms, ok := enums[v.Type()]; ok {
		s, isStr := t.(string)
		if !isStr {
			return w.errf(path, "expected one of %s, got %s", strings.Join(syms, ", "), tokenKind(t))
		}
		if !slices.Contains(syms, s) {
			return w.errf(path, "%q is not one of %s", s, strings.Join(syms, ", "))
		}
		v.SetString(s)
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := t.(string)
		if !ok {
			return w.errf(path, "expected a string, got %s", tokenKind(t))
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := t.(bool)
		if !ok {
			return w.errf(path, "expected true or false, got %s", tokenKind(t))
		}
		v.SetBool(b)
	case reflect.Int32, reflect.Int64:
		if s, ok := t.(string); ok && timestampFields[name] && v.Kind() == reflect.Int64 {
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return w.errf(path, "%q is not an RFC 3339 time (2026-11-27T10:00:00Z) or milliseconds since the epoch", s)
			}
			v.SetInt(ts.UnixMilli())
			return nil
		}
		n, ok := t.(json.Number)
		if !ok {
			return w.errf(path, "expected %s, got %s", want(v, name), tokenKind(t))
		}
		i, err := n.Int64()
		if err != nil || (v.Kind() == reflect.Int32 && (i < math.MinInt32 || i > math.MaxInt32)) {
			return w.errf(path, "%s is not %s", n, want(v, name))
		}
		v.SetInt(i)
	case reflect.Float64:
		n, ok := t.(json.Number)
		if !ok {
			return w.errf(path, "expected a number, got %s", tokenKind(t))
		}
		f, err := n.Float64()
		if err != nil {
			return w.errf(path, "%s is not a number", n)
		}
		v.SetFloat(f)
	default:
		return w.errf(path, "unsupported type %s", v.Type())
	}
	return nil
}

func want(v reflect.Value, name string) string {
	switch {
	case timestampFields[name]:
		return "milliseconds since the epoch or an RFC 3339 time"
	case v.Kind() == reflect.Int32:
		return "a 32-bit integer"
	case v.Kind() == reflect.Int64:
		return "an integer"
	case v.Kind() == reflect.String:
		return "a string"
	}
	return v.Type().String()
}

// head reads the value of "kind" (a string) or "delete" (a boolean), which
// event has already taken in: a value of another type is an error, not a
// field skipped.
func (w *walker) head(name string) error {
	var err error
	if name == "kind" {
		var s string
		err = w.dec.Decode(&s)
	} else {
		var b bool
		err = w.dec.Decode(&b)
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return w.errf(name, "expected a %s, got %s", te.Type, te.Value)
		}
		return w.errf(name, "%v", err)
	}
	return nil
}

// tombstone reads a deletion: only the id field (and kind, delete).
func (w *walker) tombstone(id *string) error {
	if _, err := w.token(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for w.dec.More() {
		t, err := w.token()
		if err != nil {
			return err
		}
		name := t.(string)
		if seen[name] {
			return w.errf(name, "set twice")
		}
		seen[name] = true
		switch name {
		case "kind", "delete":
			if err := w.head(name); err != nil {
				return err
			}
		case w.kind.idField:
			t, err := w.token()
			if err != nil {
				return err
			}
			s, ok := t.(string)
			if !ok || s == "" {
				return w.errf(name, "expected a non-empty string, got %s", tokenKind(t))
			}
			*id = s
		default:
			return w.errf(name, "a deletion has only kind, delete and %s", w.kind.idField)
		}
	}
	if *id == "" {
		return fmt.Errorf("line %d: %s deletion: missing field %s", w.line(), w.kind.name, w.kind.idField)
	}
	return nil
}

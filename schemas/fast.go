package schemas

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

// The hot path of the engine decodes one StockMovement per input record. The
// general Decode walks the bytes twice (the strict check, then hamba), and
// hamba carves strings out of shared 1 KiB blocks, which a cache of SKU
// states then pins. decodeMovement reads the record once, with the check's
// own primitives (so with the same strictness: minimal varints, UTF-8,
// MaxStringBytes, enum range, union branch, no trailing bytes), and puts the
// record's strings in one allocation.
//
// It is an accelerator, never the judge: when it refuses, Decode runs the
// general path, which gives the error (with its field) or, should the fast
// path ever be stricter, the value. FuzzMovementFastPath checks that every
// record it accepts decodes to exactly what the general path gives.

// movementSymbols are the MovementType symbols by enum index, as in the
// schema (read at start-up, in init).
var movementSymbols []MovementType

// decodeMovement sets *m to the StockMovement in b and reports whether it
// could; on false, *m is unspecified.
func decodeMovement(b []byte, m *StockMovement) bool {
	r := reader{b: b}
	var spans [5][2]int // movement_id, sku, node_id, order_id, line_id: [start, end) in b
	str := func(i int) bool {
		s, err := r.str()
		spans[i] = [2]int{r.pos - len(s), r.pos}
		return err == nil
	}
	optStr := func(i int) (bool, bool) { // present, ok
		branch, err := r.varint()
		switch {
		case err != nil:
			return false, false
		case branch == 0:
			return false, true
		case branch == 1:
			return true, str(i)
		}
		return false, false
	}
	if !str(0) || !str(1) || !str(2) {
		return false
	}
	typ, err := r.int()
	if err != nil || typ < 0 || typ >= int64(len(movementSymbols)) {
		return false
	}
	qty, err := r.varint()
	if err != nil {
		return false
	}
	hasOrder, ok := optStr(3)
	if !ok {
		return false
	}
	hasLine, ok := optStr(4)
	if !ok {
		return false
	}
	at, err := r.varint()
	if err != nil || r.pos != len(b) {
		return false
	}
	// One string holds every string field: they are slices of it.
	all := string(b[spans[0][0]:])
	base := spans[0][0]
	sub := func(i int) string { return all[spans[i][0]-base : spans[i][1]-base] }
	*m = StockMovement{MovementID: sub(0), SKU: sub(1), NodeID: sub(2), Type: movementSymbols[typ],
		Qty: qty, OccurredAt: at}
	if hasOrder || hasLine {
		ids := new([2]string) // one allocation for both pointers
		if hasOrder {
			ids[0] = sub(3)
			m.OrderID = &ids[0]
		}
		if hasLine {
			ids[1] = sub(4)
			m.LineID = &ids[1]
		}
	}
	return true
}

// The engine encodes one AtsUpdate and one SKUState per SKU and transaction.
// Both are internal records (only invroute writes them, from values it
// built) of longs, strings, booleans and arrays of records, whose canonical
// encoding the functions below write directly, without hamba's reflection.
// So is the ReservationResult, which is not internal: its encoder checks
// what the strict pass would. TestFastEncoders and FuzzFastEncoders check
// them byte for byte against hamba, TestFastEncoderLeavesBadValuesToHamba
// the refusals.

// appendString appends an Avro string (appendLong is in check.go).
func appendString(dst []byte, s string) []byte {
	return append(appendLong(dst, int64(len(s))), s...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// appendCount writes an array's one block header (nothing for an empty
// array: its terminating 0 follows).
func appendCount(dst []byte, n int) []byte {
	if n == 0 {
		return dst
	}
	return appendLong(dst, int64(n))
}

func appendAtsUpdate(dst []byte, u *AtsUpdate) ([]byte, bool) {
	dst = appendString(dst, u.SKU)
	dst = appendLong(dst, u.Version)
	dst = appendLong(dst, u.ATS)
	dst = appendCount(dst, len(u.Channels))
	for i := range u.Channels {
		c := &u.Channels[i]
		dst = appendLong(appendString(dst, c.ChannelID), c.ATS)
	}
	dst = append(dst, 0)
	dst = appendCount(dst, len(u.Nodes))
	for i := range u.Nodes {
		n := &u.Nodes[i]
		dst = appendString(dst, n.NodeID)
		dst = appendLong(dst, n.OnHand)
		dst = appendLong(dst, n.Reserved)
		dst = appendLong(dst, n.SafetyStock)
		dst = appendLong(dst, n.Available)
		dst = appendBool(dst, n.Active)
	}
	dst = append(dst, 0)
	return appendLong(dst, u.UpdatedAt), true
}

func appendSKUState(dst []byte, s *SKUState) ([]byte, bool) {
	dst = appendString(dst, s.SKU)
	dst = appendLong(dst, s.Version)
	dst = appendCount(dst, len(s.Nodes))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		dst = appendLong(appendLong(appendString(dst, n.NodeID), n.OnHand), n.Reserved)
	}
	dst = append(dst, 0)
	dst = appendCount(dst, len(s.Seen))
	for i := range s.Seen {
		dst = appendLong(appendLong(dst, s.Seen[i].IDHash), s.Seen[i].OccurredAt)
	}
	return append(dst, 0), true
}

// resultOps are the ReservationOp symbols in schema order (init).
var resultOps []ReservationOp

// appendReservationResult writes a ReservationResult (the notice of every
// SHIPMENT and RETURN_RESTOCK that names an order line, and the answer to
// every reservation command). Its strings come from input records (ids) and
// from them (the reason names the node), so it is not an internal codec: a
// value the strict pass would refuse (a Type that is not a symbol, a string
// that is not UTF-8 or is longer than MaxStringBytes) goes to the general
// path, which refuses it.
func appendReservationResult(dst []byte, r *ReservationResult) ([]byte, bool) {
	op := slices.Index(resultOps, r.Type)
	if op < 0 {
		return dst, false
	}
	for _, s := range [...]string{r.OrderID, r.LineID, r.SKU, r.NodeID, r.Reason} {
		if len(s) > MaxStringBytes || !utf8.ValidString(s) {
			return dst, false
		}
	}
	dst = appendString(appendString(dst, r.OrderID), r.LineID)
	dst = appendLong(dst, int64(op))
	dst = appendString(appendString(dst, r.SKU), r.NodeID)
	dst = appendLong(dst, r.Qty)
	dst = appendLong(dst, int64(r.Attempt)) // an Avro int: the same zig-zag varint
	dst = appendBool(dst, r.OK)
	dst = appendString(dst, r.Reason)
	return appendLong(appendLong(dst, r.Available), r.DecidedAt), true
}

// enumSymbols returns the symbols of the enum field of c's record schema,
// in schema order (the order of their encoded indexes).
func enumSymbols[E ~string, T any](c *Codec[T], field string) []E {
	var out []E
	for _, f := range c.schema.(*avro.RecordSchema).Fields() {
		if e, ok := f.Type().(*avro.EnumSchema); ok && f.Name() == field {
			for _, sym := range e.Symbols() {
				out = append(out, E(sym))
			}
		}
	}
	if len(out) == 0 {
		panic(fmt.Sprintf("schemas: %s has no enum field %s", c.name, field))
	}
	return out
}

// mustLayout panics unless the codec's schema has the layout a fast path
// reads or writes: a changed schema must change its fast path too.
func mustLayout[T any](c *Codec[T], want string) {
	if got := c.prog.layout(); got != want {
		panic(fmt.Sprintf("schemas: %s has layout %s, its fast path handles %s", c.name, got, want))
	}
}

// layout describes a compiled schema as a string of kinds, for mustLayout.
func (n *node) layout() string {
	switch n.kind {
	case kRecord:
		s := "{"
		for _, f := range n.fields {
			s += f.layout()
		}
		return s + "}"
	case kArray:
		return "[" + n.items.layout() + "]"
	case kString:
		return "s"
	case kLong:
		return "l"
	case kInt:
		return "i"
	case kBool:
		return "b"
	case kEnum:
		return "e"
	case kNull:
		return "n"
	case kUnion:
		s := "("
		for _, f := range n.fields {
			s += f.layout()
		}
		return s + ")"
	}
	return "?"
}

func init() {
	mustLayout(StockMovements, "{sssel(ns)(ns)l}")
	movementSymbols = enumSymbols[MovementType](StockMovements, "type")
	StockMovements.fast = decodeMovement
	mustLayout(AtsUpdates, "{sll[{sl}][{sllllb}]l}")
	AtsUpdates.fastAppend = appendAtsUpdate
	mustLayout(SKUStates, "{sl[{sll}][{ll}]}")
	SKUStates.fastAppend = appendSKUState
	mustLayout(ReservationResults, "{ssesslibsll}")
	resultOps = enumSymbols[ReservationOp](ReservationResults, "type")
	ReservationResults.fastAppend = appendReservationResult
}

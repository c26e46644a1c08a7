package schemas

import (
	"fmt"
	"slices"

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
// schema (checked at start-up by fastMovement).
var movementSymbols []MovementType

// fastMovement returns decodeMovement if the StockMovement schema still has
// the layout decodeMovement reads, and panics otherwise: a changed schema
// must change the fast path too.
func fastMovement(c *Codec[StockMovement]) func([]byte, *StockMovement) bool {
	want := []kind{kString, kString, kString, kEnum, kLong, kUnion, kUnion, kLong}
	var got []kind
	for _, f := range c.prog.fields {
		got = append(got, f.kind)
	}
	optString := func(n *node) bool {
		return len(n.fields) == 2 && n.fields[0].kind == kNull && n.fields[1].kind == kString
	}
	if !slices.Equal(got, want) || !optString(c.prog.fields[5]) || !optString(c.prog.fields[6]) {
		panic(fmt.Sprintf("schemas: StockMovement fields are %v, the fast decoder reads %v", got, want))
	}
	for _, f := range c.schema.(*avro.RecordSchema).Fields() {
		if e, ok := f.Type().(*avro.EnumSchema); ok {
			for _, s := range e.Symbols() {
				movementSymbols = append(movementSymbols, MovementType(s))
			}
		}
	}
	return decodeMovement
}

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

func init() { StockMovements.fast = fastMovement(StockMovements) }

// The engine encodes one AtsUpdate and one SKUState per SKU and transaction.
// Both are internal records (only invroute writes them, from values it
// built) of longs, strings, booleans and arrays of records, whose canonical
// encoding the functions below write directly, without hamba's reflection.
// TestFastEncoders and FuzzFastEncoders check them byte for byte against
// hamba.

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

func appendAtsUpdate(dst []byte, u *AtsUpdate) []byte {
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
	return appendLong(dst, u.UpdatedAt)
}

func appendSKUState(dst []byte, s *SKUState) []byte {
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
	return append(dst, 0)
}

// fastAppend returns fn if the codec's schema has the layout fn writes,
// which it checks against the compiled schema, and panics otherwise.
func fastAppend[T any](c *Codec[T], layout string, fn func([]byte, *T) []byte) func([]byte, *T) []byte {
	if got := c.prog.layout(); got != layout {
		panic(fmt.Sprintf("schemas: %s has layout %s, the fast encoder writes %s", c.name, got, layout))
	}
	return fn
}

// layout describes a compiled schema as a string of kinds, for fastAppend.
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
	case kBool:
		return "b"
	}
	return "?"
}

func init() {
	AtsUpdates.fastAppend = fastAppend(AtsUpdates, "{sll[{sl}][{sllllb}]l}", appendAtsUpdate)
	SKUStates.fastAppend = fastAppend(SKUStates, "{sl[{sll}][{ll}]}", appendSKUState)
}

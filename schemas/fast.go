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

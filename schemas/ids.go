package schemas

import (
	"fmt"
	"math"
)

// MaxIDBytes bounds every identifier invroute keeps in state (movement,
// SKU, node, channel, order, line, customer and feedback ids). The decoders
// accept strings up to MaxStringBytes; an id that long, kept in a SKU's
// state for every node or in an order for every line, would let a few
// decodable records grow one stored value past what can be encoded or
// produced (MaxRecordBytes), and the engine would fail on it at every
// retry. The processors check ids with CheckID and dead-letter the record.
const MaxIDBytes = 256

// CheckID returns an error naming field if id is empty, longer than
// MaxIDBytes, or holds a control character (U+0000 to U+001F, U+007F).
// Control characters are refused because state keys join ids with a NUL
// byte: "o"+NUL+"1\x00x" and "o\x001"+NUL+"x" would be one key.
func CheckID(field, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty %s", field)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s holds control character %#02x at byte %d", field, c, i)
		}
	}
	return nil
}

// CheckCoordinates returns an error if lat or lon is not a finite number
// in range (NaN would make every distance NaN, and the planner's order of
// candidates no order at all).
func CheckCoordinates(lat, lon float64) error {
	if !(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180) { // false for NaN
		return fmt.Errorf("coordinates %g, %g out of range (lat in [-90, 90], lon in [-180, 180])", lat, lon)
	}
	return nil
}

// CheckIDs checks (field, id) pairs with CheckID and returns the first
// error.
func CheckIDs(fieldIDs ...string) error {
	for i := 0; i+1 < len(fieldIDs); i += 2 {
		if err := CheckID(fieldIDs[i], fieldIDs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// MaxQty bounds the quantity of one movement, order line or reservation
// command (and a COUNT's on_hand): a billion units. Sums of such quantities
// over a SKU's nodes, or an order's lines, then stay far from int64's limit.
const MaxQty = 1_000_000_000

// SatAdd is a + b, saturated at int64's limits: for sums of input without
// bound in number (on_hand over every movement) or in size (times
// placed_at plus a window).
func SatAdd(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

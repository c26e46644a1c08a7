package schemas

import (
	"reflect"
	"testing"
	"time"
)

// The benchmarks compare goavro, the schema authority, with the hamba-based
// codecs on the hot path: decoding a stock movement and encoding an ATS
// update, from bytes to the Go struct and back. Sub-benchmarks:
//
//	goavro           goavro plus hand-written conversion between its native map and the struct
//	goavro-native    goavro alone, native map in or out: its lower bound
//	hamba            the Codec (what invroute uses): strict check plus hamba; for
//	                 a stock movement and an ATS update, their fast paths (schemas/fast.go)
//	general          the general path (check and hamba) the fast paths replace
//	hamba-unchecked  hamba alone, through its generic Marshal/Unmarshal
//	check            the strict check alone
//
//	go test ./schemas -run XXX -bench . -benchmem -count 5

func BenchmarkDecodeStockMovement(b *testing.B) {
	v := stockMovementSamples[1] // with order and line id
	in, err := StockMovements.Encode(&v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("goavro", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var out StockMovement
		for b.Loop() {
			native, _, err := StockMovements.authority.NativeFromBinary(in)
			if err != nil {
				b.Fatal(err)
			}
			movementFromNative(native, &out)
		}
	})
	b.Run("goavro-native", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := StockMovements.authority.NativeFromBinary(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var out StockMovement
		for b.Loop() {
			if err := StockMovements.Decode(in, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var out StockMovement
		for b.Loop() {
			if err := StockMovements.decode(in, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The parts of "general": hamba alone, without the strict check, and the
	// check alone.
	b.Run("hamba-unchecked", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		var out StockMovement
		for b.Loop() {
			out = StockMovement{}
			if err := api.Unmarshal(StockMovements.schema, in, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := check(StockMovements.prog, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeAtsUpdate(b *testing.B) {
	v := atsUpdateSamples[1] // 2 channels, 3 nodes
	native := toNative(AtsUpdates.schema, reflect.ValueOf(v))
	buf, err := AtsUpdates.Encode(&v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("goavro", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if buf, err = AtsUpdates.authority.BinaryFromNative(buf[:0], atsToNative(&v)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro-native", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if buf, err = AtsUpdates.authority.BinaryFromNative(buf[:0], native); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if buf, err = AtsUpdates.Append(buf[:0], &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if buf, err = AtsUpdates.appendGeneral(buf[:0], &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba-unchecked", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := api.Marshal(AtsUpdates.schema, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// movementFromNative is what a goavro user writes to get a StockMovement.
func movementFromNative(native any, v *StockMovement) {
	m := native.(map[string]any)
	*v = StockMovement{
		MovementID: m["movement_id"].(string),
		SKU:        m["sku"].(string),
		NodeID:     m["node_id"].(string),
		Type:       MovementType(m["type"].(string)),
		Qty:        m["qty"].(int64),
		OccurredAt: m["occurred_at"].(time.Time).UnixMilli(),
	}
	if u, ok := m["order_id"].(map[string]any); ok {
		s := u["string"].(string)
		v.OrderID = &s
	}
	if u, ok := m["line_id"].(map[string]any); ok {
		s := u["string"].(string)
		v.LineID = &s
	}
}

// atsToNative is what a goavro user writes to encode an AtsUpdate.
func atsToNative(v *AtsUpdate) any {
	channels := make([]any, len(v.Channels))
	for i, c := range v.Channels {
		channels[i] = map[string]any{"channel_id": c.ChannelID, "ats": c.ATS}
	}
	nodes := make([]any, len(v.Nodes))
	for i, n := range v.Nodes {
		nodes[i] = map[string]any{"node_id": n.NodeID, "on_hand": n.OnHand, "reserved": n.Reserved,
			"safety_stock": n.SafetyStock, "available": n.Available, "active": n.Active}
	}
	return map[string]any{"sku": v.SKU, "version": v.Version, "ats": v.ATS,
		"channels": channels, "nodes": nodes, "updated_at": v.UpdatedAt}
}

// BenchmarkEncodeReservationResult: the fast encoder against hamba's
// general path, side by side. Run: go test -run X -bench ReservationResult ./schemas/
func BenchmarkEncodeReservationResult(b *testing.B) {
	v := reservationResultSamples[0]
	for _, path := range []struct {
		name   string
		append func([]byte, *ReservationResult) ([]byte, error)
	}{{"fast", ReservationResults.Append}, {"general", ReservationResults.appendGeneral}} {
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			var err error
			for b.Loop() {
				if buf, err = path.append(buf[:0], &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

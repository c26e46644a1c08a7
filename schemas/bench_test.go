package schemas

import (
	"reflect"
	"testing"
)

// The benchmarks compare goavro, the schema authority, with the hamba-based
// codecs on the hot path: decoding a stock movement and encoding an ATS
// update. goavro's figures are its best case: they leave out converting its
// native map to or from the Go struct.
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
	// The parts of "hamba": hamba alone, without the strict check, and the
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

package schemas

import "testing"

// FuzzMovementFastPath: whatever decodeMovement accepts, the general path
// (the strict check, then hamba) accepts too, with the very same value. (What
// it refuses goes to the general path, which is the judge.) The seeds are the
// samples, their halves, and the corpus of FuzzDecodeStockMovement.
func FuzzMovementFastPath(f *testing.F) {
	for i := range stockMovementSamples {
		b, err := StockMovements.Encode(&stockMovementSamples[i])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(b, 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow StockMovement
		if !decodeMovement(b, &fast) {
			return
		}
		if err := StockMovements.decode(b, &slow); err != nil {
			t.Fatalf("the fast path accepts what the general path refuses (%v):\n% x", err, b)
		}
		if !equalValues(&fast, &slow) {
			t.Fatalf("the fast path decodes\n%+v\nthe general path\n%+v\n% x", fast, slow, b)
		}
	})
}

// TestMovementFastPathTaken: the fast path decodes every sample (else the
// engine would silently run the slow path), and Decode then gives what the
// general path gives.
func TestMovementFastPathTaken(t *testing.T) {
	if StockMovements.fast == nil {
		t.Fatal("StockMovements has no fast path")
	}
	for i := range stockMovementSamples {
		b, err := StockMovements.Encode(&stockMovementSamples[i])
		if err != nil {
			t.Fatal(err)
		}
		var fast, slow StockMovement
		if !decodeMovement(b, &fast) {
			t.Fatalf("sample %d: the fast path refuses it", i)
		}
		if err := StockMovements.decode(b, &slow); err != nil || !equalValues(&fast, &slow) {
			t.Fatalf("sample %d: fast %+v, general %+v (%v)", i, fast, slow, err)
		}
	}
}

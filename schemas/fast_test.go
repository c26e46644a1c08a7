package schemas

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzMovementFastPath: whatever decodeMovement accepts, the general path
// (the strict check, then hamba) accepts too, with the very same value. (What
// it refuses goes to the general path, which is the judge.) The seeds are the
// samples, their halves, and testdata's copy of FuzzDecodeStockMovement's
// corpus.
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

// checkFastAppend encodes v on the fast path and through hamba and fails if
// the bytes differ.
func checkFastAppend[T any](t *testing.T, c *Codec[T], v *T) {
	t.Helper()
	fast, err := c.Append([]byte{0xAA}, v) // after a byte: Append appends
	if err != nil {
		t.Fatalf("fast: %v", err)
	}
	general, err := c.appendGeneral([]byte{0xAA}, v)
	if err != nil {
		t.Fatalf("hamba: %v", err)
	}
	if !bytes.Equal(fast, general) {
		t.Fatalf("%s: fast encoder writes\n% x\nhamba\n% x\nfor %+v", c.name, fast, general, *v)
	}
}

// TestFastEncoders: the fast encoders of AtsUpdate, SKUState and
// ReservationResult write what hamba writes, for the samples and for random
// values (empty and long arrays, negative and extreme numbers, non-ASCII and
// empty strings, every enum symbol).
func TestFastEncoders(t *testing.T) {
	if AtsUpdates.fastAppend == nil || SKUStates.fastAppend == nil || ReservationResults.fastAppend == nil {
		t.Fatal("a fast encoder is not installed")
	}
	for i := range reservationResultSamples {
		checkFastAppend(t, ReservationResults, &reservationResultSamples[i])
	}
	for i := range atsUpdateSamples {
		checkFastAppend(t, AtsUpdates, &atsUpdateSamples[i])
	}
	for i := range skuStateSamples {
		checkFastAppend(t, SKUStates, &skuStateSamples[i])
	}
	rng := rand.New(rand.NewPCG(7, 7))
	long := func() int64 {
		switch rng.IntN(4) {
		case 0:
			return rng.Int64N(128) - 64
		case 1:
			return math.MinInt64 + rng.Int64N(3)
		case 2:
			return math.MaxInt64 - rng.Int64N(3)
		}
		return int64(rng.Uint64())
	}
	str := func() string {
		return []string{"", "a", "SKU-000042", "Größe-42", "倉庫", strings.Repeat("x", 200)}[rng.IntN(6)]
	}
	for range 2000 {
		u := AtsUpdate{SKU: str(), Version: long(), ATS: long(), UpdatedAt: long()}
		for range rng.IntN(4) {
			u.Channels = append(u.Channels, ChannelATS{ChannelID: str(), ATS: long()})
		}
		for range rng.IntN(4) {
			u.Nodes = append(u.Nodes, NodeATS{NodeID: str(), OnHand: long(), Reserved: long(),
				SafetyStock: long(), Available: long(), Active: rng.IntN(2) == 1})
		}
		checkFastAppend(t, AtsUpdates, &u)
		s := SKUState{SKU: str(), Version: long()}
		for range rng.IntN(4) {
			s.Nodes = append(s.Nodes, NodeStock{NodeID: str(), OnHand: long(), Reserved: long()})
		}
		for range rng.IntN(3) {
			s.Seen = append(s.Seen, SeenMovement{IDHash: long(), OccurredAt: long()})
		}
		checkFastAppend(t, SKUStates, &s)
		r := ReservationResult{OrderID: str(), LineID: str(), Type: []ReservationOp{Reserve, Release, Consume, Restock, Decrease}[rng.IntN(5)],
			SKU: str(), NodeID: str(), Qty: long(), Attempt: int32(long()), OK: rng.IntN(2) == 1, Reason: str(),
			Available: long(), DecidedAt: long()}
		checkFastAppend(t, ReservationResults, &r)
	}
}

// TestFastEncoderLeavesBadValuesToHamba: a ReservationResult the strict
// pass refuses (a Type that is not a symbol, a string that is not UTF-8 or
// is longer than MaxStringBytes, in any string field) is refused by Append
// as by the general path, with nothing appended.
func TestFastEncoderLeavesBadValuesToHamba(t *testing.T) {
	bad := map[string]func(r *ReservationResult){
		"type":          func(r *ReservationResult) { r.Type = "HOLD" },
		"order_id utf8": func(r *ReservationResult) { r.OrderID = "o\xff" },
		"line_id utf8":  func(r *ReservationResult) { r.LineID = "\xfe" },
		"sku utf8":      func(r *ReservationResult) { r.SKU = "SKU-\xc3" },
		"node_id long":  func(r *ReservationResult) { r.NodeID = strings.Repeat("n", MaxStringBytes+1) },
		"reason utf8":   func(r *ReservationResult) { r.Reason = "\xff\xfe" },
		"reason long":   func(r *ReservationResult) { r.Reason = strings.Repeat("r", MaxStringBytes+1) },
	}
	for name, spoil := range bad {
		r := reservationResultSamples[0]
		spoil(&r)
		out, err := ReservationResults.Append([]byte{0xAA}, &r)
		var ee *EncodeError
		if !errors.As(err, &ee) || !bytes.Equal(out, []byte{0xAA}) {
			t.Errorf("%s: Append = % x, %v; want the input and an *EncodeError", name, out[:min(len(out), 8)], err)
		}
		if _, gerr := ReservationResults.appendGeneral(nil, &r); gerr == nil {
			t.Errorf("%s: the general path accepts it: the test's value is not bad", name)
		}
	}
	// At the limit, a string is fine on both paths.
	r := reservationResultSamples[0]
	r.Reason = strings.Repeat("r", MaxStringBytes)
	checkFastAppend(t, ReservationResults, &r)
}

// FuzzFastEncoders: for every AtsUpdate, SKUState and ReservationResult
// the strict decoder accepts, the fast encoders write what hamba writes.
// The seeds are copies of the FuzzDecodeAtsUpdate and FuzzDecodeSKUState
// corpora, and the ReservationResult samples.
func FuzzFastEncoders(f *testing.F) {
	for i := range atsUpdateSamples {
		b, _ := AtsUpdates.Encode(&atsUpdateSamples[i])
		f.Add(b)
	}
	for i := range skuStateSamples {
		b, _ := SKUStates.Encode(&skuStateSamples[i])
		f.Add(b)
	}
	for i := range reservationResultSamples {
		b, _ := ReservationResults.Encode(&reservationResultSamples[i])
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var u AtsUpdate
		if AtsUpdates.Decode(b, &u) == nil {
			checkFastAppend(t, AtsUpdates, &u)
		}
		var s SKUState
		if SKUStates.Decode(b, &s) == nil {
			checkFastAppend(t, SKUStates, &s)
		}
		var r ReservationResult
		if ReservationResults.Decode(b, &r) == nil {
			checkFastAppend(t, ReservationResults, &r)
		}
	})
}

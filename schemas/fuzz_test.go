package schemas

import (
	"bytes"
	"testing"
)

// fuzzDecode is the body of every FuzzDecode target. Decoding arbitrary
// bytes must never panic, and hamba must accept whatever the strict check
// accepts. When decoding succeeds:
//   - the value re-encodes and the re-encoding decodes to the same value;
//   - if the input was canonical, the re-encoding is the input itself, and
//     else the re-encoding is canonical;
//   - goavro, the schema authority, reads the input as one whole record too,
//     and writes its datum back to the same canonical bytes.
//
// DecodeInput must not panic either, and for input with a leading 0 byte it
// must agree with Decode of the bytes after the 5-byte header.
func fuzzDecode[T any](f *testing.F, c *Codec[T], samples []T) {
	for i := range samples {
		b, err := c.Encode(&samples[i])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(Frame(nil, 1, b))
		if len(b) > 3 {
			f.Add(b[:len(b)/2])
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		err := c.Decode(b, &v)
		fuzzInput(t, c, b)
		canonical, cerr := check(c.prog, b)
		if err != nil {
			if cerr == nil {
				t.Fatalf("hamba refuses what the check accepts: %v\n% x", err, b)
			}
			return
		}
		if cerr != nil {
			t.Fatalf("Decode accepted what check refuses: %v", cerr)
		}
		out, err := c.Encode(&v)
		if err != nil {
			t.Fatalf("decoded value does not encode: %v\n% x", err, b)
		}
		if canonical && !bytes.Equal(out, b) {
			t.Fatalf("canonical input re-encodes differently:\n in % x\nout % x", b, out)
		}
		if ok, err := check(c.prog, out); !ok || err != nil {
			t.Fatalf("re-encoding is not canonical: %v\n% x", err, out)
		}
		var v2 T
		if err := c.Decode(out, &v2); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !equalValues(&v, &v2) {
			t.Fatalf("re-decoded value differs:\n%+v\n%+v", v, v2)
		}

		native, rest, err := c.authority.NativeFromBinary(b)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro refuses what Decode accepts: %v, %d bytes left\n% x", err, len(rest), b)
		}
		theirs, err := c.authority.BinaryFromNative(nil, native)
		if err != nil {
			t.Fatalf("goavro re-encode: %v", err)
		}
		if theirs, err = canonicalize(nil, c.prog, theirs); err != nil || !bytes.Equal(theirs, out) {
			t.Fatalf("goavro re-encodes differently: %v\n% x\n% x", err, theirs, out)
		}
	})
}

func fuzzInput[T any](t *testing.T, c *Codec[T], b []byte) {
	var v T
	err := c.DecodeInput(b, &v, SchemaIDs{1})
	if len(b) == 0 || b[0] != 0 {
		return
	}
	if len(b) < confluentHeader {
		if err == nil {
			t.Fatal("DecodeInput accepted a short header")
		}
		return
	}
	var w T
	plainErr := c.Decode(b[confluentHeader:], &w)
	id := b[1:confluentHeader]
	if !bytes.Equal(id, []byte{0, 0, 0, 1}) {
		if err == nil {
			t.Fatalf("DecodeInput accepted schema id % x", id)
		}
		return
	}
	if (err == nil) != (plainErr == nil) {
		t.Fatalf("DecodeInput: %v, Decode after header: %v", err, plainErr)
	}
}

func FuzzDecodeStockMovement(f *testing.F) { fuzzDecode(f, StockMovements, stockMovementSamples) }
func FuzzDecodeNode(f *testing.F)          { fuzzDecode(f, Nodes, nodeSamples) }
func FuzzDecodeChannel(f *testing.F)       { fuzzDecode(f, Channels, channelSamples) }
func FuzzDecodeAtsUpdate(f *testing.F)     { fuzzDecode(f, AtsUpdates, atsUpdateSamples) }
func FuzzDecodeSKUState(f *testing.F)      { fuzzDecode(f, SKUStates, skuStateSamples) }
func FuzzDecodeOrderEvent(f *testing.F)    { fuzzDecode(f, OrderEvents, orderEventSamples) }
func FuzzDecodeFulfillmentFeedback(f *testing.F) {
	fuzzDecode(f, FulfillmentFeedbacks, fulfillmentFeedbackSamples)
}
func FuzzDecodeReservationCommand(f *testing.F) {
	fuzzDecode(f, ReservationCommands, reservationCommandSamples)
}
func FuzzDecodeReservationResult(f *testing.F) {
	fuzzDecode(f, ReservationResults, reservationResultSamples)
}
func FuzzDecodeReservation(f *testing.F) { fuzzDecode(f, Reservations, reservationSamples) }
func FuzzDecodeRoutingDecision(f *testing.F) {
	fuzzDecode(f, RoutingDecisions, routingDecisionSamples)
}
func FuzzDecodeFulfillmentRequest(f *testing.F) {
	fuzzDecode(f, FulfillmentRequests, fulfillmentRequestSamples)
}
func FuzzDecodeOrderStatus(f *testing.F) { fuzzDecode(f, OrderStatuses, orderStatusSamples) }

func FuzzDecodeRouterOrder(f *testing.F) { fuzzDecode(f, RouterOrders, routerOrderSamples) }
func FuzzDecodeNodeLoad(f *testing.F)    { fuzzDecode(f, NodeLoads, nodeLoadSamples) }
func FuzzDecodeCustomerCheck(f *testing.F) {
	fuzzDecode(f, CustomerChecks, []CustomerCheck{{OrderID: "o-1", CustomerID: "c-1", ChannelID: "web", PlacedAt: t0, MaxOrders: 5, WindowMs: 3_600_000}})
}
func FuzzDecodeCustomerVerdict(f *testing.F) {
	fuzzDecode(f, CustomerVerdicts, []CustomerVerdict{{OrderID: "o-1", CustomerID: "c-1", Hold: true, OrdersInWindow: 5, Reason: "x"}})
}
func FuzzDecodeCustomerHistory(f *testing.F) {
	fuzzDecode(f, CustomerHistories, []CustomerHistory{{CustomerID: "c-1", Orders: []CustomerOrder{{OrderID: "o-1", PlacedAt: t0}}}})
}

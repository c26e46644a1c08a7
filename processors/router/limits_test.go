package router

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/invroute/invroute/schemas"
)

func limitsOrder(id string, lines int, idBytes int) *schemas.OrderEvent {
	pad := func(s string) string { return s + strings.Repeat("x", idBytes-len(s)) }
	ev := &schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: pad("web"), CustomerID: pad("c"),
		DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete, CustomerTier: schemas.TierStandard,
		Priority: schemas.PriorityStandard, ShipTo: &schemas.Address{Country: "FR", Lat: 48.8, Lon: 2.3}, LineIDs: []string{}}
	for i := range lines {
		ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: pad(fmt.Sprintf("%04d", i)), SKU: pad(fmt.Sprintf("S%04d", i)), Qty: 1})
	}
	return ev
}

// The largest orders the router accepts (MaxLines lines with ids of 64
// bytes; 128 lines with ids of schemas.MaxIDBytes: both at maxLinesIDBytes),
// routed, with the most feedback ids it keeps, still store: the order's
// state encodes within half of schemas.MaxRecordBytes at every step. One
// more line is invalid.
func TestLargestOrderStores(t *testing.T) {
	r := New(Config{})
	for _, size := range []struct{ lines, idBytes int }{{r.cfg.MaxLines, 64}, {128, schemas.MaxIDBytes}} {
		t.Run(fmt.Sprintf("%dx%dB", size.lines, size.idBytes), func(t *testing.T) {
			net := newTestNet()
			net.nodes["W1"] = &schemas.Node{NodeID: "W1", Active: true, ShipEnabled: true, Lat: 48.8, Lon: 2.3}
			st := newMemStore()
			id := strings.Repeat("o", schemas.MaxIDBytes)
			if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte(id), limitsOrder(id, size.lines+1, size.idBytes), 1); !IsInvalid(err) {
				t.Fatalf("one line more: %v, want invalid", err)
			}
			ev := limitsOrder(id, size.lines, size.idBytes)
			for _, l := range ev.Lines {
				net.stock[[2]string{l.SKU, "W1"}] = schemas.NodeATS{NodeID: "W1", OnHand: 10}
			}
			encodes := func(step string) {
				t.Helper()
				b, err := orderCodec{}.Append(nil, st.orders[id])
				if err != nil {
					t.Fatalf("%s: the stored order does not encode: %v", step, err)
				}
				if len(b) > schemas.MaxRecordBytes/2 {
					t.Fatalf("%s: the stored order takes %d bytes, more than half of MaxRecordBytes", step, len(b))
				}
			}
			out := &capture{}
			if err := r.OrderEvent(st, testWorld{net}, out, []byte(id), ev, 1); err != nil {
				t.Fatal(err)
			}
			encodes("placed")
			for _, c := range out.cmds { // every reservation granted: the order is routed
				res := &schemas.ReservationResult{OrderID: c.OrderID, LineID: c.LineID, Type: c.Type, SKU: c.SKU,
					NodeID: c.NodeID, Qty: c.Qty, OK: true, Attempt: c.Attempt}
				if err := r.Result(st, testWorld{net}, &capture{}, []byte(id), res, 2); err != nil {
					t.Fatal(err)
				}
			}
			if o := st.orders[id]; o.State != schemas.StateRouted {
				t.Fatalf("order is %s, want ROUTED", o.State)
			}
			encodes("routed")
			for i := range 100 {
				f := &schemas.FulfillmentFeedback{FeedbackID: fmt.Sprintf("%03d", i) + strings.Repeat("f", schemas.MaxIDBytes-3), OrderID: id,
					LineID: ev.Lines[0].LineID, NodeID: "W9", Type: schemas.FeedbackShortPicked, QtyShort: 1,
					Reason: strings.Repeat("r", maxReasonBytes)}
				if err := r.Feedback(st, testWorld{net}, &capture{}, []byte(id), f, 3); err != nil {
					t.Fatal(err)
				}
			}
			encodes("after 100 feedbacks")
		})
	}
}

// Ids the router cannot keep are invalid input (dead letters), in every
// event that brings one.
func TestRouterRefusesBadIDs(t *testing.T) {
	net := newTestNet()
	net.nodes["W1"] = &schemas.Node{NodeID: "W1", Active: true, ShipEnabled: true, Lat: 48.8, Lon: 2.3}
	st := newMemStore()
	r := New(Config{})
	long := strings.Repeat("x", schemas.MaxIDBytes+1)
	for _, tc := range []struct {
		name string
		edit func(ev *schemas.OrderEvent)
		want string
	}{
		{"long line_id", func(ev *schemas.OrderEvent) { ev.Lines[0].LineID = long }, "line_id is 257 bytes"},
		{"NUL in line_id", func(ev *schemas.OrderEvent) { ev.Lines[0].LineID = "1\x00x" }, "line_id holds control character 0x00"},
		{"long sku", func(ev *schemas.OrderEvent) { ev.Lines[0].SKU = long }, "sku is 257 bytes"},
		{"NUL in order_id", func(ev *schemas.OrderEvent) { ev.OrderID = "o\x001" }, "order_id holds control character"},
		{"long customer_id", func(ev *schemas.OrderEvent) { ev.CustomerID = long }, "customer_id is 257 bytes"},
		{"NUL in channel_id", func(ev *schemas.OrderEvent) { ev.ChannelID = "w\x00b" }, "channel_id holds control character"},
		{"long postal code", func(ev *schemas.OrderEvent) { ev.ShipTo.PostalCode = long }, "postal_code"},
		{"NaN latitude", func(ev *schemas.OrderEvent) { ev.ShipTo.Lat = math.NaN() }, "out of range"},
		{"longitude 181", func(ev *schemas.OrderEvent) { ev.ShipTo.Lon = 181 }, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := limitsOrder("o1", 2, 8)
			tc.edit(ev)
			err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte(ev.OrderID), ev, 1)
			if !IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OrderEvent = %v, want an invalid-input error with %q", err, tc.want)
			}
		})
	}
	ev := limitsOrder("o1", 1, 8)
	if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte("o1"), ev, 1); err != nil {
		t.Fatal(err)
	}
	moved := &schemas.OrderEvent{OrderID: "o1", Type: schemas.EventAddressChanged, ShipTo: &schemas.Address{Country: "FR", Lat: math.Inf(1), Lon: 2}}
	if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte("o1"), moved, 2); !IsInvalid(err) {
		t.Fatalf("ADDRESS_CHANGED to an infinite latitude = %v, want invalid", err)
	}
	cancel := &schemas.OrderEvent{OrderID: "o1", Type: schemas.EventCancelled, LineIDs: []string{long}}
	if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte("o1"), cancel, 2); !IsInvalid(err) {
		t.Fatalf("CANCELLED with a long line id = %v, want invalid", err)
	}
	for _, f := range []*schemas.FulfillmentFeedback{
		{FeedbackID: long, LineID: "1", NodeID: "W1"},
		{FeedbackID: "", LineID: "1", NodeID: "W1"},
		{FeedbackID: "f", LineID: "1", NodeID: "W1", QtyShort: schemas.MaxQty + 1},
	} {
		f.OrderID, f.Type = "o1", schemas.FeedbackShortPicked
		if f.QtyShort == 0 {
			f.QtyShort = 1
		}
		if err := r.Feedback(st, testWorld{net}, &capture{}, []byte("o1"), f, 3); !IsInvalid(err) {
			t.Fatalf("feedback %+v = %v, want invalid", f, err)
		}
	}
}

// What the router only compares or shows is not refused, but bounded: an
// event for an order it keeps (whose ids an older version may have
// accepted), free text (cut), a PLACED order without a channel, feedback
// for a line or node the order does not hold (ignored, and said so).
func TestRouterBoundsWhatItShows(t *testing.T) {
	net := newTestNet()
	net.nodes["W1"] = &schemas.Node{NodeID: "W1", Active: true, ShipEnabled: true, Lat: 48.8, Lon: 2.3}
	st := newMemStore()
	r := New(Config{})
	ev := limitsOrder("o1", 1, 8)
	ev.ChannelID = ""
	if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte("o1"), ev, 1); err != nil {
		t.Fatalf("PLACED without a channel: %v", err)
	}
	long := strings.Repeat("é", 40_000) // 80,000 bytes
	f := &schemas.FulfillmentFeedback{FeedbackID: "f1", OrderID: "o1", LineID: long, NodeID: "W\x00" + long,
		Type: schemas.FeedbackShortPicked, QtyShort: 1, Reason: long}
	if err := r.Feedback(st, testWorld{net}, &capture{}, []byte("o1"), f, 2); err != nil {
		t.Fatalf("feedback for a line not held: %v", err)
	}
	if o := st.orders["o1"]; len(o.Reason) > maxOrderReasonBytes || !strings.Contains(o.Reason, "ignored") {
		t.Fatalf("reason of %d bytes: %.80q", len(o.Reason), o.Reason)
	}
	cancel := &schemas.OrderEvent{OrderID: "o1", Type: schemas.EventCancelled, LineIDs: []string{}, Reason: long}
	if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte("o1"), cancel, 3); err != nil {
		t.Fatalf("CANCELLED with a long reason: %v", err)
	}
	o := st.orders["o1"]
	if o.State != schemas.StateCancelled || len(o.Reason) > maxOrderReasonBytes || !utf8.ValidString(o.Reason) {
		t.Fatalf("order %s, reason of %d bytes (valid UTF-8: %t)", o.State, len(o.Reason), utf8.ValidString(o.Reason))
	}
	// An order stored under an id the rules now refuse (an older version
	// took it) can still be cancelled.
	old := limitsOrder("o\x002", 1, 8)
	st.orders[old.OrderID] = newOrder(old, 1)
	cancel = &schemas.OrderEvent{OrderID: old.OrderID, Type: schemas.EventCancelled, LineIDs: []string{}}
	if err := r.OrderEvent(st, testWorld{net}, &capture{}, []byte(old.OrderID), cancel, 4); err != nil {
		t.Fatalf("CANCELLED for a stored order with a NUL in its id: %v", err)
	}
	if got := st.orders[old.OrderID].State; got != schemas.StateCancelled {
		t.Fatalf("old order is %s, want CANCELLED", got)
	}
}

// A customer window under a millisecond is one millisecond: the screen
// counts whole milliseconds, and dead-letters a check whose window is 0
// (the order would wait for its verdict for ever).
func TestCustomerWindowWholeMilliseconds(t *testing.T) {
	for w, want := range map[time.Duration]time.Duration{0: 24 * time.Hour, time.Microsecond: time.Millisecond, 1500 * time.Microsecond: 1500 * time.Microsecond} {
		if got := New(Config{CustomerMaxOrders: 2, CustomerWindow: w}).cfg.CustomerWindow; got != want || got.Milliseconds() < 1 {
			t.Errorf("customer window %v: %v, want %v", w, got, want)
		}
	}
}

package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestQueryCLI: `invroute ats` and `invroute order` print a table, or the
// JSON with --json, and turn error answers into errors that say why.
func TestQueryCLI(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ats/{sku}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("sku") {
		case "SKU 1":
			writeJSON(w, http.StatusOK, ATSAnswer{SKU: "SKU 1", Version: 7, ATS: 12, Partition: 3, ServedBy: "inv-1",
				Channels: []ChannelATS{{"web", 12}}, Nodes: []NodeATS{{NodeID: "W-PAR", OnHand: 15, Reserved: 3, Available: 12, Active: true}}})
		case "DOWN":
			writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the owner of partition 2, instance b at x:1, is unreachable"})
		default:
			writeJSON(w, http.StatusNotFound, apiError{Error: `sku "` + r.PathValue("sku") + `" not found`})
		}
	})
	mux.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, OrderAnswer{OrderID: r.PathValue("id"), State: "ROUTED", ChannelID: "web", Version: 2,
			PlacedAt: time.Unix(1700000000, 0).UTC(), Reason: "split: no node has everything",
			Lines:     []OrderLine{{LineID: "1", SKU: "A", Qty: 2, State: "ROUTED", NodeID: "W-BER"}},
			Shipments: []Shipment{{ShipmentID: "s1", NodeID: "W-BER", Method: "SHIP", Lines: []ShipmentLine{{"1", "A", 2}}, DistanceKm: 512, CostCents: 900}}})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	var out bytes.Buffer
	if err := QueryMain(ctx, "ats", []string{"SKU 1", "--addr", addr}, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"SKU SKU 1: ATS 12 (version 7; partition 3, served by inv-1)", "web", "W-PAR", "15", "AVAILABLE"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("ats table lacks %q:\n%s", w, out.String())
		}
	}
	out.Reset()
	if err := QueryMain(ctx, "ats", []string{"--addr", addr, "--json", "SKU 1"}, &out); err != nil {
		t.Fatal(err)
	}
	var a ATSAnswer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil || a.ATS != 12 {
		t.Errorf("--json: %v %s", err, out.String())
	}
	out.Reset()
	if err := QueryMain(ctx, "order", []string{"O-9", "--addr", srv.URL}, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"order O-9: ROUTED (version 2", "reason: split", "W-BER", "1 x2", "SHIPMENT"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("order table lacks %q:\n%s", w, out.String())
		}
	}
	for _, tc := range []struct{ key, want string }{{"NOPE", `sku "NOPE" not found (HTTP 404)`}, {"DOWN", "unreachable (HTTP 503)"}} {
		if err := QueryMain(ctx, "ats", []string{tc.key, "--addr", addr}, &out); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.key, err, tc.want)
		}
	}
	if err := QueryMain(ctx, "ats", []string{"X", "--addr", "127.0.0.1:1"}, &out); err == nil || !strings.Contains(err.Error(), "asking http://127.0.0.1:1/v1/ats/X: ") || !strings.Contains(err.Error(), "--addr host:port") {
		t.Errorf("no server: %v", err)
	}
	if err := QueryMain(ctx, "ats", nil, &out); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no key: %v", err)
	}
}

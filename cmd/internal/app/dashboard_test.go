package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/schemas"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDashboardTopK: Space-Saving finds the heavy SKUs among many light
// ones in bounded counters, never undercounts, and overcounts by at most
// its error bound.
func TestDashboardTopK(t *testing.T) {
	tk := newTopK(100)
	truth := map[string]int64{}
	add := func(sku string) {
		truth[sku]++
		tk.add(sku, []byte(sku))
	}
	cold := 0
	for round := 0; round < 300; round++ {
		for h := 0; h < 10; h++ {
			add(fmt.Sprintf("HOT-%02d", h))
		}
		for c := 0; c < 50; c++ { // 15,000 SKUs seen once
			add(fmt.Sprintf("COLD-%05d", cold))
			cold++
		}
	}
	if len(tk.h) != 100 || len(tk.m) != 100 {
		t.Fatalf("%d counters, %d keys: want 100", len(tk.h), len(tk.m))
	}
	top := tk.top(10)
	for i, e := range top {
		if !strings.HasPrefix(e.sku, "HOT-") {
			t.Errorf("top %d is %s (count %d, err %d)", i, e.sku, e.count, e.err)
		}
		if e.count < truth[e.sku] || e.count-e.err > truth[e.sku] {
			t.Errorf("%s: count %d err %d, true count %d", e.sku, e.count, e.err, truth[e.sku])
		}
		if string(e.last) != e.sku {
			t.Errorf("%s keeps the value of %q", e.sku, e.last)
		}
	}
	for _, e := range tk.h { // the heap's invariant and the index
		if tk.h[e.idx] != e || tk.m[e.sku] != e {
			t.Fatalf("heap index of %s broken", e.sku)
		}
	}
}

// fakeDashboard is a dashboard over a catalog and a registry, fed records
// directly.
func fakeDashboard(t *testing.T) (*dashboard, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cat := catalog.New(nil)
	for _, n := range []schemas.Node{{NodeID: "A", Type: schemas.Warehouse, Country: "FR", Lat: 48.8, Lon: 2.3, Active: true},
		{NodeID: "B", Type: schemas.Store, Country: "DE", Lat: 52.5, Lon: 13.4}} {
		b, err := schemas.Nodes.Encode(&n)
		if err != nil {
			t.Fatal(err)
		}
		if err := cat.ApplyNode([]byte(n.NodeID), b); err != nil {
			t.Fatal(err)
		}
	}
	e := &Engine{Catalog: cat, Registry: reg, opts: Options{InstanceID: "i1", TopicPrefix: "p-"}}
	return newDashboard(e), reg
}

func encode[T any](t *testing.T, c *schemas.Codec[T], v *T) []byte {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDashboardAggregates: what /v1/dashboard answers from the records of
// the tailed topics, and that everything kept stays bounded.
func TestDashboardAggregates(t *testing.T) {
	d, reg := fakeDashboard(t)
	rec := func(topic, key string, value []byte, hdrs ...string) *kgo.Record {
		r := &kgo.Record{Topic: "p-" + topic, Key: []byte(key), Value: value, Timestamp: time.UnixMilli(1_700_000_000_000)}
		for i := 0; i+1 < len(hdrs); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: hdrs[i], Value: []byte(hdrs[i+1])})
		}
		return r
	}
	line := func(id, sku string, qty int64) schemas.OrderLine {
		return schemas.OrderLine{LineID: id, SKU: sku, Qty: qty}
	}
	d.mu.Lock()
	for v := int64(1); v <= 3; v++ {
		u := schemas.AtsUpdate{SKU: "S1", Version: v, ATS: 10 * v, Channels: []schemas.ChannelATS{},
			Nodes: []schemas.NodeATS{{NodeID: "A", OnHand: 10 * v, Available: 10 * v, Active: true}}}
		d.addLocked(rec("ats", "S1", encode(t, schemas.AtsUpdates, &u)))
	}
	u2 := schemas.AtsUpdate{SKU: "S2", Version: 1, ATS: 5, Channels: []schemas.ChannelATS{}, Nodes: []schemas.NodeATS{}}
	d.addLocked(rec("ats", "S2", encode(t, schemas.AtsUpdates, &u2)))
	decisions := []schemas.RoutingDecision{
		{OrderID: "O1", Status: schemas.DecisionRouted, Shipments: []schemas.RoutedShipment{
			{NodeID: "A", Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{line("1", "S1", 2), line("2", "S2", 1)}, DistanceKm: 12}}},
		{OrderID: "O2", Status: schemas.DecisionRouted, Split: true, Shipments: []schemas.RoutedShipment{
			{NodeID: "A", Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{line("1", "S1", 1), line("2", "S2", 1)}},
			{NodeID: "B", Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{line("3", "S3", 4)}}}},
		{OrderID: "O3", Status: schemas.DecisionBackordered, Reasons: []string{"not available now"}},
	}
	for i := range decisions {
		dec := &decisions[i]
		dec.Backordered, dec.Reasons = []schemas.OrderLine{}, append([]string{}, dec.Reasons...)
		for j := range dec.Shipments {
			dec.Shipments[j].ShipmentID = fmt.Sprint(j)
		}
		d.addLocked(rec("routing-decisions", dec.OrderID, encode(t, schemas.RoutingDecisions, dec)))
	}
	fr := schemas.FulfillmentRequest{OrderID: "O2", ShipmentID: "0", NodeID: "A", Type: schemas.ActionShip, Priority: schemas.PriorityStandard,
		Lines: []schemas.OrderLine{}, ShipTo: &schemas.Address{Country: "PL", PostalCode: "00-001", Lat: 52.2, Lon: 21.0}}
	d.addLocked(rec("fulfillment-requests", "A", encode(t, schemas.FulfillmentRequests, &fr)))
	d.addLocked(rec("dead-letter", "bad\xffkey", []byte{1}, "invroute.error", strings.Repeat("x", 1000), "invroute.stage", "decode",
		"invroute.source.topic", "p-stock-movements", "invroute.source.partition", "3", "invroute.source.offset", "42"))
	d.addLocked(rec("dead-letter", "k", []byte{1}, "invroute.error", "qty must be positive", "invroute.stage", "validate",
		"invroute.source.topic", "p-orders"))
	d.addLocked(rec("other-topic", "x", []byte{1})) // not a dashboard topic: ignored
	d.mu.Unlock()

	a := d.snapshot()
	if a.ATSUpdates != 4 || len(a.Hot) != 2 || a.Hot[0].SKU != "S1" || a.Hot[0].Updates != 3 || a.Hot[0].Version != 3 || a.Hot[0].ATS != 30 ||
		len(a.Hot[0].Nodes) != 1 || a.Hot[0].Nodes[0].Available != 30 {
		t.Errorf("hot: %d updates, %+v", a.ATSUpdates, a.Hot)
	}
	want := DashRouting{Decisions: 3, WithShipments: 2, Split: 1, SplitRate: 0.5, Shipments: 3, Lines: 5, Saved: 2,
		ByStatus: map[string]int64{"ROUTED": 2, "BACKORDERED": 1}}
	if fmt.Sprint(a.Routing) != fmt.Sprint(want) {
		t.Errorf("routing %+v, want %+v", a.Routing, want)
	}
	if len(a.Decisions) != 3 || a.Decisions[0].OrderID != "O3" || a.Decisions[0].Reason != "not available now" ||
		a.Decisions[1].ShipTo == nil || a.Decisions[1].ShipTo.Country != "PL" || a.Decisions[2].ShipTo != nil ||
		len(a.Decisions[1].Shipments) != 2 || a.Decisions[1].Shipments[1].Units != 4 {
		t.Errorf("decisions: %+v", a.Decisions)
	}
	dl := a.DeadLetters
	if dl.Total != 2 || dl.ByStage["decode"] != 1 || dl.ByStage["validate"] != 1 || dl.ByTopic["p-stock-movements"] != 1 ||
		len(dl.Recent) != 2 || dl.Recent[1].Key != "bad\uFFFDkey" || len([]rune(dl.Recent[1].Error)) != dashText ||
		dl.Recent[1].Partition != "3" || dl.Recent[1].Offset != "42" || dl.Recent[0].Stage != "validate" {
		t.Errorf("dead letters: %+v", dl)
	}
	if len(a.Nodes) != 2 || a.Nodes[0].NodeID != "A" || !a.Nodes[0].Active || a.Nodes[1].Active {
		t.Errorf("nodes: %+v", a.Nodes)
	}
	if _, err := json.Marshal(a); err != nil {
		t.Fatal(err)
	}

	// Rates from the registry's counters.
	mov := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invroute_inventory_movements_applied_total", Help: "h"}, []string{"partition"})
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "invroute_consumer_lag", Help: "h"}, []string{"topology", "topic", "partition"})
	reg.MustRegister(mov, lag)
	lag.WithLabelValues("inventory", "stock-movements", "0").Set(7)
	lag.WithLabelValues("inventory", "stock-movements", "1").Set(5)
	d.sample()
	time.Sleep(200 * time.Millisecond)
	mov.WithLabelValues("0").Add(100)
	mov.WithLabelValues("1").Add(100)
	d.sample()
	a = d.snapshot()
	if a.Rates.Movements <= 0 || a.Rates.Movements > 1000 || len(a.Series.Movements) != 1 || a.Counters["invroute_inventory_movements_applied_total"] != 200 {
		t.Errorf("rates %+v series %+v counters %v", a.Rates, a.Series, a.Counters)
	}
	if len(a.Lag) != 1 || a.Lag[0].Records != 12 || a.Lag[0].Max != 7 || a.Lag[0].MaxAt != "stock-movements[0]" {
		t.Errorf("lag %+v", a.Lag)
	}

	// Bounded: rings, the ship-to map, stage keys, samples.
	d.mu.Lock()
	for i := 0; i < 5000; i++ {
		d.agg.decisions.push(DashDecision{OrderID: fmt.Sprint(i)})
		d.agg.shipTo.put(fmt.Sprint(i), DashPlace{})
		d.addLocked(rec("dead-letter", "k", nil, "invroute.stage", fmt.Sprint("stage-", i)))
	}
	for i := 0; i < 300; i++ {
		d.samples = append(d.samples, dashSample{at: time.Now()})
	}
	d.mu.Unlock()
	d.sample()
	a = d.snapshot()
	if len(a.Decisions) != dashRecentDecision || a.Decisions[0].OrderID != "4999" || len(d.agg.shipTo.m) != dashShipTos ||
		len(d.agg.shipTo.order) != dashShipTos || len(a.DeadLetters.Recent) != dashRecentDead ||
		len(a.DeadLetters.ByStage) > dashMapKeys+1 || a.DeadLetters.ByStage["other"] == 0 || len(d.samples) > dashSamples {
		t.Errorf("not bounded: %d decisions (first %s), %d ship-tos, %d recent dead letters, %d stages, %d samples",
			len(a.Decisions), a.Decisions[0].OrderID, len(d.agg.shipTo.m), len(a.DeadLetters.Recent), len(a.DeadLetters.ByStage), len(d.samples))
	}
	if _, ok := d.agg.shipTo.m["4999"]; !ok {
		t.Error("the newest ship-to was dropped")
	}
	if _, ok := d.agg.shipTo.m["0"]; ok {
		t.Error("the oldest ship-to was kept")
	}
}

// TestDashboardHTTP: the page and its assets, /v1/dashboard tailing the
// topics on a broker (read_committed, from their start), the tailer stopping
// when nobody asks and resuming where it stopped, and the API's other
// answers unchanged.
func TestDashboardHTTP(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	o := testOptions(t, cluster.ListenAddrs()[0], "dash-")
	if _, err := CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(o, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDashboard(eng)
	d.idle = 500 * time.Millisecond
	srv := httptest.NewServer(eng.apiHandler(d))
	defer srv.Close()

	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `src="dashboard/dashboard.js"`},
		{"/dashboard", "text/html", `id="map"`},
		{"/dashboard/dashboard.js", "javascript", "/v1/dashboard"},
		{"/dashboard/europe.js", "javascript", "EUROPE_OUTLINE"},
		{"/dashboard/dashboard.css", "text/css", ".node-marker"},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(string(b), c.contains) ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: %s %q %q, body contains %q: %t", c.path, resp.Status, resp.Header.Get("Content-Type"),
				resp.Header.Get("Content-Security-Policy"), c.contains, strings.Contains(string(b), c.contains))
		}
	}
	if a := get(t, srv.URL+"/nope"); a.code != 404 || !strings.Contains(a.raw, "no such endpoint") {
		t.Errorf("GET /nope: %d %s", a.code, a.raw)
	}
	if a := get(t, srv.URL+"/dashboard/nope.js"); a.code != 404 {
		t.Errorf("GET /dashboard/nope.js: %d", a.code)
	}
	for _, p := range []string{"/dashboard/", "/dashboard/index.html"} {
		if a := get(t, srv.URL+p); a.code != 200 || !strings.Contains(a.raw, `id="map"`) { // redirected to /
			t.Errorf("GET %s: %d", p, a.code)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers), kgo.TransactionalID("dash-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	produce := func(commit bool, recs ...*kgo.Record) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	dead := func(stage string) *kgo.Record {
		return &kgo.Record{Topic: "dash-dead-letter", Key: []byte("k"), Value: []byte{1},
			Headers: []kgo.RecordHeader{{Key: "invroute.stage", Value: []byte(stage)}, {Key: "invroute.error", Value: []byte("bad " + stage)}}}
	}
	u := schemas.AtsUpdate{SKU: "S1", Version: 1, ATS: 3, Channels: []schemas.ChannelATS{}, Nodes: []schemas.NodeATS{}}
	produce(true, dead("decode"), &kgo.Record{Topic: "dash-ats", Key: []byte("S1"), Value: encode(t, schemas.AtsUpdates, &u)})
	produce(false, dead("aborted")) // read_committed: never counted

	var a DashboardAnswer
	waitAnswer := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			a = DashboardAnswer{}
			r := get(t, srv.URL+"/v1/dashboard")
			if err := json.Unmarshal([]byte(r.raw), &a); err != nil {
				t.Fatalf("/v1/dashboard: %v\n%s", err, r.raw)
			}
			if ok() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/v1/dashboard never showed %s:\n%s", what, r.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAnswer("the committed records", func() bool {
		return a.DeadLetters.Total == 1 && a.ATSUpdates == 1 && len(a.Hot) == 1 && a.Hot[0].ATS == 3 && a.Instance == "i1"
	})
	time.Sleep(500 * time.Millisecond) // the aborted transaction has been read past by now
	waitAnswer("the same", func() bool { return a.DeadLetters.Total == 1 && a.DeadLetters.ByStage["aborted"] == 0 })

	// Nobody asks: the tailer stops, then resumes where it stopped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		running := d.running
		d.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tailer did not stop after its idle time")
		}
		time.Sleep(100 * time.Millisecond)
	}
	produce(true, dead("validate"))
	waitAnswer("the record written while stopped, and no record twice", func() bool {
		return a.DeadLetters.Total == 2 && a.DeadLetters.ByStage["decode"] == 1 && a.DeadLetters.ByStage["validate"] == 1 && a.ATSUpdates == 1
	})
}

// TestDashboardReviewFixes: defects a review found. A line shipped from two
// nodes made "shipments saved" negative; a timestamp past year 9999 made
// /v1/dashboard a 200 with an empty body; a backlog read when the tailer
// started counted as current decisions per second; the first answer after
// an idle stop showed the rates of minutes before; a one-off fetch error
// stayed on the page.
func TestDashboardReviewFixes(t *testing.T) {
	d, _ := fakeDashboard(t)
	now := time.UnixMilli(1_700_000_000_000)
	rec := func(topic, key string, value []byte, ts time.Time) *kgo.Record {
		return &kgo.Record{Topic: "p-" + topic, Key: []byte(key), Value: value, Timestamp: ts}
	}
	split := schemas.RoutingDecision{OrderID: "O1", Status: schemas.DecisionRouted, Split: true, Backordered: []schemas.OrderLine{}, Reasons: []string{},
		DecidedAt: math.MaxInt64 / 2, // year 146,140,482
		Shipments: []schemas.RoutedShipment{
			{ShipmentID: "0", NodeID: "A", Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{{LineID: "1", SKU: "S1", Qty: 2}}},
			{ShipmentID: "1", NodeID: "B", Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{{LineID: "1", SKU: "S1", Qty: 1}}}}}
	d.mu.Lock()
	d.addLocked(rec("routing-decisions", "O1", encode(t, schemas.RoutingDecisions, &split), now))
	d.addLocked(rec("dead-letter", "k", []byte{1}, time.UnixMilli(math.MaxInt64/2)))
	d.mu.Unlock()
	a := d.snapshot()
	if a.Routing.Saved != 0 || a.Routing.Lines != 2 || a.Routing.Shipments != 2 {
		t.Errorf("a line split over two nodes: %+v", a.Routing)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.snapshot()) }))
	defer srv.Close()
	if ans := get(t, srv.URL); ans.code != http.StatusOK || ans.body == nil {
		t.Errorf("far-future times: %d %q", ans.code, ans.raw)
	}
	rw := httptest.NewRecorder()
	writeJSON(rw, http.StatusOK, map[string]float64{"x": math.NaN()})
	if rw.Code != http.StatusInternalServerError || !strings.Contains(rw.Body.String(), "encoding the answer") {
		t.Errorf("a value JSON cannot hold: %d %s", rw.Code, rw.Body)
	}

	// Rates: only records written after the tailer began reading their
	// partition count (at or past the end offset it listed then), whatever
	// their timestamps say (a producing instance's clock may be off).
	d.sample()
	d.mu.Lock()
	d.freshFrom["p-routing-decisions"] = map[int32]int64{0: 50}
	for i := range 53 {
		r := split
		r.OrderID, r.DecidedAt = fmt.Sprint("o-", i), now.UnixMilli()
		ts := now // the backlog written just now (the last minute read at once)...
		if i >= 50 {
			ts = now.Add(-2 * time.Hour) // ...and new records from an instance whose clock is behind
		}
		kr := rec("routing-decisions", r.OrderID, encode(t, schemas.RoutingDecisions, &r), ts)
		kr.Offset = int64(i)
		d.addLocked(kr)
	}
	d.samples[0].at = time.Now().Add(-time.Second)
	d.mu.Unlock()
	d.sample()
	a = d.snapshot()
	if r := a.Rates.Decisions * a.Rates.WindowS; math.Abs(r-3) > 0.01 || a.Routing.Decisions != 54 {
		t.Errorf("%v decisions/s over %v s (%d decisions read): want the 3 recent ones counted", a.Rates.Decisions, a.Rates.WindowS, a.Routing.Decisions)
	}

	// Restarted after an idle stop: no samples of then.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.mu.Lock()
	d.startLocked(ctx)
	d.mu.Unlock()
	if a := d.snapshot(); a.Rates != (DashRates{}) || len(a.Series.T) != 0 {
		t.Errorf("first answer after a restart: rates %+v, series %v", a.Rates, a.Series.T)
	}

	// A pinned tailer whose context ended is not restarted by a request
	// (it would run, never idle-stopped, for the life of the process).
	pinned, _ := fakeDashboard(t)
	pinned.mu.Lock()
	pinned.pinned, pinned.base = true, ctx // cancelled above
	pinned.mu.Unlock()
	pinned.touch()
	pinned.mu.Lock()
	restarted := pinned.running
	pinned.mu.Unlock()
	if restarted {
		t.Error("a request restarted the pinned tailer after its context ended")
	}

	// A poll's errors show until a poll reads records, or dashErrShown
	// without errors (not between two occurrences of a recurring one).
	d.mu.Lock()
	t0 := time.Now()
	d.polledLocked([]string{"p-ats: data loss"}, false, t0)
	shown := d.tailErr
	d.polledLocked(nil, false, t0.Add(time.Second))
	kept := d.tailErr
	d.polledLocked(nil, false, t0.Add(dashErrShown))
	expired := d.tailErr
	d.polledLocked([]string{"p-ats: data loss"}, false, t0.Add(20*time.Second))
	d.polledLocked(nil, true, t0.Add(21*time.Second))
	read := d.tailErr
	d.tailErr = listingErr + ": down"
	d.polledLocked(nil, true, t0.Add(time.Minute))
	listing := d.tailErr
	d.mu.Unlock()
	if shown == "" || kept == "" || expired != "" || read != "" || listing == "" {
		t.Errorf("tail error %q; a second later without records %q; %v later %q; after records %q; a listing error after a poll %q (cleared by the next listing)",
			shown, kept, dashErrShown, expired, read, listing)
	}
}

// TestDashboardScriptHostileIDs runs the page's script under node (skipped
// without node) on an answer whose node ids are names of JavaScript's
// built-in object properties, or markup: each is shown as itself, never as
// NaN, a function or a prototype (found by review: "constructor" showed
// "function Object() { [native code] }"), and nothing is written as HTML.
func TestDashboardScriptHostileIDs(t *testing.T) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	ids := []string{"constructor", "__proto__", "toString", "hasOwnProperty", `<img src=x onerror=alert(1)>"'`}
	cat := catalog.New(nil)
	for i, id := range ids {
		n := schemas.Node{NodeID: id, Type: schemas.Warehouse, Country: "FR", Lat: 45 + float64(i), Lon: 2, Active: true, ShipEnabled: true}
		if err := cat.ApplyNode([]byte(id), encode(t, schemas.Nodes, &n)); err != nil {
			t.Fatal(err)
		}
	}
	d := newDashboard(&Engine{Catalog: cat, Registry: prometheus.NewRegistry(), opts: Options{InstanceID: "i1", TopicPrefix: "p-"}})
	now := time.Now()
	d.mu.Lock()
	u := schemas.AtsUpdate{SKU: "S1", Version: 1, ATS: 5, Channels: []schemas.ChannelATS{},
		Nodes: []schemas.NodeATS{{NodeID: "toString", OnHand: 5, Available: 5, Active: true}}}
	d.addLocked(&kgo.Record{Topic: "p-ats", Key: []byte("S1"), Value: encode(t, schemas.AtsUpdates, &u), Timestamp: now})
	dec := schemas.RoutingDecision{OrderID: "O1", Status: schemas.DecisionRouted, Backordered: []schemas.OrderLine{}, Reasons: []string{}, DecidedAt: now.UnixMilli(),
		Shipments: []schemas.RoutedShipment{{ShipmentID: "0", NodeID: "hasOwnProperty", Method: schemas.DeliveryShip, Lines: []schemas.OrderLine{{LineID: "1", SKU: "S1", Qty: 1}}}}}
	d.addLocked(&kgo.Record{Topic: "p-routing-decisions", Key: []byte("O1"), Value: encode(t, schemas.RoutingDecisions, &dec), Timestamp: now})
	d.mu.Unlock()
	b, err := json.Marshal(d.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	answer := filepath.Join(t.TempDir(), "answer.json")
	if err := os.WriteFile(answer, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nodeBin, "testdata/dashboard_dom.js", "web", answer).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	page := string(out)
	for _, bad := range []string{"NaN", "native code", "[object Object]", "undefined", "innerHTML"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page shows %q:\n%s", bad, page)
		}
	}
	for _, want := range []string{`text="constructor"`, `text="__proto__"`, `text="toString"`, `text="hasOwnProperty · 1"`,
		`{"node":"toString"} title="on hand 5, reserved 0, safety 0" text="5"`, `text="<img src=x onerror=alert(1)>\"'"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s:\n%s", want, page)
		}
	}
}

// TestDashboardScriptFetchTimeout: a fetch of /v1/dashboard that never
// answers is aborted by the page after 5 s and shown as an error, not left
// hanging under a status that still reads "updated" (found by review).
func TestDashboardScriptFetchTimeout(t *testing.T) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	out, err := exec.Command(nodeBin, "testdata/dashboard_dom.js", "web", "/nonexistent", "hang").CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `status: div {} {} text="no data (timed out), retrying…"`) {
		t.Errorf("a hung fetch:\n%s", out)
	}
}

// TestDashboardOff: with dashboard false the page and its data are not
// served (nobody who reaches http_addr can start the tailer's read of the
// topics), and the rest of the API is.
func TestDashboardOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		e := &Engine{Catalog: catalog.New(nil), Registry: prometheus.NewRegistry(), opts: Options{InstanceID: "i1", Dashboard: on}}
		srv := httptest.NewServer(e.APIHandler())
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for _, path := range []string{"/", "/dashboard", "/dashboard/dashboard.js"} {
			if a := get(t, srv.URL+path); a.code != want {
				t.Errorf("dashboard %v: GET %s: %d, want %d", on, path, a.code, want)
			}
		}
		if !on {
			if a := get(t, srv.URL+"/v1/dashboard"); a.code != http.StatusNotFound {
				t.Errorf("dashboard off: GET /v1/dashboard: %d", a.code)
			}
		}
		if a := get(t, srv.URL+"/metrics"); a.code != http.StatusOK {
			t.Errorf("dashboard %v: /metrics %d", on, a.code)
		}
		srv.Close()
	}
}

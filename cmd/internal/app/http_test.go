package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"go.yaml.in/yaml/v3"
)

// apiInstance is an instance with its HTTP API on a port of its own.
type apiInstance struct {
	eng      *Engine
	addr     string
	stopHTTP context.CancelFunc
	stop     func()
}

// startAPI runs o's engines with the HTTP API on 127.0.0.1 (any port), as
// `invroute run` does: the API is bound first and advertised.
func startAPI(t *testing.T, o Options) *apiInstance {
	t.Helper()
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:0"
	}
	api, err := BindAPI(&o)
	if err != nil {
		t.Fatal(err)
	}
	eng, stop := start(t, o, t.Errorf)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	api.Serve(ctx, eng.APIHandler())
	return &apiInstance{eng: eng, addr: api.Addr, stopHTTP: cancel, stop: stop}
}

type answer struct {
	code int
	hdr  http.Header
	body map[string]any
	raw  string
}

func get(t *testing.T, url string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, hdr: resp.Header, raw: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &a.body); err != nil {
			t.Fatalf("GET %s: not JSON: %v\n%s", url, err, b)
		}
	}
	return a
}

// waitFor polls url until it answers code, or fails after timeout.
func waitFor(t *testing.T, url string, code int, timeout time.Duration) answer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a := get(t, url)
		if a.code == code {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d after %v, want %d: %s", url, a.code, timeout, code, a.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func apiOptions(t *testing.T, brokers, prefix, id string) Options {
	o := testOptions(t, brokers, prefix)
	o.InstanceID = id
	o.StateDir = t.TempDir()
	o.LagInterval = 100 * time.Millisecond
	o.SessionTimeout = 6 * time.Second
	return o
}

// TestHTTPQueries: two instances; every SKU's ATS and every order's
// status is answered by either, the non-owner forwarding to the owner;
// unknown keys are 404; an owner whose API is down gives a 503 that says
// so; /metrics shows the lag and franz-go's client metrics.
func TestHTTPQueries(t *testing.T) {
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix := testkit.Prefix(t)
	a := startAPI(t, apiOptions(t, brokers, prefix, "a"))
	defer a.stop()
	// b binds every interface: it advertises ":port", and a takes b's host
	// from what the broker saw (the group member's client host)
	ob := apiOptions(t, brokers, prefix, "b")
	ob.HTTPAddr = ":0"
	b := startAPI(t, ob)
	defer b.stop()
	cl := testkit.Client(t, brokers)
	stock := testkit.Stock{}
	var skus []string
	for i := range 12 {
		sku := fmt.Sprintf("Q-%02d", i)
		skus = append(skus, sku)
		stock[sku] = map[string]int64{"W-PAR": int64(10 + i), "W-BER": 5, "S-OPERA": 2}
	}
	seedNetwork(t, cl, a.eng, prefix, stock)
	for _, in := range []*apiInstance{a, b} {
		waitFor(t, "http://"+in.addr+"/readyz", http.StatusOK, 90*time.Second)
		if h := get(t, "http://"+in.addr+"/healthz"); h.code != http.StatusOK || h.body["status"] != "ok" {
			t.Errorf("healthz: %d %s", h.code, h.raw)
		}
	}

	// ATS: every SKU from both instances; each owner serves some.
	served := map[string]int{}
	for _, sku := range skus {
		want := stock[sku]["W-PAR"] + stock[sku]["W-BER"] + stock[sku]["S-OPERA"]
		var owners []string
		for _, in := range []*apiInstance{a, b} {
			var ans answer
			deadline := time.Now().Add(30 * time.Second)
			for { // the receipts may still be on their way
				ans = get(t, "http://"+in.addr+"/v1/ats/"+sku)
				if ans.code == http.StatusOK && int64(ans.body["ats"].(float64)) == want || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if ans.code != http.StatusOK {
				t.Fatalf("ats %s from %s: %d %s", sku, in.eng.opts.InstanceID, ans.code, ans.raw)
			}
			var got ATSAnswer
			if err := json.Unmarshal([]byte(ans.raw), &got); err != nil {
				t.Fatal(err)
			}
			if got.SKU != sku || got.ATS != want || len(got.Nodes) != 3 || len(got.Channels) != len(testkit.OrderChannels) || got.Version < 1 {
				t.Errorf("ats %s from %s: %+v, want ats %d over 3 nodes", sku, in.eng.opts.InstanceID, got, want)
			}
			for _, n := range got.Nodes {
				if n.OnHand != stock[sku][n.NodeID] || n.Available != n.OnHand || !n.Active {
					t.Errorf("ats %s node %+v, want on hand %d", sku, n, stock[sku][n.NodeID])
				}
			}
			if got.ServedBy != ans.hdr.Get(HeaderServedBy) || ans.hdr.Get(HeaderPartition) != fmt.Sprint(got.Partition) {
				t.Errorf("ats %s: headers %v, body served by %s partition %d", sku, ans.hdr, got.ServedBy, got.Partition)
			}
			owners = append(owners, got.ServedBy)
		}
		if owners[0] != owners[1] {
			t.Errorf("ats %s: served by %s when asked to a, by %s when asked to b: the owner must answer", sku, owners[0], owners[1])
		}
		served[owners[0]]++
	}
	if served["a"] == 0 || served["b"] == 0 {
		t.Fatalf("owners of the 12 SKUs: %v: the test needs both instances to own some (so that both forward)", served)
	}

	// Orders: where is my order, from both instances.
	rng := rand.New(rand.NewPCG(5, 5))
	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprintf("QO-%03d", i))
	}
	recs := testkit.RandomOrders(t, rng, prefix, ids, skus)
	placed := map[string]schemas.OrderEvent{}
	for _, r := range recs {
		var ev schemas.OrderEvent
		if err := schemas.OrderEvents.Decode(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		placed[ev.OrderID] = ev
	}
	testkit.Produce(t, cl, recs...)
	ds := testkit.Decisions(t, brokers, prefix, len(ids), 2*time.Minute)
	orderServed := map[string]int{}
	for _, id := range ids {
		last := ds[id][len(ds[id])-1]
		for _, in := range []*apiInstance{a, b} {
			var got OrderAnswer
			deadline := time.Now().Add(30 * time.Second)
			for { // the decision is visible once the router applied it
				ans := get(t, "http://"+in.addr+"/v1/orders/"+id)
				if ans.code != http.StatusOK {
					t.Fatalf("order %s from %s: %d %s", id, in.eng.opts.InstanceID, ans.code, ans.raw)
				}
				if err := json.Unmarshal([]byte(ans.raw), &got); err != nil {
					t.Fatal(err)
				}
				if len(got.Shipments) == len(last.Shipments) && got.State != string(schemas.StatePlaced) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if got.OrderID != id || len(got.Lines) != len(placed[id].Lines) || got.State == "" || got.State == string(schemas.StatePlaced) ||
				len(got.Shipments) != len(last.Shipments) || got.ChannelID != placed[id].ChannelID {
				t.Errorf("order %s from %s: %+v; decision %+v", id, in.eng.opts.InstanceID, got, last)
			}
			orderServed[got.ServedBy]++
		}
	}
	if orderServed["a"] == 0 || orderServed["b"] == 0 {
		t.Errorf("orders served by %v: both instances should own some", orderServed)
	}

	// Unknown keys: 404 with a JSON error, from the owner (forwarded or not).
	for _, path := range []string{"/v1/ats/NO-SUCH-SKU", "/v1/orders/no-such-order", "/v1/ats/Q-00", "/v1/orders/QO-000"} {
		unknown := strings.Contains(path, "NO-SUCH") || strings.Contains(path, "no-such")
		for _, in := range []*apiInstance{a, b} {
			ans := get(t, "http://"+in.addr+path)
			if unknown && (ans.code != http.StatusNotFound || !strings.Contains(fmt.Sprint(ans.body["error"]), "not found") || ans.body["owner"] == "") {
				t.Errorf("%s from %s: %d %s, want 404 JSON", path, in.eng.opts.InstanceID, ans.code, ans.raw)
			}
		}
	}
	if ans := get(t, "http://"+a.addr+"/v1/nothing"); ans.code != http.StatusNotFound || ans.body["error"] == nil {
		t.Errorf("unknown endpoint: %d %s", ans.code, ans.raw)
	}

	// A forwarded request that reaches an instance that does not own the
	// key is not forwarded again.
	var bSKU string
	for _, sku := range skus {
		if ans := get(t, "http://"+a.addr+"/v1/ats/"+sku); ans.hdr.Get(HeaderServedBy) == "b" {
			bSKU = sku
			break
		}
	}
	if ans := get(t, "http://"+a.addr+"/v1/ats/"+bSKU, HeaderForwarded, "x"); ans.code != http.StatusServiceUnavailable ||
		!strings.Contains(fmt.Sprint(ans.body["error"]), "ownership is moving") {
		t.Errorf("forwarded to a non-owner: %d %s", ans.code, ans.raw)
	}

	// Metrics: the lag and franz-go's client metrics (kprom), per topic.
	// Partitions may have moved since they were processed: look at both
	// instances' pages.
	m := get(t, "http://"+a.addr+"/metrics")
	if !strings.Contains(m.raw, "invroute_consumer_lag{") {
		t.Errorf("a's /metrics lacks invroute_consumer_lag")
	}
	m.raw += get(t, "http://"+b.addr+"/metrics").raw
	for _, w := range []string{
		`invroute_consumer_lag{partition="`,
		`invroute_kafka_fetch_records_total{topic="` + prefix + `orders",topology="router"}`,
		`invroute_kafka_fetch_records_total{topic="` + prefix + `invroute-reservation-commands",topology="inventory"}`,
		`invroute_kafka_produce_records_total{topic="` + prefix + `ats",topology="inventory"}`,
		`invroute_kafka_produce_records_total{topic="` + prefix + `routing-decisions",topology="router"}`,
		`invroute_kafka_connects_total{node_id="`,
		`invroute_transaction_seconds_bucket`,
		`invroute_partitions_assigned{topology="inventory"} 2`,
		`invroute_state_bytes{topology="router"}`,
	} {
		if !strings.Contains(m.raw, w) {
			t.Errorf("/metrics lacks %s:\n%s", w, kafkaMetricNames(m.raw))
		}
	}

	// The owner's API is down (its engine still owns the partitions): 503
	// naming the owner and why.
	b.stopHTTP()
	time.Sleep(100 * time.Millisecond)
	ans := get(t, "http://"+a.addr+"/v1/ats/"+bSKU)
	if ans.code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(ans.body["error"]), "instance b at 127.0.0.1:") ||
		!strings.Contains(fmt.Sprint(ans.body["error"]), "unreachable") || ans.body["owner"] != "b" {
		t.Errorf("owner down: %d %s", ans.code, ans.raw)
	}
	// what a owns is still answered
	for _, sku := range skus {
		if ans := get(t, "http://"+a.addr+"/v1/ats/"+sku); ans.code == http.StatusOK && ans.hdr.Get(HeaderServedBy) != "a" {
			t.Errorf("%s served by %s after b's API stopped", sku, ans.hdr.Get(HeaderServedBy))
		}
	}
}

// TestHTTPHealth: /healthz and /readyz before Run, while running, while
// the processing loop is stalled, and after Run; and readiness waits for
// the lag to fall under ready_max_lag.
func TestHTTPHealth(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	o := apiOptions(t, brokers, prefix, "h")
	o.Router = false
	o.ReadyMaxLag = 20
	o.MaxTxnRecords = 20
	o.LiveTimeout = time.Second
	o.QueryTimeout = time.Second
	if _, err := CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	testkit.SeedCatalog(t, cl, prefix)
	s := testkit.NewStream(9, 200, prefix)
	// The engine starts with a lag: 20 records per transaction, 300 of them,
	// long enough for the group poll to see it on a loaded machine too (it
	// once missed a backlog of 3,000 while other tests ran beside it).
	s.Produce(t, cl, 6000)

	// before Run
	eng, err := NewEngine(o, slogDiscard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(eng.APIHandler())
	defer srv.Close()
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := get(t, srv.URL+p); a.code != http.StatusServiceUnavailable || !strings.Contains(a.raw, "not running yet") {
			t.Errorf("%s before Run: %d %s", p, a.code, a.raw)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// not ready while it lags; ready once caught up
	sawLag := false
	deadline := time.Now().Add(2 * time.Minute)
	for {
		a := get(t, srv.URL+"/readyz")
		if a.code == http.StatusOK {
			break
		}
		if strings.Contains(a.raw, "lags") && strings.Contains(a.raw, "ready_max_lag 20") {
			sawLag = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 2 minutes: %s", a.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawLag {
		t.Error("/readyz never reported the lag above ready_max_lag while 6000 records were consumed 20 per transaction")
	}
	if a := get(t, srv.URL+"/healthz"); a.code != http.StatusOK {
		t.Errorf("healthz while running: %d %s", a.code, a.raw)
	}

	// a stalled processing loop (a query that blocks it for 4 s) fails
	// liveness after live_timeout and queries after query_timeout, and
	// liveness comes back with the loop
	stalled, started := make(chan error, 1), make(chan struct{})
	go func() {
		stalled <- eng.Inventory.Query(context.Background(), 0, func(map[string]*state.Store) error {
			close(started)
			time.Sleep(4 * time.Second)
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalling query did not start within 10 s")
	}
	// The loop's last round began before the query did: 1.2 s on, it is
	// past live_timeout (1 s), with 2.8 s of the stall left for the checks.
	time.Sleep(1200 * time.Millisecond)
	if a := get(t, srv.URL+"/healthz"); a.code != http.StatusServiceUnavailable || !strings.Contains(a.raw, "no round") {
		t.Errorf("healthz with the loop stalled: %d %s", a.code, a.raw)
	}
	if a := get(t, srv.URL+"/readyz"); a.code != http.StatusServiceUnavailable {
		t.Errorf("readyz with the loop stalled: %d %s", a.code, a.raw)
	}
	// a query the stalled loop cannot answer within query_timeout
	if a := get(t, srv.URL+"/v1/ats/"+s.Model.SKUs()[0]); a.code != http.StatusServiceUnavailable || !strings.Contains(a.raw, "did not answer the query in time") {
		t.Errorf("query with the loop stalled: %d %s", a.code, a.raw)
	}
	if err := <-stalled; err != nil {
		t.Errorf("stalling query: %v", err)
	}
	waitFor(t, srv.URL+"/healthz", http.StatusOK, 10*time.Second)

	// after Run
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if a := get(t, srv.URL+"/healthz"); a.code != http.StatusServiceUnavailable || !strings.Contains(a.raw, "not running") {
		t.Errorf("healthz after Run: %d %s", a.code, a.raw)
	}
}

// TestHTTPOwnerWithoutAPI: a key owned by an instance that serves no HTTP
// API is a 503 that says so; the others' keys are answered.
func TestHTTPOwnerWithoutAPI(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	oa := apiOptions(t, brokers, prefix, "a")
	oa.Router = false
	a := startAPI(t, oa)
	defer a.stop()
	oc := apiOptions(t, brokers, prefix, "c")
	oc.Router = false
	_, stopC := start(t, oc, t.Errorf) // no http_addr
	defer stopC()
	skus := loadedSKUs(t, brokers, prefix, oa.Group, a.addr)
	var ok, noAPI int
	for _, sku := range skus {
		ans := get(t, "http://"+a.addr+"/v1/ats/"+sku)
		switch {
		case ans.code == http.StatusOK && ans.hdr.Get(HeaderServedBy) == "a":
			ok++
		case ans.code == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(ans.body["error"]), "instance c, which serves no HTTP API") && ans.body["owner"] == "c":
			noAPI++
		default:
			t.Errorf("%s: %d %s", sku, ans.code, ans.raw)
		}
	}
	if ok == 0 || noAPI == 0 {
		t.Errorf("%d answered by a, %d owned by c: both should own some of the SKUs", ok, noAPI)
	}
}

// TestHTTPQueryWithoutOwner: a query for a partition nobody owns (the
// group has no member yet) is a 503 that says so; the router's endpoint
// on an instance without the router is 501.
func TestHTTPQueryWithoutOwner(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	o := apiOptions(t, brokers, prefix, "n")
	o.Router = false
	if _, err := CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(o, slogDiscard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(eng.APIHandler())
	defer srv.Close()
	if a := get(t, srv.URL+"/v1/ats/X"); a.code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(a.body["error"]), "no instance owns partition") {
		t.Errorf("no owner: %d %s", a.code, a.raw)
	}
	if a := get(t, srv.URL+"/v1/orders/X"); a.code != http.StatusNotImplemented {
		t.Errorf("orders without the router: %d %s", a.code, a.raw)
	}
	// a local query on an engine that does not run
	if err := eng.Inventory.Query(context.Background(), 0, func(map[string]*state.Store) error { return nil }); err == nil {
		t.Error("query on an engine that does not run: no error")
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// kafkaMetricNames lists the invroute_kafka_ series of a /metrics page.
func kafkaMetricNames(page string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "invroute_kafka_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHTTPAdmin: the admin handler needs the bearer token when one is set,
// serves pprof and the redacted configuration; nothing is registered on
// Go's default mux; the public API serves no admin endpoint.
func TestHTTPAdmin(t *testing.T) {
	o := Defaults()
	o.Brokers, o.InstanceID = "127.0.0.1:1", "adm"
	o.AdminAddr, o.AdminToken = "0.0.0.0:0", "s3cret-token"
	o.SecurityProtocol, o.SASLMechanism, o.SASLUsername, o.SASLPassword = "SASL_SSL", "PLAIN", "u", "kafka-pw"
	eng, err := NewEngine(o, slogDiscard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := httptest.NewServer(eng.AdminHandler())
	defer admin.Close()
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret-token"}} {
		if a := get(t, admin.URL+"/debug/pprof/", h...); a.code != http.StatusUnauthorized || a.hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("admin with %v: %d %s", h, a.code, a.raw)
		}
	}
	auth := []string{"Authorization", "Bearer s3cret-token"}
	if a := get(t, admin.URL+"/debug/pprof/", auth...); a.code != http.StatusOK || !strings.Contains(a.raw, "goroutine") {
		t.Errorf("pprof index: %d %s", a.code, a.raw)
	}
	if a := get(t, admin.URL+"/debug/pprof/goroutine?debug=1", auth...); a.code != http.StatusOK || !strings.Contains(a.raw, "goroutine profile") {
		t.Errorf("goroutine profile: %d %.200s", a.code, a.raw)
	}
	if a := get(t, admin.URL+"/debug/pprof/profile?seconds=1", auth...); a.code != http.StatusOK || len(a.raw) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", a.code, len(a.raw))
	}
	if a := get(t, admin.URL+"/debug/pprof/nope", auth...); a.code != http.StatusNotFound {
		t.Errorf("unknown profile: %d", a.code)
	}
	a := get(t, admin.URL+"/admin/config", auth...)
	if a.code != http.StatusOK || !strings.Contains(a.raw, "\ninstance_id: \"adm\"\n") || !strings.Contains(a.raw, "\nadmin_token: \"[redacted]\"\n") ||
		!strings.Contains(a.raw, "\ncommit_interval: 100ms\n") || !strings.Contains(a.raw, "\nrouter_group: \""+o.RouterGroupName()+"\"\n") || strings.Contains(a.raw, "s3cret-token") || strings.Contains(a.raw, "kafka-pw") {
		t.Errorf("admin config: %d %s", a.code, a.raw)
	}
	if a := get(t, admin.URL+"/admin/status", auth...); a.code != http.StatusOK || a.body["inventory"] == nil || a.body["live"] == "ok" {
		t.Errorf("admin status: %d %s", a.code, a.raw)
	}
	// without a token (loopback) the admin endpoints are open
	o.AdminToken = ""
	eng2, err := NewEngine(o, slogDiscard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	open := httptest.NewServer(eng2.AdminHandler())
	defer open.Close()
	if a := get(t, open.URL+"/admin/status"); a.code != http.StatusOK {
		t.Errorf("admin without token: %d", a.code)
	}
	// the public API has no admin or pprof endpoint
	api := httptest.NewServer(eng.APIHandler())
	defer api.Close()
	for _, p := range []string{"/debug/pprof/", "/admin/config"} {
		if a := get(t, api.URL+p); a.code != http.StatusNotFound {
			t.Errorf("API %s: %d", p, a.code)
		}
	}
	// nothing of ours on the default mux (which no server of ours serves;
	// expvar, imported by client_golang, puts /debug/vars there)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/profile", "/metrics", "/healthz", "/readyz", "/v1/ats/x", "/admin/config"} {
		if _, pattern := http.DefaultServeMux.Handler(httptest.NewRequest(http.MethodGet, p, nil)); pattern != "" {
			t.Errorf("the default mux serves %s (pattern %q)", p, pattern)
		}
	}
	// bare :port binds loopback
	if AdminListenAddr(":6060") != "127.0.0.1:6060" || AdminListenAddr("10.0.0.1:6060") != "10.0.0.1:6060" {
		t.Error("AdminListenAddr")
	}
}

// TestOpenAPI: api/openapi.yaml is YAML, has every endpoint, and its
// schemas have exactly the fields of the answers.
func TestOpenAPI(t *testing.T) {
	b, err := os.ReadFile("../../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]any `yaml:"paths"`
		Components struct {
			Schemas map[string]map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/ats/{sku}", "/v1/orders/{id}", "/healthz", "/readyz", "/metrics"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi.yaml lacks %s", p)
		}
	}
	fields := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	for name, v := range map[string]any{"ATS": ATSAnswer{}, "Order": OrderAnswer{}, "Error": apiError{}, "Check": checkAnswer{}} {
		props, _ := doc.Components.Schemas[name]["properties"].(map[string]any)
		got := slices.Sorted(maps.Keys(props))
		if want := fields(v); !slices.Equal(got, want) {
			t.Errorf("schema %s has fields %v, the answer %v", name, got, want)
		}
	}
}

// TestMemberAddr: the address a member advertises, with the broker's view
// of its host filled in when it advertises only a port.
func TestMemberAddr(t *testing.T) {
	for _, c := range []struct{ client, host, id, addr string }{
		{"inv-0@10.0.0.5:8080", "/10.0.0.9", "inv-0", "10.0.0.5:8080"},
		{"inv-0@:8080", "/10.0.0.9", "inv-0", "10.0.0.9:8080"},       // Kafka
		{"inv-0@:8080", "127.0.0.1:5555", "inv-0", "127.0.0.1:8080"}, // kfake
		{"inv-0@:8080", "/0:0:0:0:0:0:0:1", "inv-0", "[0:0:0:0:0:0:0:1]:8080"},
		{"inv-0@", "/10.0.0.9", "inv-0", ""}, // no API
		{"inv-0@:8080", "", "inv-0", ""},
		{"kgo", "/10.0.0.9", "kgo", ""}, // not an invroute member
	} {
		id, addr := memberAddr(&kadm.DescribedGroupMember{ClientID: c.client, ClientHost: c.host})
		if id != c.id || addr != c.addr {
			t.Errorf("%q from %q: %q %q, want %q %q", c.client, c.host, id, addr, c.id, c.addr)
		}
	}
	o := Defaults()
	for bound, want := range map[string]string{"127.0.0.1:80": "127.0.0.1:80", "[::]:80": ":80", "0.0.0.0:80": ":80", ":80": ":80"} {
		if got := advertised(o, bound); got != want {
			t.Errorf("advertised(%s) = %s, want %s", bound, got, want)
		}
	}
	o.HTTPAdvertise = "inv-0.invroute:8080"
	if got := advertised(o, "[::]:8080"); got != o.HTTPAdvertise {
		t.Errorf("advertised with http_advertise: %s", got)
	}
}

// TestHTTPAdvertisedAddressReachesItself: an instance whose advertised
// address reaches another instance (http_advertise copied between hosts,
// a loopback address, NAT) makes that instance forward to itself. The
// answer names the misconfigured instance and does not say "retry", which
// would never help.
func TestHTTPAdvertisedAddressReachesItself(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	oa := apiOptions(t, brokers, prefix, "a")
	oa.Router = false
	a := startAPI(t, oa)
	defer a.stop()
	ob := apiOptions(t, brokers, prefix, "b")
	ob.Router = false
	ob.HTTPAdvertise = a.addr // wrong: a's address
	b := startAPI(t, ob)
	defer b.stop()
	skus := loadedSKUs(t, brokers, prefix, oa.Group, a.addr)
	var ok, wrong int
	for _, sku := range skus {
		ans := get(t, "http://"+a.addr+"/v1/ats/"+sku)
		msg := fmt.Sprint(ans.body["error"])
		switch {
		case ans.code == http.StatusOK && ans.hdr.Get(HeaderServedBy) == "a":
			ok++
		case ans.code == http.StatusServiceUnavailable && ans.body["owner"] == "b" &&
			strings.Contains(msg, "reaches instance a instead: set http_advertise on b") && !strings.Contains(msg, "retry"):
			wrong++
		default:
			t.Errorf("%s: %d %s", sku, ans.code, ans.raw)
		}
	}
	if ok == 0 || wrong == 0 {
		t.Errorf("%d answered by a, %d owned by b: both should own some of the SKUs", ok, wrong)
	}
}

// loadedSKUs seeds the catalog, produces 400 movements of 40 SKUs, waits
// until group has processed them and the API at addr is ready, and returns
// the SKUs.
func loadedSKUs(t *testing.T, brokers, prefix, group, addr string) []string {
	t.Helper()
	cl := testkit.Client(t, brokers)
	testkit.SeedCatalog(t, cl, prefix)
	s := testkit.NewStream(4, 40, prefix)
	s.Produce(t, cl, 400)
	testkit.WaitCaughtUp(t, cl, group, prefix, 60*time.Second)
	waitFor(t, "http://"+addr+"/readyz", http.StatusOK, 60*time.Second)
	return s.Model.SKUs()
}

package app

// The live dashboard (README "Dashboard"): a page embedded in the binary
// (web/, plain HTML, CSS and JavaScript) at GET / and its data at
// GET /v1/dashboard, aggregated by this instance.
//
// The data come from two sources. The instance's own counters (the
// Prometheus registry, sampled every second): movements and orders per
// second, consumer lag. And the output topics, tailed read_committed from
// their start as any consumer would see them: ats (the hottest SKUs, by
// update count, with their last ATS per node), routing-decisions (split
// rate, shipments saved, recent decisions), fulfillment-requests (where
// each recent order ships to, for the map) and dead-letter (count, stages,
// recent reasons). Everything kept is bounded: top-k counters, rings of
// recent items, capped maps.
//
// The tailer starts with the first request of /v1/dashboard and stops after
// dashboardIdle without one (keeping its aggregates and positions, so that
// it resumes where it stopped); APIHandlerWithDashboard runs it from the
// start until its context ends (invroute demo).

import (
	"container/heap"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

//go:embed web
var webFiles embed.FS

// Bounds of what the dashboard keeps.
const (
	dashboardIdle      = 2 * time.Minute  // the tailer stops after this long without a request
	dashTopK           = 1000             // Space-Saving counters of SKU update counts
	dashValueMax       = 16 << 10         // bytes of a counted SKU's last update kept (larger: not shown)
	dashHotShown       = 12               // hottest SKUs answered
	dashRecentDecision = 40               // recent routing decisions kept
	dashShipmentsKept  = 16               // shipments kept per recent decision
	dashShipTos        = 2048             // order -> ship-to entries kept (FIFO)
	dashRecentDead     = 20               // recent dead letters kept
	dashMapKeys        = 16               // distinct stages or source topics counted; more count as "other"
	dashSamples        = 121              // one per second: two minutes of rates
	dashRateWindow     = 5                // seconds the rates are averaged over
	dashErrShown       = 10 * time.Second // a tail error shows at least this long without records
	dashText           = 300              // characters of an error or reason kept
	dashKey            = 80               // characters of a dead letter's key kept
)

// DashboardAnswer is the answer of GET /v1/dashboard.
type DashboardAnswer struct {
	Instance    string             `json:"instance"`
	At          time.Time          `json:"at"`
	TailSince   time.Time          `json:"tail_since"` // when the tailer first started
	TailRecords int64              `json:"tail_records"`
	TailError   string             `json:"tail_error,omitempty"`
	Nodes       []DashNode         `json:"nodes"`
	Rates       DashRates          `json:"rates"`
	Series      DashSeries         `json:"series"`
	Hot         []DashHotSKU       `json:"hot"`
	HotTracked  int                `json:"hot_tracked"` // SKUs whose counts are kept (Space-Saving)
	ATSUpdates  int64              `json:"ats_updates"`
	Routing     DashRouting        `json:"routing"`
	Decisions   []DashDecision     `json:"decisions"` // newest first
	Lag         []DashLag          `json:"lag"`
	DeadLetters DashDeadLetters    `json:"dead_letters"`
	Counters    map[string]float64 `json:"counters"` // this instance's engine counters (totals)
	Channels    []string           `json:"channels"`
}

// DashNode is a fulfillment node of the catalog (for the map).
type DashNode struct {
	NodeID  string  `json:"node_id"`
	Type    string  `json:"type"`
	Country string  `json:"country"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Active  bool    `json:"active"`
	Ship    bool    `json:"ship"`
	Pickup  bool    `json:"pickup"`
}

// DashRates are per second, averaged over the last dashRateWindow seconds.
// Movements and orders are this instance's (its engines' counters);
// decisions, ATS updates and dead letters are every instance's (read from
// the topics).
type DashRates struct {
	Movements   float64 `json:"movements_per_s"`
	Orders      float64 `json:"orders_per_s"`
	Decisions   float64 `json:"decisions_per_s"`
	ATSUpdates  float64 `json:"ats_updates_per_s"`
	DeadLetters float64 `json:"dead_letters_per_s"`
	WindowS     float64 `json:"window_s"`
}

// DashSeries are per-second rates of the last two minutes, oldest first.
type DashSeries struct {
	T         []int64   `json:"t"` // unix seconds
	Movements []float64 `json:"movements"`
	Orders    []float64 `json:"orders"`
	Decisions []float64 `json:"decisions"`
}

// DashHotSKU is one of the SKUs with the most ATS updates, and its last
// update. Updates may overcount by at most UpdatesError (Space-Saving).
type DashHotSKU struct {
	SKU          string       `json:"sku"`
	Updates      int64        `json:"updates"`
	UpdatesError int64        `json:"updates_error"`
	Version      int64        `json:"version"`
	ATS          int64        `json:"ats"`
	Channels     []ChannelATS `json:"channels"`
	Nodes        []NodeATS    `json:"nodes"`
	UpdatedAt    time.Time    `json:"updated_at"`
}

// DashRouting sums the routing decisions read. A decision with shipments
// would ship one parcel per line without routing (per line and shipment:
// a line split across nodes needs a parcel from each); Lines counts those
// parcels, Saved is Lines minus the shipments routed (the bench's "one
// shipment per line" baseline), never below zero, and SplitRate is the share of decisions with shipments that
// have more than one (the bench's split rate).
type DashRouting struct {
	Decisions     int64            `json:"decisions"`
	WithShipments int64            `json:"with_shipments"`
	Split         int64            `json:"split"`
	SplitRate     float64          `json:"split_rate"`
	Shipments     int64            `json:"shipments"`
	Lines         int64            `json:"lines"`
	Saved         int64            `json:"shipments_saved"`
	ByStatus      map[string]int64 `json:"by_status"`
}

// DashDecision is one recent routing decision.
type DashDecision struct {
	OrderID   string         `json:"order_id"`
	Status    string         `json:"status"`
	Split     bool           `json:"split"`
	DecidedAt time.Time      `json:"decided_at"`
	Reason    string         `json:"reason,omitempty"`
	ShipTo    *DashPlace     `json:"ship_to,omitempty"` // from its fulfillment requests
	Shipments []DashShipment `json:"shipments"`
	More      int            `json:"more_shipments,omitempty"`
}

// DashPlace is where an order ships to.
type DashPlace struct {
	Country string  `json:"country"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
}

// DashShipment is one shipment of a recent decision.
type DashShipment struct {
	NodeID     string  `json:"node_id"`
	Method     string  `json:"method"`
	Lines      int     `json:"lines"`
	Units      int64   `json:"units"`
	DistanceKm float64 `json:"distance_km"`
}

// DashLag is one topology's consumer lag on this instance's partitions.
type DashLag struct {
	Topology string `json:"topology"`
	Records  int64  `json:"records"`
	Max      int64  `json:"max"`
	MaxAt    string `json:"max_at,omitempty"` // topic[partition]
}

// DashDeadLetters sums the dead-letter topic.
type DashDeadLetters struct {
	Total   int64            `json:"total"`
	ByStage map[string]int64 `json:"by_stage"`
	ByTopic map[string]int64 `json:"by_topic"`
	Recent  []DashDeadLetter `json:"recent"` // newest first
}

// DashDeadLetter is one recent dead letter, from its headers.
type DashDeadLetter struct {
	At          time.Time `json:"at"`
	SourceTopic string    `json:"source_topic"`
	Partition   string    `json:"source_partition"`
	Offset      string    `json:"source_offset"`
	Stage       string    `json:"stage"`
	Error       string    `json:"error"`
	Key         string    `json:"key"`
}

// dashboard aggregates what the page shows.
type dashboard struct {
	e       *Engine
	idle    time.Duration
	mu      sync.Mutex
	running bool
	pinned  bool
	asked   time.Time
	since   time.Time
	offsets map[string]map[int32]int64 // next offset to read, per topic and partition
	tailErr string
	records int64
	agg     dashAggregates
	samples []dashSample    // ring, oldest first
	base    context.Context // the tailer runs under it: Background, or the pinned context
	// freshFrom is, per topic and partition, the end offset when the
	// tailer began reading it (this run): records from there on are new.
	freshFrom map[string]map[int32]int64
	lastErr   time.Time // when a poll last had errors
}

// dashAggregates is what the tailer has read.
type dashAggregates struct {
	hot        topK
	atsUpdates int64
	// fresh counts the records written after the tailer started reading
	// their partition (at or past the end offset it listed then), for the
	// rates: the backlog read at the start of the tailer, or after an idle
	// stop, is not a burst of current decisions. Offsets, not timestamps:
	// the producing instances' clocks may be off.
	fresh      struct{ decisions, ats, dead int64 }
	routing    DashRouting
	decisions  ring[DashDecision]
	shipTo     fifoMap[DashPlace]
	dead       DashDeadLetters
	deadRecent ring[DashDeadLetter]
}

type dashSample struct {
	at                   time.Time
	movements, orders    float64 // this instance's counters
	decisions, ats, dead int64   // tailed
	lag                  []DashLag
	counters             map[string]float64
}

func newDashboard(e *Engine) *dashboard {
	return &dashboard{e: e, idle: dashboardIdle, offsets: map[string]map[int32]int64{}, agg: newAggregates(), base: context.Background(),
		freshFrom: map[string]map[int32]int64{}}
}

func newAggregates() dashAggregates {
	return dashAggregates{
		hot:        newTopK(dashTopK),
		routing:    DashRouting{ByStatus: map[string]int64{}},
		decisions:  ring[DashDecision]{n: dashRecentDecision},
		shipTo:     fifoMap[DashPlace]{n: dashShipTos, m: map[string]DashPlace{}},
		dead:       DashDeadLetters{ByStage: map[string]int64{}, ByTopic: map[string]int64{}},
		deadRecent: ring[DashDeadLetter]{n: dashRecentDead},
	}
}

// APIHandlerWithDashboard is APIHandler with the dashboard's tailer
// running from now until ctx ends (not only while the page is open).
func (e *Engine) APIHandlerWithDashboard(ctx context.Context) http.Handler {
	d := newDashboard(e)
	d.mu.Lock()
	d.pinned, d.base = true, ctx
	d.startLocked(ctx)
	d.mu.Unlock()
	return e.apiHandler(d)
}

// routes adds the page, its assets and its data to mux.
func (d *dashboard) routes(mux *http.ServeMux) {
	web, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // embedded at build time
	}
	page := func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(web, "index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /dashboard", page)
	assets := http.StripPrefix("/dashboard/", http.FileServerFS(web))
	// The page loads its files and data by relative URLs (behind a proxy
	// under a prefix too): it is served at / and /dashboard only.
	toPage := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "../", http.StatusFound) }
	mux.HandleFunc("GET /dashboard/{$}", toPage)
	mux.HandleFunc("GET /dashboard/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "index.html" {
			toPage(w, r)
			return
		}
		securityHeaders(w)
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /v1/dashboard", func(w http.ResponseWriter, r *http.Request) {
		d.touch()
		writeJSON(w, http.StatusOK, d.snapshot())
	})
}

// securityHeaders: the page loads only its own files and data; nothing
// read from the topics is ever interpreted as HTML (the script sets text).
func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// touch records a request and starts the tailer if it is not running.
func (d *dashboard) touch() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = time.Now()
	if !d.running && d.base.Err() == nil { // a pinned tailer is not restarted after its context ended
		d.startLocked(d.base)
	}
}

func (d *dashboard) startLocked(ctx context.Context) {
	d.running = true
	d.asked = time.Now()
	d.samples = d.samples[:0] // from before an idle stop: no figures of then shown as now
	if d.since.IsZero() {
		d.since = time.Now()
	}
	go d.run(ctx)
}

// topics are the tailed topics, prefixed.
func (d *dashboard) topics() []string {
	p := d.e.opts.TopicPrefix
	return []string{p + string(inventory.TopicATS), p + string(router.TopicDecisions), p + string(router.TopicRequests), p + string(inventory.TopicDeadLetter)}
}

// run tails the topics and samples the counters until ctx ends or, when
// not pinned, nobody asked for dashboardIdle.
func (d *dashboard) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
	}()
	opts := append(slices.Clip(d.e.extra), kgo.SeedBrokers(SplitBrokers(d.e.opts.Brokers)...),
		kgo.ClientID(d.e.opts.InstanceID+"-dashboard"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		d.setErr(err)
		return
	}
	defer cl.Close()
	go d.sampleLoop(ctx)
	adm := kadm.NewClient(cl)
	var lastList time.Time
	consumed := map[string]map[int32]bool{}
	for ctx.Err() == nil {
		if time.Since(lastList) > 30*time.Second {
			// Every partition of the topics, at the offset where the tailer
			// stopped or at the start: also picks up topics created later.
			lastList = time.Now()
			if !d.addPartitions(ctx, cl, adm, consumed) {
				lastList = lastList.Add(-28 * time.Second) // again in 2 s
			}
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		pcancel()
		var errs []string
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				errs = append(errs, t+": "+err.Error())
			}
		})
		d.mu.Lock()
		d.polledLocked(errs, !fetches.Empty(), time.Now())
		n := 0
		fetches.EachRecord(func(r *kgo.Record) {
			d.addLocked(r)
			if n++; n%1024 == 0 { // a catch-up fetch is tens of MB: let the page's requests in
				d.mu.Unlock()
				d.mu.Lock()
			}
		})
		idle := !d.pinned && time.Since(d.asked) > d.idle
		d.mu.Unlock()
		if idle {
			return
		}
	}
}

const listingErr = "listing the topics' partitions"

// polledLocked shows the errors of a poll, or clears those of the polls
// before once the tailer reads records again or has had no error for
// dashErrShown (a one-off fetch error must not stay on the page, and a
// recurring one must not flicker between its occurrences). An error
// listing the partitions is cleared by the next listing that succeeds.
func (d *dashboard) polledLocked(errs []string, records bool, now time.Time) {
	switch {
	case len(errs) > 0:
		d.tailErr, d.lastErr = strings.Join(errs, "; "), now
	case strings.HasPrefix(d.tailErr, listingErr):
	case records || now.Sub(d.lastErr) >= dashErrShown:
		d.tailErr = ""
	}
}

// addPartitions starts consuming every partition not consumed yet.
// consumed holds the partitions this client consumes. It reports whether
// the partitions could be listed.
func (d *dashboard) addPartitions(ctx context.Context, cl *kgo.Client, adm *kadm.Client, consumed map[string]map[int32]bool) bool {
	qctx, cancel := context.WithTimeout(ctx, d.e.opts.QueryTimeout)
	ends, err := adm.ListEndOffsets(qctx, d.topics()...)
	cancel()
	if err != nil {
		d.setErr(fmt.Errorf("%s: %w", listingErr, err))
		return false
	}
	add := map[string]map[int32]kgo.Offset{}
	d.mu.Lock()
	if strings.HasPrefix(d.tailErr, listingErr) {
		d.tailErr = ""
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || consumed[o.Topic][o.Partition] {
			return
		}
		off := kgo.NewOffset().AtStart()
		if next, ok := d.offsets[o.Topic][o.Partition]; ok {
			off = kgo.NewOffset().At(next)
		}
		if add[o.Topic] == nil {
			add[o.Topic] = map[int32]kgo.Offset{}
		}
		add[o.Topic][o.Partition] = off
		if d.freshFrom[o.Topic] == nil {
			d.freshFrom[o.Topic] = map[int32]int64{}
		}
		d.freshFrom[o.Topic][o.Partition] = o.Offset
		if consumed[o.Topic] == nil {
			consumed[o.Topic] = map[int32]bool{}
		}
		consumed[o.Topic][o.Partition] = true
	})
	d.mu.Unlock()
	if len(add) > 0 {
		cl.AddConsumePartitions(add)
	}
	return true
}

func (d *dashboard) setErr(err error) {
	d.mu.Lock()
	d.tailErr = err.Error()
	d.mu.Unlock()
}

// addLocked aggregates one record of a tailed topic.
func (d *dashboard) addLocked(r *kgo.Record) {
	if d.offsets[r.Topic] == nil {
		d.offsets[r.Topic] = map[int32]int64{}
	}
	d.offsets[r.Topic][r.Partition] = r.Offset + 1
	d.records++
	fresh := r.Offset >= d.freshFrom[r.Topic][r.Partition] // absent: 0
	count := func(n *int64) {
		if fresh {
			*n++
		}
	}
	switch strings.TrimPrefix(r.Topic, d.e.opts.TopicPrefix) {
	case string(inventory.TopicATS):
		// Keyed by SKU: counted without decoding; the shown ones are
		// decoded when asked.
		if len(r.Key) > 0 && len(r.Key) <= 256 {
			d.agg.atsUpdates++
			count(&d.agg.fresh.ats)
			v := r.Value
			if len(v) > dashValueMax {
				v = nil
			}
			d.agg.hot.add(string(r.Key), v)
		}
	case string(router.TopicDecisions):
		var dec schemas.RoutingDecision
		if schemas.RoutingDecisions.Decode(r.Value, &dec) == nil {
			d.agg.addDecision(&dec)
			count(&d.agg.fresh.decisions)
		}
	case string(router.TopicRequests):
		var fr schemas.FulfillmentRequest
		if schemas.FulfillmentRequests.Decode(r.Value, &fr) == nil && fr.ShipTo != nil {
			d.agg.shipTo.put(fr.OrderID, DashPlace{Country: clip(fr.ShipTo.Country, 8), Lat: fr.ShipTo.Lat, Lon: fr.ShipTo.Lon})
		}
	case string(inventory.TopicDeadLetter):
		d.agg.addDeadLetter(r)
		count(&d.agg.fresh.dead)
	}
}

func (a *dashAggregates) addDecision(dec *schemas.RoutingDecision) {
	rs := &a.routing
	rs.Decisions++
	if len(rs.ByStatus) < dashMapKeys || rs.ByStatus[string(dec.Status)] > 0 {
		rs.ByStatus[string(dec.Status)]++
	}
	dd := DashDecision{OrderID: clip(dec.OrderID, dashKey), Status: string(dec.Status), Split: dec.Split,
		DecidedAt: dashTime(time.UnixMilli(dec.DecidedAt)), Shipments: []DashShipment{}}
	if len(dec.Reasons) > 0 {
		dd.Reason = clip(dec.Reasons[0], dashText)
	}
	if len(dec.Shipments) > 0 {
		rs.WithShipments++
		var lines int // a line in two shipments needs two parcels without routing too
		for _, s := range dec.Shipments {
			lines += max(1, len(s.Lines))
		}
		rs.Shipments += int64(len(dec.Shipments))
		rs.Lines += int64(lines)
		rs.Saved += int64(lines - len(dec.Shipments))
		if len(dec.Shipments) > 1 {
			rs.Split++
		}
	}
	for i, s := range dec.Shipments {
		if i == dashShipmentsKept {
			dd.More = len(dec.Shipments) - i
			break
		}
		var units int64
		for _, l := range s.Lines {
			units += l.Qty
		}
		dd.Shipments = append(dd.Shipments, DashShipment{NodeID: clip(s.NodeID, dashKey), Method: string(s.Method),
			Lines: len(s.Lines), Units: units, DistanceKm: s.DistanceKm})
	}
	a.decisions.push(dd)
}

func (a *dashAggregates) addDeadLetter(r *kgo.Record) {
	a.dead.Total++
	dl := DashDeadLetter{At: dashTime(r.Timestamp), Key: clip(string(r.Key), dashKey)}
	for _, h := range r.Headers {
		switch h.Key {
		case "invroute.error":
			dl.Error = clip(string(h.Value), dashText)
		case "invroute.stage":
			dl.Stage = clip(string(h.Value), 32)
		case "invroute.source.topic":
			dl.SourceTopic = clip(string(h.Value), dashKey)
		case "invroute.source.partition":
			dl.Partition = clip(string(h.Value), 12)
		case "invroute.source.offset":
			dl.Offset = clip(string(h.Value), 24)
		}
	}
	count := func(m map[string]int64, k string) {
		if _, ok := m[k]; !ok && len(m) >= dashMapKeys {
			k = "other"
		}
		m[k]++
	}
	count(a.dead.ByStage, dl.Stage)
	count(a.dead.ByTopic, dl.SourceTopic)
	a.deadRecent.push(dl)
}

// dashTime is t in UTC, or the zero time if JSON cannot hold it (a year
// outside 0-9999: a record's timestamp is any int64 a producer wrote).
func dashTime(t time.Time) time.Time {
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}
	}
	return t.UTC()
}

// clip makes s valid UTF-8 of at most n runes.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// sampleLoop samples the counters every second until ctx ends.
func (d *dashboard) sampleLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		d.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Counters of this instance shown by the dashboard.
var dashCounters = []string{
	"invroute_inventory_movements_applied_total", "invroute_inventory_movements_duplicate_total",
	"invroute_router_orders_total", "invroute_dead_letters_total", "invroute_records_processed_total",
	"invroute_transactions_committed_total", "invroute_transactions_aborted_total",
}

func (d *dashboard) sample() {
	s := dashSample{at: time.Now(), counters: map[string]float64{}}
	if mfs, err := d.e.Registry.Gather(); err == nil {
		lags := map[string]*DashLag{}
		for _, mf := range mfs {
			name := mf.GetName()
			if name == "invroute_consumer_lag" {
				for _, m := range mf.GetMetric() {
					l := labels(m)
					dl := lags[l["topology"]]
					if dl == nil {
						dl = &DashLag{Topology: l["topology"]}
						lags[l["topology"]] = dl
					}
					v := int64(m.GetGauge().GetValue())
					dl.Records += v
					if v > dl.Max || dl.MaxAt == "" {
						dl.Max, dl.MaxAt = v, l["topic"]+"["+l["partition"]+"]"
					}
				}
				continue
			}
			if !slices.Contains(dashCounters, name) {
				continue
			}
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			s.counters[name] = sum
		}
		for _, ne := range d.e.engines() { // a topology without lag yet shows 0
			if lags[ne.name] == nil {
				lags[ne.name] = &DashLag{Topology: ne.name}
			}
		}
		for _, l := range lags {
			s.lag = append(s.lag, *l)
		}
		sort.Slice(s.lag, func(i, j int) bool { return s.lag[i].Topology < s.lag[j].Topology })
	}
	s.movements = s.counters["invroute_inventory_movements_applied_total"]
	s.orders = s.counters["invroute_router_orders_total"]
	d.mu.Lock()
	defer d.mu.Unlock()
	s.decisions, s.ats, s.dead = d.agg.fresh.decisions, d.agg.fresh.ats, d.agg.fresh.dead
	if n := len(d.samples); n > 0 && s.at.Sub(d.samples[n-1].at) > 3*time.Second {
		d.samples = d.samples[:0] // the tailer was stopped: no rates across the gap
	}
	d.samples = append(d.samples, s)
	if len(d.samples) > dashSamples {
		d.samples = slices.Delete(d.samples, 0, len(d.samples)-dashSamples)
	}
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// snapshot is the answer of /v1/dashboard.
func (d *dashboard) snapshot() *DashboardAnswer {
	a := &DashboardAnswer{Instance: d.e.opts.InstanceID, At: time.Now().UTC(), Nodes: []DashNode{}, Hot: []DashHotSKU{},
		Decisions: []DashDecision{}, Lag: []DashLag{}, Channels: []string{}, Counters: map[string]float64{}}
	snap := d.e.Catalog.Snapshot()
	for _, n := range snap.Nodes() {
		a.Nodes = append(a.Nodes, DashNode{NodeID: n.NodeID, Type: string(n.Type), Country: n.Country, Lat: n.Lat, Lon: n.Lon,
			Active: n.Active, Ship: n.ShipEnabled, Pickup: n.PickupEnabled})
	}
	for _, c := range snap.Channels() {
		a.Channels = append(a.Channels, c.ChannelID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a.TailSince, a.TailRecords, a.TailError = d.since.UTC(), d.records, d.tailErr
	for _, h := range d.agg.hot.top(dashHotShown) {
		var u schemas.AtsUpdate
		if len(h.last) == 0 || schemas.AtsUpdates.Decode(h.last, &u) != nil {
			continue
		}
		hs := DashHotSKU{SKU: u.SKU, Updates: h.count, UpdatesError: h.err, Version: u.Version, ATS: u.ATS,
			Channels: []ChannelATS{}, Nodes: []NodeATS{}, UpdatedAt: dashTime(time.UnixMilli(u.UpdatedAt))}
		for _, c := range u.Channels {
			hs.Channels = append(hs.Channels, ChannelATS{ChannelID: c.ChannelID, ATS: c.ATS})
		}
		for _, n := range u.Nodes {
			hs.Nodes = append(hs.Nodes, NodeATS{NodeID: n.NodeID, OnHand: n.OnHand, Reserved: n.Reserved,
				SafetyStock: n.SafetyStock, Available: n.Available, Active: n.Active})
		}
		a.Hot = append(a.Hot, hs)
	}
	a.HotTracked = len(d.agg.hot.h)
	a.ATSUpdates = d.agg.atsUpdates
	a.Routing = d.agg.routing
	a.Routing.ByStatus = cloneMap(d.agg.routing.ByStatus)
	if a.Routing.WithShipments > 0 {
		a.Routing.SplitRate = float64(a.Routing.Split) / float64(a.Routing.WithShipments)
	}
	for _, dec := range d.agg.decisions.newestFirst() {
		if p, ok := d.agg.shipTo.m[dec.OrderID]; ok {
			dec.ShipTo = &p
		}
		dec.Shipments = slices.Clone(dec.Shipments)
		a.Decisions = append(a.Decisions, dec)
	}
	a.DeadLetters = DashDeadLetters{Total: d.agg.dead.Total, ByStage: cloneMap(d.agg.dead.ByStage), ByTopic: cloneMap(d.agg.dead.ByTopic),
		Recent: d.agg.deadRecent.newestFirst()}
	if n := len(d.samples); n > 0 {
		last := d.samples[n-1]
		a.Lag = append(a.Lag, last.lag...)
		for k, v := range last.counters {
			a.Counters[k] = v
		}
		if n > 1 {
			first := d.samples[max(0, n-1-dashRateWindow)]
			if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
				a.Rates = DashRates{WindowS: dt,
					Movements: max(0, last.movements-first.movements) / dt, Orders: max(0, last.orders-first.orders) / dt,
					Decisions: float64(last.decisions-first.decisions) / dt, ATSUpdates: float64(last.ats-first.ats) / dt,
					DeadLetters: float64(last.dead-first.dead) / dt}
			}
		}
		for i := 1; i < n; i++ {
			p, c := d.samples[i-1], d.samples[i]
			dt := c.at.Sub(p.at).Seconds()
			if dt <= 0 {
				continue
			}
			a.Series.T = append(a.Series.T, c.at.Unix())
			a.Series.Movements = append(a.Series.Movements, max(0, c.movements-p.movements)/dt)
			a.Series.Orders = append(a.Series.Orders, max(0, c.orders-p.orders)/dt)
			a.Series.Decisions = append(a.Series.Decisions, float64(c.decisions-p.decisions)/dt)
		}
	}
	if a.DeadLetters.Recent == nil {
		a.DeadLetters.Recent = []DashDeadLetter{}
	}
	return a
}

func cloneMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ring keeps the last n items pushed.
type ring[T any] struct {
	n     int
	items []T
	next  int
}

func (r *ring[T]) push(v T) {
	if len(r.items) < r.n {
		r.items = append(r.items, v)
		return
	}
	r.items[r.next] = v
	r.next = (r.next + 1) % r.n
}

func (r *ring[T]) newestFirst() []T {
	out := make([]T, 0, len(r.items))
	for i := range r.items {
		out = append(out, r.items[(r.next-1-i+2*len(r.items))%len(r.items)])
	}
	return out
}

// fifoMap keeps the last n keys put.
type fifoMap[T any] struct {
	n     int
	m     map[string]T
	order []string // ring of keys in the order first put
	next  int
}

func (f *fifoMap[T]) put(k string, v T) {
	if _, ok := f.m[k]; ok {
		f.m[k] = v
		return
	}
	if len(f.order) < f.n {
		f.order = append(f.order, k)
	} else {
		delete(f.m, f.order[f.next])
		f.order[f.next] = k
		f.next = (f.next + 1) % f.n
	}
	f.m[k] = v
}

// topK counts updates per SKU with the Space-Saving algorithm (Metwally,
// Agrawal, El Abbadi 2005) in k counters: a SKU not counted takes the
// counter of the least counted one, inheriting its count as its possible
// overcount. Every SKU updated more than total/k times is counted, and a
// count exceeds the truth by at most its err.
type topK struct {
	k int
	m map[string]*hotEntry
	h hotHeap
}

type hotEntry struct {
	sku        string
	count, err int64
	last       []byte // the SKU's last AtsUpdate, encoded
	idx        int
}

func newTopK(k int) topK { return topK{k: k, m: map[string]*hotEntry{}} }

// add counts one update of sku and keeps a copy of its value.
func (t *topK) add(sku string, value []byte) {
	if e, ok := t.m[sku]; ok {
		e.count++
		e.last = append(e.last[:0], value...)
		heap.Fix(&t.h, e.idx)
		return
	}
	if len(t.h) < t.k {
		e := &hotEntry{sku: sku, count: 1, last: append([]byte(nil), value...)}
		t.m[sku] = e
		heap.Push(&t.h, e)
		return
	}
	e := t.h[0]
	delete(t.m, e.sku)
	e.sku, e.err, e.last = sku, e.count, append(e.last[:0], value...)
	e.count++
	t.m[sku] = e
	heap.Fix(&t.h, 0)
}

// top returns the n most counted, most first (then by SKU).
func (t *topK) top(n int) []*hotEntry {
	out := slices.Clone(t.h)
	sort.Slice(out, func(i, j int) bool {
		if out[i].count != out[j].count {
			return out[i].count > out[j].count
		}
		return out[i].sku < out[j].sku
	})
	return out[:min(n, len(out))]
}

type hotHeap []*hotEntry

func (h hotHeap) Len() int { return len(h) }
func (h hotHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count < h[j].count
	}
	return h[i].sku > h[j].sku
}
func (h hotHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *hotHeap) Push(x any)   { e := x.(*hotEntry); e.idx = len(*h); *h = append(*h, e) }
func (h *hotHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

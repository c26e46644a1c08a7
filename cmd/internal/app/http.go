package app

// The HTTP API (http_addr): /metrics, /healthz, /readyz and the
// interactive queries (query.go); and the admin listener (admin_addr):
// pprof, the effective configuration (YAML) and the engines' status, loopback
// unless a bearer token guards it. Nothing is registered on Go's default
// mux.

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/invroute/invroute/topology"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// validateHTTP checks the HTTP keys.
func (o *Options) validateHTTP() []error {
	var errs []error
	addr := func(key, v string, needHost bool) (host string, ok bool) {
		if v == "" {
			return "", false
		}
		h, port, err := net.SplitHostPort(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: expected host:port (%v)", key, v, err))
			return "", false
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 || (needHost && n == 0) {
			errs = append(errs, fmt.Errorf("%s %q: bad port %q", key, v, port))
			return "", false
		}
		if needHost && (h == "" || net.ParseIP(h) != nil && net.ParseIP(h).IsUnspecified()) {
			errs = append(errs, fmt.Errorf("%s %q: needs a host the other instances can reach", key, v))
			return "", false
		}
		return h, true
	}
	addr("http_addr", o.HTTPAddr, false)
	addr("http_advertise", o.HTTPAdvertise, true)
	if o.HTTPAdvertise != "" && o.HTTPAddr == "" {
		errs = append(errs, fmt.Errorf("http_advertise %q without http_addr: this instance would advertise an API it does not serve", o.HTTPAdvertise))
	}
	if o.MetricsAddr != "" && o.HTTPAddr != o.MetricsAddr {
		errs = append(errs, fmt.Errorf("metrics_addr %q and http_addr %q: set only http_addr (metrics_addr is its former name)", o.MetricsAddr, o.HTTPAddr))
	}
	if strings.Contains(o.InstanceID, "@") {
		errs = append(errs, fmt.Errorf("instance_id %q must not contain @", o.InstanceID))
	}
	if h, ok := addr("admin_addr", o.AdminAddr, false); ok {
		if !isLoopback(h) && o.AdminToken == "" {
			errs = append(errs, fmt.Errorf("admin_addr %q is not a loopback address: set admin_token (pprof and the configuration must not be open to the network)", o.AdminAddr))
		}
		if o.AdminAddr == o.HTTPAddr {
			errs = append(errs, fmt.Errorf("admin_addr %q must differ from http_addr", o.AdminAddr))
		}
	}
	if o.ReadyMaxLag < 1 {
		errs = append(errs, fmt.Errorf("ready_max_lag %d must be at least 1: a caught-up partition of a topic written in transactions lags 1, its commit marker", o.ReadyMaxLag))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{{"lag_interval", o.LagInterval, 10 * time.Millisecond}, {"live_timeout", o.LiveTimeout, time.Second}, {"query_timeout", o.QueryTimeout, 10 * time.Millisecond}} {
		if d.v < d.min {
			errs = append(errs, fmt.Errorf("%s %v must be at least %v", d.key, d.v, d.min))
		}
	}
	return errs
}

// isLoopback: an empty host (a bare :port, bound to 127.0.0.1 by the admin
// listener), localhost or a loopback IP.
func isLoopback(h string) bool {
	if h == "" || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// AdminListenAddr binds a bare :port to loopback.
func AdminListenAddr(a string) string {
	if strings.HasPrefix(a, ":") {
		return "127.0.0.1" + a
	}
	return a
}

// Listen serves h on addr until ctx is done and returns the bound address
// (useful with port 0).
func Listen(ctx context.Context, addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	serve(ctx, ln, h, maxProfile+time.Minute) // pprof's profiles and traces take minutes
	return ln.Addr().String(), nil
}

// serve serves h on ln until ctx is done, then lets the requests in flight
// finish (for up to shutdownGrace) and closes. A connection idle for
// idleTimeout is closed, and an answer not written within writeTimeout is
// cut (a client that does not read does not hold a goroutine for ever).
// The function returned waits until the server is closed (after ctx is
// done: at most shutdownGrace).
func serve(ctx context.Context, ln net.Listener, h http.Handler, writeTimeout time.Duration) (wait func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idleTimeout, WriteTimeout: writeTimeout}
	closed := make(chan struct{})
	go func() { _ = srv.Serve(ln) }()
	go func() {
		defer close(closed)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	return func() { <-closed }
}

// idleTimeout closes a kept-alive connection without a request (a
// variable for the tests).
var idleTimeout = time.Minute

const shutdownGrace = 2 * time.Second

// ServeMetrics serves reg's /metrics on addr until ctx is done (the demo
// and the bench; `invroute run` serves the whole API with ServeHTTP).
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry) (string, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	bound, err := Listen(ctx, addr, mux)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	return bound, nil
}

// advertised is the address other instances use for an API bound at
// bound: http_advertise, else bound; an unspecified host (":8080",
// "0.0.0.0:8080") is advertised as ":port", and the others take the host
// the Kafka broker saw this instance connect from (the group member's
// client host): the pod's or container's IP, without configuration.
func advertised(o Options, bound string) string {
	if o.HTTPAdvertise != "" {
		return o.HTTPAdvertise
	}
	h, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		h = ""
	}
	return net.JoinHostPort(h, port)
}

// ListenAPI binds http_addr (if set) before the engine is built, so that
// the engine's group members can advertise the bound address; Serve
// starts answering.
type ListenAPI struct {
	ln           net.Listener
	queryTimeout time.Duration
	Addr         string // bound
	Adverts      string // advertised
}

// BindAPI binds o.HTTPAddr and sets o.HTTPAdvertise to the address to
// advertise. It returns nil when http_addr is not set.
func BindAPI(o *Options) (*ListenAPI, error) {
	if o.HTTPAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http_addr %s: %w", o.HTTPAddr, err)
	}
	l := &ListenAPI{ln: ln, queryTimeout: o.QueryTimeout, Addr: ln.Addr().String()}
	l.Adverts = advertised(*o, l.Addr)
	o.HTTPAdvertise = l.Adverts
	return l, nil
}

// Serve serves h on the bound listener until ctx is done; the function
// returned waits, once ctx is done, until the requests in flight have
// finished (at most shutdownGrace). An answer takes at most query_timeout
// to compute, so one not written within half a minute more is cut.
func (l *ListenAPI) Serve(ctx context.Context, h http.Handler) (wait func()) {
	return serve(ctx, l.ln, h, l.queryTimeout+30*time.Second)
}

// Close closes the listener (when Serve was never called).
func (l *ListenAPI) Close() error { return l.ln.Close() }

// APIHandler is the HTTP API of the instance: /metrics, /healthz,
// /readyz, /v1/ats/{sku}, /v1/orders/{id}, and the live dashboard (/ and
// /v1/dashboard, dashboard.go), whose tailer runs while the page is open.
// Without the dashboard (dashboard: false) its paths answer 404.
func (e *Engine) APIHandler() http.Handler {
	if !e.opts.Dashboard {
		return e.apiHandler(nil)
	}
	return e.apiHandler(newDashboard(e))
}

func (e *Engine) apiHandler(d *dashboard) http.Handler {
	mux := http.NewServeMux()
	if d != nil {
		d.routes(mux)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		e.answerCheck(w, e.Live())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		e.answerCheck(w, e.Ready())
	})
	mux.HandleFunc("GET /v1/ats/{sku}", e.handleATS)
	mux.HandleFunc("GET /v1/orders/{id}", e.handleOrder)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// every endpoint is GET: a path that GET would reach is a 405
			g := r.Clone(r.Context())
			g.Method = http.MethodGet
			if _, pattern := mux.Handler(g); pattern != "/" {
				w.Header().Set("Allow", "GET, HEAD")
				writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: r.Method + " " + r.URL.Path + ": only GET is served (see api/openapi.yaml)"})
				return
			}
		}
		writeJSON(w, http.StatusNotFound, apiError{Error: "no such endpoint: " + r.Method + " " + r.URL.Path + " (see api/openapi.yaml)"})
	})
	return mux
}

type checkAnswer struct {
	Status   string   `json:"status"` // ok, unavailable
	Instance string   `json:"instance"`
	Problems []string `json:"problems,omitempty"`
}

func (e *Engine) answerCheck(w http.ResponseWriter, err error) {
	a := checkAnswer{Status: "ok", Instance: e.opts.InstanceID}
	code := http.StatusOK
	if err != nil {
		a.Status, code = "unavailable", http.StatusServiceUnavailable
		a.Problems = strings.Split(err.Error(), "\n")
	}
	writeJSON(w, code, a)
}

// writeJSON answers code with v in JSON. v is encoded before anything is
// written: a value that does not encode is a 500 that says why, not a 200
// with an empty body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{Error: "encoding the answer: " + err.Error()})
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b))) // a forwarding instance relays it as it comes
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// engines lists the running topology engines by name.
func (e *Engine) engines() []namedEngine {
	out := []namedEngine{{"inventory", e.Inventory}}
	if e.Router != nil {
		out = append(out, namedEngine{"router", e.Router})
	}
	if e.Screen != nil {
		out = append(out, namedEngine{"screen", e.Screen})
	}
	return out
}

type namedEngine struct {
	name string
	eng  *topology.Engine
}

// health follows each engine's progress for Live and its group for Ready.
type health struct {
	mu       sync.Mutex
	started  time.Time                // Run was called; zero before
	restored map[string]float64       // engine -> changelog records restored, last seen
	progress map[string]time.Time     // engine -> last restore progress seen
	groups   map[string]groupSnapshot // engine -> last lag poll
}

// groupSnapshot is what the last lag poll saw of this instance in one
// engine's group.
type groupSnapshot struct {
	at       time.Time
	err      error
	state    string // of the group: Stable, PreparingRebalance, ...
	member   bool   // this instance is a member
	assigned int    // partitions of the first input assigned to it
	maxLag   int64  // largest lag of its partitions (records)
	lagTopic string
	lagPart  int32
}

// Live is nil while every engine runs, has no storage fault and its
// processing loop went round (or restored records) within live_timeout.
func (e *Engine) Live() error {
	now := time.Now()
	e.health.mu.Lock()
	defer e.health.mu.Unlock()
	if e.health.started.IsZero() {
		return errors.New("not running yet")
	}
	var errs []error
	for _, ne := range e.engines() {
		st := ne.eng.Status()
		if st.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", ne.name, st.Err))
			continue
		}
		if st.Restored != e.health.restored[ne.name] {
			e.health.restored[ne.name] = st.Restored
			e.health.progress[ne.name] = now
		}
		last := e.health.started
		for _, t := range []time.Time{st.LastRound, e.health.progress[ne.name]} {
			if t.After(last) {
				last = t
			}
		}
		if idle := now.Sub(last); idle > e.opts.LiveTimeout {
			errs = append(errs, fmt.Errorf("%s: the processing loop has made no round and restored nothing for %v (live_timeout %v)",
				ne.name, idle.Round(time.Millisecond), e.opts.LiveTimeout))
		}
	}
	return errors.Join(errs...)
}

// Ready is nil when the instance is live and, in every engine's group, it
// is a member, owns (restored) every partition assigned to it and none of
// them lags more than ready_max_lag records.
func (e *Engine) Ready() error {
	if err := e.Live(); err != nil {
		return err
	}
	e.health.mu.Lock()
	defer e.health.mu.Unlock()
	var errs []error
	for _, ne := range e.engines() {
		st := ne.eng.Status()
		g, ok := e.health.groups[ne.name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: group %s not described yet", ne.name, st.Group))
		case g.err != nil:
			errs = append(errs, fmt.Errorf("%s: describing group %s: %v", ne.name, st.Group, g.err))
		case time.Since(g.at) > 3*e.opts.LagInterval+e.opts.QueryTimeout:
			errs = append(errs, fmt.Errorf("%s: group %s last described %v ago", ne.name, st.Group, time.Since(g.at).Round(time.Millisecond)))
		case !g.member:
			errs = append(errs, fmt.Errorf("%s: not a member of group %s yet", ne.name, st.Group))
		case g.state != "Stable":
			errs = append(errs, fmt.Errorf("%s: group %s is %s (rebalancing)", ne.name, st.Group, g.state))
		case st.Assigning || int(st.Owned) != g.assigned:
			errs = append(errs, fmt.Errorf("%s: restoring: %d of %d assigned partitions ready", ne.name, st.Owned, g.assigned))
		case g.maxLag > e.opts.ReadyMaxLag:
			errs = append(errs, fmt.Errorf("%s: %s[%d] lags %d records (ready_max_lag %d)", ne.name, g.lagTopic, g.lagPart, g.maxLag, e.opts.ReadyMaxLag))
		}
	}
	return errors.Join(errs...)
}

// clientID is the Kafka client id of this instance's clients: its
// instance id and the address of its HTTP API, which the other instances
// read from the group's members to forward queries (query.go).
func clientID(o Options) string { return o.InstanceID + "@" + o.HTTPAdvertise }

// memberAddr is the HTTP address a group member advertises, and its
// instance id. An address without a host (":8080") gets the host the
// broker saw the member connect from.
func memberAddr(m *kadm.DescribedGroupMember) (instance, addr string) {
	i := strings.LastIndexByte(m.ClientID, '@')
	if i < 0 {
		return m.ClientID, ""
	}
	instance, addr = m.ClientID[:i], m.ClientID[i+1:]
	if strings.HasPrefix(addr, ":") {
		host := strings.TrimPrefix(m.ClientHost, "/") // Kafka: "/10.0.0.5"
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h // kfake: "127.0.0.1:54321"
		}
		if host == "" {
			return instance, ""
		}
		addr = net.JoinHostPort(host, addr[1:])
	}
	return instance, addr
}

// pollGroups measures every engine's group every lag_interval until ctx is
// done: membership, assignment and lag (invroute_consumer_lag).
func (e *Engine) pollGroups(ctx context.Context, adm *kadm.Client) {
	t := time.NewTicker(e.opts.LagInterval)
	defer t.Stop()
	for {
		e.pollOnce(ctx, adm)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) pollOnce(ctx context.Context, adm *kadm.Client) {
	me := clientID(e.opts)
	for _, ne := range e.engines() {
		qctx, cancel := context.WithTimeout(ctx, e.opts.QueryTimeout)
		lags, err := adm.Lag(qctx, ne.eng.Group())
		cancel()
		g := groupSnapshot{at: time.Now(), err: err, maxLag: -1}
		if err == nil {
			l, ok := lags[ne.eng.Group()]
			switch {
			case !ok:
				g.err = errors.New("not described")
			case l.Error() != nil:
				g.err = l.Error()
			default:
				g.state = l.State
				inputs := ne.eng.Inputs()
				for _, m := range l.Members {
					if m.ClientID != me {
						continue
					}
					g.member = true
					if c, ok := m.Assigned.AsConsumer(); ok {
						for _, tp := range c.Topics {
							if tp.Topic == inputs[0] {
								g.assigned = len(tp.Partitions)
							}
						}
					}
				}
				e.lagGauge.DeletePartialMatch(prometheus.Labels{"topology": ne.name})
				for topic, ps := range l.Lag {
					for p, ml := range ps {
						if ml.Member == nil || ml.Member.ClientID != me || ml.Err != nil || ml.Lag < 0 {
							continue
						}
						e.lagGauge.WithLabelValues(ne.name, topic, strconv.Itoa(int(p))).Set(float64(ml.Lag))
						if ml.Lag > g.maxLag {
							g.maxLag, g.lagTopic, g.lagPart = ml.Lag, topic, p
						}
					}
				}
			}
		}
		if g.err == nil && g.member {
			e.assignedGauge.WithLabelValues(ne.name).Set(float64(g.assigned))
		}
		e.stateGauge.WithLabelValues(ne.name).Set(float64(dirSize(filepath.Join(e.opts.StateDir, ne.eng.Group()))))
		e.health.mu.Lock()
		e.health.groups[ne.name] = g
		e.health.mu.Unlock()
	}
}

// dirSize is the bytes of the files under dir (0 if it does not exist).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file Pebble just removed
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// AdminHandler serves pprof, /admin/config and /admin/status, behind the
// bearer token when admin_token is set.
func (e *Engine) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.HandleFunc("GET /debug/pprof/trace", pprofTrace)
	mux.HandleFunc("GET /debug/pprof/{name}", pprofNamed)
	mux.HandleFunc("GET /admin/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_ = WriteEffective(w, e.opts) // secrets redacted
	})
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, r *http.Request) {
		type engineStatus struct {
			Group     string    `json:"group"`
			Owned     int32     `json:"partitions_owned"`
			Assigning bool      `json:"assigning"`
			LastRound time.Time `json:"last_round"`
			Restored  float64   `json:"changelog_records_restored"`
			Error     string    `json:"error,omitempty"`
		}
		out := map[string]any{"instance": e.opts.InstanceID, "advertised": e.opts.HTTPAdvertise}
		for _, ne := range e.engines() {
			st := ne.eng.Status()
			es := engineStatus{Group: st.Group, Owned: st.Owned, Assigning: st.Assigning, LastRound: st.LastRound, Restored: st.Restored}
			if st.Err != nil {
				es.Error = st.Err.Error()
			}
			out[ne.name] = es
		}
		if err := e.Live(); err != nil {
			out["live"] = err.Error()
		} else {
			out["live"] = "ok"
		}
		if err := e.Ready(); err != nil {
			out["ready"] = err.Error()
		} else {
			out["ready"] = "ok"
		}
		writeJSON(w, http.StatusOK, out)
	})
	return requireToken(string(e.opts.AdminToken), mux)
}

// requireToken guards h with a bearer token (none: h as it is).
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="invroute admin"`)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "admin endpoints need Authorization: Bearer <admin_token>"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// pprof without net/http/pprof, whose init registers on the default mux.

func pprofIndex(w http.ResponseWriter, r *http.Request) {
	if name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name != "" {
		pprofNamed(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "profiles: profile?seconds=N (CPU), trace?seconds=N, and:")
	for _, p := range pprof.Profiles() {
		fmt.Fprintf(w, "  %s (%d) ?debug=1 for text\n", p.Name(), p.Count())
	}
}

func pprofNamed(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "" {
		name = strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	}
	p := pprof.Lookup(name)
	if p == nil {
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown profile " + strconv.Quote(name)})
		return
	}
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if name == "heap" && r.URL.Query().Get("gc") != "" {
		runtime.GC()
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	_ = p.WriteTo(w, debug)
}

func seconds(r *http.Request, def int) time.Duration {
	s, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || s <= 0 {
		s = def
	}
	return time.Duration(min(s, int(maxProfile/time.Second))) * time.Second
}

// maxProfile bounds the seconds of a CPU profile or a trace.
const maxProfile = 5 * time.Minute

func pprofCPU(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		writeJSON(w, http.StatusConflict, apiError{Error: "CPU profile: " + err.Error()})
		return
	}
	select {
	case <-time.After(seconds(r, 30)):
	case <-r.Context().Done():
	}
	pprof.StopCPUProfile()
}

func pprofTrace(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := trace.Start(w); err != nil {
		writeJSON(w, http.StatusConflict, apiError{Error: "trace: " + err.Error()})
		return
	}
	select {
	case <-time.After(seconds(r, 1)):
	case <-r.Context().Done():
	}
	trace.Stop()
}

// kafkaClientOpts are the options of every Kafka client of the instance
// outside the engines (the lag poller).
func (e *Engine) adminClient() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(SplitBrokers(e.opts.Brokers)...)}, e.extra...)...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

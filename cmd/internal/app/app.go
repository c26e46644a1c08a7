// Package app wires invroute's engine from its configuration: the options of
// `invroute run` (flags, environment, config file), the metrics endpoint and
// the inventory topology.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/invroute/invroute/processors/catalog"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/processors/screen"
	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/topology"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options is the configuration of one invroute instance. Each field is one
// key (config.go): set in the YAML config file (the yaml name), in the
// environment (INVROUTE_ + upper-case name) and by flag (the name with
// dashes); a flag beats the environment, which beats the file, which beats
// the default. The doc tag is the key's help text and its README line;
// default, when set, is how the README shows a default that is derived.
type Options struct {
	Brokers           string        `json:"brokers" yaml:"brokers" default:"(required)" doc:"comma-separated Kafka seed brokers (a YAML list is accepted too); KAFKA_BROKERS is read when unset"`
	TopicPrefix       string        `json:"topic_prefix" yaml:"topic_prefix" doc:"put in front of every topic name"`
	Group             string        `json:"group" yaml:"group" doc:"consumer group of the inventory, and prefix of its transactional id"`
	RouterGroup       string        `json:"router_group" yaml:"router_group" default:"(derived)" doc:"consumer group of the router; default: group with its inventory suffix replaced by router (invroute-router), else group-router"`
	InstanceID        string        `json:"instance_id" yaml:"instance_id" default:"(host name)" doc:"unique and stable per instance: transactional ids are group-instance_id and router_group-instance_id"`
	StateDir          string        `json:"state_dir" yaml:"state_dir" doc:"directory of the Pebble stores, one per (store, partition)"`
	CommitInterval    time.Duration `json:"commit_interval" yaml:"commit_interval" doc:"longest a transaction collects input before it is flushed and committed (latency vs. throughput)"`
	MaxTxnRecords     int           `json:"max_txn_records" yaml:"max_txn_records" doc:"input records per transaction at most"`
	Workers           int           `json:"workers" yaml:"workers" doc:"partitions processed, flushed and applied in parallel (0: GOMAXPROCS; 1: one by one)"`
	MaxRecordBytes    int           `json:"max_record_bytes" yaml:"max_record_bytes" doc:"input records with more key + value bytes go to dead-letter (stage size)"`
	Partitions        int           `json:"partitions" yaml:"partitions" doc:"partition count of topics invroute creates"`
	Replication       int           `json:"replication" yaml:"replication" doc:"replication factor of topics invroute creates (-1: broker default)"`
	CacheMB           int           `json:"cache_mb" yaml:"cache_mb" doc:"Pebble block cache of each topology engine (inventory, router, screen: each has its own), shared by its stores, MiB"`
	MemTableMB        int           `json:"memtable_mb" yaml:"memtable_mb" doc:"Pebble memtable per store partition, MiB (two may exist at once)"`
	StateCache        int           `json:"state_cache" yaml:"state_cache" doc:"decoded SKU states cached per partition"`
	SchemaIDs         string        `json:"schema_ids" yaml:"schema_ids" doc:"Confluent schema ids accepted on inputs, comma-separated (empty: Confluent framing refused)"`
	DedupeWindow      time.Duration `json:"dedupe_window" yaml:"dedupe_window" doc:"how long (by occurred_at, against the partition's newest movement) a movement id is remembered at most; dedupe_max may end it sooner"`
	DedupeMax         int           `json:"dedupe_max" yaml:"dedupe_max" doc:"movement ids remembered per partition (at least this many of those younger than dedupe_window, at most 8,192 more; about 30 bytes each): an id is forgotten once this many newer ones are remembered, however young, so size it at least the peak movements per partition over the time a producer may repeat one"`
	ReemitBatch       int           `json:"reemit_batch" yaml:"reemit_batch" doc:"SKUs re-emitted per transaction after a channel change, and after a node change past its first batch"`
	SessionTimeout    time.Duration `json:"session_timeout" yaml:"session_timeout" doc:"consumer group session timeout: how long a crashed instance's partitions wait"`
	TxnTimeout        time.Duration `json:"txn_timeout" yaml:"txn_timeout" doc:"Kafka transaction timeout: how long an open transaction of an instance that never comes back holds up its partitions' readers and new owner"`
	Standbys          int           `json:"standbys" yaml:"standbys" doc:"other instances that keep a warm copy of each partition's state (tail its changelogs) for fast failover; 0: none"`
	Static            bool          `json:"static_membership" yaml:"static_membership" doc:"join with group.instance.id = instance_id: a restart takes its partitions back without a rebalance, but a stop (a scale-in too) does not leave the groups: its partitions move after the session timeout"`
	Router            bool          `json:"router" yaml:"router" doc:"run the order router next to the inventory in this process (false: inventory only)"`
	MaxAttempts       int           `json:"max_attempts" yaml:"max_attempts" doc:"planning attempts per routing round: after a refused reservation the router re-plans at most max_attempts - 1 times"`
	VIPSafetyStock    bool          `json:"vip_safety_stock" yaml:"vip_safety_stock" doc:"VIP orders may reserve safety stock"`
	RejectIncomplete  bool          `json:"reject_incomplete" yaml:"reject_incomplete" doc:"SHIP_COMPLETE orders that cannot be completed are REJECTED instead of BACKORDERED"`
	CentsPerKm        float64       `json:"cents_per_km" yaml:"cents_per_km" doc:"distance part of a shipment's cost (cost = node's shipment_cost_cents + km x this; > 0)"`
	CustomerMaxOrders int           `json:"customer_max_orders" yaml:"customer_max_orders" doc:"hold an order whose customer has this many other orders placed within customer_window of it (0: off; on, it runs the customer screen)"`
	CustomerWindow    time.Duration `json:"customer_window" yaml:"customer_window" doc:"window of customer_max_orders, by placed_at"`
	BackorderRetry    bool          `json:"backorder_retry" yaml:"backorder_retry" doc:"retry an order's backordered lines when a plan would ship them after the stock the router sees rises for one of their SKUs, a node or channel changes, or a new UTC day begins (false: only a RELEASED event retries them)"`
	OrderRetention    time.Duration `json:"order_retention" yaml:"order_retention" doc:"forget a finished order (every line shipped, picked up, returned, cancelled or rejected; nothing held) this long after it finished, by the newest order event time of its partition; PLACED events placed no later than the newest order forgotten finished, or without placed_at, are then refused (0: keep every order)"`
	LogLevel          string        `json:"log_level" yaml:"log_level" doc:"debug, info, warn or error"`

	// HTTP (http.go, README "HTTP API").
	HTTPAddr      string        `json:"http_addr" yaml:"http_addr" doc:"host:port of the HTTP API: /metrics, /healthz, /readyz, /v1/ats/{sku}, /v1/orders/{id} (empty: off)"`
	HTTPAdvertise string        `json:"http_advertise" yaml:"http_advertise" default:"(derived)" doc:"host:port at which the other instances reach this one's HTTP API (forwarded queries); default: http_addr's bound address, and for an unspecified host (:8080) the address the Kafka broker sees this instance connect from"`
	MetricsAddr   string        `json:"metrics_addr" yaml:"metrics_addr" doc:"former name of http_addr, still accepted (it serves the whole HTTP API)"`
	AdminAddr     string        `json:"admin_addr" yaml:"admin_addr" doc:"host:port of the admin listener (/debug/pprof/, /admin/config, /admin/status); a bare :port binds 127.0.0.1; a non-loopback host needs admin_token (empty: off)"`
	AdminToken    Secret        `json:"admin_token" yaml:"admin_token" doc:"bearer token the admin listener requires (Authorization: Bearer ...); never printed"`
	ReadyMaxLag   int64         `json:"ready_max_lag" yaml:"ready_max_lag" doc:"/readyz fails while an owned input partition lags more records than this behind its end (at least 1: a commit marker counts)"`
	LagInterval   time.Duration `json:"lag_interval" yaml:"lag_interval" doc:"how often consumer lag is measured (metric invroute_consumer_lag and /readyz)"`
	LiveTimeout   time.Duration `json:"live_timeout" yaml:"live_timeout" doc:"/healthz fails when a processing loop has made no round and no restore progress for this long"`
	QueryTimeout  time.Duration `json:"query_timeout" yaml:"query_timeout" doc:"time allowed to answer a query, forwarding to the owner included"`
	Dashboard     bool          `json:"dashboard" yaml:"dashboard" doc:"serve the live dashboard on http_addr (/, /dashboard, /v1/dashboard): while it is asked for, a consumer of this instance tails the ats, routing-decisions, fulfillment-requests and dead-letter topics from their start (false: not served)"`

	// Security (security.go, docs/security.md).
	SecurityProtocol      string `json:"security_protocol" yaml:"security_protocol" default:"PLAINTEXT" doc:"PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"`
	SASLMechanism         string `json:"sasl_mechanism" yaml:"sasl_mechanism" doc:"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	SASLUsername          string `json:"sasl_username" yaml:"sasl_username" doc:"SASL user name"`
	SASLPassword          Secret `json:"sasl_password" yaml:"sasl_password" doc:"SASL password, never printed (a flag shows in the process list: prefer sasl_password_file or INVROUTE_SASL_PASSWORD)"`
	SASLPasswordFile      string `json:"sasl_password_file" yaml:"sasl_password_file" doc:"file holding the SASL password (trailing newlines dropped)"`
	TLSCAFile             string `json:"tls_ca_file" yaml:"tls_ca_file" default:"(system roots)" doc:"PEM CA certificates that sign the brokers' certificates"`
	TLSCertFile           string `json:"tls_cert_file" yaml:"tls_cert_file" doc:"PEM client certificate (mutual TLS), with tls_key_file"`
	TLSKeyFile            string `json:"tls_key_file" yaml:"tls_key_file" doc:"PEM private key of tls_cert_file"`
	TLSServerName         string `json:"tls_server_name" yaml:"tls_server_name" default:"(the broker's host)" doc:"name to verify in the brokers' certificates"`
	TLSInsecureSkipVerify bool   `json:"tls_insecure_skip_verify" yaml:"tls_insecure_skip_verify" doc:"do not verify the brokers' certificates (discouraged)"`
}

// minOrderRetention is the shortest order_retention: an order feed
// delayed by an outage must not see its orders refused as too old.
const minOrderRetention = 24 * time.Hour

// maxDedupe bounds dedupe_max: about 30 bytes of memory per remembered id
// and partition.
const maxDedupe = 10_000_000

// Defaults returns the default options.
func Defaults() Options {
	return Options{
		Group:          "invroute-inventory",
		Router:         true,
		MaxAttempts:    3,
		VIPSafetyStock: true,
		BackorderRetry: true,
		CentsPerKm:     1,
		CustomerWindow: 24 * time.Hour,
		StateDir:       "./invroute-state",
		CommitInterval: 100 * time.Millisecond,
		MaxTxnRecords:  5000,
		MaxRecordBytes: 1 << 20,
		Partitions:     6,
		Replication:    -1,
		CacheMB:        64,
		MemTableMB:     4,
		StateCache:     10000,
		DedupeWindow:   24 * time.Hour,
		DedupeMax:      200_000,
		ReemitBatch:    5000,
		SessionTimeout: 10 * time.Second,
		TxnTimeout:     10 * time.Second,
		LogLevel:       "info",
		ReadyMaxLag:    10_000,
		LagInterval:    5 * time.Second,
		LiveTimeout:    2 * time.Minute,
		QueryTimeout:   5 * time.Second,
		Dashboard:      true,
	}
}

// RouterGroupName is the router's consumer group: RouterGroup, or derived
// from Group (invroute-inventory -> invroute-router), so that instances
// with distinct groups also have distinct routers and transactional ids.
func (o *Options) RouterGroupName() string {
	switch {
	case o.RouterGroup != "":
		return o.RouterGroup
	case strings.HasSuffix(o.Group, "inventory"):
		return strings.TrimSuffix(o.Group, "inventory") + "router"
	}
	return o.Group + "-router"
}

// ScreenGroupName is the customer screen's consumer group, derived from
// the router's (invroute-router -> invroute-screen).
func (o *Options) ScreenGroupName() string {
	if r := o.RouterGroupName(); strings.HasSuffix(r, "router") {
		return strings.TrimSuffix(r, "router") + "screen"
	}
	return o.RouterGroupName() + "-screen"
}

// screen reports whether the customer screen runs.
func (o *Options) screen() bool { return o.Router && o.CustomerMaxOrders > 0 }

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if strings.TrimSpace(o.Brokers) == "" {
		errs = append(errs, errors.New("brokers: no brokers set (set brokers in the config file, INVROUTE_BROKERS, KAFKA_BROKERS or --brokers)"))
	}
	if _, err := schemas.ParseSchemaIDs(o.SchemaIDs); err != nil {
		errs = append(errs, fmt.Errorf("schema_ids: %w", err))
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("max_attempts %d must be in [1, 100]", o.MaxAttempts))
	}
	if o.CustomerMaxOrders < 0 || o.CustomerMaxOrders > screen.MaxOrdersLimit || o.CustomerWindow < time.Millisecond {
		// the screen counts in milliseconds: a shorter window would be 0,
		// and every check would be dead-lettered
		errs = append(errs, fmt.Errorf("customer_max_orders %d must be in [0, %d] and customer_window %v at least 1ms", o.CustomerMaxOrders, screen.MaxOrdersLimit, o.CustomerWindow))
	}
	if o.OrderRetention != 0 && o.OrderRetention < minOrderRetention {
		errs = append(errs, fmt.Errorf("order_retention %v must be 0 (keep every order) or at least %v: a PLACED event placed about that long before the newest order event is refused", o.OrderRetention, minOrderRetention))
	}
	if err := router.CheckCentsPerKm(o.CentsPerKm); err != nil {
		errs = append(errs, err)
	}
	if o.Router && o.RouterGroupName() == o.Group {
		errs = append(errs, fmt.Errorf("router_group %q must differ from group", o.RouterGroupName()))
	}
	if o.Standbys < 0 {
		errs = append(errs, fmt.Errorf("standbys %d must not be negative", o.Standbys))
	}
	if o.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers %d must not be negative (0: GOMAXPROCS)", o.Workers))
	}
	if o.CacheMB < 1 {
		errs = append(errs, fmt.Errorf("cache_mb %d must be positive", o.CacheMB))
	}
	if o.DedupeMax < 1 || o.DedupeMax > maxDedupe {
		errs = append(errs, fmt.Errorf("dedupe_max %d must be in [1, %d]", o.DedupeMax, maxDedupe))
	}
	if o.MemTableMB < 1 || o.MemTableMB > 1024 {
		errs = append(errs, fmt.Errorf("memtable_mb %d must be in [1, 1024]", o.MemTableMB))
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(o.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log_level %q: expected debug, info, warn or error", o.LogLevel))
	}
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s %d must be positive", name, v))
		}
	}
	positive("max_txn_records", o.MaxTxnRecords)
	positive("max_record_bytes", o.MaxRecordBytes)
	positive("partitions", o.Partitions)
	positive("reemit_batch", o.ReemitBatch)
	if o.StateCache < 0 {
		errs = append(errs, fmt.Errorf("state_cache %d must not be negative", o.StateCache))
	}
	if o.Replication != -1 && (o.Replication < 1 || o.Replication > 32767) {
		errs = append(errs, fmt.Errorf("replication %d must be -1 (broker default) or in [1, 32767]", o.Replication))
	}
	if o.TxnTimeout < time.Second || o.TxnTimeout > 15*time.Minute {
		errs = append(errs, fmt.Errorf("txn_timeout %v must be in [1s, 15m] (15m: the broker's default transaction.max.timeout.ms)", o.TxnTimeout))
	}
	if o.CommitInterval < time.Millisecond || o.CommitInterval > max(o.TxnTimeout, time.Second)/2 {
		errs = append(errs, fmt.Errorf("commit_interval %v must be in [1ms, txn_timeout/2]", o.CommitInterval))
	}
	if o.DedupeWindow <= 0 {
		errs = append(errs, fmt.Errorf("dedupe_window %v must be positive", o.DedupeWindow))
	}
	if o.SessionTimeout < time.Second || o.SessionTimeout > 30*time.Minute {
		errs = append(errs, fmt.Errorf("session_timeout %v must be in [1s, 30m]", o.SessionTimeout))
	}
	if strings.TrimSpace(o.StateDir) == "" {
		errs = append(errs, errors.New("state_dir must not be empty"))
	}
	errs = append(errs, o.validateHTTP()...)
	errs = append(errs, o.validateSecurity()...)
	return errors.Join(errs...)
}

// Logger returns a text logger on stderr at the configured level.
func (o *Options) Logger() *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(o.LogLevel))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
}

// Engine is a configured invroute instance: the inventory engine and, if
// Options.Router, the order router, each a topology.Engine with its own
// consumer group, transactional id and stores.
type Engine struct {
	Inventory    *topology.Engine
	Router       *topology.Engine // nil without Options.Router
	Screen       *topology.Engine // nil unless Options.CustomerMaxOrders
	Catalog      *catalog.Catalog
	Availability *router.Availability
	Registry     *prometheus.Registry
	explain      func(error) error // adds what a Kafka error means for the security settings

	opts     Options
	extra    []kgo.Opt // security and caller options of every Kafka client
	health   health
	lagGauge *prometheus.GaugeVec
	// assignedGauge and stateGauge: partitions the group assigned to this
	// instance (restore progress: invroute_partitions_owned of them are
	// restored) and bytes of its stores on disk, per topology.
	assignedGauge, stateGauge *prometheus.GaugeVec
	queryState
}

// Run runs the engines until ctx is done or one fails; a failure stops
// the other.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer e.adm.Close()
	e.health.mu.Lock()
	e.health.started = time.Now()
	e.health.mu.Unlock()
	go e.pollGroups(ctx, e.adm)
	errs := make(chan error, 2)
	n := 0
	for _, eng := range []*topology.Engine{e.Inventory, e.Router, e.Screen} {
		if eng == nil {
			continue
		}
		n++
		go func() {
			err := eng.Run(ctx)
			cancel()
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if e.explain != nil {
		return e.explain(first)
	}
	return first
}

// NewEngine builds the engines from o. extra are appended to every Kafka
// client's options; onFlush (may be nil) sees inventory stats.
func NewEngine(o Options, log *slog.Logger, onFlush func(int32, inventory.Stats), extra ...kgo.Opt) (*Engine, error) {
	ids, err := schemas.ParseSchemaIDs(o.SchemaIDs)
	if err != nil {
		return nil, err
	}
	if o.InstanceID == "" {
		if o.InstanceID, err = os.Hostname(); err != nil || o.InstanceID == "" {
			return nil, fmt.Errorf("instance_id: not set and the host name is unknown (%v)", err)
		}
	}
	sec, err := o.SecurityOpts()
	if err != nil {
		return nil, err
	}
	extra = append(append(sec, kgo.ClientID(clientID(o))), extra...)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "invroute_consumer_lag",
		Help: "Records between the group's committed offset and the end of each input partition this instance owns (measured every lag_interval)."},
		[]string{"topology", "topic", "partition"})
	assigned := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "invroute_partitions_assigned",
		Help: "Partitions the consumer group assigned to this instance (restore progress: invroute_partitions_owned of them are restored; measured every lag_interval)."},
		[]string{"topology"})
	stateBytes := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "invroute_state_bytes",
		Help: "Bytes of this instance's local stores on disk under state_dir (measured every lag_interval)."},
		[]string{"topology"})
	reg.MustRegister(lag, assigned, stateBytes)
	invMetrics := inventory.NewMetrics(reg)
	cat := catalog.New(ids)
	topo := inventory.Topology(inventory.TopologyOptions{
		Group:     o.Group,
		Config:    inventory.Config{DedupeWindow: o.DedupeWindow, DedupeMax: o.DedupeMax, ReemitBatch: o.ReemitBatch},
		Catalog:   cat,
		SchemaIDs: ids,
		OnFlush: func(p int32, s inventory.Stats) {
			invMetrics.Observe(p, s)
			if onFlush != nil {
				onFlush(p, s)
			}
		},
	})
	cfg := func(name string) topology.Config {
		return topology.Config{
			Brokers:           SplitBrokers(o.Brokers),
			TopicPrefix:       o.TopicPrefix,
			InstanceID:        o.InstanceID,
			StateDir:          o.StateDir,
			CommitInterval:    o.CommitInterval,
			MaxTxnRecords:     o.MaxTxnRecords,
			Workers:           o.Workers,
			MaxRecordBytes:    o.MaxRecordBytes,
			Partitions:        int32(o.Partitions),
			Replication:       int16(o.Replication),
			CacheBytes:        int64(o.CacheMB) << 20,
			MemTableBytes:     uint64(o.MemTableMB) << 20,
			StateCacheEntries: o.StateCache,
			SessionTimeout:    o.SessionTimeout,
			TxnTimeout:        o.TxnTimeout,
			Standbys:          o.Standbys,
			StaticMembership:  o.Static,
			Logger:            log.With("topology", name),
			Registerer:        prometheus.WrapRegistererWith(prometheus.Labels{"topology": name}, reg),
			ClientOpts:        append(slices.Clip(extra), kgo.WithHooks(newKafkaMetrics(reg, name))),
		}
	}
	inv, err := topology.NewEngine(cfg("inventory"), topo)
	if err != nil {
		return nil, err
	}
	e := &Engine{Inventory: inv, Catalog: cat, Registry: reg, Availability: router.NewAvailability(), explain: func(err error) error { return o.explainKafkaError(err, extra...) },
		opts: o, extra: extra, lagGauge: lag, assignedGauge: assigned, stateGauge: stateBytes,
		health:     health{restored: map[string]float64{}, progress: map[string]time.Time{}, groups: map[string]groupSnapshot{}},
		queryState: queryState{counts: map[string]int32{}, httpClient: newForwardClient(o.QueryTimeout)},
	}
	if o.Router {
		rm := router.NewMetrics(reg)
		rt, err := topology.NewEngine(cfg("router"), router.Topology(router.TopologyOptions{
			Group:        o.RouterGroupName(),
			Config:       routerConfig(o),
			Catalog:      catalog.New(ids),
			Availability: e.Availability,
			Loads:        router.NewLoads(),
			SchemaIDs:    ids,
			OnFlush:      rm.Observe,
		}))
		if err != nil {
			return nil, err
		}
		e.Router = rt
	}
	if o.screen() {
		sm := screen.NewMetrics(reg)
		sc, err := topology.NewEngine(cfg("screen"), screen.Topology(o.ScreenGroupName(), inventory.TopicDeadLetter, sm.Observe))
		if err != nil {
			return nil, err
		}
		e.Screen = sc
	}
	// Last: a client runs goroutines of its own, closed by Run.
	admCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(SplitBrokers(o.Brokers)...)}, extra...)...)
	if err != nil {
		return nil, err
	}
	e.adm = kadm.NewClient(admCl)
	return e, nil
}

func routerConfig(o Options) router.Config {
	return router.Config{
		Plan:              router.PlanConfig{CentsPerKm: o.CentsPerKm},
		MaxAttempts:       o.MaxAttempts,
		NoVIPSafetyStock:  !o.VIPSafetyStock,
		RejectIncomplete:  o.RejectIncomplete,
		CustomerMaxOrders: o.CustomerMaxOrders,
		CustomerWindow:    o.CustomerWindow,
		OrderRetention:    o.OrderRetention,
		NoBackorderRetry:  !o.BackorderRetry,
	}
}

// SplitBrokers splits a comma-separated broker list.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// CreateTopics creates the inventory topology's topics (used by `invroute
// topics create`) and prints what exists.
func CreateTopics(ctx context.Context, o Options, extra ...kgo.Opt) ([]topology.TopicSpec, error) {
	sec, err := o.SecurityOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(SplitBrokers(o.Brokers)...)}, sec...), extra...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	topo := inventory.Topology(inventory.TopologyOptions{Catalog: catalog.New(nil), Group: o.Group})
	specs := topo.Topics(o.TopicPrefix)
	if o.Router {
		more := router.Topology(router.TopologyOptions{Catalog: catalog.New(nil), Availability: router.NewAvailability(), Loads: router.NewLoads()}).Topics(o.TopicPrefix)
		if o.screen() {
			more = append(more, screen.Topology(o.ScreenGroupName(), inventory.TopicDeadLetter, nil).Topics(o.TopicPrefix)...)
		}
		for _, s := range more {
			if !slices.ContainsFunc(specs, func(x topology.TopicSpec) bool { return x.Name == s.Name }) {
				specs = append(specs, s)
			}
		}
	}
	_, _, err = topology.EnsureTopics(ctx, kadm.NewClient(cl), specs, int32(o.Partitions), int16(o.Replication))
	return specs, o.explainKafkaError(err, extra...)
}

// Package app wires invroute's engine from its configuration: the options of
// `invroute run` (flags, environment, config file), the metrics endpoint and
// the inventory topology.
package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options is the configuration of one invroute instance. Each field can be
// set in a JSON config file (the json name), in the environment
// (INVROUTE_ + upper-case json name) and by flag (the json name with
// dashes); a flag beats the environment, which beats the file.
type Options struct {
	Brokers           string        `json:"brokers"`             // comma-separated seed brokers
	TopicPrefix       string        `json:"topic_prefix"`        // in front of every topic name
	Group             string        `json:"group"`               // consumer group of the inventory
	RouterGroup       string        `json:"router_group"`        // consumer group of the router; default derived from group
	InstanceID        string        `json:"instance_id"`         // unique, stable per instance; default host name
	StateDir          string        `json:"state_dir"`           // Pebble stores
	CommitInterval    time.Duration `json:"commit_interval"`     // longest open transaction
	MaxTxnRecords     int           `json:"max_txn_records"`     // input records per transaction
	Workers           int           `json:"workers"`             // partitions processed in parallel; 0 = GOMAXPROCS
	MaxRecordBytes    int           `json:"max_record_bytes"`    // larger input records go to the dead-letter topic
	Partitions        int           `json:"partitions"`          // for topics created by invroute
	Replication       int           `json:"replication"`         // for topics created by invroute; -1 broker default
	CacheMB           int           `json:"cache_mb"`            // Pebble block cache shared by all stores
	MemTableMB        int           `json:"memtable_mb"`         // Pebble memtable per store partition
	StateCache        int           `json:"state_cache"`         // decoded SKU states cached per partition
	SchemaIDs         string        `json:"schema_ids"`          // accepted Confluent schema ids, comma-separated
	DedupeWindow      time.Duration `json:"dedupe_window"`       // movement id idempotency window (by occurred_at)
	DedupeMax         int           `json:"dedupe_max"`          // movement ids remembered per partition
	ReemitBatch       int           `json:"reemit_batch"`        // SKUs re-emitted per transaction after a channel change
	SessionTimeout    time.Duration `json:"session_timeout"`     // group session timeout
	Static            bool          `json:"static_membership"`   // join with group.instance.id = instance_id
	Router            bool          `json:"router"`              // run the order router next to the inventory
	MaxAttempts       int           `json:"max_attempts"`        // planning attempts per routing round
	VIPSafetyStock    bool          `json:"vip_safety_stock"`    // VIP orders may use safety stock
	RejectIncomplete  bool          `json:"reject_incomplete"`   // SHIP_COMPLETE orders that cannot complete are rejected, not backordered
	CentsPerKm        float64       `json:"cents_per_km"`        // distance part of a shipment's cost
	CustomerMaxOrders int           `json:"customer_max_orders"` // hold an order whose customer placed this many within customer_window; 0 = off
	CustomerWindow    time.Duration `json:"customer_window"`     // window of customer_max_orders
	MetricsAddr       string        `json:"metrics_addr"`        // host:port of /metrics; empty = off
	LogLevel          string        `json:"log_level"`           // debug, info, warn, error

	// Security (security.go, docs/security.md).
	SecurityProtocol      string `json:"security_protocol"`        // PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
	SASLMechanism         string `json:"sasl_mechanism"`           // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUsername          string `json:"sasl_username"`            // SASL user name
	SASLPassword          Secret `json:"sasl_password"`            // never printed; prefer sasl_password_file
	SASLPasswordFile      string `json:"sasl_password_file"`       // file holding the password (trailing newlines dropped)
	TLSCAFile             string `json:"tls_ca_file"`              // PEM CA certificates that sign the brokers' (default: system roots)
	TLSCertFile           string `json:"tls_cert_file"`            // PEM client certificate (mutual TLS), with tls_key_file
	TLSKeyFile            string `json:"tls_key_file"`             // PEM private key of tls_cert_file
	TLSServerName         string `json:"tls_server_name"`          // name to verify in the broker's certificate (default: its host)
	TLSInsecureSkipVerify bool   `json:"tls_insecure_skip_verify"` // do not verify the broker's certificate (discouraged)
}

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
		LogLevel:       "info",
	}
}

// Flags registers the options on fs and returns a function that finishes
// loading: config file (-config), then environment, then the flags set.
func Flags(fs *flag.FlagSet) func() (Options, error) {
	o := Defaults()
	var cfgFile string
	fs.StringVar(&cfgFile, "config", "", "JSON config file (keys are the flag names with underscores)")
	var flagged Options
	fs.StringVar(&flagged.Brokers, "brokers", "", "comma-separated Kafka seed brokers (env INVROUTE_BROKERS)")
	fs.StringVar(&flagged.TopicPrefix, "topic-prefix", "", "prefix of every topic name")
	fs.StringVar(&flagged.Group, "group", o.Group, "consumer group of the inventory")
	fs.StringVar(&flagged.RouterGroup, "router-group", "", "consumer group of the router (default: group with its \"inventory\" suffix replaced by \"router\", else group + \"-router\")")
	fs.BoolVar(&flagged.Router, "router", o.Router, "run the order router next to the inventory")
	fs.IntVar(&flagged.MaxAttempts, "max-attempts", o.MaxAttempts, "planning attempts per routing round (re-plans after refused reservations)")
	fs.BoolVar(&flagged.VIPSafetyStock, "vip-safety-stock", o.VIPSafetyStock, "VIP orders may use safety stock")
	fs.BoolVar(&flagged.RejectIncomplete, "reject-incomplete", false, "reject SHIP_COMPLETE orders that cannot be completed instead of backordering them")
	fs.Float64Var(&flagged.CentsPerKm, "cents-per-km", o.CentsPerKm, "distance part of a shipment's cost, cents per km")
	fs.IntVar(&flagged.CustomerMaxOrders, "customer-max-orders", 0, "hold an order whose customer placed this many orders within customer-window before it (0: off; runs the customer screen)")
	fs.DurationVar(&flagged.CustomerWindow, "customer-window", o.CustomerWindow, "window of customer-max-orders (by placed_at)")
	fs.StringVar(&flagged.InstanceID, "instance-id", "", "unique, stable id of this instance (default host name)")
	fs.StringVar(&flagged.StateDir, "state-dir", o.StateDir, "directory of the local Pebble stores")
	fs.DurationVar(&flagged.CommitInterval, "commit-interval", o.CommitInterval, "longest a transaction stays open")
	fs.IntVar(&flagged.MaxTxnRecords, "max-txn-records", o.MaxTxnRecords, "input records per transaction at most")
	fs.IntVar(&flagged.Workers, "workers", o.Workers, "partitions processed, flushed and applied in parallel (0: GOMAXPROCS)")
	fs.IntVar(&flagged.MaxRecordBytes, "max-record-bytes", o.MaxRecordBytes, "input records with more key+value bytes go to the dead-letter topic")
	fs.IntVar(&flagged.Partitions, "partitions", o.Partitions, "partition count of topics invroute creates")
	fs.IntVar(&flagged.Replication, "replication", o.Replication, "replication factor of topics invroute creates (-1: broker default)")
	fs.IntVar(&flagged.CacheMB, "cache-mb", o.CacheMB, "Pebble block cache shared by all stores, MiB")
	fs.IntVar(&flagged.MemTableMB, "memtable-mb", o.MemTableMB, "Pebble memtable per store partition, MiB (two may exist at once)")
	fs.IntVar(&flagged.StateCache, "state-cache", o.StateCache, "decoded SKU states cached per partition")
	fs.StringVar(&flagged.SchemaIDs, "schema-ids", "", "accepted Confluent schema ids on inputs, comma-separated")
	fs.DurationVar(&flagged.DedupeWindow, "dedupe-window", o.DedupeWindow, "movement id idempotency window (by occurred_at)")
	fs.IntVar(&flagged.DedupeMax, "dedupe-max", o.DedupeMax, "movement ids remembered per partition (at least, and at most this + 8192)")
	fs.IntVar(&flagged.ReemitBatch, "reemit-batch", o.ReemitBatch, "SKUs re-emitted per transaction after a channel change")
	fs.DurationVar(&flagged.SessionTimeout, "session-timeout", o.SessionTimeout, "consumer group session timeout")
	fs.BoolVar(&flagged.Static, "static-membership", false, "join the group with group.instance.id = instance id (fast restarts, no rebalance)")
	fs.StringVar(&flagged.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics on host:port")
	fs.StringVar(&flagged.LogLevel, "log-level", o.LogLevel, "debug, info, warn or error")
	fs.StringVar(&flagged.SecurityProtocol, "security-protocol", "", "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL")
	fs.StringVar(&flagged.SASLMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&flagged.SASLUsername, "sasl-username", "", "SASL user name")
	fs.Var(&flagged.SASLPassword, "sasl-password", "SASL password (visible in the process list: prefer -sasl-password-file or INVROUTE_SASL_PASSWORD)")
	fs.StringVar(&flagged.SASLPasswordFile, "sasl-password-file", "", "file holding the SASL password")
	fs.StringVar(&flagged.TLSCAFile, "tls-ca-file", "", "PEM file of the CA certificates that sign the brokers' certificates (default: system roots)")
	fs.StringVar(&flagged.TLSCertFile, "tls-cert-file", "", "PEM client certificate for mutual TLS (with -tls-key-file)")
	fs.StringVar(&flagged.TLSKeyFile, "tls-key-file", "", "PEM private key of -tls-cert-file")
	fs.StringVar(&flagged.TLSServerName, "tls-server-name", "", "name to verify in the brokers' certificates (default: the broker's host)")
	fs.BoolVar(&flagged.TLSInsecureSkipVerify, "tls-insecure-skip-verify", false, "do not verify the brokers' certificates (discouraged)")
	return func() (Options, error) {
		if cfgFile != "" {
			b, err := os.ReadFile(cfgFile)
			if err != nil {
				return o, fmt.Errorf("config: %w", err)
			}
			if err := json.Unmarshal(b, &fileOptions{&o}); err != nil {
				return o, fmt.Errorf("config %s: %w", cfgFile, err)
			}
		}
		if err := fromEnv(&o); err != nil {
			return o, err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		merge(&o, &flagged, set)
		return o, o.Validate()
	}
}

// fileOptions decodes durations written as strings ("100ms").
type fileOptions struct{ *Options }

func (f *fileOptions) UnmarshalJSON(b []byte) error {
	type plain Options
	aux := struct {
		*plain
		CommitInterval string `json:"commit_interval"`
		DedupeWindow   string `json:"dedupe_window"`
		SessionTimeout string `json:"session_timeout"`
	}{plain: (*plain)(f.Options)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{aux.CommitInterval, &f.CommitInterval}, {aux.DedupeWindow, &f.DedupeWindow}, {aux.SessionTimeout, &f.SessionTimeout}} {
		if d.s != "" {
			v, err := time.ParseDuration(d.s)
			if err != nil {
				return err
			}
			*d.dst = v
		}
	}
	return nil
}

func fromEnv(o *Options) error {
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv("INVROUTE_" + name); ok {
			*dst = v
		}
	}
	num := func(name string, dst *int) {
		if v, ok := os.LookupEnv("INVROUTE_" + name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("INVROUTE_%s: %w", name, err))
			}
			*dst = n
		}
	}
	boolean := func(name string, dst *bool) {
		if v, ok := os.LookupEnv("INVROUTE_" + name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("INVROUTE_%s: %w", name, err))
			}
			*dst = b
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v, ok := os.LookupEnv("INVROUTE_" + name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("INVROUTE_%s: %w", name, err))
			}
			*dst = d
		}
	}
	str("BROKERS", &o.Brokers)
	str("TOPIC_PREFIX", &o.TopicPrefix)
	str("GROUP", &o.Group)
	str("ROUTER_GROUP", &o.RouterGroup)
	boolean("ROUTER", &o.Router)
	num("MAX_ATTEMPTS", &o.MaxAttempts)
	num("CUSTOMER_MAX_ORDERS", &o.CustomerMaxOrders)
	dur("CUSTOMER_WINDOW", &o.CustomerWindow)
	boolean("VIP_SAFETY_STOCK", &o.VIPSafetyStock)
	boolean("REJECT_INCOMPLETE", &o.RejectIncomplete)
	if v, ok := os.LookupEnv("INVROUTE_CENTS_PER_KM"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("INVROUTE_CENTS_PER_KM: %w", err))
		}
		o.CentsPerKm = f
	}
	str("INSTANCE_ID", &o.InstanceID)
	str("STATE_DIR", &o.StateDir)
	dur("COMMIT_INTERVAL", &o.CommitInterval)
	num("MAX_TXN_RECORDS", &o.MaxTxnRecords)
	num("WORKERS", &o.Workers)
	num("MAX_RECORD_BYTES", &o.MaxRecordBytes)
	num("PARTITIONS", &o.Partitions)
	num("REPLICATION", &o.Replication)
	num("CACHE_MB", &o.CacheMB)
	num("MEMTABLE_MB", &o.MemTableMB)
	num("STATE_CACHE", &o.StateCache)
	str("SCHEMA_IDS", &o.SchemaIDs)
	dur("DEDUPE_WINDOW", &o.DedupeWindow)
	num("DEDUPE_MAX", &o.DedupeMax)
	num("REEMIT_BATCH", &o.ReemitBatch)
	dur("SESSION_TIMEOUT", &o.SessionTimeout)
	boolean("STATIC_MEMBERSHIP", &o.Static)
	str("METRICS_ADDR", &o.MetricsAddr)
	str("LOG_LEVEL", &o.LogLevel)
	str("SECURITY_PROTOCOL", &o.SecurityProtocol)
	str("SASL_MECHANISM", &o.SASLMechanism)
	str("SASL_USERNAME", &o.SASLUsername)
	if v, ok := os.LookupEnv("INVROUTE_SASL_PASSWORD"); ok {
		o.SASLPassword = Secret(v)
	}
	str("SASL_PASSWORD_FILE", &o.SASLPasswordFile)
	str("TLS_CA_FILE", &o.TLSCAFile)
	str("TLS_CERT_FILE", &o.TLSCertFile)
	str("TLS_KEY_FILE", &o.TLSKeyFile)
	str("TLS_SERVER_NAME", &o.TLSServerName)
	boolean("TLS_INSECURE_SKIP_VERIFY", &o.TLSInsecureSkipVerify)
	if v, ok := os.LookupEnv("KAFKA_BROKERS"); ok && o.Brokers == "" {
		o.Brokers = v
	}
	return errors.Join(errs...)
}

func merge(o, f *Options, set map[string]bool) {
	pick := func(name string, apply func()) {
		if set[name] {
			apply()
		}
	}
	pick("brokers", func() { o.Brokers = f.Brokers })
	pick("topic-prefix", func() { o.TopicPrefix = f.TopicPrefix })
	pick("group", func() { o.Group = f.Group })
	pick("router-group", func() { o.RouterGroup = f.RouterGroup })
	pick("router", func() { o.Router = f.Router })
	pick("max-attempts", func() { o.MaxAttempts = f.MaxAttempts })
	pick("vip-safety-stock", func() { o.VIPSafetyStock = f.VIPSafetyStock })
	pick("reject-incomplete", func() { o.RejectIncomplete = f.RejectIncomplete })
	pick("cents-per-km", func() { o.CentsPerKm = f.CentsPerKm })
	pick("customer-max-orders", func() { o.CustomerMaxOrders = f.CustomerMaxOrders })
	pick("customer-window", func() { o.CustomerWindow = f.CustomerWindow })
	pick("instance-id", func() { o.InstanceID = f.InstanceID })
	pick("state-dir", func() { o.StateDir = f.StateDir })
	pick("commit-interval", func() { o.CommitInterval = f.CommitInterval })
	pick("max-txn-records", func() { o.MaxTxnRecords = f.MaxTxnRecords })
	pick("workers", func() { o.Workers = f.Workers })
	pick("max-record-bytes", func() { o.MaxRecordBytes = f.MaxRecordBytes })
	pick("partitions", func() { o.Partitions = f.Partitions })
	pick("replication", func() { o.Replication = f.Replication })
	pick("cache-mb", func() { o.CacheMB = f.CacheMB })
	pick("memtable-mb", func() { o.MemTableMB = f.MemTableMB })
	pick("state-cache", func() { o.StateCache = f.StateCache })
	pick("schema-ids", func() { o.SchemaIDs = f.SchemaIDs })
	pick("dedupe-window", func() { o.DedupeWindow = f.DedupeWindow })
	pick("dedupe-max", func() { o.DedupeMax = f.DedupeMax })
	pick("reemit-batch", func() { o.ReemitBatch = f.ReemitBatch })
	pick("session-timeout", func() { o.SessionTimeout = f.SessionTimeout })
	pick("static-membership", func() { o.Static = f.Static })
	pick("metrics-addr", func() { o.MetricsAddr = f.MetricsAddr })
	pick("log-level", func() { o.LogLevel = f.LogLevel })
	pick("security-protocol", func() { o.SecurityProtocol = f.SecurityProtocol })
	pick("sasl-mechanism", func() { o.SASLMechanism = f.SASLMechanism })
	pick("sasl-username", func() { o.SASLUsername = f.SASLUsername })
	pick("sasl-password", func() { o.SASLPassword = f.SASLPassword })
	pick("sasl-password-file", func() { o.SASLPasswordFile = f.SASLPasswordFile })
	pick("tls-ca-file", func() { o.TLSCAFile = f.TLSCAFile })
	pick("tls-cert-file", func() { o.TLSCertFile = f.TLSCertFile })
	pick("tls-key-file", func() { o.TLSKeyFile = f.TLSKeyFile })
	pick("tls-server-name", func() { o.TLSServerName = f.TLSServerName })
	pick("tls-insecure-skip-verify", func() { o.TLSInsecureSkipVerify = f.TLSInsecureSkipVerify })
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
		errs = append(errs, errors.New("no brokers: set -brokers, INVROUTE_BROKERS or \"brokers\" in the config file"))
	}
	if _, err := schemas.ParseSchemaIDs(o.SchemaIDs); err != nil {
		errs = append(errs, err)
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 100 {
		errs = append(errs, fmt.Errorf("max_attempts %d must be in [1, 100]", o.MaxAttempts))
	}
	if o.CustomerMaxOrders < 0 || o.CustomerMaxOrders > screen.MaxOrdersLimit || o.CustomerWindow <= 0 {
		errs = append(errs, fmt.Errorf("customer_max_orders %d must be in [0, %d] and customer_window %v positive", o.CustomerMaxOrders, screen.MaxOrdersLimit, o.CustomerWindow))
	}
	if o.CentsPerKm < 0 {
		errs = append(errs, fmt.Errorf("cents_per_km %g must not be negative", o.CentsPerKm))
	}
	if o.Router && o.RouterGroupName() == o.Group {
		errs = append(errs, fmt.Errorf("router_group %q must differ from group", o.RouterGroupName()))
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
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
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
}

// Run runs the engines until ctx is done or one fails; a failure stops
// the other.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
	sec, err := o.SecurityOpts()
	if err != nil {
		return nil, err
	}
	extra = append(sec, extra...)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
			StaticMembership:  o.Static,
			Logger:            log.With("topology", name),
			Registerer:        prometheus.WrapRegistererWith(prometheus.Labels{"topology": name}, reg),
			ClientOpts:        extra,
		}
	}
	inv, err := topology.NewEngine(cfg("inventory"), topo)
	if err != nil {
		return nil, err
	}
	e := &Engine{Inventory: inv, Catalog: cat, Registry: reg, Availability: router.NewAvailability(), explain: func(err error) error { return o.explainKafkaError(err, extra...) }}
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
		sc, err := topology.NewEngine(cfg("screen"), screen.Topology(o.ScreenGroupName(), inventory.TopicDeadLetter))
		if err != nil {
			return nil, err
		}
		e.Screen = sc
	}
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

// ServeMetrics serves reg on addr until ctx is done. It returns the bound
// address (useful with port 0).
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr().String(), nil
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
			more = append(more, screen.Topology(o.ScreenGroupName(), inventory.TopicDeadLetter).Topics(o.TopicPrefix)...)
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

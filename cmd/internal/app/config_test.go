package app

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clearEnv unsets every configuration variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range Keys() {
		t.Setenv(k.Env(), "")
		os.Unsetenv(k.Env())
	}
	for _, k := range []string{"KAFKA_BROKERS", EnvPrefix + "CONFIG"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func loadArgs(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	return load()
}

// TestConfigPrecedence: for keys of every kind, a flag beats the
// environment, which beats the YAML file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	clearEnv(t)
	file := writeFile(t, "invroute.yaml", `# a comment
brokers:
  - file-a:9092
  - file-b:9092
group: file-group
commit_interval: 250ms
cache_mb: 32
partitions: 3
router: false
cents_per_km: 2.5
ready_max_lag: 7
security_protocol: SSL
tls_server_name: file-name
admin_token: file-token
query_timeout: 3s
`)
	t.Setenv("INVROUTE_GROUP", "env-group")
	t.Setenv("INVROUTE_CACHE_MB", "48")
	t.Setenv("INVROUTE_ROUTER", "true")
	t.Setenv("INVROUTE_COMMIT_INTERVAL", "300ms")
	t.Setenv("INVROUTE_ADMIN_TOKEN", "env-token")
	t.Setenv("INVROUTE_QUERY_TIMEOUT", "4s")
	o, err := loadArgs(t, "-config", file, "-cache-mb", "96", "-router=false", "--commit-interval", "50ms", "-admin-token", "flag-token")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Brokers = "file-a:9092,file-b:9092" // file only
	want.Group = "env-group"                 // env > file
	want.CacheMB = 96                        // flag > env > file
	want.Router = false                      // flag > env > file
	want.CommitInterval = 50 * time.Millisecond
	want.Partitions = 3 // file > default
	want.CentsPerKm = 2.5
	want.ReadyMaxLag = 7
	want.SecurityProtocol = "SSL"
	want.TLSServerName = "file-name"
	want.AdminToken = "flag-token"
	want.QueryTimeout = 4 * time.Second // env > file
	if !reflect.DeepEqual(o, want) {
		t.Errorf("options:\n got %+v\nwant %+v", o, want)
	}

	// INVROUTE_CONFIG names the file when -config does not
	t.Setenv(EnvPrefix+"CONFIG", file)
	o, err = loadArgs(t)
	if err != nil || o.Partitions != 3 {
		t.Errorf("INVROUTE_CONFIG: %v, partitions %d", err, o.Partitions)
	}
}

// TestConfigJSON: a JSON config file (the former format) is YAML and still works.
func TestConfigJSON(t *testing.T) {
	clearEnv(t)
	file := writeFile(t, "invroute.json", `{"brokers":"k:9092","commit_interval":"250ms","dedupe_window":"1h","static_membership":true}`)
	o, err := loadArgs(t, "-config", file)
	if err != nil {
		t.Fatal(err)
	}
	if o.Brokers != "k:9092" || o.CommitInterval != 250*time.Millisecond || o.DedupeWindow != time.Hour || !o.Static {
		t.Errorf("options: %+v", o)
	}
}

// TestConfigFileErrors: every problem of a file is reported at once, each
// naming its key and line.
func TestConfigFileErrors(t *testing.T) {
	clearEnv(t)
	file := writeFile(t, "bad.yaml", `brokers: k:9092
commit_interval: 100
cache-mb: 3
no_such_key: 1
partitions: many
router: maybe
group: g
group: h
workers: [1, 2]
max_attempts:
`)
	_, err := loadArgs(t, "-config", file)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		"bad.yaml: line 2: commit_interval: \"100\" is not a duration",
		"line 3: unknown key \"cache-mb\" (did you mean cache_mb?)",
		"line 4: unknown key \"no_such_key\"",
		"line 5: partitions: \"many\" is not an integer",
		"line 6: router: \"maybe\" is not true or false",
		"line 8: key group is set twice (first on line 7)",
		"line 9: workers: expected a single value, not a list",
		"line 10: max_attempts: no value",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 8 {
		t.Errorf("%d problems reported, want 8:\n%v", n, err)
	}
	// not YAML at all, or not a mapping
	for _, text := range []string{"brokers: [a\n", "- a\n- b\n"} {
		if _, err := loadArgs(t, "-config", writeFile(t, "x.yaml", text)); err == nil || !strings.Contains(err.Error(), "x.yaml") {
			t.Errorf("%q: %v", text, err)
		}
	}
	// an empty file is all defaults
	t.Setenv("INVROUTE_BROKERS", "b")
	if o, err := loadArgs(t, "-config", writeFile(t, "empty.yaml", "")); err != nil || o.CacheMB != Defaults().CacheMB {
		t.Errorf("empty file: %v", err)
	}
	if _, err := loadArgs(t, "-config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// TestConfigEnvAndFlagErrors: bad environment values name the variable and
// the key; bad flag values fail at parse time naming the flag.
func TestConfigEnvAndFlagErrors(t *testing.T) {
	clearEnv(t)
	t.Setenv("INVROUTE_BROKERS", "b")
	t.Setenv("INVROUTE_PARTITIONS", "many")
	t.Setenv("INVROUTE_LAG_INTERVAL", "5")
	_, err := loadArgs(t)
	for _, w := range []string{"INVROUTE_PARTITIONS (key partitions)", "INVROUTE_LAG_INTERVAL (key lag_interval)"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	os.Unsetenv("INVROUTE_PARTITIONS")
	os.Unsetenv("INVROUTE_LAG_INTERVAL")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	Flags(fs)
	if err := fs.Parse([]string{"-session-timeout", "10"}); err == nil || !strings.Contains(err.Error(), "-session-timeout") {
		t.Errorf("flag error: %v", err)
	}
}

// TestConfigValidateAll: Validate reports every bad value at once, each
// naming its key.
func TestConfigValidateAll(t *testing.T) {
	o := Defaults()
	o.Brokers = ""
	o.CommitInterval = 0
	o.MaxTxnRecords = 0
	o.MaxRecordBytes = -1
	o.Partitions = 0
	o.Replication = 0
	o.CacheMB = 0
	o.MemTableMB = 0
	o.StateCache = -1
	o.DedupeMax = 0
	o.DedupeWindow = 0
	o.ReemitBatch = 0
	o.SessionTimeout = time.Millisecond
	o.TxnTimeout = 20 * time.Minute
	o.Workers = -1
	o.MaxAttempts = 0
	o.CentsPerKm = -1
	o.OrderRetention = time.Hour
	o.LogLevel = "loud"
	o.StateDir = " "
	o.SchemaIDs = "x"
	o.HTTPAddr = "nope"
	o.HTTPAdvertise = "0.0.0.0:80"
	o.AdminAddr = "10.1.2.3:6060"
	o.ReadyMaxLag = -1
	o.LagInterval = 0
	o.LiveTimeout = 0
	o.QueryTimeout = 0
	o.SecurityProtocol = "TLS"
	err := o.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"brokers", "commit_interval", "max_txn_records", "max_record_bytes", "partitions",
		"replication", "cache_mb", "memtable_mb", "state_cache", "dedupe_max", "dedupe_window", "reemit_batch",
		"session_timeout", "txn_timeout", "workers", "max_attempts", "cents_per_km", "order_retention", "log_level", "state_dir", "schema_ids",
		"http_addr", "http_advertise", "admin_addr", "ready_max_lag", "lag_interval", "live_timeout", "query_timeout",
		"security_protocol"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("no problem names %s:\n%v", key, err)
		}
	}
	// the admin listener: loopback without a token, anything with one
	ok := Defaults()
	ok.Brokers = "b"
	for _, a := range []struct {
		addr, token string
		good        bool
	}{{":6060", "", true}, {"127.0.0.1:6060", "", true}, {"localhost:6060", "", true}, {"[::1]:6060", "", true},
		{"0.0.0.0:6060", "", false}, {"0.0.0.0:6060", "t", true}, {"10.0.0.1:6060", "t", true}} {
		o := ok
		o.AdminAddr, o.AdminToken = a.addr, Secret(a.token)
		if err := o.Validate(); (err == nil) != a.good {
			t.Errorf("admin_addr %s token %q: %v", a.addr, a.token, err)
		}
	}
	// http_advertise needs an API to advertise
	for _, a := range []struct {
		addr, advertise string
		good            bool
	}{{"", "10.0.0.5:8080", false}, {":8080", "10.0.0.5:8080", true}, {":8080", "", true}, {"", "", true}} {
		o := ok
		o.HTTPAddr, o.HTTPAdvertise = a.addr, a.advertise
		if err := o.Validate(); (err == nil) != a.good || (err != nil && !strings.Contains(err.Error(), "http_advertise")) {
			t.Errorf("http_addr %q http_advertise %q: %v", a.addr, a.advertise, err)
		}
	}
	// customer_window: the screen counts whole milliseconds (a shorter
	// window would dead-letter every check)
	for _, a := range []struct {
		w    time.Duration
		good bool
	}{{0, false}, {500 * time.Microsecond, false}, {time.Millisecond, true}, {24 * time.Hour, true}} {
		o := ok
		o.CustomerMaxOrders, o.CustomerWindow = 3, a.w
		if err := o.Validate(); (err == nil) != a.good || (err != nil && !strings.Contains(err.Error(), "customer_window")) {
			t.Errorf("customer_window %v: %v", a.w, err)
		}
	}
	// ready_max_lag 0 would never be ready (a commit marker lags 1);
	// cents_per_km 0 would be taken as 1, NaN or Inf would overflow costs
	for i, a := range []struct {
		key  string
		set  func(*Options)
		good bool
	}{
		{"ready_max_lag", func(o *Options) { o.ReadyMaxLag = 0 }, false},
		{"ready_max_lag", func(o *Options) { o.ReadyMaxLag = 1 }, true},
		{"cents_per_km", func(o *Options) { o.CentsPerKm = 0 }, false},
		{"cents_per_km", func(o *Options) { o.CentsPerKm = math.NaN() }, false},
		{"cents_per_km", func(o *Options) { o.CentsPerKm = math.Inf(1) }, false},
		{"cents_per_km", func(o *Options) { o.CentsPerKm = 0.01 }, true},
	} {
		o := ok
		a.set(&o)
		if err := o.Validate(); (err == nil) != a.good || (err != nil && !strings.Contains(err.Error(), a.key)) {
			t.Errorf("%s case %d: %v", a.key, i, err)
		}
	}
	// metrics_addr is the former name of http_addr
	o = ok
	o.MetricsAddr, o.HTTPAddr = ":9100", ":8080"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "metrics_addr") {
		t.Errorf("metrics_addr and http_addr: %v", err)
	}
	clearEnv(t)
	o, err = loadArgs(t, "-brokers", "b", "-metrics-addr", ":9100")
	if err != nil || o.HTTPAddr != ":9100" {
		t.Errorf("metrics_addr alone: %v %q", err, o.HTTPAddr)
	}
}

// TestConfigDefaultsFile: `invroute config defaults` is a valid config
// file that loads back to the defaults, and documents every key.
func TestConfigDefaultsFile(t *testing.T) {
	var b bytes.Buffer
	if err := WriteDefaults(&b); err != nil {
		t.Fatal(err)
	}
	o := Defaults()
	o.Brokers = "sentinel"
	if err := ParseYAML(b.Bytes(), &o); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, Defaults()) {
		t.Errorf("defaults file loads to\n%+v\nwant\n%+v", o, Defaults())
	}
	for _, k := range Keys() {
		if !strings.Contains(b.String(), "\n"+k.Name+": ") || k.Doc == "" {
			t.Errorf("key %s missing or undocumented", k.Name)
		}
	}
}

// TestConfigCheck: `invroute config check FILE` prints OK, or every
// problem and fails.
func TestConfigCheck(t *testing.T) {
	clearEnv(t)
	good := writeFile(t, "good.yaml", "brokers: k:9092\nhttp_addr: \":8080\"\n")
	var out bytes.Buffer
	if err := ConfigMain([]string{"check", good}, &out, &out); err != nil || out.String() != "OK\n" {
		t.Errorf("good file: %v %q", err, out.String())
	}
	bad := writeFile(t, "bad.yaml", "commit_interval: 1y\nnope: 1\n")
	out.Reset()
	err := ConfigMain([]string{"check", bad}, &out, &out)
	if !errors.Is(err, ErrProblems) {
		t.Errorf("bad file: err %v", err)
	}
	for _, w := range []string{"3 problem(s)", "line 1: commit_interval", "line 2: unknown key \"nope\"", "no brokers"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output does not contain %q:\n%s", w, out.String())
		}
	}
	if err := ConfigMain([]string{"check"}, &out, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("no file: %v", err)
	}
}

// TestREADMEConfigTable: the README's configuration table is exactly the
// one generated from Options (`invroute config markdown`), so a key cannot
// be missing from it or documented with a stale default.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := MarkdownTable()
	if !strings.Contains(string(readme), table) {
		t.Fatalf("README.md does not contain the table of every configuration key; regenerate it with `go run ./cmd/invroute config markdown`:\n%s", table)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(readme), "| `"+k.Name+"` |") {
			t.Errorf("README.md has no row for %s", k.Name)
		}
	}
}

// TestFlagsLoadReportsEveryProblem: `invroute run` reports the problems of
// loading and of the values loaded at once, as `config check` does (found
// by review: a value that did not parse hid the range errors).
func TestFlagsLoadReportsEveryProblem(t *testing.T) {
	t.Setenv("INVROUTE_COMMIT_INTERVAL", "100")
	t.Setenv("INVROUTE_PARTITIONS", "0")
	t.Setenv("INVROUTE_BROKERS", "k:9092")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := Flags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	_, err := load()
	if err == nil || !strings.Contains(err.Error(), "commit_interval") || !strings.Contains(err.Error(), "partitions") {
		t.Errorf("%v: want both the commit_interval and the partitions problem", err)
	}
}

package app

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOptionsPrecedence: a flag beats the environment, which beats the
// config file, which beats the default.
func TestOptionsPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "invroute.json")
	if err := os.WriteFile(file, []byte(`{"brokers":"file:9092","group":"file-group","commit_interval":"250ms","cache_mb":32,"partitions":3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INVROUTE_GROUP", "env-group")
	t.Setenv("INVROUTE_CACHE_MB", "48")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := Flags(fs)
	if err := fs.Parse([]string{"-config", file, "-cache-mb", "96"}); err != nil {
		t.Fatal(err)
	}
	o, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if o.Brokers != "file:9092" || o.Group != "env-group" || o.CacheMB != 96 || o.Partitions != 3 ||
		o.CommitInterval != 250*time.Millisecond || o.MaxTxnRecords != Defaults().MaxTxnRecords {
		t.Errorf("options: %+v", o)
	}
}

func TestOptionsErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(file, []byte(`{"brokers":"x","no_such_key":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: nil, want: "no brokers"},
		{args: []string{"-config", file}, want: "no_such_key"},
		{args: []string{"-brokers", "b", "-schema-ids", "x"}, want: "schema"},
		{args: []string{"-brokers", "b", "-log-level", "loud"}, want: "log_level"},
		{args: []string{"-brokers", "b"}, env: map[string]string{"INVROUTE_PARTITIONS": "many"}, want: "INVROUTE_PARTITIONS"},
	} {
		t.Setenv("INVROUTE_BROKERS", "")
		t.Setenv("KAFKA_BROKERS", "")
		os.Unsetenv("INVROUTE_BROKERS")
		os.Unsetenv("KAFKA_BROKERS")
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		load := Flags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := load()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err = %v, want %q", tc.args, tc.env, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

func TestRouterGroupName(t *testing.T) {
	for _, c := range []struct{ group, router, want string }{
		{"invroute-inventory", "", "invroute-router"},
		{"t1.inventory", "", "t1.router"},
		{"shop", "", "shop-router"},
		{"shop", "routing", "routing"},
	} {
		o := Options{Group: c.group, RouterGroup: c.router}
		if got := o.RouterGroupName(); got != c.want {
			t.Errorf("group %q router_group %q: %q, want %q", c.group, c.router, got, c.want)
		}
	}
}

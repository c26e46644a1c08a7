package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickKfake runs `invroute bench -quick` end to end on kfake only, with
// tiny sizes and the scale section skipped. It checks that every section
// reports and that the summary lines are there; it asserts no speed.
func TestQuickKfake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the invroute binary and runs subprocesses")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err := Main(ctx, []string{"-brokers=", "-kfake", "-quick", "-records=2000", "-skus=500",
		"-scale-skus=0", "-latency-duration=2s", "-probe-rate=50"}, &out, &errb)
	t.Logf("stdout:\n%s", out.String())
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errb.String())
	}
	for _, want := range []string{
		"== kfake:",
		"broker=kfake passthrough_rps=",
		" engine_rps=",
		" ratio=",
		"broker=kfake ats_p50_ms=",
		"probes=",
		"broker=kfake passthrough_p50_ms=",
		"broker=kfake engine_cpu_us_per_movement=",
		"skipped (-scale-skus 0)",
		"total time:",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "ERROR") || strings.Contains(out.String(), "error=") {
		t.Errorf("a section failed:\n%s", out.String())
	}
}

func TestParseFlagsQuick(t *testing.T) {
	var errb bytes.Buffer
	c, err := parseFlags([]string{"-brokers=", "-quick", "-records=10"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if c.records != 10 || c.scaleSKUs != 50000 || c.latencyFor != 5*time.Second || c.brokers != "" {
		t.Fatalf("quick did not keep explicit flags or set its sizes: %+v", c)
	}
	if _, err := parseFlags([]string{"-brokers=", "-kfake=false"}, &errb); err == nil {
		t.Fatal("no broker at all: want an error")
	}
}

func TestPct(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := pct(ds, 0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := pct(ds, 0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := pct(ds[:1], 0.99); p != time.Millisecond {
		t.Errorf("p99 of one = %s", p)
	}
}

func TestRestoreStats(t *testing.T) {
	dir := t.TempDir()
	p := &proc{logPath: filepath.Join(dir, "x.log")}
	log := `time=2026-01-01T00:00:00Z level=INFO msg="restored store" topic=a.invroute-inventory-changelog partition=0 from=0 to=10 records=9 took=1.5s
time=2026-01-01T00:00:00Z level=INFO msg="partition assigned and restored" partition=0 took=1.6s
time=2026-01-01T00:00:00Z level=INFO msg="restored store" topic=a.invroute-inventory-changelog partition=1 from=0 to=5 records=4 took=500ms
`
	if err := os.WriteFile(p.logPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	n, took, assign, parts := restoreStats(p)
	if n != 13 || took != 2*time.Second || assign != 1600*time.Millisecond || parts != 2 {
		t.Fatalf("restoreStats = %d %s %s %d", n, took, assign, parts)
	}
}

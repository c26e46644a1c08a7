package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestQuickKfake runs `invroute bench -quick` end to end on kfake only, with
// tiny sizes, a warm-up round and two throughput rounds, and the scale
// section skipped. It checks that every section reports, each round and the
// medians included, and that the summary lines are there; it asserts no
// speed.
func TestQuickKfake(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the invroute binary and runs subprocesses")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err := Main(ctx, []string{"-brokers=", "-kfake", "-quick", "-records=2000", "-skus=500",
		"-scale-skus=0", "-latency-duration=2s", "-probe-rate=50", "-rounds=2", "-warmup", "-routing-orders=1000", "-routing-rate=200"}, &out, &errb)
	t.Logf("stdout:\n%s", out.String())
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errb.String())
	}
	for _, want := range []string{
		"== kfake:",
		"rounds=2 warmup=true ",
		"warm-up round (discarded)", // shown, and left out of the medians "of 2" below
		"passthrough (bare franz-go GroupTransactSession), median of 2",
		"engine (invroute run -router=false), median of 2",
		"sections 1-4 run `invroute run -router=false`",
		"ratio engine/passthrough (median of 2 rounds)",
		"CPU per movement (engine process only, sum of 2 rounds)",
		"broker=kfake passthrough_rps=",
		" engine_rps=",
		" ratio=",
		" rounds=2 goal_ratio=",
		"broker=kfake ats_p50_ms=",
		"probes=",
		"broker=kfake passthrough_p50_ms=",
		"broker=kfake engine_cpu_us_per_movement=",
		"skipped (-scale-skus 0)",
		"total time:",
		// routing quality (no broker)
		"== routing quality: generated EU scenario",
		"1000 orders of 1-6 lines",
		"R1  split-shipment rate (orders with >1 shipment / orders shipped)",
		"mean distance per routed order",
		"units backordered",
		"verdict: invroute splits",
		"R2  2000 random instances",
		"the scenario's orders of <= 5 lines",
		"500 random instances with one SKU on two lines",
		"routing orders=1000 split_rate=",
		" first_split_rate=", " nearest_split_rate=", " split_ratio_vs_first=", " mean_km=", " first_mean_km=", " nearest_mean_km=",
		"routing optimal_share=", " scenario_optimal_share=", " repeated_sku_optimal_share=",
		// routing on the broker
		"routing: 1000 EU-scenario orders pre-loaded, invroute run (router on)",
		"of which order -> first reservation result",
		"warm-up: first 1.00s of the load after idle, not counted",
		"broker=kfake orders_rps=",
		" decided_rps=", " routing_orders=1000 routed=1000 ", " decision_p50_ms=", " decision_p99_ms=", " goal_p99_ms=400 met=",
		// hostile input (one round in -quick)
		"6  hostile input: 2000 movements, and the same with ",
		"round 1 (clean first)",
		"broker=kfake hostile_clean_rps=", " hostile_ratio=", " rounds=1 movements=2000 ", " huge=2x3MiB dead_letters_exact=true goal_ratio=0.90 met=",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, re := range []string{
		`throughput round 1/2 +passthrough \d+ records/s \(.*\) +engine \d+ movements/s \(.*\) +ratio \d+\.\d\d`,
		`throughput round 2/2 +passthrough \d+ records/s \(.*\) +engine \d+ movements/s \(.*\) +ratio \d+\.\d\d`,
		`ratio engine/passthrough \(median of 2 rounds\) +\d+\.\d\d \(rounds: \d+\.\d\d to \d+\.\d\d\) +>= 0\.50 (MET|MISSED)`,
		`split-shipment rate .* +\d+\.\d% \(\d+/\d+\) +\d+\.\d% \(\d+/\d+\) +\d+\.\d% \(\d+/\d+\) +<= 0\.70 x first: \d\.\d\d (MET|MISSED)`,
		`R2  2000 random instances.* +\d+/2000 = \d+\.\d\d% +100% (MET|MISSED)`,
		`orders/s: router group's committed offsets reach the end +\d+ orders/s`,
		`orders/s: every decision visible \(read_committed\) +\d+ orders/s \(.*\); ROUTED 1000, split \d+, re-planned \d+, decided twice 0`,
		`order -> decision latency at \d+ orders/s for 2\.\d\ds +p50 \d+ms  p99 \d+ms  max \d+ms  \((\d+)/(\d+) decided\) +p99 <= 3 x 100ms \+ 100ms = 400ms (MET|MISSED)`,
		`decisions of the latency phase \(warm-up included\) +ROUTED \d+, .*decided twice 0`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("output lacks a line matching %s", re)
		}
	}
	if strings.Contains(out.String(), "round 3/") {
		t.Errorf("more rounds than asked for")
	}
	if strings.Contains(out.String(), "ERROR") || strings.Contains(out.String(), "error=") {
		t.Errorf("a section failed:\n%s", out.String())
	}
	// Each round on topics, a group and an engine of its own; the last
	// round's engine is the one of the latency phase.
	for _, want := range []string{"round 1/2: engine: ", "round 2/2: engine: ", "round 1/2: deleted its ", "kfake-pt2.in", "kfake-eng2.",
		"routing: loading ", "router off", "routing: 1000 orders decided"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q", want)
		}
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
	if c.rounds != 1 || c.routingOrders != 5000 || !c.routing || c.routingRate != 500 {
		t.Fatalf("quick: rounds = %d, routing orders %d, routing %t at %d/s; want 1, 5000, true, 500", c.rounds, c.routingOrders, c.routing, c.routingRate)
	}
	if c, err := parseFlags([]string{"-brokers=", "-quick", "-routing-orders=77", "-routing=false"}, &errb); err != nil || c.routingOrders != 77 || c.routing {
		t.Fatalf("quick with -routing-orders=77 -routing=false: %v %+v", err, c)
	}
	if _, err := parseFlags([]string{"-brokers=", "-routing-orders=0"}, &errb); err == nil {
		t.Fatal("-routing-orders=0: want an error")
	}
	if c, err := parseFlags([]string{"-brokers=", "-quick", "-rounds=4"}, &errb); err != nil || c.rounds != 4 {
		t.Fatalf("quick with -rounds=4: %v %+v", err, c)
	}
	if c, err := parseFlags([]string{"-brokers="}, &errb); err != nil || c.rounds != 3 || c.routingOrders != 20000 {
		t.Fatalf("default rounds: %v %+v", err, c)
	}
	if _, err := parseFlags([]string{"-brokers=", "-rounds=0"}, &errb); err == nil {
		t.Fatal("-rounds=0: want an error")
	}
	if _, err := parseFlags([]string{"-brokers=", "-kfake=false"}, &errb); err == nil {
		t.Fatal("no broker at all: want an error")
	}
}

func TestMedians(t *testing.T) {
	if m := median(nil); m != 0 {
		t.Errorf("median of none = %v", m)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 1 2 = %v", m)
	}
	if m := median([]float64{4, 1}); m != 2.5 {
		t.Errorf("median of 4 1 = %v", m)
	}
	// A round whose engine failed counts for the passthrough's median, not
	// for the engine's or the ratio's.
	c := func(recs int64, wall time.Duration) catchUp { return catchUp{records: recs, wall: wall, cpu: wall / 2} }
	res := &brokerResult{rounds: []*round{
		{pt: c(1000, time.Second), eng: c(1000, 4*time.Second)},    // 1000/s, 250/s, 0.25
		{pt: c(1000, 2*time.Second), eng: c(1000, 2*time.Second)},  // 500/s, 500/s, 1
		{pt: c(1000, time.Second/4), eng: c(1000, 10*time.Second)}, // 4000/s, 100/s, 0.025
		{pt: c(1000, time.Second), engErr: errors.New("stalled")},  // 1000/s
	}}
	if v, n := res.ptRPS(); v != 1000 || n != 4 {
		t.Errorf("passthrough median = %v over %d", v, n)
	}
	if v, n := res.engRPS(); v != 250 || n != 3 {
		t.Errorf("engine median = %v over %d", v, n)
	}
	if v, n := res.ratio(); v != 0.25 || n != 3 {
		t.Errorf("ratio median = %v over %d", v, n)
	}
	if lo, hi := res.ratioRange(); lo != 0.025 || hi != 1 {
		t.Errorf("ratio range = %v..%v", lo, hi)
	}
	if cpu, recs, n := res.cpuOf(engSide); cpu != 8*time.Second || recs != 3000 || n != 3 {
		t.Errorf("engine CPU = %s over %d records, %d rounds", cpu, recs, n)
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

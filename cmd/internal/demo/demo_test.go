package demo

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestDemo runs the demo briefly on its embedded broker: it must exit
// cleanly, print the summary line, and every SKU's ATS must equal the
// generator's model (Run returns an error otherwise).
func TestDemo(t *testing.T) {
	checkDemo(t, context.Background(), 5*time.Second, nil)
}

// TestDemoInterrupted: a demo without --duration, ended by a signal (its
// context done), ends the same way: caught up, checked, summed up, no
// error. Found by review: it failed with "context canceled" and printed
// no summary, as the flush and the catch-up used the cancelled context.
func TestDemoInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	checkDemo(t, ctx, 0, func() { time.AfterFunc(5*time.Second, cancel) })
}

// checkDemo runs the demo for d (0: until ctx is done) and checks its
// output; started, if set, is called at its first progress line (the load
// runs).
func checkDemo(t *testing.T, ctx context.Context, d time.Duration, started func()) {
	out := &startWriter{started: started}
	err := Run(ctx, Options{Duration: d, Rate: 500, OrderRate: 40, SKUs: 200, BadEvery: 50, Seed: 3, LogLevel: "warn", Partitions: 3, Verbose: true}, out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`(?m)^summary: movements=(\d+) ats_updates=(\d+) dead_letters=(\d+) orders=(\d+) decisions=(\d+) splits=(\d+) backordered=(\d+)$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no summary line in:\n%s", out.String())
	}
	movements, _ := strconv.Atoi(m[1])
	updates, _ := strconv.Atoi(m[2])
	dead, _ := strconv.Atoi(m[3])
	orders, _ := strconv.Atoi(m[4])
	decisions, _ := strconv.Atoi(m[5])
	r := regexp.MustCompile(`(?m)^orders: placed=\d+ cancelled=\d+ shipped_lines=\d+ returned=\d+ retried=(\d+)$`).FindStringSubmatch(out.String())
	if r == nil {
		t.Fatalf("no orders line in:\n%s", out.String())
	}
	retried, _ := strconv.Atoi(r[1]) // decisions of orders decided before (backorders retried)
	if movements < 500 || updates == 0 || dead == 0 || orders < 100 || decisions-retried < orders/2 || decisions-retried > orders {
		t.Errorf("implausible summary %q", m[0])
	}
	if !regexp.MustCompile(`check: ATS of (\d+)/(\d+) SKUs equals`).MatchString(out.String()) {
		t.Errorf("no check line in:\n%s", out.String())
	}
}

// startWriter is a bytes.Buffer that calls started once, at the first
// progress line.
type startWriter struct {
	bytes.Buffer
	started func()
}

func (w *startWriter) Write(p []byte) (int, error) {
	if w.started != nil && bytes.Contains(p, []byte("movements=")) {
		w.started()
		w.started = nil
	}
	return w.Buffer.Write(p)
}

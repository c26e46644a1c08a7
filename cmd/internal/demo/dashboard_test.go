package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
)

// TestDashboardInChromium loads the live dashboard of a running demo in
// headless Chromium (Debian's chromium package) and checks what the page
// shows: while the demo runs, rates above zero, a marker per demo node placed
// by its coordinates, routes on the map, decisions, hot SKUs and dead
// letters; after the demo's summary (the engine still up, nothing moving),
// the dead letters, decisions and splits the summary counted, every hot
// SKU's ATS, version and per-node availability equal to GET /v1/ats/{sku},
// the closed Madrid store shown inactive, the lag equal to /metrics', and
// the rates back at zero. It keeps screenshots as build artefacts in
// $INVROUTE_ARTIFACTS (default: artifacts/ at the repository's root).
//
// Without chromium it installs it with deploy/chromium.sh when CI=true, and
// skips otherwise.
func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo and a browser")
	}
	browser := chromiumPath(t)

	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Duration: 12 * time.Second, Rate: 500, OrderRate: 40, SKUs: 300, BadEvery: 50, Seed: 7,
			LogLevel: "warn", Partitions: 3, HTTPAddr: "127.0.0.1:0", Hold: -1}, out)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo: %v\n%s", err, out.String())
			}
		case <-time.After(90 * time.Second):
			t.Errorf("the demo did not stop within 90 s after its hold ended")
		}
	}
	t.Cleanup(stop)
	base := out.waitFor(t, regexp.MustCompile(`dashboard: (http://\S+/)\n`), 60*time.Second, done)[1]
	t.Logf("dashboard at %s", base)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1500, 1180),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-quic", true))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate(base)); err != nil {
		t.Fatalf("chromium: loading %s: %v", base, err)
	}

	// While the demo runs.
	st := waitPage(t, bctx, 60*time.Second, "rates, markers, routes, decisions, hot SKUs and dead letters", func(p *pageState) bool {
		return p.num("rate-movements") > 0 && p.num("rate-orders") > 0 && p.num("rate-decisions") > 0 && len(p.Markers) == len(demoNodes) &&
			p.Routes > 0 && p.DecisionRows > 0 && len(p.Hot) >= 5 && p.num("dead-total") > 0 && p.DeadRows > 0 && p.Sparks == 3
	})
	markers := map[string]marker{}
	for _, m := range st.Markers {
		markers[m.Node] = m
	}
	for _, n := range demoNodes {
		if _, ok := markers[n.NodeID]; !ok {
			t.Errorf("the map has no marker for node %s: %+v", n.NodeID, st.Markers)
		}
	}
	// Placed by longitude (x) and latitude (y, north up).
	par, ber, mad, mil := markers["WH-FR-PAR"], markers["WH-DE-BER"], markers["ST-ES-MAD"], markers["ST-IT-MIL"]
	if !(mad.X < par.X && par.X < mil.X && mil.X < ber.X && ber.Y < par.Y && par.Y < mil.Y && mil.Y < mad.Y) {
		t.Errorf("markers not placed by coordinates: %+v", st.Markers)
	}
	if st.Land < 5 {
		t.Errorf("the map draws %d land shapes", st.Land)
	}
	shot(t, bctx, "dashboard.png")

	// After the summary: nothing moves, the engine answers queries.
	sum := out.waitFor(t, regexp.MustCompile(`(?m)^summary: movements=(\d+) ats_updates=(\d+) dead_letters=(\d+) orders=(\d+) decisions=(\d+) splits=(\d+) backordered=(\d+)$`), 120*time.Second, done)
	dead, decisions, splits := sum[3], sum[5], sum[6]
	lagWant := func() int64 { return metricSum(t, base+"metrics", "invroute_consumer_lag") }
	st = waitPage(t, bctx, 60*time.Second, "the summary's dead letters "+dead+", decisions "+decisions+", splits "+splits+", rates at 0, Madrid inactive, the lag of /metrics", func(p *pageState) bool {
		return strconv.FormatInt(p.num("dead-total"), 10) == dead &&
			p.Text["total-decisions"] == decisions+" decisions" &&
			strings.HasPrefix(p.Text["split-sub"], splits+" of ") &&
			p.Text["rate-movements"] == "0.0" && p.Text["rate-orders"] == "0.0" && p.Text["rate-decisions"] == "0.0" &&
			p.marker("ST-ES-MAD").inactive() && !p.marker("WH-FR-PAR").inactive() &&
			p.num("lag") == lagWant()
	})
	if len(st.Hot) < 5 {
		t.Fatalf("%d hot SKUs shown", len(st.Hot))
	}
	for _, row := range st.Hot {
		var a app.ATSAnswer
		getJSON(t, base+"v1/ats/"+row.SKU, &a)
		if row.Version != strconv.FormatInt(a.Version, 10) || row.ATS != fmtInt(a.ATS) {
			t.Errorf("%s: page shows version %s ATS %s, /v1/ats answers version %d ATS %d", row.SKU, row.Version, row.ATS, a.Version, a.ATS)
		}
		api := map[string]string{}
		for _, n := range a.Nodes {
			api[n.NodeID] = fmtInt(n.Available)
		}
		for node, cell := range row.Nodes {
			if want, ok := api[node]; ok && cell != want || !ok && cell != "–" {
				t.Errorf("%s at %s: page shows %q, /v1/ats answers %q", row.SKU, node, cell, want)
			}
		}
		if len(row.Nodes) != len(demoNodes) {
			t.Errorf("%s: %d node columns", row.SKU, len(row.Nodes))
		}
	}
	// Shipments saved = lines - shipments, as the tile says.
	var lines, shipments int64
	if _, err := fmt.Sscanf(strings.ReplaceAll(st.Text["saved-sub"], ",", ""), "%d lines in %d shipments", &lines, &shipments); err != nil || st.num("saved") != lines-shipments || lines == 0 {
		t.Errorf("shipments saved %q with %q", st.Text["saved"], st.Text["saved-sub"])
	}
	t.Logf("page after the summary: %v", st.Text)
	shot(t, bctx, "dashboard-final.png")
	stop()
}

// pageState is what the page shows, read from its DOM.
type pageState struct {
	Text         map[string]string `json:"text"`
	Hot          []hotRow          `json:"hot"`
	Markers      []marker          `json:"markers"`
	Routes       int               `json:"routes"`
	Land         int               `json:"land"`
	Sparks       int               `json:"sparks"`
	DecisionRows int               `json:"decisionRows"`
	DeadRows     int               `json:"deadRows"`
	Status       string            `json:"status"`
}

type hotRow struct {
	SKU     string            `json:"sku"`
	ATS     string            `json:"ats"`
	Version string            `json:"version"`
	Nodes   map[string]string `json:"nodes"`
}

type marker struct {
	Node  string  `json:"node"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	Class string  `json:"class"`
}

func (m marker) inactive() bool { return strings.Contains(m.Class, "inactive") }

func (p *pageState) marker(node string) marker {
	for _, m := range p.Markers {
		if m.Node == node {
			return m
		}
	}
	return marker{}
}

// num is a tile's number (-1 if none).
func (p *pageState) num(id string) int64 {
	s := strings.ReplaceAll(p.Text[id], ",", "")
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f > 0 && f < 1 {
			return 1 // a rate above zero
		}
		return int64(f)
	}
	return -1
}

func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

const readPage = `(() => {
  const text = {};
  for (const id of ["rate-movements", "rate-orders", "rate-decisions", "total-decisions", "split-rate", "split-sub", "saved", "saved-sub", "lag", "lag-sub", "dead-total", "dead-stages"]) {
    const e = document.getElementById(id);
    text[id] = e ? e.textContent : "";
  }
  return {
    text,
    status: document.getElementById("status").textContent,
    hot: [...document.querySelectorAll("#hot tbody tr")].map((tr) => ({
      sku: tr.getAttribute("data-sku"),
      ats: tr.querySelector("td.ats").textContent,
      version: tr.querySelector("td.version").textContent,
      nodes: Object.fromEntries([...tr.querySelectorAll("td.node")].map((td) => [td.getAttribute("data-node"), td.textContent])),
    })),
    markers: [...document.querySelectorAll("#map circle.node-marker")].map((c) => ({
      node: c.getAttribute("data-node"), x: +c.getAttribute("cx"), y: +c.getAttribute("cy"), class: c.getAttribute("class"),
    })),
    routes: document.querySelectorAll("#map path.route").length,
    land: document.querySelectorAll("#map path.land").length,
    sparks: document.querySelectorAll("svg.spark polyline").length,
    decisionRows: document.querySelectorAll("#decisions tbody tr").length,
    deadRows: document.querySelectorAll("#dead tbody tr").length,
  };
})()`

// waitPage reads the page every 500 ms until ok or the timeout (then fails
// with the last state).
func waitPage(t *testing.T, ctx context.Context, timeout time.Duration, what string, ok func(*pageState) bool) *pageState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *pageState
	var lastErr error
	for time.Now().Before(deadline) {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
		if err == nil {
			last = &st
			if ok(last) {
				return last
			}
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(last, "", "  ")
	t.Fatalf("the page did not show %s within %v (last error %v); it shows:\n%s", what, timeout, lastErr, b)
	return nil
}

// shot saves a screenshot of the page as a build artefact.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("INVROUTE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path, _ := filepath.Abs(filepath.Join(dir, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	fmt.Fprintf(os.Stderr, "dashboard screenshot: %s\n", path)
}

// chromiumPath finds Chromium; with CI=true it installs Debian's package
// when missing (deploy/chromium.sh), else the test is skipped.
func chromiumPath(t *testing.T) string {
	t.Helper()
	script, _ := filepath.Abs(filepath.Join("..", "..", "..", "deploy", "chromium.sh"))
	if p, err := exec.Command(script, "--check").Output(); err == nil {
		return strings.TrimSpace(string(p))
	}
	if os.Getenv("CI") != "true" {
		t.Skip("chromium is not installed: run deploy/chromium.sh (apt-get install chromium) to run this test; CI=true installs it")
	}
	cmd := exec.Command(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	p, err := cmd.Output()
	if err != nil {
		t.Fatalf("installing chromium (%s): %v\n%s", script, err, stderr.String())
	}
	t.Logf("CI: installed %s with %s", strings.TrimSpace(string(p)), script)
	return strings.TrimSpace(string(p))
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// metricSum is the sum of a metric's samples on /metrics.
func metricSum(t *testing.T, url, name string) int64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var sum float64
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return int64(sum)
}

// syncBuffer is the demo's output, written by its goroutines and read by
// the test.
type syncBuffer struct{ testkit.Buffer }

// waitFor waits until the output matches re and returns the submatches;
// it fails if the demo ends first or after timeout.
func (b *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp, timeout time.Duration, done chan error) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the demo ended (%v) before printing %s:\n%s", err, re, b.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("no %s within %v in:\n%s", re, timeout, b.String())
	return nil
}

package demo

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
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
	// the embedded broker's address, for invroute replay and produce
	if !regexp.MustCompile(`(?m)^broker: 127\.0\.0\.1:\d+ \(embedded`).MatchString(out.String()) {
		t.Errorf("no broker line in:\n%s", out.String())
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

// TestDemoWithoutOrders: with --order-rate 0 the router's group never
// commits an offset; the demo still catches up at once. Found by review:
// the lag was unknown without a commit, and the demo waited its whole
// minute, then printed "caught up: false".
func TestDemoWithoutOrders(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	err := Run(context.Background(), Options{Duration: 3 * time.Second, Rate: 300, SKUs: 50, Seed: 4, LogLevel: "warn", Partitions: 3}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "(caught up: true)") {
		t.Errorf("a demo without orders did not catch up (took %v):\n%s", time.Since(start).Round(time.Second), out.String())
	}
}

// TestDemoTwiceOnOneBroker: two demos on one broker (--brokers) each get
// their own topics and groups, so the second checks against its own model.
// Found by review: the second resumed the first's group and stock, its
// movement ids were the first's (dropped as duplicates), and it failed.
func TestDemoTwiceOnOneBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir() // and one state directory
	var prefixes []string
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		err := Run(context.Background(), Options{Brokers: c.ListenAddrs()[0], StateDir: dir, Duration: 3 * time.Second, Rate: 300,
			OrderRate: 20, SKUs: 50, BadEvery: 100, Seed: 1, LogLevel: "warn", Partitions: 3}, &out)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		m := regexp.MustCompile(`(?m)^topics: (\S+)\*`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("run %d names no topics:\n%s", run, out.String())
		}
		prefixes = append(prefixes, m[1])
	}
	if prefixes[0] == prefixes[1] {
		t.Errorf("both runs used topics %s*", prefixes[0])
	}
}

// TestModelOrderIsLogOrder: the movements (generator) and the orders'
// follow-ups (shipments, restocks) come from two goroutines; each record
// reaches the client in the order the model applied it, so a SKU's
// partition holds its movements in the model's order (a COUNT next to a
// SHIPMENT gives another on_hand in the other order). Found by review: the
// records were produced after the model's lock was released.
func TestModelOrderIsLogOrder(t *testing.T) {
	g := newGenerator(Options{Rate: 1, SKUs: 3, Seed: 5}, "")
	o := newOrders(g)
	var mu sync.Mutex
	var sent []*kgo.Record
	send := func(r *kgo.Record) {
		mu.Lock()
		sent = append(sent, r)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 20000 {
			g.next(send)
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 5000 {
			sku := skuName(uint64(i % 3))
			o.followUp(schemas.RoutingDecision{OrderID: fmt.Sprint("o", i), Shipments: []schemas.RoutedShipment{{NodeID: demoNodes[i%2].NodeID,
				Lines: []schemas.OrderLine{{LineID: "1", SKU: sku, Qty: 1}}}}}, send)
		}
	}()
	wg.Wait()
	// Every movement id carries the generator's seq, taken when the model
	// applied it: in the order the client got them, new ids go up.
	seen := map[string]bool{}
	var last [2]int64
	n := 0
	for _, r := range sent {
		var m schemas.StockMovement
		if r.Topic != string(inventory.TopicMovements) || schemas.StockMovements.Decode(r.Value, &m) != nil || seen[m.MovementID] {
			continue // an order event, a bad record, a WMS retry
		}
		seen[m.MovementID] = true
		var at [2]int64
		f := strings.Split(m.MovementID, "-") // mv-<seed>-<seq>-<i> or ord-<seed>-<seq>
		at[0], _ = strconv.ParseInt(f[2], 10, 64)
		if len(f) == 4 {
			at[1], _ = strconv.ParseInt(f[3], 10, 64)
		}
		if at[0] < last[0] || at[0] == last[0] && at[1] <= last[1] {
			t.Fatalf("movement %s reached the client after seq %v: the model applied them the other way round", m.MovementID, last)
		}
		last = at
		n++
	}
	if n < 20000 {
		t.Errorf("%d movements checked", n)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// chaosPlan is one run of the fault suite: the short one runs inside the
// normal test command, the long one is `make chaos` (INVROUTE_CHAOS=long).
type chaosPlan struct {
	name          string
	warm          time.Duration // one instance alone, then scale 1 -> 3
	settle        time.Duration // after a scale step
	kills         int
	killGap       [2]time.Duration // between faults, uniform in [min, max)
	cleanAfter    int              // a clean restart after this kill (0: none)
	rollingAfter  int              // a rolling restart of all three after this kill
	brokerAfter   int              // a broker restart after this kill (needs an own broker)
	pauseAfter    int              // SIGSTOP one instance past its session timeout
	movementsPerS int
	ordersPerS    int
	insts         string // for the report: the instances the run has
	test          string // the test that runs it (for the report's command)
}

var (
	shortChaos = chaosPlan{name: "short", warm: 6 * time.Second, settle: 6 * time.Second, kills: 3,
		killGap: [2]time.Duration{5 * time.Second, 8 * time.Second}, cleanAfter: 1, pauseAfter: 2,
		movementsPerS: 600, ordersPerS: 15, insts: "3 instances", test: "TestChaos"}
	longChaos = chaosPlan{name: "long", warm: 15 * time.Second, settle: 15 * time.Second, kills: 10,
		killGap: [2]time.Duration{10 * time.Second, 20 * time.Second}, cleanAfter: 2, rollingAfter: 4,
		brokerAfter: 6, pauseAfter: 8, movementsPerS: 1500, ordersPerS: 25, insts: "3 instances", test: "TestChaos"}
)

const chaosSession = 6 * time.Second

// TestChaos is the fault suite (issue 4 §2): three engine processes share
// the work under a steady mixed load (movements with duplicates and bad
// records, orders with cancellations, shipments, pickups and returns, bad
// order records) while instances are SIGKILLed, restarted cleanly and one
// by one, one is paused past its session timeout (it must be fenced), the
// broker restarts (long run), and the group scales 1 -> 3 -> 1. Then the
// load stops, the engine drains, and the outputs are checked against
// models built by the test from what it sent: final ATS per SKU, channel
// and node; reserved <= on_hand in every ATS record; versions strictly
// increasing; every order decided exactly once and in its expected final
// state; every bad record dead-lettered exactly once with its headers; no
// transaction left open. It prints a table of what happened.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three engine processes for minutes; skipped with -short")
	}
	plan := shortChaos
	if os.Getenv("INVROUTE_CHAOS") == "long" {
		plan = longChaos
	}
	brokers, restartBroker := chaosBroker(t, plan)
	bin := buildBinary(t)
	c := newChaos(t, plan, brokers, bin)
	c.run(restartBroker)
}

// chaosBroker returns the broker of the run. The long run starts its own
// (kafka.sh on other ports) so that it can restart it; the short one uses
// the test command's broker and does not restart it.
func chaosBroker(t *testing.T, plan chaosPlan) (string, func() error) {
	if plan.brokerAfter == 0 {
		brokers, _ := testkit.Brokers(t)
		return brokers, nil
	}
	script, err := filepath.Abs("../../deploy/kafka/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KAFKA_PORT=29092", "KAFKA_CONTROLLER_PORT=29093",
		"INVROUTE_KAFKA_DATA="+filepath.Join(os.TempDir(), "invroute-kafka-chaos"))
	sh := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("kafka.sh %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.Bytes()))
		}
		return string(out), nil
	}
	_, _ = sh("down", "--wipe")
	out, err := sh("up")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sh("down", "--wipe") })
	brokers := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "KAFKA_BROKERS="))
	return brokers, func() error {
		if _, err := sh("down"); err != nil {
			return err
		}
		_, err := sh("up")
		return err
	}
}

// chaos is the state of one run.
type chaos struct {
	t       *testing.T
	plan    chaosPlan
	brokers string
	bin     string
	prefix  string
	cl      *kgo.Client
	adm     *kadm.Client
	rng     *rand.Rand
	args    []string
	insts   [3]*chaosInst
	start   time.Time

	mu         sync.Mutex
	violations []string
	events     []string // what the run did, with times
	recoveries []time.Duration
	counts     map[string]int // kills, restarts, ...

	stream     *testkit.HostileStream // movements, 1% hostile; used by the movement producer only until it stops
	badOrders  map[string]bool
	movements  atomic.Int64
	orderRecs  atomic.Int64
	followUps  atomic.Int64
	produceErr atomic.Int64

	orders *orderModel
	gaps   *gapWatch
	// logs is every process's output, in start order: written to files
	// when the run has violations or fails (keepLogs), once.
	logs     []procLog
	logsKept bool
}

// procLog is one engine process's output.
type procLog struct {
	name string // instance id and run number, as chaos1-2
	buf  *testkit.Buffer
}

// chaosInst is one engine instance: its id and state directory survive
// restarts; proc is the current process (nil when stopped).
type chaosInst struct {
	id, dir string
	p       *chaosProc
	runs    int
}

type chaosProc struct {
	cmd  *exec.Cmd
	log  *testkit.Buffer
	done chan struct{}
	err  error
	// expected is set before the test stops the process on purpose; an
	// exit without it is a violation.
	expected atomic.Bool
}

func newChaos(t *testing.T, plan chaosPlan, brokers, bin string) *chaos {
	prefix := testkit.Prefix(t)
	o := app.Defaults()
	o.Brokers, o.TopicPrefix, o.Partitions, o.Replication = brokers, prefix, 6, 1
	o.Group = prefix + "inventory"
	if _, err := app.CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	c := &chaos{t: t, plan: plan, brokers: brokers, bin: bin, prefix: prefix, cl: cl, adm: kadm.NewClient(cl),
		rng: rand.New(rand.NewPCG(42, 4)), counts: map[string]int{}, badOrders: map[string]bool{},
		stream: testkit.NewHostileStream(42, 2000, prefix, 0.01)}
	c.args = []string{"run", "-brokers", brokers, "-topic-prefix", prefix, "-group", o.Group,
		"-session-timeout", chaosSession.String(), "-commit-interval", "100ms",
		"-max-record-bytes", strconv.Itoa(testkit.MaxRecordBytes), "-max-txn-records", "1000", "-standbys", "1", "-log-level", "info",
		// The order model books one decision per order and keeps backorders
		// as they are; the stock its cancellations and returns give back
		// would retry them (TestKill9Orders runs the retries under kills).
		"-backorder-retry=false"}
	for i := range c.insts {
		c.insts[i] = &chaosInst{id: fmt.Sprintf("chaos%d", i+1), dir: t.TempDir()}
	}
	// A run that fails without a report (a t.Fatal on the way) keeps the
	// logs too; this runs after the processes' own cleanups, which stop them.
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.Failed() && !c.logsKept {
			c.keepLogs()
		}
	})
	// The movements' network and the orders' network share the catalog:
	// both go through the movement model, so its channel sums include the
	// order nodes (which never hold the stream's SKUs).
	testkit.SeedCatalog(t, cl, prefix)
	for _, n := range testkit.OrderNodes() {
		c.stream.Model.SetNode(t, cl, prefix, n)
	}
	for _, id := range testkit.OrderChannels {
		c.stream.Model.SetChannel(t, cl, prefix, schemas.Channel{ChannelID: id})
	}
	c.orders = newOrderModel()
	for _, sku := range c.orders.skus {
		for node, q := range c.orders.stock[sku] {
			m := schemas.StockMovement{MovementID: "seed-" + sku + "-" + node, SKU: sku, NodeID: node, Type: schemas.Receipt, Qty: q}
			testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: testkit.Encode(t, schemas.StockMovements, &m)})
		}
	}
	return c
}

func (c *chaos) logf(format string, args ...any) {
	msg := fmt.Sprintf("%6.1fs ", time.Since(c.start).Seconds()) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.events = append(c.events, msg)
	c.mu.Unlock()
	c.t.Log(msg)
}

func (c *chaos) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) < 50 {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	} else {
		c.violations = append(c.violations[:50], "... more")
	}
}

func (c *chaos) count(what string) {
	c.mu.Lock()
	c.counts[what]++
	c.mu.Unlock()
}

// startInst starts instance i's process.
func (c *chaos) startInst(i int) {
	in := c.insts[i]
	p := &chaosProc{cmd: exec.Command(c.bin, append(slices.Clone(c.args), "-instance-id", in.id, "-state-dir", in.dir)...),
		log: new(testkit.Buffer), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	in.runs++
	c.mu.Lock()
	c.logs = append(c.logs, procLog{fmt.Sprintf("%s-%d", in.id, in.runs), p.log})
	c.mu.Unlock()
	if dir := os.Getenv("INVROUTE_CHAOS_LOGS"); dir != "" { // every process's log, as it is written
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", in.id, in.runs)))
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { f.Close() })
		p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(p.log, f), io.MultiWriter(p.log, f)
	}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
		if !p.expected.Load() {
			c.violate("instance %s exited on its own: %v\n%s", in.id, p.err, tail(p.log.Bytes()))
		}
	}()
	c.t.Cleanup(func() {
		p.expected.Store(true)
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	in.p = p
}

// killInst SIGKILLs instance i.
func (c *chaos) killInst(i int) {
	p := c.insts[i].p
	p.expected.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	c.insts[i].p = nil
}

// stopInst stops instance i gracefully; it must exit 0 within a minute.
func (c *chaos) stopInst(i int) {
	p := c.insts[i].p
	p.expected.Store(true)
	at := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	defer func() { c.logf("%s stopped gracefully in %.1fs", c.insts[i].id, time.Since(at).Seconds()) }()
	select {
	case <-p.done:
		if p.err != nil {
			c.violate("instance %s: graceful stop exited with %v\n%s", c.insts[i].id, p.err, tail(p.log.Bytes()))
		}
	case <-time.After(60 * time.Second):
		c.violate("instance %s did not stop within 60 s of SIGTERM\n%s", c.insts[i].id, tail(p.log.Bytes()))
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	c.insts[i].p = nil
}

func (c *chaos) running() []int {
	var out []int
	for i, in := range c.insts {
		if in.p != nil {
			out = append(out, i)
		}
	}
	return out
}

func (c *chaos) sleep(lo, hi time.Duration) {
	d := lo
	if hi > lo {
		d += time.Duration(c.rng.Int64N(int64(hi - lo)))
	}
	time.Sleep(d)
}

// run drives the whole scenario and checks the result.
func (c *chaos) run(restartBroker func() error) {
	plan := c.plan
	stopLoad, follow := c.begin()
	defer c.gaps.stop()

	// Scale 1 -> 3.
	c.startInst(0)
	c.logf("instance %s started (1 instance)", c.insts[0].id)
	time.Sleep(plan.warm)
	scaleUp := time.Now()
	c.startInst(1)
	c.startInst(2)
	c.logf("scaled out to 3 instances")
	time.Sleep(plan.settle)
	c.gaps.window("scale 1->3", scaleUp, time.Now())

	// Faults.
	var recWG sync.WaitGroup
	for k := 1; k <= plan.kills; k++ {
		c.sleep(plan.killGap[0], plan.killGap[1])
		i := c.running()[c.rng.IntN(len(c.running()))]
		at := time.Now()
		c.killInst(i)
		// Sampled once the victim is dead: its partitions stay where it
		// left them until they move; the survivors' go on.
		before := c.committed()
		c.count("kills")
		c.logf("kill %d: SIGKILL %s", k, c.insts[i].id)
		recWG.Add(1)
		go func() { defer recWG.Done(); c.measureRecovery(k, at, before) }()
		c.sleep(time.Second, 3*time.Second)
		c.startInst(i)
		c.count("restarts after kill")
		switch k {
		case plan.cleanAfter:
			c.sleep(plan.killGap[0], plan.killGap[1])
			j := c.running()[c.rng.IntN(len(c.running()))]
			c.stopInst(j)
			c.startInst(j)
			c.count("clean restarts")
			c.logf("clean restart of %s", c.insts[j].id)
		case plan.rollingAfter:
			c.sleep(plan.killGap[0], plan.killGap[1])
			for j := range c.insts {
				c.stopInst(j)
				c.startInst(j)
				time.Sleep(3 * time.Second)
			}
			c.count("rolling restarts")
			c.logf("rolling restart of all instances")
		case plan.brokerAfter:
			c.sleep(plan.killGap[0], plan.killGap[1])
			c.logf("broker restart begins")
			if err := restartBroker(); err != nil {
				c.violate("broker restart: %v", err)
			}
			c.count("broker restarts")
			c.logf("broker restarted")
		case plan.pauseAfter:
			c.sleep(plan.killGap[0], plan.killGap[1])
			j := c.running()[c.rng.IntN(len(c.running()))]
			p := c.insts[j].p
			_ = p.cmd.Process.Signal(syscall.SIGSTOP)
			c.logf("SIGSTOP %s for %v", c.insts[j].id, chaosSession+5*time.Second)
			time.Sleep(chaosSession + 5*time.Second)
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			c.count("pauses past session timeout")
			c.logf("SIGCONT %s", c.insts[j].id)
			if os.Getenv("INVROUTE_CHAOS_DUMP") != "" { // debugging: its goroutines 5 s later
				time.Sleep(5 * time.Second)
				p.expected.Store(true)
				_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			}
		}
	}

	// Scale 3 -> 1 (gracefully), still under load.
	time.Sleep(plan.settle)
	scaleDown := time.Now()
	c.stopInst(1)
	c.stopInst(2)
	c.logf("scaled in to 1 instance")
	time.Sleep(plan.settle)
	c.gaps.window("scale 3->1", scaleDown, time.Now())

	stopLoad()
	recWG.Wait()
	c.drain(follow, 0)
	c.report()
}

// begin starts the run: the ATS gap watch (the caller stops c.gaps), the
// load and the decision follower. The returned stop ends the load.
func (c *chaos) begin() (stop func(), follow *follower) {
	c.start = time.Now()
	c.gaps = watchGaps(c.t, c.brokers, c.prefix+"ats")
	stopLoad := c.startLoad()
	return func() {
		stopLoad()
		c.logf("load stopped: %d movement records, %d order records", c.movements.Load(), c.orderRecs.Load())
	}, c.followDecisions()
}

// drain, once the load stopped, waits for every order decided, sends the
// follow-ups and returns, waits for the final state and checks it; then it
// stops the last instance, last, and checks that no transaction is open.
func (c *chaos) drain(follow *follower, last int) {
	c.waitDecided(follow)
	c.returns()
	testkit.WaitCaughtUp(c.t, c.cl, c.prefix+"inventory", c.prefix, 3*time.Minute)
	c.checkOrders()
	c.checkMovements()
	c.stopInst(last)
	c.checkNoOpenTransactions()
}

// committed returns the committed offsets of both groups per partition.
func (c *chaos) committed() map[string]int64 {
	out := map[string]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for group, topic := range map[string]string{c.prefix + "inventory": c.prefix + "stock-movements", c.prefix + "router": c.prefix + "orders"} {
		offs, err := c.adm.FetchOffsets(ctx, group)
		// The broker may be restarting. A group that never committed is
		// GROUP_ID_NOT_FOUND on kfake (Apache Kafka answers no offsets).
		for try := 0; err != nil && !errors.Is(err, kerr.GroupIDNotFound) && try < 20 && ctx.Err() == nil; try++ {
			time.Sleep(200 * time.Millisecond)
			offs, err = c.adm.FetchOffsets(ctx, group)
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			continue
		}
		if err != nil {
			c.violate("committed offsets of %s: %v", group, err)
			continue
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic {
				out[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.At
			}
		})
	}
	return out
}

// inputPartitions: the partitions of the two input topics (6 each), which
// committed returns offsets of.
const inputPartitions = 6 * 2

// waitCommittedEverywhere waits (at most d) until both groups have
// committed offsets on every partition of their input topics: the start of
// measureRecovery's baseline.
func (c *chaos) waitCommittedEverywhere(d time.Duration) {
	deadline := time.Now().Add(d)
	for len(c.committed()) < inputPartitions && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
}

// measureRecovery waits until every partition of the movements and the
// orders topics has a commit beyond where it stood at the kill: then the
// killed instance's partitions are processed again.
func (c *chaos) measureRecovery(k int, at time.Time, before map[string]int64) {
	deadline := at.Add(3 * time.Minute)
	want := inputPartitions
	if len(before) < want {
		c.violate("kill %d: committed offsets of only %d of %d partitions before the kill", k, len(before), want)
		return
	}
	for time.Now().Before(deadline) {
		now := c.committed()
		n := 0
		for p, off := range now {
			if off > before[p] {
				n++
			}
		}
		if n >= want {
			d := time.Since(at)
			c.mu.Lock()
			c.recoveries = append(c.recoveries, d)
			c.mu.Unlock()
			c.logf("kill %d: every partition committing again after %.1fs", k, d.Seconds())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.violate("kill %d: the partitions did not all commit again within 3 minutes", k)
}

// startLoad starts the movement and order producers; the returned function
// stops them and waits for every record to be acknowledged.
func (c *chaos) startLoad() func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	produce := func(r *kgo.Record, n *atomic.Int64) {
		wg.Add(1)
		c.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				c.produceErr.Add(1)
				c.violate("produce to %s: %v", r.Topic, err)
				return
			}
			n.Add(1)
		})
	}
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { // movements, in batches every 50 ms
		defer loops.Done()
		per := max(1, c.plan.movementsPerS/20)
		for tick := time.NewTicker(50 * time.Millisecond); ; {
			select {
			case <-stop:
				tick.Stop()
				return
			case <-tick.C:
			}
			for range per {
				produce(c.stream.Next(), &c.movements)
			}
		}
	}()
	go func() { // orders: PLACED, and 1 in 100 a bad record
		defer loops.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		n := 0
		for tick := time.NewTicker(time.Second / time.Duration(c.plan.ordersPerS)); ; {
			select {
			case <-stop:
				tick.Stop()
				return
			case <-tick.C:
			}
			n++
			if rng.IntN(100) == 0 {
				v := badOrder(rng, n)
				c.mu.Lock()
				c.badOrders[string(v)] = true
				c.mu.Unlock()
				produce(&kgo.Record{Topic: c.prefix + "orders", Key: []byte(fmt.Sprint("bad", n)), Value: v}, &c.orderRecs)
				continue
			}
			ev := c.orders.place(rng, fmt.Sprintf("x%06d", n))
			produce(&kgo.Record{Topic: c.prefix + "orders", Key: []byte(ev.OrderID), Value: testkit.Encode(c.t, schemas.OrderEvents, ev)}, &c.orderRecs)
		}
	}()
	return func() {
		close(stop)
		loops.Wait()
		wg.Wait()
	}
}

// badOrder returns bytes the router must dead-letter: random bytes, a
// truncated order, an order with trailing bytes, or an unknown schema id.
func badOrder(rng *rand.Rand, n int) []byte {
	ev := schemas.OrderEvent{OrderID: fmt.Sprint("bad", n), Type: schemas.EventPlaced, ChannelID: "web",
		CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip,
		ShipTo: &schemas.Address{Country: "FR", Lat: 48, Lon: 2}, Policy: schemas.ShipAvailable, LineIDs: []string{},
		Lines: []schemas.OrderLine{{LineID: "1", SKU: "CH-A", Qty: 1}}}
	good, err := schemas.OrderEvents.Encode(&ev)
	if err != nil {
		panic(err)
	}
	switch rng.IntN(4) {
	case 0:
		b := make([]byte, 1+rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return append([]byte(fmt.Sprintf("\xff%d", n)), b...) // unique, and 0xff is no valid start
	case 1:
		return good[:len(good)-1]
	case 2:
		return append(good, 0x02)
	default:
		return schemas.Frame(nil, 4242, good)
	}
}

// orderModel is the test's account of the orders: what each decision
// routed and what the test then did with it.
type orderModel struct {
	mu       sync.Mutex
	skus     []string
	stock    testkit.Stock
	placed   map[string]schemas.OrderEvent
	decided  map[string]schemas.RoutingDecision
	twice    []string
	onHand   map[[2]string]int64
	reserved map[[2]string]int64
	want     map[string]schemas.OrderState
	toReturn []string
	mv       int
}

func newOrderModel() *orderModel {
	m := &orderModel{skus: []string{"CH-A", "CH-B", "CH-C", "CH-D"}, stock: testkit.Stock{},
		placed: map[string]schemas.OrderEvent{}, decided: map[string]schemas.RoutingDecision{},
		onHand: map[[2]string]int64{}, reserved: map[[2]string]int64{}, want: map[string]schemas.OrderState{}}
	for _, sku := range m.skus {
		m.stock[sku] = map[string]int64{"W-PAR": 2000, "W-BER": 1500, "W-MIL": 1000, "S-OPERA": 300}
		for node, q := range m.stock[sku] {
			m.onHand[[2]string{sku, node}] = q
		}
	}
	return m
}

func (m *orderModel) place(rng *rand.Rand, id string) *schemas.OrderEvent {
	ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventPlaced, ChannelID: testkit.OrderChannels[rng.IntN(3)],
		CustomerID: fmt.Sprint("c", rng.IntN(1000)), CustomerTier: schemas.TierStandard, Priority: schemas.PriorityStandard,
		DeliveryMethod: schemas.DeliveryShip, ShipTo: &schemas.Address{Country: "FR", Lat: 43 + rng.Float64()*10, Lon: 1 + rng.Float64()*12},
		Policy: schemas.ShipAvailable, LineIDs: []string{}}
	if rng.IntN(5) == 0 {
		p := "S-OPERA"
		ev.DeliveryMethod, ev.PickupNodeID, ev.ShipTo = schemas.DeliveryPickup, &p, nil
	}
	if rng.IntN(2) == 0 {
		ev.Policy = schemas.ShipComplete
	}
	if rng.IntN(10) == 0 {
		ev.Priority = schemas.PriorityRush
	}
	for l, p := range rng.Perm(len(m.skus))[:1+rng.IntN(3)] {
		ev.Lines = append(ev.Lines, schemas.OrderLine{LineID: fmt.Sprint(l + 1), SKU: m.skus[p], Qty: 1 + int64(rng.IntN(2))})
	}
	m.mu.Lock()
	m.placed[id] = ev
	m.mu.Unlock()
	return &ev
}

// followDecisions tails routing-decisions (read_committed) for the whole
// run and answers each first decision of an order at once, as a WMS and
// the shop would: cancel it, ship it (or hand it over at the store), or
// ship it and take it back later. It returns a channel closed when the
// tail stops (after waitDecided).
func (c *chaos) followDecisions() *follower {
	f := &follower{stop: make(chan struct{}), done: make(chan struct{})}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.brokers, ",")...),
		kgo.ConsumeTopics(c.prefix+"routing-decisions"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	go func() {
		defer close(f.done)
		defer cl.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-f.stop; cancel() }()
		var sent sync.WaitGroup
		defer sent.Wait()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				var d schemas.RoutingDecision
				if err := schemas.RoutingDecisions.Decode(r.Value, &d); err != nil {
					c.violate("routing-decisions %d@%d: %v", r.Partition, r.Offset, err)
					return
				}
				for _, rec := range c.orders.decide(c.t, c.prefix, rng, d) {
					sent.Add(1)
					cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
						defer sent.Done()
						if err != nil {
							c.violate("follow-up to %s: %v", rec.Topic, err)
							return
						}
						c.followUps.Add(1)
					})
				}
			})
		}
	}()
	return f
}

type follower struct{ stop, done chan struct{} }

// decide books decision d and returns the follow-up records.
func (m *orderModel) decide(t testing.TB, prefix string, rng *rand.Rand, d schemas.RoutingDecision) []*kgo.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.decided[d.OrderID]; ok {
		m.twice = append(m.twice, fmt.Sprintf("order %s decided again (%s after %s)", d.OrderID, d.Status, m.decided[d.OrderID].Status))
		return nil
	}
	ev, ok := m.placed[d.OrderID]
	if !ok {
		m.twice = append(m.twice, fmt.Sprintf("decision for an order never placed: %s", d.OrderID))
		return nil
	}
	m.decided[d.OrderID] = d
	pickup := ev.DeliveryMethod == schemas.DeliveryPickup
	type key = [2]string
	if len(d.Shipments) == 0 {
		m.want[d.OrderID] = schemas.StateBackordered
		if d.Status == schemas.DecisionRejected {
			m.want[d.OrderID] = schemas.StateRejected
		}
		return nil
	}
	for _, s := range d.Shipments {
		for _, l := range s.Lines {
			m.reserved[key{l.SKU, s.NodeID}] += l.Qty
		}
	}
	if len(d.Backordered) > 0 { // partly routed: left as it is
		m.want[d.OrderID] = schemas.StateRouted
		if pickup {
			m.want[d.OrderID] = schemas.StateReadyForPickup
		}
		return nil
	}
	var recs []*kgo.Record
	movement := func(ty schemas.MovementType, sku, node, order, line string, qty int64) {
		m.mv++
		mv := schemas.StockMovement{MovementID: fmt.Sprint("chaos-mv", m.mv), SKU: sku, NodeID: node, Type: ty, Qty: qty, OrderID: &order, LineID: &line}
		recs = append(recs, &kgo.Record{Topic: prefix + "stock-movements", Key: []byte(sku), Value: testkit.Encode(t, schemas.StockMovements, &mv)})
	}
	switch rng.IntN(5) {
	case 0: // kept as routed (the warehouse has not picked it yet)
		m.want[d.OrderID] = schemas.StateRouted
		if pickup {
			m.want[d.OrderID] = schemas.StateReadyForPickup
		}
	case 1: // cancelled: the reservations go back
		ev := schemas.OrderEvent{OrderID: d.OrderID, Type: schemas.EventCancelled, CustomerTier: schemas.TierStandard,
			Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete,
			Lines: []schemas.OrderLine{}, LineIDs: []string{}}
		recs = append(recs, &kgo.Record{Topic: prefix + "orders", Key: []byte(d.OrderID), Value: testkit.Encode(t, schemas.OrderEvents, &ev)})
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				m.reserved[key{l.SKU, s.NodeID}] -= l.Qty
			}
		}
		m.want[d.OrderID] = schemas.StateCancelled
	case 2, 3: // shipped, or picked up at the store
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				movement(schemas.Shipment, l.SKU, s.NodeID, d.OrderID, l.LineID, l.Qty)
				m.reserved[key{l.SKU, s.NodeID}] -= l.Qty
				m.onHand[key{l.SKU, s.NodeID}] -= l.Qty
			}
		}
		m.want[d.OrderID] = schemas.StateShipped
		if pickup {
			m.want[d.OrderID] = schemas.StatePickedUp
		}
	case 4: // shipped now, returned and restocked after the load
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				movement(schemas.Shipment, l.SKU, s.NodeID, d.OrderID, l.LineID, l.Qty)
				m.reserved[key{l.SKU, s.NodeID}] -= l.Qty
			}
		}
		m.toReturn = append(m.toReturn, d.OrderID)
		m.want[d.OrderID] = schemas.StateReturned
	}
	return recs
}

// waitDecided waits until every valid order placed has a decision and the
// follower has sent its follow-ups, then stops the follower.
func (c *chaos) waitDecided(f *follower) {
	deadline := time.Now().Add(4 * time.Minute)
	for {
		c.orders.mu.Lock()
		placed, decided := len(c.orders.placed), len(c.orders.decided)
		c.orders.mu.Unlock()
		if decided >= placed {
			break
		}
		if time.Now().After(deadline) {
			c.violate("%d of %d orders decided 4 minutes after the load stopped", decided, placed)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Decisions of the last moments may still be re-read: give the tail a
	// moment to see duplicates, then stop it.
	time.Sleep(2 * time.Second)
	close(f.stop)
	<-f.done
	c.logf("%d orders decided; %d follow-up records sent", len(c.orders.decided), c.followUps.Load())
}

// returns authorises the returns once their orders show as shipped, then
// restocks them.
func (c *chaos) returns() {
	m := c.orders
	c.waitStatuses("shipped before return", func(st map[string]schemas.OrderStatus) string {
		for _, id := range m.toReturn {
			if s := st[id].State; s != schemas.StateShipped && s != schemas.StatePickedUp {
				return fmt.Sprintf("order %s is %s, want SHIPPED before its return", id, s)
			}
		}
		return ""
	})
	var recs []*kgo.Record
	for _, id := range m.toReturn {
		ev := schemas.OrderEvent{OrderID: id, Type: schemas.EventReturnAuthorized, CustomerTier: schemas.TierStandard,
			Priority: schemas.PriorityStandard, DeliveryMethod: schemas.DeliveryShip, Policy: schemas.ShipComplete,
			Lines: []schemas.OrderLine{}, LineIDs: []string{}}
		recs = append(recs, &kgo.Record{Topic: c.prefix + "orders", Key: []byte(id), Value: testkit.Encode(c.t, schemas.OrderEvents, &ev)})
	}
	testkit.Produce(c.t, c.cl, recs...)
	recs = nil
	for _, id := range m.toReturn {
		d := m.decided[id]
		for _, s := range d.Shipments {
			for _, l := range s.Lines {
				m.mv++
				order, line := id, l.LineID
				mv := schemas.StockMovement{MovementID: fmt.Sprint("chaos-mv", m.mv), SKU: l.SKU, NodeID: s.NodeID, Type: schemas.ReturnRestock,
					Qty: l.Qty, OrderID: &order, LineID: &line}
				recs = append(recs, &kgo.Record{Topic: c.prefix + "stock-movements", Key: []byte(l.SKU), Value: testkit.Encode(c.t, schemas.StockMovements, &mv)})
			}
		}
	}
	testkit.Produce(c.t, c.cl, recs...)
	c.followUps.Add(int64(len(m.toReturn) + len(recs)))
	c.logf("%d returns authorised and restocked", len(m.toReturn))
}

// waitStatuses reads order-status until check passes or two minutes pass.
func (c *chaos) waitStatuses(what string, check func(map[string]schemas.OrderStatus) string) map[string]schemas.OrderStatus {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := map[string]schemas.OrderStatus{}
		testkit.ReadToEnd(c.t, c.brokers, func(r *kgo.Record) {
			var s schemas.OrderStatus
			if err := schemas.OrderStatuses.Decode(r.Value, &s); err != nil {
				c.violate("order-status: %v", err)
				return
			}
			if prev, ok := st[s.OrderID]; ok && s.Version <= prev.Version {
				c.violate("order %s: status version %d after %d", s.OrderID, s.Version, prev.Version)
			}
			st[s.OrderID] = s
		}, c.prefix+"order-status")
		why := check(st)
		if why == "" {
			return st
		}
		if time.Now().After(deadline) {
			c.violate("%s: %s", what, why)
			return st
		}
		time.Sleep(time.Second)
	}
}

// checkOrders: every order decided once, in its expected final state, and
// the final ATS of the order SKUs equal to the model.
func (c *chaos) checkOrders() {
	m := c.orders
	for _, s := range m.twice {
		c.violate("%s", s)
	}
	c.waitStatuses("final order states", func(st map[string]schemas.OrderStatus) string {
		for id, w := range m.want {
			if st[id].State != w {
				return fmt.Sprintf("order %s is %s, want %s", id, st[id].State, w)
			}
		}
		return ""
	})
	deadline := time.Now().Add(time.Minute)
	for {
		diff := ""
		last := c.readATS(false)
		for _, sku := range m.skus {
			got := map[string]schemas.NodeATS{}
			for _, nd := range last[sku].Nodes {
				got[nd.NodeID] = nd
			}
			for node := range m.stock[sku] { // every node of the model, found or not
				k := [2]string{sku, node}
				nd, ok := got[node]
				if !ok || nd.OnHand != m.onHand[k] || nd.Reserved != m.reserved[k] {
					diff += fmt.Sprintf(" %s@%s on_hand %d reserved %d (in ATS: %t), model %d/%d;", sku, node, nd.OnHand, nd.Reserved, ok, m.onHand[k], m.reserved[k])
				}
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			c.violate("final ATS of the order SKUs differs from the model:%s", diff)
			return
		}
		time.Sleep(time.Second)
	}
}

// readATS reads the whole ats topic; with check it also verifies every
// record: reserved <= on_hand at each node, versions strictly increasing.
func (c *chaos) readATS(check bool) map[string]schemas.AtsUpdate {
	last := map[string]schemas.AtsUpdate{}
	testkit.ReadToEnd(c.t, c.brokers, func(r *kgo.Record) {
		var u schemas.AtsUpdate
		if err := schemas.AtsUpdates.Decode(r.Value, &u); err != nil {
			c.violate("ats %d@%d: %v", r.Partition, r.Offset, err)
			return
		}
		if check {
			for _, n := range u.Nodes {
				// on_hand may be negative (a WMS reporting out of order);
				// what must never happen is more reserved than on hand.
				if n.Reserved > 0 && n.Reserved > n.OnHand {
					c.violate("ats %s v%d: %s reserved %d > on_hand %d", u.SKU, u.Version, n.NodeID, n.Reserved, n.OnHand)
				}
			}
			if prev, ok := last[u.SKU]; ok && u.Version <= prev.Version {
				c.violate("ats %s: version %d after %d", u.SKU, u.Version, prev.Version)
			}
		}
		last[u.SKU] = u
	}, c.prefix+"ats")
	return last
}

// checkMovements compares the movement SKUs' final ATS with the movement
// model and the dead-letter topic with the bad records sent.
func (c *chaos) checkMovements() {
	c.readATS(true)
	for v := range c.badOrders {
		c.stream.Bad[v] = true
	}
	var diffs []string
	var out *testkit.Output
	deadline := time.Now().Add(time.Minute)
	for {
		out = testkit.ReadAll(c.t, c.brokers, c.prefix)
		for _, sku := range c.orders.skus {
			delete(out.Last, sku) // checked by checkOrders
		}
		diffs = append(out.Check(c.stream.Stream), testkit.CheckHostileDeadLetters(out, c.stream)...)
		for v, h := range out.Headers {
			for _, k := range []string{"invroute.error", "invroute.stage", "invroute.source.topic", "invroute.source.partition", "invroute.source.offset"} {
				if h[k] == "" {
					diffs = append(diffs, fmt.Sprintf("dead letter %.40q lacks header %s", v, k))
				}
			}
		}
		c.mu.Lock()
		c.counts["ats updates"] = out.Updates
		c.counts["dead letters"] = len(out.DeadLetters)
		c.mu.Unlock()
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, d := range diffs {
		c.violate("%s", d)
	}
	if len(diffs) > 0 {
		for _, w := range c.whereSent(c.missingDeadLetters(out)) {
			c.violate("%s", w)
		}
	}
}

// missingDeadLetters returns the bad records sent that are not among
// out's dead letters (at most 20).
func (c *chaos) missingDeadLetters(out *testkit.Output) map[string]bool {
	missing := map[string]bool{}
	for v := range c.stream.Bad {
		if out.DeadLetters[v] == 0 && len(missing) < 20 {
			missing[v] = true
		}
	}
	return missing
}

// whereSent says, for each value, where it is in the input topics (bad
// movements and bad orders) and how far the group that reads it has
// committed there, or that no input topic holds it: an input the engine
// skipped (or whose dead letter it lost) and a record the test never sent
// look alike otherwise.
func (c *chaos) whereSent(values map[string]bool) []string {
	if len(values) == 0 {
		return nil
	}
	type at struct {
		topic string
		p     int32
		off   int64
	}
	found := map[string][]at{}
	testkit.ReadToEnd(c.t, c.brokers, func(r *kgo.Record) {
		if values[string(r.Value)] {
			found[string(r.Value)] = append(found[string(r.Value)], at{r.Topic, r.Partition, r.Offset})
		}
	}, c.prefix+"stock-movements", c.prefix+"orders")
	committed := c.committed()
	var out []string
	for _, v := range slices.Sorted(maps.Keys(values)) {
		what := fmt.Sprintf("bad record %.40q", v)
		if k, ok := c.stream.Kind[v]; ok {
			what += " (" + k.String() + ")"
		}
		locs := found[v]
		if len(locs) == 0 {
			out = append(out, what+" is in no input topic: never sent, a fault of the test")
			continue
		}
		for _, l := range locs {
			where := fmt.Sprintf("%s is in %s[%d] at offset %d", what, strings.TrimPrefix(l.topic, c.prefix), l.p, l.off)
			if o, ok := committed[fmt.Sprintf("%s/%d", l.topic, l.p)]; ok {
				where += fmt.Sprintf("; its group committed offset %d there", o)
			}
			out = append(out, where)
		}
	}
	return out
}

// checkNoOpenTransactions: once every instance has stopped, a
// read_committed reader's end (the last stable offset) is the log end on
// every partition of every topic of the run: no transaction is left open.
func (c *chaos) checkNoOpenTransactions() {
	// Below the transaction timeout (10 s) plus the broker's abort scan
	// (up to 10 s): what is still open after this was left by the engine,
	// not cleaned up by the broker for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, err := c.openTransactions()
		if err == nil && len(open) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				c.violate("transactions left open: %v", err)
			} else {
				c.violate("transactions left open: %s", strings.Join(open, "; "))
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// openTransactions lists the partitions of the run's topics whose last
// stable offset is behind their end (a transaction is open on them).
func (c *chaos) openTransactions() ([]string, error) {
	ctx := context.Background()
	topics, err := c.adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var names []string
	for _, d := range topics {
		if strings.HasPrefix(d.Topic, c.prefix) {
			names = append(names, d.Topic)
		}
	}
	ends, err1 := c.adm.ListEndOffsets(ctx, names...)
	stable, err2 := c.adm.ListCommittedOffsets(ctx, names...)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	var open []string
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := stable.Lookup(o.Topic, o.Partition); !ok || s.Offset != o.Offset {
			open = append(open, fmt.Sprintf("%s[%d] end %d stable %d", strings.TrimPrefix(o.Topic, c.prefix), o.Partition, o.Offset, s.Offset))
		}
	})
	return open, nil
}

// report prints the run's table.
func (c *chaos) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := slices.Clone(c.recoveries)
	slices.Sort(rec)
	pct := func(p float64) string {
		if len(rec) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fs", rec[min(len(rec)-1, int(p*float64(len(rec))))].Seconds())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nchaos (%s run, %.0fs, %s, reproduce: %s)\n", c.plan.name, time.Since(c.start).Seconds(), c.plan.insts, chaosCommand(c.plan))
	for _, k := range []string{"kills", "restarts after kill", "clean restarts", "rolling restarts", "broker restarts", "pauses past session timeout"} {
		fmt.Fprintf(&b, "  %-32s %d\n", k, c.counts[k])
	}
	fmt.Fprintf(&b, "  %-32s %d (movements %d, orders %d, follow-ups %d)\n", "records in",
		c.movements.Load()+c.orderRecs.Load()+c.followUps.Load(), c.movements.Load(), c.orderRecs.Load(), c.followUps.Load())
	fmt.Fprintf(&b, "  %-32s %d ats updates, %d orders decided\n", "records out", c.counts["ats updates"], len(c.orders.decided))
	fmt.Fprintf(&b, "  %-32s %d\n", "dead letters", c.counts["dead letters"])
	fmt.Fprintf(&b, "  %-32s %v\n", "hostile movements sent", c.stream.Sent)
	fmt.Fprintf(&b, "  %-32s %d\n", "violations", len(c.violations))
	fmt.Fprintf(&b, "  %-32s p50 %s  p99 %s  (n=%d; every partition committing again)\n", "recovery after kill", pct(0.5), pct(0.99), len(rec))
	for _, w := range c.gaps.report() {
		fmt.Fprintf(&b, "  %-32s %s\n", "longest ATS pause, "+w[0], w[1])
	}
	fmt.Println(b.String())
	for _, v := range c.violations {
		c.t.Errorf("VIOLATION: %s", v)
	}
	if len(c.violations) > 0 {
		c.t.Logf("events:\n%s", strings.Join(c.events, "\n"))
		c.keepLogs()
	}
}

// keepLogs writes every process's output to a directory that outlives
// the test (unless INVROUTE_CHAOS_LOGS kept them already), says where and
// returns it ("" if it wrote none). The caller holds c.mu.
func (c *chaos) keepLogs() string {
	c.logsKept = true
	if os.Getenv("INVROUTE_CHAOS_LOGS") != "" {
		return ""
	}
	dir, err := os.MkdirTemp("", "invroute-"+c.plan.name+"-logs-")
	if err != nil {
		c.t.Logf("keeping the instances' logs: %v", err)
		return ""
	}
	for _, l := range c.logs {
		if err := os.WriteFile(filepath.Join(dir, l.name+".log"), l.buf.Bytes(), 0o644); err != nil {
			c.t.Logf("keeping the instances' logs: %v", err)
			return ""
		}
	}
	c.t.Logf("the instances' logs (%d processes) are kept in %s", len(c.logs), dir)
	return dir
}

func chaosCommand(p chaosPlan) string {
	if p.name == "long" {
		return "make chaos"
	}
	return "deploy/kafka/with-kafka.sh go test -count=1 -run '^" + p.test + "$' -v ./cmd/invroute"
}

// newProcessRun is the start of a single-fault test on the fault suite's
// harness (TestInstanceLost, TestInstancePaused): skipped with -short.
func newProcessRun(t *testing.T, plan chaosPlan) *chaos {
	if testing.Short() {
		t.Skip("runs engine processes for a minute; skipped with -short")
	}
	brokers, _ := testkit.Brokers(t)
	return newChaos(t, plan, brokers, buildBinary(t))
}

// gapWatch tails a topic (read_committed) and records, per partition, the
// longest time between two arriving records, to show how long output
// stopped during scaling and faults.
type gapWatch struct {
	mu      sync.Mutex
	last    map[int32]time.Time
	gaps    []gap // gaps over 500 ms
	windows [][2]any
	cancel  context.CancelFunc
	done    chan struct{}
}

type gap struct {
	from, to time.Time
	part     int32
}

func watchGaps(t *testing.T, brokers, topic string) *gapWatch {
	g := &gapWatch{last: map[int32]time.Time{}, done: make(chan struct{})}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			g.mu.Lock()
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				if len(p.Records) == 0 {
					return
				}
				if prev, ok := g.last[p.Partition]; ok && now.Sub(prev) > 500*time.Millisecond {
					g.gaps = append(g.gaps, gap{prev, now, p.Partition})
				}
				g.last[p.Partition] = now
			})
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *gapWatch) stop() { g.cancel(); <-g.done }

// window names a period whose longest overlapping gap is reported.
func (g *gapWatch) window(name string, from, to time.Time) {
	g.mu.Lock()
	g.windows = append(g.windows, [2]any{name, [2]time.Time{from, to}})
	g.mu.Unlock()
}

func (g *gapWatch) report() [][2]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	longest := func(from, to time.Time) time.Duration {
		var m time.Duration
		for _, x := range g.gaps {
			if x.to.After(from) && x.from.Before(to) {
				m = max(m, x.to.Sub(x.from))
			}
		}
		return m
	}
	var out [][2]string
	for _, w := range g.windows {
		r := w[1].([2]time.Time)
		out = append(out, [2]string{w[0].(string), fmt.Sprintf("%.1fs", longest(r[0], r[1]).Seconds())})
	}
	out = append(out, [2]string{"whole run", fmt.Sprintf("%.1fs", longest(time.Time{}, time.Now()).Seconds())})
	return out
}

// TestWhereSent: the harness tells a bad record it never sent from one
// the engine left out of the dead-letter topic. (A hostile record counted
// one call before it was sent once made TestInstanceLost report a missing
// dead letter that only the input topic could explain.)
func TestWhereSent(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a broker")
	}
	brokers, _ := testkit.Brokers(t)
	c := newChaos(t, lostPlan, brokers, "")
	order, sent, unsent := "\xffan-order-sent", "\xffsent-but-not-dead-lettered", "\xffcounted-but-never-sent"
	testkit.Produce(t, c.cl, &kgo.Record{Topic: c.prefix + "stock-movements", Key: []byte("S00001"), Value: []byte(sent)})
	testkit.Produce(t, c.cl, &kgo.Record{Topic: c.prefix + "orders", Key: []byte("bad1"), Value: []byte(order)})
	c.stream.Bad[sent], c.stream.Bad[unsent] = true, true
	c.badOrders[order] = true
	c.stream.Bad[order] = true // as checkMovements adds them
	missing := c.missingDeadLetters(testkit.ReadAll(t, brokers, c.prefix))
	if len(missing) != 3 {
		t.Fatalf("missing dead letters: %d, want 3", len(missing))
	}
	lines := c.whereSent(missing)
	if len(lines) != 3 {
		t.Fatalf("whereSent: %q", lines)
	}
	for _, l := range lines {
		t.Log(l)
	}
	// Sorted by value.
	for i, want := range [][]string{
		{"an-order-sent", "is in orders["},
		{"counted-but-never-sent", "in no input topic: never sent"},
		{"sent-but-not-dead-lettered", "is in stock-movements["},
	} {
		if !strings.Contains(lines[i], want[0]) || !strings.Contains(lines[i], want[1]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], want)
		}
	}

	if len(c.violations) > 0 {
		t.Errorf("violations: %q", c.violations)
	}

	// A run with violations keeps every process's log.
	t.Setenv("INVROUTE_CHAOS_LOGS", "")
	for i, text := range []string{"first run of chaos1\n", "its replacement\n"} {
		b := new(testkit.Buffer)
		_, _ = b.Write([]byte(text))
		c.logs = append(c.logs, procLog{fmt.Sprintf("chaos%d-1", i+1), b})
	}
	c.mu.Lock()
	dir := c.keepLogs()
	c.mu.Unlock()
	if dir == "" {
		t.Fatal("no logs kept")
	}
	defer os.RemoveAll(dir)
	for i, want := range []string{"first run of chaos1\n", "its replacement\n"} {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("chaos%d-1.log", i+1)))
		if err != nil || string(got) != want {
			t.Errorf("kept log %d: %q, %v; want %q", i+1, got, err, want)
		}
	}
}

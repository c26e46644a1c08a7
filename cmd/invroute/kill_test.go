package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/twmb/franz-go/pkg/kadm"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TestMain removes the binary buildBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// buildBinary builds invroute once per test binary run (INVROUTE_TEST_BIN:
// a binary built elsewhere instead, for figures side by side).
func buildBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("INVROUTE_TEST_BIN"); bin != "" { // another build, for figures side by side
		return bin
	}
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "invroute-test-"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "invroute")
		if out, err := exec.Command("go", "build", "-o", build.bin, ".").CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

type proc struct {
	cmd *exec.Cmd
	log *testkit.Buffer
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), log: new(testkit.Buffer)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

// committedTotal is the sum of the group's committed offsets on the
// movements topic.
func committedTotal(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			n += o.At
		}
	})
	return n
}

// TestKill9 kills the engine process with SIGKILL mid-stream several times,
// restarts it on the same state directory each time, and checks that the
// final result equals the model: no movement applied twice or lost, no ATS
// version going backwards, every bad record dead-lettered exactly once.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a process; skipped with -short")
	}
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	bin := buildBinary(t)
	prefix := testkit.Prefix(t)
	group := prefix + "inventory"
	stateDir := t.TempDir()
	o := app.Defaults()
	o.Brokers, o.TopicPrefix, o.Partitions, o.Replication = brokers, prefix, 4, 1
	if _, err := app.CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	adm := kadm.NewClient(cl)
	testkit.SeedCatalog(t, cl, prefix)
	args := []string{"run", "-brokers", brokers, "-topic-prefix", prefix, "-group", group,
		"-instance-id", "k1", "-static-membership", "-session-timeout", "6s",
		"-state-dir", stateDir, "-commit-interval", "50ms", "-max-record-bytes", strconv.Itoa(testkit.MaxRecordBytes), "-max-txn-records", "300", "-log-level", "info"}

	s := testkit.NewStream(7, 2000, prefix)
	// A producer streams movements the whole time, so every kill lands
	// mid-stream, with records in flight and transactions open.
	var produced atomic.Int64
	stopProducing := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for {
			select {
			case <-stopProducing:
				return
			default:
			}
			s.Produce(t, cl, 100)
			produced.Add(100)
			time.Sleep(25 * time.Millisecond)
		}
	}()
	rnd := rand.New(rand.NewSource(7))
	const kills = 3
	for i := 0; i < kills; i++ {
		p := startProc(t, bin, args...)
		time.Sleep(1500*time.Millisecond + time.Duration(rnd.Intn(1500))*time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		t.Logf("kill %d: %d movements produced, %d committed", i+1, produced.Load(),
			committedTotal(t, adm, group, prefix+"stock-movements"))
	}
	// The last run sees the stream end and shuts down gracefully.
	p := startProc(t, bin, args...)
	time.Sleep(time.Second)
	close(stopProducing)
	<-producerDone
	testkit.WaitCaughtUp(t, cl, group, prefix, 180*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful shutdown: %v\n%s", err, tail(p.log.Bytes()))
	}
	out := testkit.ReadAll(t, brokers, prefix)
	for _, d := range out.Check(s) {
		t.Error(d)
	}
	t.Logf("%d SKUs, %d ATS updates, %d dead letters", len(out.Last), out.Updates, len(out.DeadLetters))
	if t.Failed() {
		t.Logf("last process log:\n%s", tail(p.log.Bytes()))
	}
}

// waitLog waits until the process has logged s (60 s at most).
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !bytes.Contains(p.log.Bytes(), []byte(s)) {
		if time.Now().After(deadline) {
			t.Fatalf("the process did not log %q in 60s:\n%s", s, tail(p.log.Bytes()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// TestSecondSignalExitsAtOnce: the first SIGTERM starts a graceful
// shutdown, the second exits at once with status 130.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped with -short")
	}
	brokers, _ := testkit.Brokers(t)
	bin := buildBinary(t)
	prefix := testkit.Prefix(t)
	p := startProc(t, bin, "run", "-brokers", brokers, "-topic-prefix", prefix, "-group", prefix+"g",
		"-instance-id", "s1", "-state-dir", t.TempDir(), "-partitions", "2", "-replication", "1", "-log-level", "info")
	waitLog(t, p, "engine starting")
	// Two different signals back to back: both are pending at once (a
	// second SIGTERM sent while the first is pending would merge with it),
	// so the second is there before a shutdown this early, which can take
	// only milliseconds, could end the process with 0. (With a pause
	// between two SIGTERMs a loaded machine let the shutdown win.)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.cmd.Wait()
	if code := p.cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit code %d (%v), want 130\n%s", code, err, tail(p.log.Bytes()))
	}
	if !bytes.Contains(p.log.Bytes(), []byte("exiting at once")) {
		t.Errorf("no 'exiting at once' in the log:\n%s", tail(p.log.Bytes()))
	}
}

// TestTopicsCreateCLI runs `invroute topics create` and checks that it
// lists every topic with its policy, and that the topics exist.
func TestTopicsCreateCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped with -short")
	}
	brokers, _ := testkit.Brokers(t)
	bin := buildBinary(t)
	prefix := testkit.Prefix(t)
	out, err := exec.Command(bin, "topics", "create", "-brokers", brokers, "-topic-prefix", prefix,
		"-partitions", "3", "-replication", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("topics create: %v\n%s", err, out)
	}
	for _, want := range []string{
		prefix + "stock-movements compacted=false co-partitioned=true",
		prefix + "invroute-inventory-changelog compacted=true co-partitioned=true",
		prefix + "ats compacted=true co-partitioned=true",
		prefix + "nodes compacted=true co-partitioned=false",
		prefix + "channels compacted=true co-partitioned=false",
		prefix + "dead-letter compacted=false co-partitioned=false",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	adm := kadm.NewClient(testkit.Client(t, brokers))
	details, err := adm.ListTopics(context.Background(), prefix+"stock-movements", prefix+"nodes")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[prefix+"stock-movements"].Partitions); n != 3 {
		t.Errorf("stock-movements has %d partitions, want 3", n)
	}
	if n := len(details[prefix+"nodes"].Partitions); n != 1 {
		t.Errorf("nodes has %d partitions, want 1", n)
	}
	// Without brokers (none in the environment either) it fails with a clear error.
	cmd := exec.Command(bin, "topics", "create")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAFKA_BROKERS=") && !strings.HasPrefix(kv, "INVROUTE_BROKERS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err = cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("no brokers")) {
		t.Errorf("without brokers: %v\n%s", err, out)
	}
}

// TestKill9Orders: orders for scarce SKUs stream in while the engine
// process (inventory and router) is killed with SIGKILL and restarted
// several times. Afterwards every order is decided exactly once, no node
// has more units routed than it had, no ATS record shows reserved above
// on_hand, and the final reserved equals what the decisions routed.
func TestKill9Orders(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a process; skipped with -short")
	}
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	bin := buildBinary(t)
	prefix := testkit.Prefix(t)
	o := app.Defaults()
	o.Brokers, o.TopicPrefix, o.Partitions, o.Replication = brokers, prefix, 4, 1
	o.Group = prefix + "inventory"
	if _, err := app.CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	skus := []string{"SNEAKER-42", "SNEAKER-43", "HAT"}
	stock := testkit.Stock{}
	for _, sku := range skus {
		stock[sku] = map[string]int64{"W-PAR": 15, "W-BER": 10, "W-MIL": 5}
	}
	testkit.SeedOrderNetwork(t, cl, prefix, stock)
	args := []string{"run", "-brokers", brokers, "-topic-prefix", prefix, "-group", o.Group,
		"-instance-id", "k1", "-static-membership", "-session-timeout", "6s",
		"-state-dir", t.TempDir(), "-commit-interval", "50ms", "-max-txn-records", "200", "-log-level", "info"}

	const orders = 600
	rng := rand.New(rand.NewSource(11))
	var produced atomic.Int64
	stopProducing := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		orng := randv2.New(randv2.NewPCG(5, 5))
		for i := 0; i < orders; i += 10 { // about 7 s: every kill lands mid-stream
			select {
			case <-stopProducing:
				return
			default:
			}
			var ids []string
			for j := i; j < i+10; j++ {
				ids = append(ids, fmt.Sprintf("k%05d", j))
			}
			testkit.Produce(t, cl, testkit.RandomOrders(t, orng, prefix, ids, skus)...)
			produced.Add(10)
			time.Sleep(120 * time.Millisecond)
		}
	}()
	for i := 0; i < 3; i++ {
		p := startProc(t, bin, args...)
		time.Sleep(1500*time.Millisecond + time.Duration(rng.Intn(1500))*time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		t.Logf("kill %d: %d orders produced", i+1, produced.Load())
	}
	<-producerDone
	p := startProc(t, bin, args...)
	ds := testkit.Decisions(t, brokers, prefix, orders, 4*time.Minute)
	routed, total := testkit.CheckNoOversell(t, brokers, prefix, stock, ds)
	t.Logf("%d of %d units routed", routed, total)
	if routed < total/2 {
		t.Errorf("only %d of %d units routed: the test would not show an oversell", routed, total)
	}
	waitLog(t, p, "engine starting")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("graceful shutdown: %v\n%s", err, tail(p.log.Bytes()))
	}
	if t.Failed() {
		t.Logf("last process log:\n%s", tail(p.log.Bytes()))
	}
}

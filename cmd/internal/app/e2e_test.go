package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/schemas"
)

// waitReemitted waits until the outputs agree with the model (a re-emit
// finishes some transactions after the input is consumed).
func waitReemitted(t *testing.T, brokers, prefix string, s *testkit.Stream) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if len(testkit.ReadAll(t, brokers, prefix).Check(s)) == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startEngine runs an engine until the returned stop is called; stop waits
// for a graceful shutdown and fails the test on a Run error.
func startEngine(t *testing.T, o Options) (stop func()) {
	t.Helper()
	_, stop = start(t, o, t.Fatalf)
	return stop
}

// start runs the engines of o until stop; stop reports a Run error or a
// shutdown slower than 60 s with fail.
func start(t *testing.T, o Options, fail func(format string, args ...any)) (*Engine, func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	eng, err := NewEngine(o, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	return eng, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				fail("engine: %v", err)
			}
		case <-time.After(60 * time.Second):
			fail("engine did not stop within 60s")
		}
	}
}

func testOptions(t *testing.T, brokers, prefix string) Options {
	o := Defaults()
	o.Brokers = brokers
	o.TopicPrefix = prefix
	o.Group = prefix + "inventory"
	o.InstanceID = "i1"
	o.StateDir = t.TempDir()
	o.Partitions = 4
	o.Replication = 1
	o.CommitInterval = 50 * time.Millisecond
	o.MaxTxnRecords = 500
	o.StateCache = 100 // small: exercise evictions
	o.MaxRecordBytes = testkit.MaxRecordBytes
	return o
}

// TestModelRandomStream feeds a random stream (thousands of SKUs, six nodes
// of which one inactive and one unconfigured, duplicate movement ids, bad
// records of every kind) and checks every SKU's final ATS, channel ATS and
// node breakdown against the independent model, versions strictly
// increasing, and dead letters equal to the bad records. It then restarts
// warm (same state dir) and cold (empty state dir: restore from the
// changelog) and checks again after more input.
func TestModelRandomStream(t *testing.T) {
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix := testkit.Prefix(t)
	o := testOptions(t, brokers, prefix)
	n := 20000
	if testing.Short() {
		n = 3000
	}
	ctx := context.Background()
	if _, err := CreateTopics(ctx, o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	testkit.SeedCatalog(t, cl, prefix)
	s := testkit.NewStream(1, 3000, prefix)

	check := func(phase string) {
		t.Helper()
		testkit.WaitCaughtUp(t, cl, o.Group, prefix, 120*time.Second)
		out := testkit.ReadAll(t, brokers, prefix)
		for _, d := range out.Check(s) {
			t.Errorf("%s: %s", phase, d)
		}
		t.Logf("%s: %d SKUs, %d ATS updates, %d dead letters", phase, len(out.Last), out.Updates, len(out.DeadLetters))
		for v, h := range out.Headers {
			if len(v) > testkit.MaxRecordBytes && h["invroute.stage"] != "size" {
				t.Errorf("%s: oversized record dead-lettered at stage %q, want size", phase, h["invroute.stage"])
			}
			for _, k := range []string{"invroute.error", "invroute.stage", "invroute.source.topic", "invroute.source.partition", "invroute.source.offset"} {
				if h[k] == "" {
					t.Errorf("%s: dead letter %q lacks header %s", phase, v, k)
				}
			}
		}
	}

	stop := startEngine(t, o)
	s.Produce(t, cl, n)
	check("first run")
	stop()

	// Warm restart: same state dir, restore from the local checkpoint. A
	// channel changes mid-stream; its re-emit spans many transactions.
	o.ReemitBatch = 50
	stop = startEngine(t, o)
	s.Produce(t, cl, n/8)
	s.Model.SetChannel(t, cl, prefix, schemas.Channel{ChannelID: "market",
		NodeTypes: []schemas.NodeType{schemas.Warehouse, schemas.ThreePL, schemas.Store}, BufferUnits: 2, BufferPercent: 25})
	s.Produce(t, cl, n/8)
	waitReemitted(t, brokers, prefix, s)
	check("warm restart")
	stop()

	// Cold restore: a new machine with an empty disk. While no engine runs,
	// the 3PL closes: its SKUs must stop selling as soon as the engine is back.
	s.Model.SetNode(t, cl, prefix, schemas.Node{NodeID: "T1", Type: schemas.ThreePL, Country: "NL", Active: false, SafetyStock: 1})
	o.StateDir = t.TempDir()
	stop = startEngine(t, o)
	s.Produce(t, cl, n/4)
	waitReemitted(t, brokers, prefix, s)
	check("cold restore")
	stop()
}

// TestRebalance moves partitions between instances mid-stream: a second
// instance joins, then the first leaves, then a third joins on an empty
// disk; each move restores the partition's store from its changelog. The
// result must equal the model.
func TestRebalance(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	o := testOptions(t, brokers, prefix)
	o.SessionTimeout = 6 * time.Second
	if _, err := CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	testkit.SeedCatalog(t, cl, prefix)
	s := testkit.NewStream(3, 1500, prefix)
	n := 6000
	if testing.Short() {
		n = 1500
	}
	instance := func(id string) Options {
		x := o
		x.InstanceID = id
		x.StateDir = t.TempDir()
		return x
	}
	stop1 := startEngine(t, instance("a"))
	s.Produce(t, cl, n)
	stop2 := startEngine(t, instance("b"))
	s.Produce(t, cl, n)
	testkit.WaitCaughtUp(t, cl, o.Group, prefix, 120*time.Second)
	stop1() // graceful: leaves the group, b takes every partition
	s.Produce(t, cl, n)
	stop3 := startEngine(t, instance("c"))
	s.Produce(t, cl, n)
	testkit.WaitCaughtUp(t, cl, o.Group, prefix, 120*time.Second)
	out := testkit.ReadAll(t, brokers, prefix)
	for _, d := range out.Check(s) {
		t.Error(d)
	}
	stop2()
	stop3()
}

package testkit_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHostileKinds: each kind's record meets the outcome it declares at
// the stage it declares, by the engine's own decoder and validation
// (without Kafka): decode refuses the decode kinds, Validate or the clock
// check the validate kinds, and the accepted kinds pass both.
func TestHostileKinds(t *testing.T) {
	h := testkit.NewHostile(7)
	h.HugeBytes = 2 << 20
	now := time.Now().UnixMilli()
	good := &kgo.Record{Key: []byte("S00001"), Value: mustEncode(t, &schemas.StockMovement{MovementID: "m1", SKU: "S00001",
		NodeID: "W1", Type: schemas.Receipt, Qty: 1, OccurredAt: now})}
	for _, k := range testkit.HostileKinds(true) {
		for i := range 50 {
			key, value, mv := h.Movement(k, "S00001", good, now)
			var m schemas.StockMovement
			stage := ""
			switch {
			case len(key)+len(value) > 1<<20:
				stage = "size"
			case schemas.StockMovements.DecodeInput(value, &m, nil) != nil:
				stage = "decode"
			case inventory.Validate(key, &m, 0) != nil || m.OccurredAt > now+time.Hour.Milliseconds():
				stage = "validate"
			}
			if stage != k.Stage() {
				t.Fatalf("%s #%d: refused at stage %q, want %q (outcome %s)", k, i, stage, k.Stage(), k.Outcome())
			}
			if (mv != nil) != (k.Outcome() == testkit.Accepted) {
				t.Errorf("%s: movement returned = %v, outcome %s", k, mv != nil, k.Outcome())
			}
			if k == testkit.HostileUnknownNode && m.NodeID != testkit.UnknownNode {
				t.Errorf("%s: node %q", k, m.NodeID)
			}
			if k == testkit.HostileDuplicate && string(value) != string(good.Value) {
				t.Errorf("%s: not a repeat", k)
			}
		}
	}
}

func mustEncode(t *testing.T, m *schemas.StockMovement) []byte {
	b, err := schemas.StockMovements.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileStreamExpectsOnlyWhatItReturned: a producer may stop after
// any call of Next; the stream must then expect (in Bad, Kind and the
// model) only records it returned. It once drew and counted a hostile
// record one call before returning it, and TestInstanceLost, whose load
// stopped right after such a call, reported that record missing from the
// dead-letter topic.
func TestHostileStreamExpectsOnlyWhatItReturned(t *testing.T) {
	for n := 1; n <= 200; n++ {
		s := testkit.NewHostileStream(int64(n), 50, "p.", 0.3)
		returned := map[string]bool{}
		for range n {
			r := s.Next()
			returned[string(r.Value)] = true
			returned["key:"+string(r.Key)] = true
		}
		for v := range s.Bad {
			if !returned[v] {
				t.Fatalf("after %d calls: a bad record (%s) is expected in the dead-letter topic but was never returned", n, s.Kind[v])
			}
		}
		for _, sku := range s.Model.SKUs() {
			if strings.HasPrefix(sku, "UNKNOWN-SKU-") && !returned["key:"+sku] {
				t.Fatalf("after %d calls: the model has %s, never returned", n, sku)
			}
		}
	}
}

// TestHostileStream runs the inventory engine on a stream with 5% hostile
// records of every kind, two of them 3 MiB (on an input topic that accepts
// them; the engine keeps its 16 KiB test limit): every refused record must
// reach the dead-letter topic exactly once, whole, with its headers and the
// stage of its kind; unknown SKUs and unknown nodes are accepted (the node's
// stock shown, not sold); duplicates are dropped, not dead-lettered; every
// SKU's ATS equals the model; the engine never stops.
func TestHostileStream(t *testing.T) {
	brokers, real := testkit.Brokers(t)
	t.Logf("brokers %s (real Kafka: %t)", brokers, real)
	prefix := testkit.Prefix(t)
	o := app.Defaults()
	o.Brokers, o.TopicPrefix, o.Group, o.InstanceID = brokers, prefix, prefix+"inventory", "i1"
	o.StateDir, o.Partitions, o.Replication = t.TempDir(), 3, 1
	o.CommitInterval, o.MaxTxnRecords = 50*time.Millisecond, 500
	o.MaxRecordBytes = testkit.MaxRecordBytes
	o.Router = false
	ctx := context.Background()
	if _, err := app.CreateTopics(ctx, o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers, kgo.ProducerBatchMaxBytes(16<<20))
	movements := prefix + "stock-movements"
	rs, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(strconv.Itoa(16 << 20))}}, movements)
	if err == nil {
		_, err = rs.On(movements, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	testkit.SeedCatalog(t, cl, prefix)
	s := testkit.NewHostileStream(11, 500, prefix, 0.05, testkit.HostileKinds(true)...)

	eng, err := app.NewEngine(o, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	s.Produce(t, cl, 6000)
	for _, k := range testkit.HostileKinds(true) {
		if s.Sent[k] == 0 {
			t.Fatalf("the stream sent no %s record: %v", k, s.Sent)
		}
	}
	t.Logf("hostile records sent: %v", s.Sent)
	testkit.WaitCaughtUp(t, cl, o.Group, prefix, 120*time.Second)
	select {
	case err := <-done:
		t.Fatalf("the engine stopped: %v", err)
	default:
	}
	out := testkit.ReadAll(t, brokers, prefix)
	for _, d := range out.Check(s.Stream) {
		t.Error(d)
	}
	for _, d := range testkit.CheckHostileDeadLetters(out, s) {
		t.Error(d)
	}
	huge, unknownNode, unknownSKU := 0, 0, 0
	for v := range out.DeadLetters {
		if len(v) >= s.H.HugeBytes {
			huge++
		}
	}
	for sku, u := range out.Last {
		if len(sku) > 12 && sku[:12] == "UNKNOWN-SKU-" {
			unknownSKU++
		}
		for _, n := range u.Nodes {
			if n.NodeID == testkit.UnknownNode && n.Available == 0 && !n.Active {
				unknownNode++
			}
		}
	}
	if huge != s.Sent[testkit.HostileHuge] || unknownSKU != s.Sent[testkit.HostileUnknownSKU] || unknownNode == 0 {
		t.Errorf("%d whole %d-byte dead letters (sent %d), %d unknown SKUs with ATS (sent %d), %d SKUs showing stock at %s unsold",
			huge, s.H.HugeBytes, s.Sent[testkit.HostileHuge], unknownSKU, s.Sent[testkit.HostileUnknownSKU], unknownNode, testkit.UnknownNode)
	}
	t.Logf("%d SKUs, %d ATS updates, %d dead letters, %d SKUs with stock at the unknown node", len(out.Last), out.Updates, len(out.DeadLetters), unknownNode)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("engine: %v", err)
	}
}

package replay

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadMerge: Read returns every committed record of every partition
// of the topics once, in timestamp order across them (ties by topic
// order), skips aborted transactions, stops at the end as of its start,
// and pauses partitions whose queue is full (a queue of 7 records here).
func TestReadMerge(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	cl := testkit.Client(t, brokers)
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 3, 1, nil, prefix+"a", prefix+"b", prefix+"empty"); err != nil {
		t.Fatal(err)
	}
	defer func(q int) { maxQueued = q }(maxQueued)
	maxQueued = 7

	base := time.UnixMilli(1_700_000_000_000)
	var recs []*kgo.Record
	want := 0
	for i := range 600 {
		// a's records at even milliseconds, b's at every third; ties
		// between them at multiples of 6.
		recs = append(recs, &kgo.Record{Topic: prefix + "a", Key: []byte(fmt.Sprint("k", i%17)), Value: []byte(fmt.Sprint(i)),
			Timestamp: base.Add(time.Duration(2*i) * time.Millisecond)})
		if i%2 == 0 {
			recs = append(recs, &kgo.Record{Topic: prefix + "b", Key: []byte(fmt.Sprint("k", i%13)), Value: []byte(fmt.Sprint(i)),
				Timestamp: base.Add(time.Duration(3*i/2) * time.Millisecond)})
		}
	}
	want = len(recs)
	// Small batches, fetched a few at a time: the queues fill and pause.
	testkit.Produce(t, testkit.Client(t, brokers, kgo.ProducerBatchMaxBytes(512)), recs...)
	// An aborted transaction in a: never read.
	tx := testkit.Client(t, brokers, kgo.TransactionalID(prefix+"tx"))
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Topic: prefix + "a", Key: []byte("k1"), Value: []byte("aborted"), Timestamp: base}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	var got []*kgo.Record
	var topics []string
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers), kgo.FetchMaxPartitionBytes(512), kgo.FetchMaxBytes(2048)}
	err := Read(rctx, prefix, []string{"a", "b", "empty"}, opts, func(topic string, r *kgo.Record) {
		got = append(got, r)
		topics = append(topics, topic)
		if len(got) == 1 {
			// Written after the start: not read.
			testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "b", Value: []byte("late"), Timestamp: base})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != want {
		t.Fatalf("read %d records, want %d", len(got), want)
	}
	seen := map[string]bool{}
	for i, r := range got {
		if string(r.Value) == "aborted" || string(r.Value) == "late" {
			t.Fatalf("read %q", r.Value)
		}
		id := topics[i] + "/" + string(r.Value)
		if seen[id] {
			t.Fatalf("%s read twice", id)
		}
		seen[id] = true
		if i == 0 {
			continue
		}
		p, c := got[i-1].Timestamp, r.Timestamp
		if c.Before(p) || (c.Equal(p) && topics[i-1] == "b" && topics[i] == "a") {
			t.Fatalf("record %d (%s %s at %v) after %s %s at %v", i, topics[i], r.Value, c, topics[i-1], got[i-1].Value, p)
		}
	}
	if err := Read(ctx, prefix, []string{"a", "nosuch"}, []kgo.Opt{kgo.SeedBrokers(brokers)}, func(string, *kgo.Record) {}); err == nil ||
		!strings.Contains(err.Error(), "topic "+prefix+"nosuch does not exist") {
		t.Errorf("a missing topic: %v", err)
	}
	// No broker: a port nothing listens on; the wait is bounded.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	defer func(d time.Duration) { PingTimeout = d }(PingTimeout)
	PingTimeout = time.Second
	t0 := time.Now()
	if err := Read(ctx, prefix, []string{"a"}, []kgo.Opt{kgo.SeedBrokers(dead)}, func(string, *kgo.Record) {}); err == nil ||
		!strings.Contains(err.Error(), "no broker answered within 1s") {
		t.Errorf("broker down: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("broker down: gave up after %v", d)
	}
}

// TestReadOnlyAbortedBelowEnd: a partition whose only records below the
// end (its last stable offset) are aborted is finished from the fetch
// progress, not when the context runs out: read_committed never delivers
// the aborted record, and no record at end-1 ever arrives.
func TestReadOnlyAbortedBelowEnd(t *testing.T) {
	brokers, _ := testkit.Brokers(t)
	prefix := testkit.Prefix(t)
	cl := testkit.Client(t, brokers)
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, prefix+"t", prefix+"t2"); err != nil {
		t.Fatal(err)
	}
	txA := testkit.Client(t, brokers, kgo.TransactionalID(prefix+"a"))
	txB := testkit.Client(t, brokers, kgo.TransactionalID(prefix+"b"))
	produce := func(tx *kgo.Client, v string) {
		t.Helper()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Topic: prefix + "t", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(txA, "aborted") // offset 0
	produce(txB, "open")    // offset 1: the last stable offset stays 1
	if err := txA.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err) // the abort marker at offset 2
	}
	defer txB.EndTransaction(ctx, kgo.TryAbort)
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, prefix+"t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup(prefix+"t", 0); o.Offset != 1 {
		t.Fatalf("last stable offset %d, want 1", o.Offset)
	}

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t0 := time.Now()
	var got []string
	err = Read(rctx, prefix, []string{"t"}, []kgo.Opt{kgo.SeedBrokers(brokers)}, func(_ string, r *kgo.Record) {
		got = append(got, string(r.Value))
	})
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Read returned after %v", d)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 0 {
		t.Fatalf("read %q", got)
	}

	// The probe itself: a committed record not yet delivered keeps a
	// partition open; once delivered, the partition is done.
	testkit.Produce(t, cl, &kgo.Record{Topic: prefix + "t2", Value: []byte("committed")})
	ka := kadm.NewClient(cl)
	for _, c := range []struct {
		next int64
		want bool
	}{{0, false}, {1, true}} {
		done, err := probe(ctx, cl, ka, kgo.DefaultDecompressor(), prefix+"t2", &part{p: 0, end: 1, next: c.next})
		if err != nil || done != c.want {
			t.Errorf("probe from %d: %v, %v; want %v", c.next, done, err, c.want)
		}
	}
}

package topology

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRestoreWaitsForPreviousOwnersTransaction: a changelog transaction left
// open by a previous owner whose txn_timeout is longer than this
// instance's (a rolling change of it) is waited for, and what it commits is
// restored. Found by review: the restore waited only this instance's
// txn_timeout plus 5 s, then read to the last stable offset, and missed
// what the transaction committed afterwards.
func TestRestoreWaitsForPreviousOwnersTransaction(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	prev, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("previous-owner"), kgo.TransactionTimeout(time.Minute),
		kgo.DefaultProduceTopic("st-changelog"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prev.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(prev).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "st-changelog"); err != nil {
		t.Fatal(err)
	}
	if err := prev.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prev.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v"), Partition: 0}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology(), func(cfg *Config) { cfg.TxnTimeout = time.Second })
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, 30*time.Second, "restoring", func() bool { return eng.Status().Assigning })
	time.Sleep(8 * time.Second) // past the old bound: txn_timeout + 5 s from the restore's start
	if n := eng.owned.Load(); n != 0 {
		t.Fatalf("partition owned (restored) while the previous owner's transaction was open: %d", n)
	}
	if err := prev.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "owned", func() bool { return eng.owned.Load() == 1 })
	var got []byte
	var found bool
	if err := eng.Query(ctx, 0, func(s map[string]*state.Store) error {
		var err error
		got, found, err = s["st"].Get([]byte("k"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !found || string(got) != "v" {
		t.Errorf("the previous owner's committed write: %q found %v", got, found)
	}
}

func TestChangelogWait(t *testing.T) {
	for _, c := range []struct{ txn, want time.Duration }{
		{time.Second, 70 * time.Second}, {10 * time.Second, 70 * time.Second}, {5 * time.Minute, 5*time.Minute + 10*time.Second},
	} {
		if got := changelogWait(c.txn); got != c.want {
			t.Errorf("txn_timeout %v: %v, want %v", c.txn, got, c.want)
		}
	}
}

// interleaved writes, on topic t of a fresh cluster, an aborted record at
// offset 0 and a record of a transaction left open at offset 1 (the abort
// marker follows at 2): the last stable offset is 1, and read_committed
// never delivers a record at offset 0. It returns the open transaction's
// client and an engine whose admin client is set (not run).
func interleaved(t *testing.T) (*Engine, *kgo.Client) {
	t.Helper()
	c := newCluster(t)
	brokers := c.ListenAddrs()
	txn := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("t"),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	a, b := txn("a"), txn("b")
	ctx := context.Background()
	if _, err := kadm.NewClient(a).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*kgo.Client{a, b} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x"), Partition: 0}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(Config{Brokers: brokers, InstanceID: "x", StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, echoTopology())
	if err != nil {
		t.Fatal(err)
	}
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	eng.adm = kadm.NewClient(adm)
	return eng, b
}

// TestStableEndPastItsWait: past its wait for an open transaction, a
// restore reads to the last stable offset, counted
// (invroute_restores_short_total) and logged when the store would miss what
// the transaction commits (a changelog's owner), not for a reader that
// tails it (a global table, a standby). A review of the first form, which
// failed the session instead, found that a stray transaction then stopped
// every partition of the instance, re-initialising for ever.
func TestStableEndPastItsWait(t *testing.T) {
	eng, _ := interleaved(t)
	ctx := context.Background()
	for _, missed := range []bool{false, true} {
		if start, end, err := eng.stableEnd(ctx, "t", 0, 200*time.Millisecond, missed); err != nil || start != 0 || end != 1 {
			t.Errorf("missed %v: %d..%d %v, want 0..1 (the last stable offset)", missed, start, end, err)
		}
	}
	if n := testutil.ToFloat64(eng.m.restoreShort); n != 1 {
		t.Errorf("restores short %v, want 1 (the changelog's)", n)
	}
}

// TestReplayEndsPastAnAbortedTail: a replay to an end whose record below
// it is an aborted transaction's (its marker lies past the end) ends once
// a record at or past the end shows. Found by review: records past the end
// were skipped before the position moved, and the replay waited for ever.
func TestReplayEndsPastAnAbortedTail(t *testing.T) {
	eng, open := interleaved(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := eng.replay(ctx, "t", 0, 0, 1, func(*kgo.Record) error { return errors.New("no record is below the end") })
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if err := open.EndTransaction(context.Background(), kgo.TryCommit); err != nil { // records past the end now show
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("replay: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the replay did not end after records past its end showed")
	}
}

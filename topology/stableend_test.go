package topology

import (
	"context"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
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

package topology

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactionPartitionsMetric: invroute_transaction_partitions counts,
// per committed transaction, the partitions that had work. Two records wait
// in two partitions before the engine starts, so its first poll takes both:
// every committed transaction is counted, and the partitions add up to two
// (one transaction of two, or, if the fetch split them, two of one).
func TestTransactionPartitionsMetric(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, -1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Partition: p, Key: []byte{'k', '0' + byte(p)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	eng, stop := runEngine(t, c.ListenAddrs(), t.TempDir(), echoTopology(), func(cfg *Config) { cfg.Partitions = 2 })
	out := outClient(t, c.ListenAddrs())
	defer out.Close()
	seen := map[string]bool{}
	pollCtx, pollCancel := context.WithTimeout(ctx, 30*time.Second)
	defer pollCancel()
	for !seen["k0"] || !seen["k1"] {
		fs := out.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			t.Fatalf("outputs seen: %v, want k0 and k1", seen)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)] = true })
	}
	time.Sleep(200 * time.Millisecond) // the last commit's metrics are recorded after its apply
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var m dto.Metric
	if err := eng.m.txnPartitions.Write(&m); err != nil {
		t.Fatal(err)
	}
	count, sum := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	if committed := testutil.ToFloat64(eng.m.committed); float64(count) != committed {
		t.Errorf("%d transactions observed, %v committed", count, committed)
	}
	if sum != 2 {
		t.Errorf("partitions with work summed over the transactions: %v, want 2 (%d transactions)", sum, count)
	}
	t.Logf("%d committed transaction(s) for the two partitions", count)
}

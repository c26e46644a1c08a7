package topology

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTransactionPartitionsMetric: invroute_transaction_partitions counts,
// per committed transaction, the partitions that had work. A partition's
// first transaction after its assignment has work of its own (it records
// the global tables' positions in its store), so the test waits for those
// (two partitions in all) before it sends one record to each partition:
// then every committed transaction is counted, and the partitions add up to
// two more (one transaction of two, or, if the fetch split them, two of
// one). It once sent the records first and counted on the first transaction
// taking them; on a loaded machine that transaction's poll ended before the
// fetch came back, and the records made a second transaction of two. Every
// fetch is answered 60 ms late here (the commit interval is 20 ms), which
// made the old form fail every time.
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
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { time.Sleep(60 * time.Millisecond) })
		return nil, nil, false
	})
	eng, stop := runEngine(t, c.ListenAddrs(), t.TempDir(), echoTopology(), func(cfg *Config) { cfg.Partitions = 2 })
	hist := func() (count uint64, sum float64) {
		var m dto.Metric
		if err := eng.m.txnPartitions.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	waitUntil(t, 30*time.Second, "the partitions' first transactions (recording the global positions) committed", func() bool {
		_, sum := hist()
		return sum >= 2
	})
	count0, sum0 := hist()
	committed0 := testutil.ToFloat64(eng.m.committed)
	if sum0 != 2 {
		t.Fatalf("the first transactions had %v partitions with work, want 2", sum0)
	}
	for p := range int32(2) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Partition: p, Key: []byte{'k', '0' + byte(p)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
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
	count, sum := hist()
	count, sum = count-count0, sum-sum0
	if committed := testutil.ToFloat64(eng.m.committed) - committed0; float64(count) != committed {
		t.Errorf("%d transactions observed, %v committed", count, committed)
	}
	if sum != 2 {
		t.Errorf("partitions with work summed over the transactions: %v, want 2 (%d transactions)", sum, count)
	}
	t.Logf("%d committed transaction(s) for the two partitions", count)
}

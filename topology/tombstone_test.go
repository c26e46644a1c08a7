package topology

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A store that comes back to its partition after others wrote to the
// changelog: if the records it must replay are older than half of the
// changelog's delete.retention.ms (Kafka's default, 24 h, here), the log
// cleaner may have removed tombstones among them, and a replay would bring
// deleted keys back. It restores from the beginning instead. Recent
// records are replayed from the checkpoint, as always, and a store with
// nothing to replay (a quiet partition: only the last commit marker follows
// its checkpoint) is never wiped, however old. (kfake does not
// compact: both runs end with the same contents; what differs is how many
// records each restore replays. The second engine's clock is moved on to
// make the records old.)
func TestStaleCheckpointRestoresFromStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		later    time.Duration // how much later the store comes back
		quiet    bool          // nobody wrote while it was away
		recent   bool          // what others wrote is stamped a minute before the store comes back
		restored float64       // records the restore replays (-1: all, at least 7)
	}{
		{"a minute later", time.Minute, false, false, 2},
		{"13 hours later", 13 * time.Hour, false, false, -1},
		{"13 hours later, nothing written", 13 * time.Hour, true, false, 0},
		// As if compaction had removed what was written early in the
		// absence: the store's own SyncedAt tells its age.
		{"13 hours later, what was written recent", 13 * time.Hour, false, true, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := newKfake(t)
			dir := t.TempDir()
			fillAndStop(t, brokers, dir, echoTopology())
			cl := outClient(t, brokers)
			defer cl.Close()
			// Another owner deleted k1 and wrote k9 while this store was away.
			later := time.Now().Add(tc.later)
			for _, r := range map[bool][]*kgo.Record{true: nil, false: {{Topic: "st-changelog", Key: []byte("k1")}, {Topic: "st-changelog", Key: []byte("k9"), Value: []byte("v")}}}[tc.quiet] {
				if tc.recent {
					r.Timestamp = later.Add(-time.Minute)
				}
				if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			eng, stop := runEngine(t, brokers, dir, echoTopology(), func(c *Config) {
				c.clock = func() time.Time { return later }
			})
			defer stop()
			waitOwned(eng, 1)
			got := storeHas(t, eng, "k0", "k1", "k4", "k9")
			if want := !tc.quiet; !got["k0"] || got["k1"] == want || !got["k4"] || got["k9"] != want {
				t.Errorf("store holds %v, want k0 and k4, and k9 instead of k1 unless nothing was written", got)
			}
			restored := testutil.ToFloat64(eng.m.restored)
			if tc.restored < 0 && restored < 7 || tc.restored >= 0 && restored != tc.restored {
				t.Errorf("%v changelog records replayed, want %v (-1: all, at least 7)", restored, tc.restored)
			}
		})
	}
}

// TestStaleCheckpointJudgedByOffsets: a store away longer than half the
// retention, after whose checkpoint the changelog holds offsets but no
// record a read_committed replay delivers (here an aborted transaction;
// in Kafka also records the cleaner removed, tombstones among them), is
// stale: restored from the beginning. Found by review: it was judged by the
// records a replay found, and with none taken for quiet, so the deletions
// the cleaner had removed were missed.
func TestStaleCheckpointJudgedByOffsets(t *testing.T) {
	brokers := newKfake(t)
	dir := t.TempDir()
	fillAndStop(t, brokers, dir, echoTopology())
	abortedDelete(t, brokers)
	later := time.Now().Add(13 * time.Hour)
	eng, stop := runEngine(t, brokers, dir, echoTopology(), func(c *Config) {
		c.clock = func() time.Time { return later }
	})
	defer stop()
	waitOwned(eng, 1)
	if restored := testutil.ToFloat64(eng.m.restored); restored < 5 {
		t.Errorf("%v changelog records replayed, want all (at least 5): restored from the beginning", restored)
	}
	if got := storeHas(t, eng, "k0", "k1", "k4"); !got["k0"] || !got["k1"] || !got["k4"] {
		t.Errorf("store holds %v, want k0, k1 and k4 (the delete was aborted)", got)
	}
}

// TestRestorePassesAnAbortedTail: a restore that ends after an aborted
// transaction moves its checkpoint past it, so a store that stays away
// long afterwards, with nothing written since, is quiet by its offsets:
// replayed from its checkpoint, not from the beginning.
func TestRestorePassesAnAbortedTail(t *testing.T) {
	brokers := newKfake(t)
	dir := t.TempDir()
	// With a global table, an engine's first transaction writes nothing to
	// the changelog (its positions are loaded): without one it would
	// record them there, and that commit would move the checkpoint on by
	// itself (a review found the test passing without the fix).
	topo := func() *Topology {
		return echoTopology(Global{Topic: "glob", Apply: func(k, v []byte) error { return nil }})
	}
	fillAndStop(t, brokers, dir, topo())
	abortedDelete(t, brokers)
	eng, stop := runEngine(t, brokers, dir, topo()) // restores past the aborted transaction
	waitOwned(eng, 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(13 * time.Hour)
	eng, stop = runEngine(t, brokers, dir, topo(), func(c *Config) {
		c.clock = func() time.Time { return later }
	})
	defer stop()
	waitOwned(eng, 1)
	if restored := testutil.ToFloat64(eng.m.restored); restored != 0 {
		t.Errorf("%v changelog records replayed, want 0: nothing was written after the last restore", restored)
	}
}

// fillAndStop runs topo with its state in dir until it has processed the
// inputs k0 to k4, then stops it.
func fillAndStop(t *testing.T, brokers []string, dir string, topo *Topology) {
	t.Helper()
	_, stop := runEngine(t, brokers, dir, topo)
	cl := outClient(t, brokers)
	defer cl.Close()
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte(k), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, cl, k)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// abortedDelete appends another owner's deletion of k1 to st-changelog,
// in a transaction it aborts: offsets that a read_committed replay
// delivers no record of.
func abortedDelete(t *testing.T, brokers []string) {
	t.Helper()
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("other-owner"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	ctx := context.Background()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "st-changelog", Key: []byte("k1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}

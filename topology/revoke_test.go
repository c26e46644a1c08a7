package topology

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSecondRevocationNotMissed: two members join, one after the other,
// while the engine waits in one long idle transaction, so that two
// rebalances each take partitions from it between two ends of a
// transaction. franz-go's GroupTransactSession calls the engine's revoke
// callback for the first only (syncBalancer). The engine must still end
// up with tasks for exactly the partitions the group gives it, and must
// not write (on a global table's change) to a partition it gave up. With
// two inputs (range, eager: each assignment is the whole one) and with
// one (cooperative-sticky: assignments and revocations are differences).
// Found by review; before the fix, both kept a task for a third partition
// and wrote its changelog.
func TestSecondRevocationNotMissed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inputs   []string
		balancer kgo.GroupBalancer
	}{
		{"eager", []string{"a", "b"}, kgo.RangeBalancer()},
		{"cooperative", []string{"a"}, kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) { secondRevocation(t, tc.inputs, tc.balancer) })
	}
}

func secondRevocation(t *testing.T, inputs []string, balancer kgo.GroupBalancer) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	const parts = 6
	const interval = 6 * time.Second
	topo := &Topology{Group: "g", Stores: []Store{{Name: "st", Changelog: "st-changelog"}},
		Outputs: []Output{{Topic: "out", CoPartitioned: true}}, DeadLetter: "dlq",
		Globals: []Global{{Topic: "glob", Apply: func(k, v []byte) error { return nil }}},
		NewTask: func(tc TaskContext) (Task, error) { return &echoTask{st: tc.Stores["st"]}, nil }}
	for _, in := range inputs {
		topo.Inputs = append(topo.Inputs, Input{Topic: Topic(in)})
	}
	eng, err := NewEngine(Config{Brokers: brokers, InstanceID: "a", StateDir: t.TempDir(), Partitions: parts,
		CommitInterval: interval, TxnTimeout: 20 * time.Second, // a long idle transaction: both rebalances fall in one
		ClientOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil))}, topo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if !waitOwned(eng, parts) {
		t.Fatal("the engine did not take its partitions")
	}
	// member joins the group as a plain consumer and returns once it has
	// partitions (the rebalance is over).
	member := func(name string) *kgo.Client {
		got := make(chan struct{}, 10)
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID(name), kgo.ConsumerGroup("g"),
			kgo.ConsumeTopics(inputs...), kgo.Balancers(balancer), kgo.HeartbeatInterval(100*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				if len(m) > 0 {
					got <- struct{}{}
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		go func() {
			for cl.PollFetches(ctx).Err0() != kgo.ErrClientClosed && ctx.Err() == nil {
			}
		}()
		select {
		case <-got:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s got no assignment", name)
		}
		return cl
	}
	time.Sleep(300 * time.Millisecond) // into the engine's next (idle) transaction
	b := member("b")
	member("c")

	adm := kadm.NewClient(b)
	var mine []int32
	waitUntil(t, 20*time.Second, "the group stable with 3 members", func() bool {
		gs, err := adm.DescribeGroups(context.Background(), "g")
		if err != nil {
			return false
		}
		g := gs["g"]
		if g.State != "Stable" || len(g.Members) != 3 {
			return false
		}
		mine = nil
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok && m.ClientID != "b" && m.ClientID != "c" {
				for _, tp := range a.Topics {
					if tp.Topic == inputs[0] {
						mine = append(mine, tp.Partitions...)
					}
				}
			}
		}
		return true
	})
	slices.Sort(mine)
	waitUntil(t, 3*interval, "the engine's tasks to be the group's assignment", func() bool {
		return int(eng.owned.Load()) == len(mine)
	})
	// What the changelogs hold from now on: the engine's first transaction
	// may have committed its tasks' global positions on every partition
	// before the members joined.
	ends, err := adm.ListEndOffsets(context.Background(), "st-changelog")
	if err != nil {
		t.Fatal(err)
	}

	// A global change: every task the engine has writes its changelog (its
	// first flush records the table's position), so a task kept for a
	// partition it gave up would write there.
	pr, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.ProduceSync(context.Background(), &kgo.Record{Topic: "glob", Key: []byte("n1"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * interval)
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("st-changelog"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	written := map[int32]int{}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	for rctx.Err() == nil {
		rd.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			if o, ok := ends.Lookup(r.Topic, r.Partition); !ok || r.Offset >= o.Offset {
				written[r.Partition]++
			}
		})
	}
	for p := range int32(parts) {
		if !slices.Contains(mine, p) && written[p] > 0 {
			t.Errorf("the changelog of partition %d, not the engine's (%v), has %d committed records from it", p, mine, written[p])
		}
	}
}

// TestLostSessionRecovers: a group session that dies (a heartbeat answered
// UNKNOWN_MEMBER_ID) makes franz-go call the lost callback and then the
// group-error hook (lostHook), which empties the engine's record of its
// assignment until the next sync: the engine then owns and processes its
// partition again, as before the hook.
func TestLostSessionRecovers(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	eng := runOwned(t, brokers, echoTopology(), func(cfg *Config) {
		cfg.ClientOpts = append(cfg.ClientOpts, kgo.HeartbeatInterval(100*time.Millisecond))
	})
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k1"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k1")
	var lost atomic.Bool
	c.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		lost.Store(true) // once: kfake drops a control once it answers
		req := kreq.(*kmsg.HeartbeatRequest)
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	waitUntil(t, 10*time.Second, "the session lost", lost.Load)
	if !waitOwned(eng, 1) {
		t.Fatal("the partition not owned again after the loss")
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k2"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k2")
}

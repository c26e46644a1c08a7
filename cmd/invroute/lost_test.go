package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/twmb/franz-go/pkg/kgo"
)

var lostPlan = chaosPlan{name: "lost", warm: 8 * time.Second, settle: 6 * time.Second,
	movementsPerS: 1500, ordersPerS: 15, insts: "1 instance, then its replacement", test: "TestInstanceLost"}

// TestInstanceLost: an instance killed for good (its machine gone), in the
// middle of a transaction. Unlike TestChaos's kills, nothing restarts with
// its transactional id to abort what it left open, so only the broker does,
// txn_timeout after the transaction began (plus up to its abort scan, 10 s
// by default). Until then that transaction holds up the readers of every
// partition it wrote and the restore of the changelogs it wrote, which waits
// for it to resolve (stableEnd: it might be committing). One instance runs
// under the mixed load; the test kills it the moment a read_uncommitted
// reader sees it write ATS updates (it is then flushing: the changelog
// comes next and the commit after), starts a replacement with another id,
// and checks the same exactly-once model as TestChaos after the drain. It
// reports whether the kill left a transaction open, how long until every
// partition committed again, and the longest ATS pause. Side by side:
// INVROUTE_LOST_TXN_TIMEOUT=30s (the default before) against the default.
func TestInstanceLost(t *testing.T) {
	c := newProcessRun(t, lostPlan)
	txnTimeout := app.Defaults().TxnTimeout.String() + " (the default)"
	if v := os.Getenv("INVROUTE_LOST_TXN_TIMEOUT"); v != "" {
		c.args = append(c.args, "-txn-timeout", v)
		txnTimeout = v
	}
	stopLoad, follow := c.begin()
	defer c.gaps.stop()
	c.startInst(0)
	c.logf("instance %s started", c.insts[0].id)
	time.Sleep(c.plan.warm)
	c.waitCommittedEverywhere(time.Minute) // on a loaded machine the warm-up may not be enough

	before := c.committed()
	at := c.killWhenFlushing(0)
	c.count("kills")
	open := "none"
	if o, err := c.openTransactions(); err != nil {
		open = err.Error()
	} else if len(o) > 0 {
		open = strings.Join(o, ", ")
	}
	c.logf("SIGKILL %s while it flushed; open transactions right after: %s", c.insts[0].id, open)
	c.startInst(1)
	c.logf("replacement %s started", c.insts[1].id)
	c.measureRecovery(1, at, before)
	time.Sleep(c.plan.settle)
	c.gaps.window("instance lost", at, time.Now())

	stopLoad()
	c.drain(follow, 1)
	fmt.Printf("\ninstance lost for good (txn_timeout %s, session_timeout %s): open transactions after the kill: %s\n",
		txnTimeout, chaosSession, open)
	c.report()
}

// killWhenFlushing SIGKILLs instance i as soon as a read_uncommitted reader
// of the ATS topic sees a record written after the call (the instance is
// then in a transaction's flush), and returns when.
func (c *chaos) killWhenFlushing(i int) time.Time {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.brokers, ",")...), kgo.ConsumeTopics(c.prefix+"ats"),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if fs := cl.PollFetches(ctx); fs.NumRecords() > 0 {
			at := time.Now()
			c.killInst(i)
			return at
		}
	}
	c.t.Fatalf("no ATS update within 30 s")
	return time.Time{}
}

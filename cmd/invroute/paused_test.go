package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

var pausedPlan = chaosPlan{name: "paused", warm: 8 * time.Second, settle: 12 * time.Second,
	movementsPerS: 1500, ordersPerS: 15, insts: "2 instances", test: "TestInstancePaused"}

// TestInstancePaused: one of two instances stops running (SIGSTOP: a frozen
// VM, say) for longer than the session timeout, so the group gives its
// partitions to the other, and then runs again. The transaction it had open
// must not go on as if nothing happened: its output would go, in an open
// transaction, to partitions the other instance now owns, and franz-go's
// End would wait up to the session timeout for a heartbeat the rebalance
// holds back, blocking the read_committed readers of those partitions all
// that time. The engine notices the stall (topology's stallWatch) and
// aborts instead. The test checks that the woken instance noticed, then the
// exactly-once model of TestChaos after the drain, and reports the longest
// ATS pause while paused and after the resume, and whether the woken
// instance still had to re-initialise after a commit with an unknown
// outcome (the pause landed inside End, where an abort is too late).
// INVROUTE_TEST_BIN runs it on another build, for the figures side by side.
func TestInstancePaused(t *testing.T) {
	c := newProcessRun(t, pausedPlan)
	stopLoad, follow := c.begin()
	defer c.gaps.stop()
	c.startInst(0)
	c.startInst(1)
	c.logf("instances %s and %s started", c.insts[0].id, c.insts[1].id)
	time.Sleep(c.plan.warm)

	p := c.insts[0].p
	pause := chaosSession + 3*time.Second
	at := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGSTOP)
	c.logf("SIGSTOP %s for %v", c.insts[0].id, pause)
	time.Sleep(pause)
	logAtResume := len(p.log.String())
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	cont := time.Now()
	c.count("pauses past session timeout")
	c.logf("SIGCONT %s", c.insts[0].id)
	time.Sleep(c.plan.settle)
	c.gaps.window("while paused", at, cont)
	c.gaps.window("after the resume", cont, time.Now())

	after := p.log.String()[logAtResume:]
	if !strings.Contains(after, "process stalled") {
		c.violate("the paused instance did not notice its stall of %v", pause)
	}
	unknown := strings.Contains(after, "commit outcome unknown")
	c.logf("after the resume: stall noticed %v, commit outcome unknown %v",
		strings.Contains(after, "process stalled"), unknown)

	stopLoad()
	c.stopInst(1)
	c.drain(follow, 0)
	fmt.Printf("\ninstance paused for %v (session_timeout %s): re-initialised after a commit of unknown outcome: %v\n",
		pause, chaosSession, unknown)
	c.report()
}

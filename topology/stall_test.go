package topology

import (
	"context"
	"testing"
	"time"
)

// TestStallWatch: a gap between ticks of the limit or more is a stall,
// seen by since both before the ticker records it (the goroutine asking
// may run first after the process resumes) and after; a shorter gap is
// not.
func TestStallWatch(t *testing.T) {
	var gaps []time.Duration
	w := newStallWatch(time.Second, func(gap time.Duration) { gaps = append(gaps, gap) })
	back := func(d time.Duration) { w.last.Store(int64(time.Since(w.base) - d)) } // the last tick d ago

	m := w.mark()
	w.tick()
	back(900 * time.Millisecond) // busy, not stalled
	if w.since(m) {
		t.Fatal("a gap under the limit counted as a stall")
	}
	w.tick()
	if len(gaps) != 0 || w.since(m) {
		t.Fatalf("a gap under the limit recorded as a stall: %v", gaps)
	}

	back(2 * time.Second) // the process was stopped for 2 s
	if !w.since(m) {
		t.Fatal("a stall the ticker has not recorded yet not seen")
	}
	w.tick() // the ticker's own tick, late
	if len(gaps) != 1 || gaps[0] < 2*time.Second {
		t.Fatalf("stall recorded as %v, want one gap of at least 2s", gaps)
	}
	if !w.since(m) {
		t.Fatal("a recorded stall not seen by a transaction begun before it")
	}
	if m2 := w.mark(); w.since(m2) {
		t.Fatal("a stall seen by a transaction begun after it")
	}

	// End's context: cancelled by a stall during End, not by one before.
	ctx, cancel := context.WithCancel(context.Background())
	stop := w.cancelOnStall(cancel)
	w.tick()
	if ctx.Err() != nil {
		t.Fatal("End cancelled without a stall")
	}
	back(2 * time.Second)
	w.tick()
	if ctx.Err() == nil {
		t.Fatal("a stall during End did not end its wait")
	}
	stop()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	back(2 * time.Second)
	w.since(w.mark()) // recorded before End
	defer w.cancelOnStall(cancel)()
	w.tick()
	if ctx.Err() != nil {
		t.Fatal("a stall recorded before End cancelled it")
	}
	if len(gaps) != 3 {
		t.Fatalf("%d stalls recorded, want 3", len(gaps))
	}
	if got := stallLimit(10 * time.Second); got != 5*time.Second {
		t.Fatalf("stallLimit(10s) = %v", got)
	}
	if got := stallLimit(time.Second); got != time.Second {
		t.Fatalf("stallLimit(1s) = %v, want the 1 s floor", got)
	}
}

// TestStallWatchRuns: the goroutine ticks, so an engine that only waits is
// never taken for stalled, nor one created long before it started.
func TestStallWatchRuns(t *testing.T) {
	w := newStallWatch(time.Second, nil)
	done := make(chan struct{})
	time.Sleep(1500 * time.Millisecond) // created long before it starts
	w.start(done)
	defer close(done)
	m := w.mark()
	time.Sleep(3 * time.Second) // without ticks, a stall after 1 s
	if w.since(m) {
		t.Fatal("a running process taken for stalled")
	}
}

package topology

import (
	"context"
	"sync/atomic"
	"time"
)

// stallWatch notices when the whole process stopped running for a while: a
// SIGSTOP, a frozen or migrated VM, heavy swapping. A goroutine ticks every
// stallTick; a tick that comes limit or more after the one before is a
// stall. A process that is only busy still ticks (the scheduler preempts),
// so a long transaction is not a stall.
//
// After a stall of about the session timeout the group has most likely
// evicted this member and given its partitions to others. A transaction
// that spans such a stall must not produce and end as usual: its records
// would go, in an open transaction, to partitions others now own, and
// franz-go's End then waits (up to End's context, the session timeout) for
// a heartbeat that the rebalance holds back, so for that long the stale
// transaction blocks every read_committed reader and restore of those
// partitions. The engine aborts it instead (transaction, end): an abort
// needs no heartbeat and costs at most one commit interval of work, redone.
// A stall that comes during End itself ends End's wait at once
// (cancelOnStall): the commit's outcome is then unknown and the engine
// re-initialises, as it would after End's timeout, only sooner.
type stallWatch struct {
	base    time.Time
	limit   time.Duration
	last    atomic.Int64  // nanoseconds since base of the last tick
	stalls  atomic.Uint64 // stalls seen
	onStall func(gap time.Duration)
	cancel  atomic.Pointer[context.CancelFunc] // called on a stall (cancelOnStall)
}

const stallTick = 100 * time.Millisecond

func newStallWatch(limit time.Duration, onStall func(gap time.Duration)) *stallWatch {
	return &stallWatch{base: time.Now(), limit: limit, onStall: onStall}
}

// start ticks, on a goroutine, until done is closed. The time before it
// (an engine created long before it runs) is no stall.
func (w *stallWatch) start(done <-chan struct{}) {
	w.last.Store(int64(time.Since(w.base)))
	go w.run(done)
}

func (w *stallWatch) run(done <-chan struct{}) {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			w.tick()
		}
	}
}

// tick records a tick now, and a stall if the one before was limit or more
// ago.
func (w *stallWatch) tick() {
	now := int64(time.Since(w.base))
	if gap := time.Duration(now - w.last.Swap(now)); gap >= w.limit {
		w.stalls.Add(1)
		if f := w.cancel.Load(); f != nil {
			(*f)()
		}
		if w.onStall != nil {
			w.onStall(gap)
		}
	}
}

// cancelOnStall has the next stall recorded call cancel, until the
// returned function is called. A stall already recorded does not.
func (w *stallWatch) cancelOnStall(cancel context.CancelFunc) (stop func()) {
	w.cancel.Store(&cancel)
	return func() { w.cancel.Store(nil) }
}

// mark returns what since takes: the stalls seen so far.
func (w *stallWatch) mark() uint64 { return w.stalls.Load() }

// since reports whether the process stalled since mark returned m. It
// ticks first, so that a stall the ticker has not recorded yet (the
// goroutine that asks may run first after the process resumes) is recorded
// now, once: of two ticks at once, only one sees the gap.
func (w *stallWatch) since(m uint64) bool {
	w.tick()
	return w.stalls.Load() != m
}

// stallLimit is the gap that counts as a stall for a session timeout: half
// of it. franz-go heartbeats every 3 s by default, so a member whose last
// heartbeat came just before a stall is evicted once the stall lasts the
// session timeout less up to 3 s; half errs on the side of an abort, which
// is cheap.
func stallLimit(session time.Duration) time.Duration { return max(session/2, time.Second) }

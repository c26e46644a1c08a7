package topology

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestTakeWhilePlacementStops: the placement goroutine (run, every
// 2 s) stops the standby of p because the group now shows p owned by this
// member, at the moment the loop takes p over: take waits for that stop,
// and the engine's open of the store finds it closed. Found by review:
// place removed the task from s.tasks under the lock and stopped it after
// unlocking; take, in between, found no task and returned at once, and the
// engine's open failed on the lock the standby still held (the session
// was then re-initialised, in the middle of a failover).
func TestTakeWhilePlacementStops(t *testing.T) {
	// A disk where closing a file takes 100 ms once armed (any slow disk):
	// it only widens the window, which exists at any speed.
	var slow atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if slow.Load() && op.Kind == errorfs.OpFileClose {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}))
	e := standbyEngine(t, Config{FS: fs, Logger: discardLogger()}, []byte("v"), 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer e.sb.stopAll()
	e.sb.place(ctx, map[int32]bool{0: true}) // a standby of partition 0
	waitUntil(t, 10*time.Second, "the standby restored", func() bool {
		e.sb.mu.Lock()
		defer e.sb.mu.Unlock()
		st := e.sb.tasks[0]
		return st != nil && st.next["st-changelog"].Load() >= 0
	})
	time.Sleep(200 * time.Millisecond) // tailing
	// The group now shows partition 0 owned here: placement stops the
	// standby, while the loop, assigned partition 0, takes it over.
	slow.Store(true)
	placed := make(chan struct{})
	go func() { defer close(placed); e.sb.place(ctx, map[int32]bool{}) }()
	for {
		e.sb.mu.Lock()
		gone := e.sb.tasks[0] == nil
		e.sb.mu.Unlock()
		if gone {
			break
		}
	}
	e.sb.take(0) // what applyEvents does before openTask
	st, err := e.openRestored(ctx, "st", 0, false)
	<-placed
	slow.Store(false)
	if err != nil {
		t.Fatalf("the engine could not open the store it was assigned after take returned: %v", err)
	}
	_ = st.Close()
}

// TestTakeWaitsForAStoppingStandby: take of a partition whose standby the
// placement is stopping returns only once that standby has stopped (its
// stores closed), not before.
func TestTakeWaitsForAStoppingStandby(t *testing.T) {
	e, err := NewEngine(Config{Brokers: []string{"127.0.0.1:1"}, InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
		Standbys: 1, Logger: discardLogger()}, echoTopology())
	if err != nil {
		t.Fatal(err)
	}
	s := e.sb
	done := make(chan struct{}) // the standby's stores closed
	s.tasks[0] = &standbyTask{p: 0, cancel: func() {}, done: done}
	placed := make(chan struct{})
	go func() { defer close(placed); s.place(context.Background(), map[int32]bool{}) }() // stops it: blocks on done
	time.Sleep(50 * time.Millisecond)
	took := make(chan struct{})
	go func() { defer close(took); s.take(0) }()
	select {
	case <-took:
		t.Fatal("take returned while the standby was still stopping")
	case <-time.After(200 * time.Millisecond):
	}
	close(done)
	for _, c := range []chan struct{}{took, placed} {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatal("take or place did not return once the standby stopped")
		}
	}
	if len(s.tasks) != 0 {
		t.Errorf("standbys left: %v", s.tasks)
	}
}

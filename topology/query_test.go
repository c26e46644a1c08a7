package topology

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestQuery: a query runs on the loop with the partition's stores and
// reads what was committed; an unowned partition is ErrNotOwner, a failing
// or panicking query returns its error, a query the loop cannot take in
// time returns the context's error, and an engine that does not run
// refuses queries. Status follows the loop.
func TestQuery(t *testing.T) {
	brokers := newKfake(t)
	eng, stop := runEngine(t, brokers, t.TempDir(), echoTopology())
	// at start: not running yet, or not restored yet, or answered
	if err := eng.Query(context.Background(), 0, func(map[string]*state.Store) error { return nil }); err != nil &&
		!errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrNotOwner) {
		t.Errorf("query at start: %v", err)
	}
	cl := outClient(t, brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cl, "k")
	read := func(p int32) (string, error) {
		var got string
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := eng.Query(ctx, p, func(stores map[string]*state.Store) error {
			v, ok, err := stores["st"].Get([]byte("k"))
			if ok {
				got = string(v)
			}
			return err
		})
		return got, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := read(0)
		if err == nil && v == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query of the committed key: %q, %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := read(3); !errors.Is(err, ErrNotOwner) {
		t.Errorf("unowned partition: %v", err)
	}
	boom := errors.New("boom")
	if err := eng.Query(context.Background(), 0, func(map[string]*state.Store) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failing query: %v", err)
	}
	if err := eng.Query(context.Background(), 0, func(map[string]*state.Store) error { panic("oops") }); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("panicking query: %v", err)
	}
	st := eng.Status()
	if st.Group != "g" || len(st.Inputs) != 1 || st.Inputs[0] != "in" || st.Owned != 1 || st.Err != nil || time.Since(st.LastRound) > 5*time.Second {
		t.Errorf("status: %+v", st)
	}
	// the loop is busy with a slow query: the next one gives up in time
	release, started := make(chan struct{}), make(chan struct{})
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		_ = eng.Query(context.Background(), 0, func(map[string]*state.Store) error { close(started); <-release; return nil })
	}()
	select { // the loop is now inside the slow query
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow query did not start within 10 s")
	}
	stalledAt := eng.Status().LastRound
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	var ran atomic.Bool
	err := eng.Query(ctx, 0, func(map[string]*state.Store) error { ran.Store(true); return nil })
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("query behind a stalled loop: %v", err)
	}
	if !eng.Status().LastRound.Equal(stalledAt) {
		t.Error("LastRound moved while the loop was stalled")
	}
	close(release)
	<-slowDone
	// A query after the slow one is answered once the loop is back; the
	// one that gave up must not have run before it (queries are served in
	// order) or after.
	if err := eng.Query(context.Background(), 0, func(map[string]*state.Store) error { return nil }); err != nil {
		t.Errorf("query after the stall: %v", err)
	}
	if ran.Load() {
		t.Error("a query ran after Query gave up")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := eng.Query(context.Background(), 0, func(map[string]*state.Store) error { return nil }); !errors.Is(err, ErrNotRunning) {
		t.Errorf("query after Run: %v", err)
	}
	if eng.Status().Err == nil {
		t.Error("status after Run: no error")
	}
}

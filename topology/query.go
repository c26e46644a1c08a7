package topology

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/state"
)

// Interactive queries: a reader outside the processing loop (the HTTP API)
// reads a partition's committed state. Stores belong to the loop's
// goroutine (state.Store is not safe for concurrent use, and its tables
// cache decoded values), so a query is queued and the loop runs it between
// two transactions: then no store has an open transaction and every read
// sees exactly what Kafka committed. A query waits at most one transaction
// (CommitInterval plus the commit), or longer while the loop restores
// partitions.

// ErrNotOwner is returned by Query for a partition this engine does not
// own (any more): the caller asks the group who does.
var ErrNotOwner = errors.New("topology: this instance does not own the partition")

// queries is the loop's queue of queries and its heartbeat.
type queries struct {
	mu   sync.Mutex
	reqs []*queryReq
	beat atomic.Int64 // unix nanoseconds of the loop's last round; 0 before the first
}

type queryReq struct {
	p    int32
	fn   func(map[string]*state.Store) error
	done chan error
	// mu is held by the loop while it runs fn and by a caller giving up,
	// so that fn never runs after Query returned.
	mu        sync.Mutex
	cancelled bool
}

// Query runs fn on the loop's goroutine between two transactions with the
// stores of partition p (by store name): fn must only read them (Get,
// Txn().Get of committed data, Iterate) and must be quick. It returns fn's
// error, ErrNotOwner if p is not owned here, the engine's Healthy error if
// it is not running, or ctx's error if the loop did not get to it in time.
func (e *Engine) Query(ctx context.Context, p int32, fn func(stores map[string]*state.Store) error) error {
	if err := e.Healthy(); err != nil {
		return err
	}
	r := &queryReq{p: p, fn: fn, done: make(chan error, 1)}
	e.queries.mu.Lock()
	e.queries.reqs = append(e.queries.reqs, r)
	e.queries.mu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		r.mu.Lock()
		r.cancelled = true
		r.mu.Unlock()
		select {
		case err := <-r.done: // it ran after all
			return err
		default:
		}
		return fmt.Errorf("topology: the processing loop did not answer the query in time: %w", ctx.Err())
	}
}

// serveQueries runs the queued queries; the loop calls it between
// transactions. It also marks the loop's round (LastRound).
func (e *Engine) serveQueries() {
	e.queries.beat.Store(time.Now().UnixNano())
	e.queries.mu.Lock()
	reqs := e.queries.reqs
	e.queries.reqs = nil
	e.queries.mu.Unlock()
	for _, r := range reqs {
		r.mu.Lock()
		if !r.cancelled {
			r.done <- e.runQuery(r)
		}
		r.mu.Unlock()
	}
}

func (e *Engine) runQuery(r *queryReq) (err error) {
	ts := e.tasks[r.p]
	if ts == nil || ts.task == nil {
		return ErrNotOwner
	}
	stores := make(map[string]*state.Store, len(ts.stores))
	for i, st := range ts.stores {
		stores[ts.names[i]] = st
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("topology: query panicked: %v", v)
		}
	}()
	return r.fn(stores)
}

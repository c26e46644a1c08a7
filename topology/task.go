package topology

import (
	"errors"
	"fmt"
	"time"

	"github.com/invroute/invroute/state"
)

// Record is one input record as a task sees it.
type Record struct {
	Topic     string // without the prefix
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp int64 // milliseconds
	// Polled is the wall-clock time, in milliseconds, of the poll that
	// returned the record (0 where there is none, as in tests): a bound
	// for a processor that must not trust Timestamp far ahead of it.
	Polled int64
}

// Emitter writes output records inside the open transaction.
type Emitter interface {
	// Emit writes one record to an output topic of the topology (name without
	// prefix). A nil value is a tombstone.
	Emit(topic Topic, key, value []byte)
}

// TaskContext is what a task is built with.
type TaskContext struct {
	Partition int32
	Stores    map[string]*state.Store
	// CacheEntries is the configured bound of decoded values a task may
	// cache per store.
	CacheEntries int
}

// Task processes the records of one partition. The runtime calls its methods
// from one goroutine. The task writes state through its stores, whose open
// transaction the runtime commits or aborts together with the Kafka
// transaction.
type Task interface {
	// Process handles one input record. An error wrapping a *BadInputError
	// sends the record to the dead-letter topic (state must be unchanged
	// then); any other error aborts the transaction and stops the engine.
	// r and what it holds belong to the runtime: Process must not keep
	// them after it returns (copy what it needs).
	Process(r *Record, out Emitter) error
	// GlobalChanged tells the task that key of a global table changed
	// (ts: the record's time), before the next Flush. A nil key means any
	// key of the table may have changed (the task's positions are older
	// than the change history the runtime keeps). Changes are delivered
	// once per partition whose first store holds data, in the transaction
	// that commits them; a partition with an empty store has no outputs to
	// correct and starts from the tables as they are.
	GlobalChanged(topic Topic, key []byte, ts int64, out Emitter) error
	// Flush is called once before every commit: coalesced outputs go out here.
	Flush(out Emitter) error
	// Aborted is called after the transaction was aborted: forget its work.
	Aborted()
}

// PendingWork is implemented by tasks that can have work without input
// (for instance a re-emit spread over several transactions): the runtime
// flushes such a task in every transaction while Pending is true.
type PendingWork interface {
	Pending() bool
}

// BadInputError marks a record that can never be processed. Stage says where
// it failed ("decode", "validate", ...).
type BadInputError struct {
	Stage string
	Err   error
}

func (e *BadInputError) Error() string { return fmt.Sprintf("bad input at %s: %v", e.Stage, e.Err) }
func (e *BadInputError) Unwrap() error { return e.Err }

// BadInput wraps err as a *BadInputError at stage.
func BadInput(stage string, err error) error { return &BadInputError{Stage: stage, Err: err} }

// Errors of the engine.
var (
	// ErrUnknownCommit is logged when a transaction's outcome could not be
	// learnt; the engine then rebuilds every task from what Kafka committed.
	ErrUnknownCommit = errors.New("topology: commit outcome unknown")
)

func afterMillis(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }

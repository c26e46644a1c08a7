package state

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by every Store, Txn and Table method called after
// Store.Close.
var ErrClosed = errors.New("state: closed")

// ErrReservedKey is returned by Txn.Set, Txn.Delete, Store.Restore and
// Store.Prepare (for a Table write) when a key starts with 0x00: that part of
// the key space holds the store's own metadata, such as the checkpoint.
var ErrReservedKey = errors.New("state: key starts with 0x00, which is reserved for store metadata")

// ErrEmptyKey is returned by Txn.Set, Txn.Delete and Store.Restore for an
// empty key. Pebble takes a span that starts at the empty key for one
// without a start in places (its invariant checks, which -race builds turn
// on, made a compaction drop Wipe's range deletion and keep keys it
// covered), so no key is empty and Wipe's deletion starts at 0x00.
var ErrEmptyKey = errors.New("state: empty key")

// ErrNotPrepared is returned by Store.Commit when a Table holds writes that
// Store.Prepare has not flushed into the transaction: those writes are not in
// the changelog produced from Txn.Writes, so applying them would make the
// local store disagree with Kafka. The transaction is discarded as by Abort.
var ErrNotPrepared = errors.New("state: commit with table writes not flushed by Prepare")

// ErrTxnOpen is returned by Store.Restore when the store has an open
// transaction with writes: restore runs before processing, never during.
var ErrTxnOpen = errors.New("state: restore while a transaction has writes")

// ErrRestoreInProgress is returned by Store.Prepare and Store.Commit when
// Store.Restore has buffered writes that Store.FinishRestore has not applied.
var ErrRestoreInProgress = errors.New("state: transaction while a restore is in progress (call FinishRestore)")

// RestoreOrderError is returned by Store.Restore when changelog offsets do not
// increase, or go below the checkpoint the store already reflects. It signals
// a bug in the caller's replay loop; the record is not applied.
type RestoreOrderError struct {
	Offset int64 // the offset passed to Restore
	Next   int64 // the smallest offset Restore accepts
}

func (e *RestoreOrderError) Error() string {
	return fmt.Sprintf("state: restore offset %d out of order (want >= %d)", e.Offset, e.Next)
}

// CorruptCheckpointError is returned by Open when the stored checkpoint cannot
// be decoded (unknown version or malformed bytes).
type CorruptCheckpointError struct {
	Dir string
	Err error
}

func (e *CorruptCheckpointError) Error() string {
	return fmt.Sprintf("state: corrupt checkpoint in %s: %v", e.Dir, e.Err)
}

func (e *CorruptCheckpointError) Unwrap() error { return e.Err }

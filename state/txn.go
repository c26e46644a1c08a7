package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Txn is a store's open transaction: an indexed Pebble batch, whose writes
// its reads see, plus the set of keys written (and whether the last write
// of each was a delete). Get a Txn with Store.Txn; it
// ends with Store.Commit or Store.Abort and the same value is then reused for
// the next transaction. Like its Store, a Txn is used by one goroutine at a
// time.
//
// Keys starting with 0x00 are reserved (ErrReservedKey). Raw writes and Table
// writes may share a transaction; a raw write to a key under a table's prefix
// replaces that table's staged value for the key.
type Txn struct {
	s       *Store
	b       *pebble.Batch   // nil until the first write
	written map[string]bool // distinct keys written to b: true if the last write deleted it
	sorted  []string        // scratch for Writes
	kbuf    []byte          // scratch for Writes
}

// emptyValue is passed for an existing key with an empty value, so that nil
// always means "deleted" or "absent".
var emptyValue = []byte{}

func isReserved(key []byte) bool { return len(key) > 0 && key[0] == 0 }

// batch returns the transaction's batch, creating it on first use.
func (t *Txn) batch() *pebble.Batch {
	if t.b == nil {
		if t.b, t.s.spare = t.s.spare, nil; t.b == nil {
			t.b = t.s.db.NewIndexedBatch()
		}
	}
	return t.b
}

// reset empties the transaction, keeping its memory for the next one.
func (t *Txn) reset() {
	if t.s.h.err() != nil {
		t.b = nil // it may still sit in Pebble's commit queue: leave it alone
	} else if t.b != nil {
		t.b.Reset() // also clears the "applied" state of a committed batch
	}
	if len(t.written) > 4096 {
		t.written = make(map[string]bool)
	} else {
		clear(t.written)
	}
}

// wrote reports whether the transaction wrote key.
func (t *Txn) wrote(key []byte) bool {
	_, ok := t.written[string(key)]
	return ok
}

func (t *Txn) noteWrite(key []byte, deleted bool) {
	// The look-up does not copy key; the insert does, so only for a new key
	// or a flip between set and delete.
	if d, ok := t.written[string(key)]; !ok || d != deleted {
		t.written[string(key)] = deleted
	}
}

// set and del write without the checks of Set and Delete (used by tables).
func (t *Txn) set(key, val []byte) error {
	if err := t.batch().Set(key, val, nil); err != nil {
		return fmt.Errorf("state: set: %w", t.s.h.fail(err))
	}
	t.noteWrite(key, false)
	return nil
}

func (t *Txn) del(key []byte) error {
	if err := t.batch().Delete(key, nil); err != nil {
		return fmt.Errorf("state: delete: %w", t.s.h.fail(err))
	}
	t.noteWrite(key, true)
	return nil
}

// Get returns a copy of key's value as the transaction sees it: its own last
// write to key if any, else the committed value.
func (t *Txn) Get(key []byte) ([]byte, bool, error) {
	if err := t.s.check(); err != nil {
		return nil, false, err
	}
	if !t.wrote(key) {
		return t.s.getCommitted(key)
	}
	return t.getWritten(key)
}

// getWritten reads a key the transaction wrote: from the batch, or absent if
// its last write was a delete. The batch's lookup falls through to Pebble
// only for keys it does not hold, which the caller has excluded.
func (t *Txn) getWritten(key []byte) (v []byte, ok bool, err error) {
	defer t.s.h.guard(&err)
	v, closer, err := t.b.Get(key)
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		err = t.s.h.fail(fmt.Errorf("read: %w", err))
	}
	return copyGet(v, closer, err)
}

// Set writes key = val in the transaction. A nil val is an empty value, not
// a delete. Both slices may be reused after Set returns.
func (t *Txn) Set(key, val []byte) error {
	if err := t.s.check(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if isReserved(key) {
		return ErrReservedKey
	}
	t.s.invalidateTables(key)
	return t.set(key, val)
}

// Delete deletes key in the transaction.
func (t *Txn) Delete(key []byte) error {
	if err := t.s.check(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if isReserved(key) {
		return ErrReservedKey
	}
	t.s.invalidateTables(key)
	return t.del(key)
}

// Len returns the number of distinct keys written in the transaction,
// including table values flushed by Prepare.
func (t *Txn) Len() int { return len(t.written) }

// prefixEnd returns the smallest key greater than every key with the given
// prefix, or nil if there is none (empty prefix, or all 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

var reservedEnd = []byte{0x01}

// Iterate calls fn for every key with the given prefix, in key order, with
// its value as the transaction sees it (its own writes merged over the
// committed state; deleted keys are skipped). The slices passed to fn are
// valid only during the call and must not be modified; fn must not write to
// the transaction. Iterate stops at, and returns, the first error of fn.
// Table values staged but not yet flushed (Prepare, Table.Flush) are not seen.
func (t *Txn) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	return t.IterateFrom(prefix, nil, fn)
}

// IterateFrom is Iterate starting at the first key >= from (from below the
// prefix means the whole prefix).
//
// An error of Pebble (or a panic inside Pebble) fails the store; fn's errors
// and panics are fn's own.
func (t *Txn) IterateFrom(prefix, from []byte, fn func(key, val []byte) error) (err error) {
	if err := t.s.check(); err != nil {
		return err
	}
	inFn := false
	var it *pebble.Iterator
	defer func() {
		if inFn {
			// fn panicked: not Pebble's doing, let it go on, without an
			// open iterator that would pin Pebble's files until Close.
			_ = it.Close()
			return
		}
		if r := recover(); r != nil {
			err = t.s.h.fail(recovered(r))
		}
	}()
	if isReserved(prefix) {
		return ErrReservedKey
	}
	// Pebble merges one batch over the database, not two: a pending
	// transaction (CommitDeferred) is written first. Iterating is rare on
	// the hot path.
	if err := t.s.ApplyPending(); err != nil {
		return err
	}
	opts := &pebble.IterOptions{UpperBound: prefixEnd(prefix)}
	if len(prefix) > 0 {
		opts.LowerBound = prefix // an empty, non-nil bound trips Pebble's invariant checks
	}
	if bytes.Compare(from, prefix) > 0 {
		opts.LowerBound = from
	}
	if len(t.written) > 0 {
		it, err = t.b.NewIter(opts)
	} else {
		it, err = t.s.db.NewIter(opts)
	}
	if err != nil {
		return fmt.Errorf("state: iterate: %w", t.s.h.fail(err))
	}
	for valid := it.First(); valid; {
		k := it.Key()
		if isReserved(k) { // only possible with an empty prefix
			valid = it.SeekGE(reservedEnd)
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			break // it.Error() reports it
		}
		if v == nil {
			v = emptyValue
		}
		inFn = true
		err = fn(k, v)
		inFn = false
		if err != nil {
			_ = it.Close()
			return err
		}
		valid = it.Next()
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("state: iterate: %w", t.s.h.fail(err))
	}
	return nil
}

// KeysAfter returns, in order, at most limit keys under prefix that are
// greater than prefix+after, without the prefix, and whether more follow:
// one step of a cursor through a key space (after "" starts at its
// beginning), as the transaction sees it (see Iterate).
func (t *Txn) KeysAfter(prefix, after string, limit int) (keys []string, more bool, err error) {
	from := []byte(prefix + after + "\x00") // the first key greater than prefix+after
	if after == "" {
		from = []byte(prefix)
	}
	err = t.IterateFrom([]byte(prefix), from, func(k, _ []byte) error {
		if len(keys) == limit {
			more = true
			return errEnough
		}
		keys = append(keys, string(k[len(prefix):]))
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return keys, more, err
}

// errEnough ends KeysAfter's iteration.
var errEnough = errors.New("enough")

// Writes calls fn once for every distinct key written in the transaction, in
// key order, with its final value: val is nil if the last write deleted the
// key (and non-nil, possibly empty, otherwise). This is the changelog of the
// transaction. Call Store.Prepare first so that table writes are included.
// The slices are valid only during the call and must not be modified.
func (t *Txn) Writes(fn func(key, val []byte) error) error {
	if err := t.s.check(); err != nil {
		return err
	}
	if len(t.written) == 0 {
		return nil
	}
	// The batch-only iterator yields, in key order, the keys whose last
	// write is a set; the keys whose last write is a delete (few) are
	// sorted here and merged in.
	t.sorted = t.sorted[:0]
	for k, deleted := range t.written {
		if deleted {
			t.sorted = append(t.sorted, k)
		}
	}
	slices.Sort(t.sorted)
	defer clear(t.sorted) // do not pin the keys

	it, err := t.b.NewBatchOnlyIter(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("state: writes: %w", t.s.h.fail(err))
	}
	valid, d := it.First(), 0
	for valid || d < len(t.sorted) {
		var key, val []byte // val nil: a deleted key, from t.sorted
		if d < len(t.sorted) && (!valid || t.sorted[d] < string(it.Key())) {
			t.kbuf = append(t.kbuf[:0], t.sorted[d]...)
			key, d = t.kbuf, d+1
		} else {
			if val, err = it.ValueAndErr(); err != nil {
				break // Close reports it
			}
			if val == nil {
				val = emptyValue
			}
			key = it.Key()
		}
		if err := fn(key, val); err != nil {
			_ = it.Close()
			return err
		}
		if val != nil {
			valid = it.Next() // after fn: key points into the iterator
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("state: writes: %w", t.s.h.fail(err))
	}
	return nil
}

package state

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Restore buffers one changelog record (val nil = delete) read at offset.
// Buffered records are applied as one batch, together with the checkpoint
// ChangelogOffset = offset of the last record + 1 (InputOffsets unchanged),
// whenever Options.RestoreBatchSize bytes are buffered, and by FinishRestore.
// A crash therefore loses at most a suffix of the replay, and the checkpoint
// says where to resume.
//
// Offsets must increase and not go below Checkpoint().ChangelogOffset (gaps,
// left by transaction markers and compaction, are fine); otherwise Restore
// returns a *RestoreOrderError. Restore runs before processing: it returns
// ErrTxnOpen if the transaction or a table holds writes. Tables must not be
// read until FinishRestore.
func (s *Store) Restore(key, val []byte, offset int64) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if isReserved(key) {
		return ErrReservedKey
	}
	if s.txnPending() {
		return ErrTxnOpen
	}
	if err := s.ApplyPending(); err != nil { // its checkpoint is where replay resumes
		return err
	}
	next := s.cp.ChangelogOffset
	if s.restoring {
		next = s.restoreLast + 1
	}
	if offset < next {
		return &RestoreOrderError{Offset: offset, Next: next}
	}
	if s.restoreBatch == nil {
		s.restoreBatch = s.db.NewBatch()
	}
	var err error
	if val == nil {
		err = s.restoreBatch.Delete(key, nil)
	} else {
		err = s.restoreBatch.Set(key, val, nil)
	}
	if err != nil {
		return fmt.Errorf("state: restore: %w", s.h.fail(err))
	}
	s.restoring = true
	s.restoreLast = offset
	s.restored.Add(1)
	if s.restoreBatch.Len() >= s.opts.RestoreBatchSize {
		return s.applyRestore()
	}
	return nil
}

// FinishRestore applies the records Restore buffered and drops every table's
// cache, so tables re-read the restored values.
func (s *Store) FinishRestore() error {
	if err := s.check(); err != nil {
		return err
	}
	s.dropCaches()
	if !s.restoring {
		return nil
	}
	return s.applyRestore()
}

// MarkSynced records in the checkpoint that the store has seen every record
// its changelog held at the time at (Unix milliseconds): the caller read up
// to an end it took then. It writes the checkpoint alone, with its offsets
// unchanged; it returns ErrTxnOpen while a transaction, a pending commit or
// a restore batch is open.
func (s *Store) MarkSynced(at int64) error { return s.MarkSyncedThrough(at, 0) }

// MarkSyncedThrough is MarkSynced for a caller that has also read the
// changelog up to end (exclusive) and applied every record it delivered:
// the checkpoint's ChangelogOffset moves on to end if it is below, past the
// offsets after the last applied record that held nothing to apply
// (transaction markers, aborted transactions' records). A later replay
// starts there, and a quiet changelog is told from one written since by
// its offsets alone.
func (s *Store) MarkSyncedThrough(at, end int64) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.txnPending() || s.pend != nil || s.restoring {
		return ErrTxnOpen
	}
	cp := s.cp
	cp.SyncedAt = at
	cp.ChangelogOffset = max(cp.ChangelogOffset, end)
	b := s.db.NewBatch()
	defer func() {
		if s.h.err() == nil {
			_ = b.Close()
		}
	}()
	if err := b.Set(checkpointKey, appendCheckpoint(nil, cp), nil); err != nil {
		return fmt.Errorf("state: mark synced: %w", s.h.fail(fmt.Errorf("write: %w", err)))
	}
	if err := s.apply(b, s.wo); err != nil {
		return fmt.Errorf("state: mark synced: %w", err)
	}
	s.cp = cp
	return nil
}

// txnPending reports whether the transaction or a table holds writes.
func (s *Store) txnPending() bool {
	if s.txn.Len() > 0 {
		return true
	}
	for _, t := range s.tables {
		if t.pending() {
			return true
		}
	}
	return false
}

// applyRestore applies the buffered restore batch with its checkpoint. On
// error the buffered records are dropped and the checkpoint is unchanged, so
// the caller resumes from Checkpoint().ChangelogOffset.
func (s *Store) applyRestore() error {
	// SyncedAt stays: what is left of the changelog to replay may be older
	// than this batch (the caller marks the store synced once it has read
	// up to an end it took at a known time: MarkSynced).
	cp := Checkpoint{ChangelogOffset: s.restoreLast + 1, InputOffsets: s.cp.InputOffsets, SyncedAt: s.cp.SyncedAt}
	s.cpBuf = appendCheckpoint(s.cpBuf[:0], cp)
	err := s.restoreBatch.Set(checkpointKey, s.cpBuf, nil)
	if err != nil {
		err = s.h.fail(fmt.Errorf("write: %w", err))
	} else {
		err = s.apply(s.restoreBatch, s.wo)
	}
	if s.h.err() != nil {
		s.restoreBatch = nil // it may still sit in Pebble's commit queue
	} else {
		s.restoreBatch.Reset()
	}
	s.restoring = false
	s.dropCaches()
	if err != nil {
		return fmt.Errorf("state: restore: %w", err)
	}
	s.cp = cp // s.cp.InputOffsets is never mutated in place, sharing is fine
	return nil
}

// Wipe deletes every key and the checkpoint (for example because the
// changelog was deleted and recreated), discarding the transaction, staged
// table values, buffered restore records and table caches. The deletion is
// one synced batch. The space is reclaimed by a compaction before Wipe
// returns; a compaction failure is only logged.
func (s *Store) Wipe() (err error) {
	if err := s.check(); err != nil {
		return err
	}
	s.Abort()
	s.dropPending()
	if s.restoreBatch != nil {
		s.restoreBatch.Reset()
	}
	s.restoring = false
	s.dropCaches()

	defer s.h.guard(&err)
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("state: wipe: %w", s.h.fail(err))
	}
	var end []byte
	empty := it.First() && len(it.Key()) == 0 // stored before empty keys were refused
	if it.Last() {
		end = append(slices.Clone(it.Key()), 0) // just past the last key
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("state: wipe: %w", s.h.fail(err))
	}
	if end == nil {
		s.cp = Checkpoint{}
		return nil // nothing stored, not even a checkpoint
	}
	b := s.db.NewBatch()
	defer func() {
		if s.h.err() == nil { // a failed store's batch may still be in Pebble's commit queue
			_ = b.Close()
		}
	}()
	if empty {
		if err := b.Delete([]byte{}, nil); err != nil {
			return fmt.Errorf("state: wipe: %w", s.h.fail(err))
		}
	}
	// From 0x00, not from the empty key (ErrEmptyKey).
	if start := []byte{0}; bytes.Compare(start, end) < 0 {
		if err := b.DeleteRange(start, end, nil); err != nil {
			return fmt.Errorf("state: wipe: %w", s.h.fail(err))
		}
	}
	if err := s.apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("state: wipe: %w", err)
	}
	s.cp = Checkpoint{}
	if err := s.await(func() error { return s.db.Compact(context.Background(), []byte{}, end, false) }); err != nil {
		if ferr := s.h.err(); ferr != nil {
			return fmt.Errorf("state: wipe: %w", ferr)
		}
		s.opts.Logger.Errorf("state: wipe %s: compaction: %v", s.dir, err)
	}
	return nil
}

// invalidateTables tells the table owning key, if any, that a raw write
// replaced whatever the table had staged or cached for it.
func (s *Store) invalidateTables(key []byte) {
	for _, t := range s.tables {
		if t.owns(key) {
			t.invalidate(key)
			return
		}
	}
}

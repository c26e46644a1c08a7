package state

import (
	"errors"
	"testing"
)

// SyncedAt says when the store last saw its whole changelog: a restore
// batch, which may be followed by older records still to replay, keeps it
// (a replay cut short by a crash must not look fresh); MarkSynced sets it,
// once the caller has read up to an end it took at that time; both survive
// a reopen.
func TestSyncedAt(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{RestoreBatchSize: 1})
	must(t, err)
	must(t, s.Txn().Set([]byte("k"), []byte("v")))
	must(t, s.Prepare())
	must(t, s.Commit(Checkpoint{ChangelogOffset: 1, SyncedAt: 1000}))
	for off := int64(1); off < 4; off++ { // batches of one record: each applied at once
		must(t, s.Restore([]byte("r"), []byte("x"), off))
	}
	if cp := s.Checkpoint(); cp.ChangelogOffset != 4 || cp.SyncedAt != 1000 {
		t.Fatalf("after restore batches: %v synced %d, want offset 4 synced 1000", cp, cp.SyncedAt)
	}
	must(t, s.Close()) // no FinishRestore: a crash in the middle of a replay
	s, err = Open(dir, nil)
	must(t, err)
	if cp := s.Checkpoint(); cp.ChangelogOffset != 4 || cp.SyncedAt != 1000 {
		t.Fatalf("reopened: %v synced %d, want offset 4 synced 1000", cp, cp.SyncedAt)
	}
	must(t, s.MarkSynced(5000))
	must(t, s.Txn().Set([]byte("k2"), []byte("v")))
	if err := s.MarkSynced(6000); !errors.Is(err, ErrTxnOpen) {
		t.Fatalf("MarkSynced with an open transaction: %v, want ErrTxnOpen", err)
	}
	s.Abort()
	must(t, s.Close())
	s, err = Open(dir, nil)
	must(t, err)
	defer s.Close()
	if cp := s.Checkpoint(); cp.ChangelogOffset != 4 || cp.SyncedAt != 5000 {
		t.Fatalf("after MarkSynced and a reopen: %v synced %d, want offset 4 synced 5000", cp, cp.SyncedAt)
	}
	if v, ok, err := s.Get([]byte("r")); err != nil || !ok || string(v) != "x" {
		t.Fatalf("restored data: %q %v %v", v, ok, err)
	}
}

// TestMarkSyncedThrough: the checkpoint's changelog offset moves on to the
// end the caller read to, never back; the input offsets stay.
func TestMarkSyncedThrough(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	must(t, err)
	defer s.Close()
	must(t, s.Txn().Set([]byte("k"), []byte("v")))
	must(t, s.Prepare())
	must(t, s.Commit(Checkpoint{ChangelogOffset: 4, InputOffsets: map[string]int64{"in": 9}}))
	must(t, s.MarkSyncedThrough(1000, 7))
	if cp := s.Checkpoint(); cp.ChangelogOffset != 7 || cp.SyncedAt != 1000 || cp.InputOffsets["in"] != 9 {
		t.Fatalf("through 7: %+v", cp)
	}
	must(t, s.MarkSyncedThrough(2000, 5))
	if cp := s.Checkpoint(); cp.ChangelogOffset != 7 || cp.SyncedAt != 2000 {
		t.Fatalf("through 5 after 7: %+v", cp)
	}
}

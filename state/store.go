package state

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Store is one partition of one state store: a Pebble database holding the
// partition's keys and the checkpoint they reflect.
//
// # Concurrency
//
// A Store, its Txn and its Tables are used by one goroutine at a time (the
// goroutine that owns the partition); nothing is locked on the hot path.
// Only Metrics and ApproxSize may be called from another goroutine, at any
// time, even during or after Close.
//
// # On-disk format
//
// The Pebble key space of a store:
//
//	0x00 "checkpoint"      -> checkpoint   } keys starting with 0x00 are reserved
//	0x00 ...               -> (future)     } metadata, never seen by Iterate,
//	                                         Writes or Restore
//	table prefix + key     -> Codec-encoded value of a Table
//	any other key          -> raw value written with Txn.Set
//
// Keys and values are stored as they are: the changelog record of a write has
// the same key (table prefix included) and value, so Restore replays it
// byte for byte. The checkpoint value, version 2:
//
//	+------+-----------------+----------+-----------------------------------+----------+
//	| 0x02 | ChangelogOffset | n topics | n x (len(topic) | topic | offset) | SyncedAt |
//	| byte | varint          | uvarint  |      uvarint      bytes   varint  | varint   |
//	+------+-----------------+----------+-----------------------------------+----------+
//
// (version 1, still read, is 0x01 and the same without SyncedAt), with varint the zig-zag signed varint of encoding/binary and the topics
// sorted. The checkpoint is written in the same Pebble batch as the data it
// describes (every Commit and every Restore batch), so after any crash the
// contents are exactly those of the checkpoint the store reports.
type Store struct {
	dir  string
	opts Options
	db   *pebble.DB
	wo   *pebble.WriteOptions
	h    *health

	cp  Checkpoint // InputOffsets is never mutated in place; Checkpoint() clones
	txn Txn
	// pend is a committed transaction, with its checkpoint, that
	// CommitDeferred left for ApplyPending to write to Pebble; reads see it.
	// spare is an applied batch kept for the next transaction.
	pend, spare *pebble.Batch
	tables      []table
	cpBuf       []byte

	restoreBatch *pebble.Batch // changelog writes buffered by Restore
	restoring    bool          // restoreBatch holds writes
	restoreLast  int64         // offset of the last buffered record

	// closed is written by Close under mu; the owning goroutine reads it
	// without mu, Metrics and ApproxSize with it.
	mu     sync.RWMutex
	closed bool

	pebbleGets  atomic.Uint64
	tableHits   atomic.Uint64
	tableMisses atomic.Uint64
	commits     atomic.Uint64
	restored    atomic.Uint64
}

// Open opens or creates the store in dir and reads its checkpoint. A nil o
// means all defaults. It fails if o is invalid, if Pebble cannot open dir
// (with a *FailedError if the filesystem refused a write or a read failed),
// or with a *CorruptCheckpointError if the checkpoint cannot be decoded.
// Options.OnFailure is only called for failures after Open returned.
func Open(dir string, o *Options) (s *Store, err error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.EnsureDefaults()

	cache := opts.Cache
	if cache == nil {
		cache = pebble.NewCache(opts.CacheSize)
		// Pebble takes its own reference; ours goes when Open returns.
		defer cache.Unref()
	}
	h := &health{dir: dir, logger: opts.Logger, failed: make(chan struct{})}
	s = &Store{dir: dir, opts: opts, wo: pebble.NoSync, h: h}
	po := opts.pebbleOptions(cache, h)
	if err := s.await(func() (err error) { s.db, err = pebble.Open(dir, po); return err }); err != nil {
		if s.h.err() != nil {
			s.h.releaseLock()
		}
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	if opts.Sync {
		s.wo = pebble.Sync
	}
	s.txn.s = s
	s.txn.written = make(map[string]bool)

	val, closer, err := s.get(checkpointKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		_ = s.closeDB()
		return nil, fmt.Errorf("state: open %s: read checkpoint: %w", dir, err)
	default:
		s.cp, err = decodeCheckpoint(val)
		_ = closer.Close()
		if err != nil {
			_ = s.closeDB()
			return nil, &CorruptCheckpointError{Dir: dir, Err: err}
		}
	}
	if opts.OnFailure != nil {
		h.onFailure.Store(&opts.OnFailure)
	}
	if err := h.err(); err != nil { // failed in the background meanwhile
		_ = s.closeDB()
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	return s, nil
}

// get is db.Get; an error other than ErrNotFound, or a panic, fails the
// store.
func (s *Store) get(key []byte) (v []byte, closer io.Closer, err error) {
	defer s.h.guard(&err)
	if s.pend != nil {
		v, closer, err = s.pend.Get(key) // its writes, else Pebble's
	} else {
		v, closer, err = s.db.Get(key)
	}
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		err = s.h.fail(fmt.Errorf("read: %w", err))
	}
	return v, closer, err
}

// apply is db.Apply; an error, or a panic, fails the store (see await).
func (s *Store) apply(b *pebble.Batch, wo *pebble.WriteOptions) error {
	return s.await(func() error {
		if err := s.db.Apply(b, wo); err != nil {
			return s.h.fail(fmt.Errorf("write: %w", err))
		}
		return nil
	})
}

// await runs fn, a call into Pebble that may write, and returns its error
// (or its panic, as a failure), or the store's failure as soon as the store
// fails, even while fn is blocked: a write stalls for as long as memtables
// cannot be flushed, which is forever on a full disk, and the goroutine
// whose write the filesystem refused blocks for good (see FailedError). A
// write left running may still complete, with its checkpoint, which the
// contents on disk then agree with. A failure reported while fn ran wins
// over fn's success: the store is unusable either way.
func (s *Store) await(fn func() error) error {
	if err := s.h.err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		defer s.h.guard(&err)
		err = fn()
	}()
	select {
	case err := <-done:
		if ferr := s.h.err(); ferr != nil {
			return ferr
		}
		return err
	case <-s.h.failed:
		return s.h.err()
	}
}

// check returns ErrClosed after Close and the store's failure once it
// failed.
func (s *Store) check() error {
	if s.closed {
		return ErrClosed
	}
	return s.h.err()
}

// Err returns the store's failure (a *FailedError), or nil while it is
// usable. It is safe to call from any goroutine, even during or after Close.
func (s *Store) Err() error { return s.h.err() }

// closeDB closes Pebble, unless the store failed: then Pebble is left as it
// is (see FailedError), only its lock of the directory is released (it can
// no longer change the directory), and the failure returned. Closing writes
// (the end of the log), so it may be what finds the fault.
func (s *Store) closeDB() error {
	if err := s.h.err(); err == nil {
		if err := s.await(s.db.Close); err == nil || s.h.err() == nil {
			return err
		}
	}
	s.h.releaseLock()
	return s.h.err()
}

// Close writes a transaction CommitDeferred left pending (it is committed),
// discards the open transaction and any restore writes not yet applied by
// FinishRestore, then closes Pebble. Applied batches are in the WAL (synced
// or not, per Options.Sync). A second Close returns ErrClosed. Closing a
// failed store returns its failure and does not close Pebble (see
// FailedError), which keeps its memory and open files until the process
// exits; it releases the lock of dir, as the abandoned Pebble can no longer
// change the directory.
func (s *Store) Close() error {
	if s.closed {
		return ErrClosed
	}
	s.Abort()
	var errs []error
	if s.h.err() == nil {
		errs = append(errs, s.ApplyPending())
	}
	for _, t := range s.tables {
		t.dropCache()
	}
	if s.h.err() == nil { // a failed store's batch may still sit in Pebble's commit queue
		for _, b := range []*pebble.Batch{s.txn.b, s.restoreBatch, s.spare} {
			if b != nil {
				errs = append(errs, b.Close())
			}
		}
	}
	s.txn.b, s.restoreBatch, s.spare, s.pend = nil, nil, nil, nil
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	errs = append(errs, s.closeDB())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("state: close %s: %w", s.dir, err)
	}
	return nil
}

// Dir returns the directory the store was opened in.
func (s *Store) Dir() string { return s.dir }

// Checkpoint returns (a copy of) what the committed contents reflect: as of
// the last Commit, Restore batch, Wipe or, before any of these, Open.
func (s *Store) Checkpoint() Checkpoint { return s.cp.Clone() }

// Get returns a copy of the committed value of key, ignoring the open
// transaction.
func (s *Store) Get(key []byte) ([]byte, bool, error) {
	if err := s.check(); err != nil {
		return nil, false, err
	}
	return s.getCommitted(key)
}

// getCommitted reads key from Pebble and copies the value.
func (s *Store) getCommitted(key []byte) ([]byte, bool, error) {
	s.pebbleGets.Add(1)
	return copyGet(s.get(key))
}

// copyGet turns the result of a Pebble Get into a copy of the value that
// outlives the closer, and ErrNotFound into absent.
func copyGet(v []byte, closer io.Closer, err error) ([]byte, bool, error) {
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: get: %w", err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, true, closer.Close()
}

// Txn returns the store's open transaction, which begins implicitly with its
// first write and ends with Commit or Abort. The same *Txn is returned for
// the life of the Store.
func (s *Store) Txn() *Txn { return &s.txn }

// Prepare flushes the staged values of every registered Table into the
// transaction, encoding each once. Call it before Txn.Writes produces the
// changelog; Commit refuses table writes that were not prepared.
func (s *Store) Prepare() error {
	if err := s.check(); err != nil {
		return err
	}
	if s.restoring {
		return ErrRestoreInProgress
	}
	for _, t := range s.tables {
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

// Commit applies the transaction and cp as one atomic Pebble batch, then
// moves the tables' staged values into their caches and starts a new, empty
// transaction. An empty transaction still records cp. Call it only once the
// Kafka transaction that carried the changelog of Txn.Writes has committed.
// A transaction CommitDeferred left pending is applied first.
//
// On error the transaction is discarded as by Abort and Checkpoint is
// unchanged. ErrNotPrepared and ErrRestoreInProgress report misuse, and
// nothing was applied; any other error is a *FailedError (or ErrClosed):
// the store is unusable, and whether the batch reached the disk or not,
// the contents on disk agree with the checkpoint stored with them, from
// which a reopened store replays the changelog.
func (s *Store) Commit(cp Checkpoint) error { return s.commit(cp, false) }

// CommitDeferred is Commit without the write to Pebble: the transaction and
// cp become the store's committed state at once (Checkpoint returns cp, and
// every read sees the transaction's writes), but the batch is left pending
// until ApplyPending, the next Commit or CommitDeferred, a restore, or Close
// writes it. This lets the caller write it while it waits for something
// else (the engine: while the next Kafka transaction ends). A crash before
// then leaves the previous checkpoint on disk, with the contents it
// reflects, and the changelog has the rest.
func (s *Store) CommitDeferred(cp Checkpoint) error { return s.commit(cp, true) }

func (s *Store) commit(cp Checkpoint, deferApply bool) error {
	if err := s.check(); err != nil {
		s.Abort()
		return err
	}
	if s.restoring {
		s.Abort()
		return ErrRestoreInProgress
	}
	for _, t := range s.tables {
		if t.dirty() {
			s.Abort()
			return ErrNotPrepared
		}
	}
	if err := s.ApplyPending(); err != nil {
		s.Abort()
		return fmt.Errorf("state: commit: %w", err)
	}
	b := s.txn.batch()
	s.cpBuf = appendCheckpoint(s.cpBuf[:0], cp)
	err := b.Set(checkpointKey, s.cpBuf, nil)
	if err != nil {
		err = s.h.fail(fmt.Errorf("write: %w", err))
	} else if deferApply {
		s.pend, s.txn.b = b, nil // the next write takes the spare batch
	} else {
		err = s.apply(b, s.wo)
	}
	if err != nil {
		s.Abort()
		return fmt.Errorf("state: commit: %w", err)
	}
	s.cp = cp.Clone()
	for _, t := range s.tables {
		t.commit(deferApply)
	}
	s.txn.reset()
	s.commits.Add(1)
	return nil
}

// Pending reports whether a transaction CommitDeferred left is not yet
// written to Pebble.
func (s *Store) Pending() bool { return s.pend != nil }

// ApplyPending writes the transaction CommitDeferred left pending, with its
// checkpoint, to Pebble as one atomic batch; without one it does nothing.
// An error is a *FailedError (or ErrClosed): the store is unusable, and the
// contents on disk agree with the checkpoint stored with them.
func (s *Store) ApplyPending() error {
	if s.pend == nil {
		return nil
	}
	if err := s.check(); err != nil {
		return err
	}
	b := s.pend
	if err := s.apply(b, s.wo); err != nil {
		s.pend = nil // it may still sit in Pebble's commit queue: leave it alone
		return fmt.Errorf("state: apply: %w", err)
	}
	s.pend = nil
	for _, t := range s.tables {
		t.settle()
	}
	b.Reset() // also clears its "applied" state
	if s.spare == nil {
		s.spare = b
	} else {
		_ = b.Close()
	}
	return nil
}

// dropPending forgets a pending transaction without writing it (Wipe).
func (s *Store) dropPending() {
	if s.pend != nil {
		if s.h.err() == nil {
			_ = s.pend.Close()
		}
		s.pend = nil
	}
}

// Abort discards the transaction and every table's staged values. The store
// keeps its committed contents and checkpoint.
func (s *Store) Abort() {
	s.txn.reset()
	for _, t := range s.tables {
		t.abort()
	}
}

// dropCaches empties every table's cache of decoded values, after the
// committed contents changed behind the tables' back (restore, wipe).
func (s *Store) dropCaches() {
	for _, t := range s.tables {
		t.dropCache()
	}
}

// Metrics are a store's counters and Pebble's own metrics.
type Metrics struct {
	PebbleGets      uint64 // point reads that reached Pebble (Store.Get, Txn.Get, Table misses)
	TableHits       uint64 // Table.Get answered from a table's cache of decoded values
	TableMisses     uint64 // Table.Get that decoded a value read from Pebble (or found it absent)
	Commits         uint64 // successful Commit calls
	RestoredRecords uint64 // changelog records passed to Restore
	DiskBytes       uint64 // Pebble's disk usage: WAL, sstables, obsolete files
	Pebble          *pebble.Metrics
}

// Metrics returns the store's counters and Pebble's metrics. It is safe to
// call from any goroutine; after Close, Pebble fields are zero.
func (s *Store) Metrics() Metrics {
	m := Metrics{
		PebbleGets:      s.pebbleGets.Load(),
		TableHits:       s.tableHits.Load(),
		TableMisses:     s.tableMisses.Load(),
		Commits:         s.commits.Load(),
		RestoredRecords: s.restored.Load(),
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.closed && s.h.err() == nil { // a failed Pebble may hold its mutex for good
		m.Pebble = s.db.Metrics()
		m.DiskBytes = m.Pebble.DiskSpaceUsage()
	}
	return m
}

// ApproxSize returns the bytes the store uses on disk (0 after Close). It is
// safe to call from any goroutine.
func (s *Store) ApproxSize() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.h.err() != nil {
		return 0
	}
	return s.db.Metrics().DiskSpaceUsage()
}

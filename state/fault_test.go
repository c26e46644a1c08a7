package state

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// faultFS is one process's view of a filesystem on which faults can be
// switched on: writes (or reads) of files matching a name fail with an
// errno, and kill freezes every further operation and releases the locks
// it took, as the death of the process would (a failed store is never
// closed: without kill its Pebble would keep its lock, and its background
// jobs would go on touching the directory a new store opens).
type faultFS struct {
	*errorfs.FS
	mode   atomic.Int32 // faultOff, faultWrite, faultRead, faultDead
	suffix string       // files the fault applies to ("" = all)
	errno  syscall.Errno

	mu    sync.Mutex
	locks []*onceCloser
}

const (
	faultOff = iota
	faultWrite
	faultRead
	faultDead
)

func newFaultFS(base vfs.FS) *faultFS {
	f := &faultFS{errno: syscall.ENOSPC}
	f.FS = errorfs.Wrap(base, errorfs.InjectorFunc(f.inject))
	return f
}

func (f *faultFS) inject(op errorfs.Op) error {
	switch f.mode.Load() {
	case faultDead:
		select {} // this process is gone
	case faultWrite:
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && op.Kind != errorfs.OpRemove && strings.HasSuffix(op.Path, f.suffix) {
			return &os.PathError{Op: "write", Path: op.Path, Err: f.errno}
		}
	case faultRead:
		if (op.Kind == errorfs.OpFileReadAt || op.Kind == errorfs.OpFileRead) && strings.HasSuffix(op.Path, f.suffix) {
			return &os.PathError{Op: "read", Path: op.Path, Err: f.errno}
		}
	}
	return nil
}

func (f *faultFS) set(mode int32, suffix string, errno syscall.Errno) {
	f.suffix, f.errno = suffix, errno
	f.mode.Store(mode)
}

func (f *faultFS) Lock(name string) (io.Closer, error) {
	c, err := f.FS.Lock(name)
	if err != nil {
		return nil, err
	}
	oc := &onceCloser{c: c}
	f.mu.Lock()
	f.locks = append(f.locks, oc)
	f.mu.Unlock()
	return oc, nil
}

// kill freezes every further operation and releases the locks.
func (f *faultFS) kill() {
	f.mode.Store(faultDead)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.locks {
		_ = c.Close()
	}
}

type onceCloser struct {
	once sync.Once
	c    io.Closer
}

func (o *onceCloser) Close() (err error) {
	o.once.Do(func() { err = o.c.Close() })
	return err
}

// failureRecorder counts OnFailure calls.
type failureRecorder struct {
	n   atomic.Int32
	err atomic.Pointer[error]
}

func (r *failureRecorder) record(err error) {
	r.err.CompareAndSwap(nil, &err)
	r.n.Add(1)
}

// calls waits a little for OnFailure (it runs right after the failure is
// recorded, on the goroutine that hit it) and returns how often it ran.
func (r *failureRecorder) calls() int32 {
	for deadline := time.Now().Add(2 * time.Second); r.n.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return r.n.Load()
}

// commitN commits key i = value of size bytes with checkpoint i+1.
func commitN(s *Store, i int, size int) error {
	if err := s.Txn().Set(fmt.Appendf(nil, "k%04d", i), []byte(strings.Repeat(string(rune('a'+i%26)), size))); err != nil {
		return err
	}
	if err := s.Prepare(); err != nil {
		return err
	}
	return s.Commit(Checkpoint{ChangelogOffset: int64(i + 1)})
}

// checkPrefix checks that the reopened store holds exactly keys 0..cp-1.
func checkPrefix(t *testing.T, s *Store, upTo int) {
	t.Helper()
	cp := int(s.Checkpoint().ChangelogOffset)
	for i := 0; i < upTo; i++ {
		_, ok, err := s.Get(fmt.Appendf(nil, "k%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		if ok != (i < cp) {
			t.Fatalf("checkpoint %d but key %d present=%v", cp, i, ok)
		}
	}
}

// assertFailed checks that every use of a failed store returns its
// failure, and that Close returns promptly.
func assertFailed(t *testing.T, s *Store, errno syscall.Errno) {
	t.Helper()
	ferr := s.Err()
	var fe *FailedError
	if !errors.As(ferr, &fe) || !errors.Is(ferr, errno) {
		t.Fatalf("Err() = %v, want a *FailedError wrapping %v", ferr, errno)
	}
	if errno == syscall.ENOSPC && !strings.Contains(ferr.Error(), "disk full") {
		t.Errorf("message %q does not say disk full", ferr)
	}
	before := s.Checkpoint()
	if err := s.Txn().Set([]byte("after"), []byte("x")); !errors.As(err, &fe) {
		t.Errorf("Set on a failed store: %v", err)
	}
	if err := s.Prepare(); !errors.As(err, &fe) {
		t.Errorf("Prepare on a failed store: %v", err)
	}
	if err := s.Commit(Checkpoint{ChangelogOffset: 1 << 40}); !errors.As(err, &fe) {
		t.Errorf("Commit on a failed store: %v", err)
	}
	if _, _, err := s.Get([]byte("k0000")); !errors.As(err, &fe) {
		t.Errorf("Get on a failed store: %v", err)
	}
	if err := s.Restore([]byte("r"), []byte("x"), 1<<40); !errors.As(err, &fe) {
		t.Errorf("Restore on a failed store: %v", err)
	}
	if !s.Checkpoint().Equal(before) {
		t.Errorf("checkpoint moved on a failed store: %v -> %v", before, s.Checkpoint())
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Close of a failed store returned nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a failed store hangs")
	}
}

// TestWALWriteFaultFailsStore: the disk fills up under the write-ahead log,
// which Pebble writes in the background (no sync). The store fails (and
// says so through OnFailure) without any call having to notice; after that
// nothing is applied and the checkpoint stays; reopened on a healthy disk,
// the store holds exactly the data of the checkpoint it claims.
func TestWALWriteFaultFailsStore(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			mem := vfs.NewMem()
			fs := newFaultFS(mem)
			var rec failureRecorder
			s, err := Open("db", &Options{FS: fs, Sync: sync, OnFailure: rec.record, MemTableSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := commitN(s, i, 100); err != nil {
					t.Fatal(err)
				}
			}
			fs.set(faultWrite, ".log", syscall.ENOSPC)
			n := 5
			for ; n < 200 && s.Err() == nil; n++ {
				if err := commitN(s, n, 8<<10); err != nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if s.Err() == nil {
				t.Fatalf("%d commits with a full disk under the WAL, the store has not failed", n)
			}
			if n := rec.calls(); n != 1 {
				t.Errorf("OnFailure called %d times, want once", n)
			}
			assertFailed(t, s, syscall.ENOSPC)
			fs.kill()

			s, err = Open("db", &Options{FS: mem})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Without sync, what reached the disk before the fault is
			// any prefix; with sync, at least every commit that returned.
			low := int64(0)
			if sync {
				low = 5
			}
			if cp := s.Checkpoint().ChangelogOffset; cp < low || cp > int64(n) {
				t.Errorf("reopened at checkpoint %d, want within [%d, %d]", cp, low, n)
			}
			checkPrefix(t, s, n+1)
		})
	}
}

// TestFlushFaultFailsStore: the disk is full when Pebble flushes a memtable
// to a table file (a background job); the store fails.
func TestFlushFaultFailsStore(t *testing.T) {
	mem := vfs.NewMem()
	fs := newFaultFS(mem)
	var rec failureRecorder
	s, err := Open("db", &Options{FS: fs, OnFailure: rec.record, MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	fs.set(faultWrite, ".sst", syscall.ENOSPC)
	n := 0
	for ; n < 500 && s.Err() == nil; n++ {
		if err := commitN(s, n, 8<<10); err != nil {
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if calls := rec.calls(); calls != 1 {
		t.Fatalf("after %d commits of 8 KiB on 256 KiB memtables with no room for tables: OnFailure called %d times, want once", n, calls)
	}
	assertFailed(t, s, syscall.ENOSPC)
	fs.kill()
	s, err = Open("db", &Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkPrefix(t, s, n+1)
}

// TestReadFaultIsAnError: a read that fails (I/O error on a table file) is
// an error that fails the store, never "not found".
func TestReadFaultIsAnError(t *testing.T) {
	mem := vfs.NewMem()
	s, err := Open("db", &Options{FS: mem, MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100 // 800 KiB: most of it flushed to tables
	for i := range n {
		if err := commitN(s, i, 8<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs := newFaultFS(mem)
	var rec failureRecorder
	s, err = Open("db", &Options{FS: fs, OnFailure: rec.record})
	if err != nil {
		t.Fatal(err)
	}
	fs.set(faultRead, ".sst", syscall.EIO)
	var got error
	for i := range n {
		if _, _, err := s.Get(fmt.Appendf(nil, "k%04d", i)); err != nil {
			got = err
			break
		}
	}
	if got == nil {
		t.Fatal("every read succeeded although table files cannot be read")
	}
	if !errors.Is(got, syscall.EIO) {
		t.Errorf("read error %v does not wrap EIO", got)
	}
	assertFailed(t, s, syscall.EIO)
	fs.kill()
}

// TestPanicInPebbleFailsStore: a panic inside Pebble during a call of the
// store fails it (Pebble is never called again, not even to close it); a
// panic of the caller's own callback passes through untouched.
func TestPanicInPebbleFailsStore(t *testing.T) {
	s, err := Open("db", &Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if err := commitN(s, 0, 10); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != "mine" {
				t.Errorf("callback panic: recovered %v, want it passed through", r)
			}
		}()
		_ = s.Txn().Iterate(nil, func(_, _ []byte) error { panic("mine") })
	}()
	if s.Err() != nil {
		t.Fatalf("a callback's panic failed the store: %v", s.Err())
	}
	// Pebble panics through a guarded call: simulate with guard itself, as
	// Pebble panics only on broken disks or broken invariants.
	err = func() (err error) {
		defer s.h.guard(&err)
		panic(&PebbleFatalError{Msg: "pebble: fatal commit error: boom"})
	}()
	var fe *FailedError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "boom") || s.Err() == nil {
		t.Fatalf("guard: %v (store error %v)", err, s.Err())
	}
	if m := s.Metrics(); m.Pebble != nil {
		t.Error("Metrics of a failed store reached Pebble")
	}
	if err := s.Close(); !errors.As(err, &fe) {
		t.Errorf("Close of a failed store: %v", err)
	}
}

// TestQuietLoggerFatalPanics: Pebble's fatal errors become a panic the
// store can recover, not an exit of the process.
func TestQuietLoggerFatalPanics(t *testing.T) {
	defer func() {
		if _, ok := recover().(*PebbleFatalError); !ok {
			t.Error("Fatalf did not panic with a *PebbleFatalError")
		}
	}()
	quietLogger{}.Fatalf("x %d", 1)
}

// TestIdentity: an identity survives reopening and Wipe removes it.
func TestIdentity(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Identity(); err != nil || id != nil {
		t.Fatalf("new store: identity %q, %v", id, err)
	}
	if err := s.SetIdentity([]byte("topic-1")); err != nil {
		t.Fatal(err)
	}
	if err := commitN(s, 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open("db", &Options{FS: fs}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, err := s.Identity(); err != nil || string(id) != "topic-1" {
		t.Fatalf("reopened: identity %q, %v", id, err)
	}
	n := 0
	if err := s.Txn().Iterate(nil, func(_, _ []byte) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("Iterate saw %d keys (%v), want the one data key", n, err)
	}
	if err := s.Wipe(); err != nil {
		t.Fatal(err)
	}
	if id, err := s.Identity(); err != nil || id != nil {
		t.Fatalf("wiped: identity %q, %v", id, err)
	}
}

// TestCloseOnFullDisk: closing writes the end of the log; on a full disk
// Close returns the failure (it used to block for good).
func TestCloseOnFullDisk(t *testing.T) {
	mem := vfs.NewMem()
	fs := newFaultFS(mem)
	s, err := Open("db", &Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := commitN(s, i, 100); err != nil {
			t.Fatal(err)
		}
	}
	fs.set(faultWrite, "", syscall.ENOSPC)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Close on a full disk: %v, want ENOSPC", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close on a full disk blocks")
	}
	// The failed store released its lock and its Pebble can no longer
	// change the directory: it reopens in place, in this process, with
	// no kill of the old filesystem.
	s, err = Open("db", &Options{FS: mem})
	if err != nil {
		t.Fatalf("reopening after a failed Close: %v", err)
	}
	defer s.Close()
	checkPrefix(t, s, 3)
}

// TestPanicInPebbleIterateFailsStore: Pebble panics while an iteration of
// the store reads a table file (injected on this goroutine only): the
// store fails and Iterate returns the failure.
func TestPanicInPebbleIterateFailsStore(t *testing.T) {
	mem := vfs.NewMem()
	s, err := Open("db", &Options{FS: mem, MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // 800 KiB: most of it in table files
		if err := commitN(s, i, 8<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if armed.Load() && op.Kind == errorfs.OpFileReadAt && strings.HasSuffix(op.Path, ".sst") {
			buf := make([]byte, 64<<10)
			if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "state.(*Txn).IterateFrom") {
				panic("injected: pebble broke")
			}
		}
		return nil
	})
	s, err = Open("db", &Options{FS: errorfs.Wrap(mem, inj), CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	err = s.Txn().Iterate(nil, func(_, _ []byte) error { return nil })
	var fe *FailedError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Iterate with Pebble panicking: %v, want the store's failure", err)
	}
	if s.Err() == nil {
		t.Error("the store has not failed")
	}
}

package state

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FailedError is returned by every method of a Store (and its Txn and
// Tables) once the store has failed: Pebble returned an error on a read or a
// write, reported an error from a background job (flush, compaction), called
// its fatal logger or panicked, or the filesystem refused a write or a sync
// (disk full, I/O error), even one Pebble does in the background (the
// write-ahead log is written asynchronously).
//
// A failed store is never used again, and Pebble is not even closed: what
// it holds in memory may be ahead of what reached the disk (and what Kafka
// committed ahead of both), and Pebble's own handling of write errors is to
// panic, in places where the panic cannot be recovered (it unlocks a mutex
// it does not hold). So the goroutine whose write the filesystem refuses
// never returns to Pebble: it blocks for good, and the call of the store
// waiting for it returns the failure instead. The process is expected to
// exit; its restart reopens the store, whose checkpoint is where its durable
// contents stop, and replays the changelog from there.
type FailedError struct {
	Dir string
	Err error
}

func (e *FailedError) Error() string {
	what := "storage fault"
	if errors.Is(e.Err, syscall.ENOSPC) {
		what = "storage fault (disk full)"
	}
	return fmt.Sprintf("state: %s in store %s: %v", what, e.Dir, e.Err)
}

func (e *FailedError) Unwrap() error { return e.Err }

// health is a store's failure state, shared by the Store, the filesystem
// wrapper Pebble writes through and Pebble's event listener, any of which
// may run on any goroutine.
type health struct {
	dir       string
	fault     atomic.Pointer[FailedError]
	failed    chan struct{}               // closed by the first fail
	onFailure atomic.Pointer[func(error)] // set once Open succeeds
	logger    pebble.Logger

	lockMu sync.Mutex
	lock   io.Closer // Pebble's lock of the directory
}

// fail records err as the store's failure (the first one wins) and returns
// the recorded failure. The first call runs Options.OnFailure.
func (h *health) fail(err error) *FailedError {
	fe := &FailedError{Dir: h.dir, Err: err}
	if !h.fault.CompareAndSwap(nil, fe) {
		return h.fault.Load()
	}
	close(h.failed)
	h.logger.Errorf("%v", fe)
	if fn := h.onFailure.Load(); fn != nil {
		(*fn)(fe)
	}
	return fe
}

// err returns the store's failure, or nil.
func (h *health) err() error {
	if fe := h.fault.Load(); fe != nil {
		return fe
	}
	return nil
}

// PebbleFatalError is what the default logger's Fatalf panics with instead
// of exiting the process (Pebble's default): a fatal error in a call the
// store makes is recovered and fails the store. One in a Pebble background
// goroutine cannot be recovered and still ends the process, with this
// message.
type PebbleFatalError struct{ Msg string }

func (e *PebbleFatalError) Error() string { return "pebble fatal error: " + e.Msg }

// recovered turns a value recovered from a panic inside Pebble into an error
// that keeps the original error (an errno, for instance) reachable.
func recovered(r any) error {
	switch v := r.(type) {
	case error:
		return fmt.Errorf("pebble panicked: %w", v)
	default:
		return fmt.Errorf("pebble panicked: %v", v)
	}
}

// guard is deferred by every Store method that calls into Pebble: a panic
// fails the store, and the method returns the failure.
func (h *health) guard(err *error) {
	if r := recover(); r != nil {
		*err = h.fail(recovered(r))
	}
}

// watchFS passes every operation to the filesystem underneath and fails the
// store on the first error of an operation that writes (create, write, sync,
// rename, link, mkdir): Pebble writes its write-ahead log in the background,
// and without a sync a failed WAL write surfaces in no call the store makes
// until much later. The goroutine that got the error then blocks for good
// instead of returning it to Pebble (see FailedError).
//
// Once the store failed, every operation that would change the directory
// (those above, and removals) blocks for good too: the abandoned Pebble's
// background jobs must not touch the directory, which may be moved aside
// and rebuilt, or reopened by a new store, in this process (its lock is
// released when the store is closed). Reads go on: a read in progress in
// a call of the store must return.
type watchFS struct {
	vfs.FS
	h *health
}

// frozen blocks for good once the store failed.
func (fs *watchFS) frozen() {
	if fs.h.err() != nil {
		select {}
	}
}

func (fs *watchFS) check(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		fs.h.fail(err) // names the operation and the file already
	} else {
		fs.h.fail(fmt.Errorf("%s %s: %w", op, name, err))
	}
	select {} // never back into Pebble with a write error
}

func (fs *watchFS) file(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &watchFile{File: f, fs: fs, name: name}, nil
}

func (fs *watchFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	fs.frozen()
	f, err := fs.FS.Create(name, c)
	return fs.file(f, name, fs.check("create", name, err))
}

func (fs *watchFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	fs.frozen()
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.file(f, name, fs.check("open for writing", name, err))
}

func (fs *watchFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.file(f, name, err) // absent directories are probed: not a fault
}

func (fs *watchFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	fs.frozen()
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.file(f, newname, fs.check("reuse for write", newname, err))
}

func (fs *watchFS) Link(oldname, newname string) error {
	fs.frozen()
	return fs.check("link", newname, fs.FS.Link(oldname, newname))
}

func (fs *watchFS) Rename(oldname, newname string) error {
	fs.frozen()
	return fs.check("rename", newname, fs.FS.Rename(oldname, newname))
}

func (fs *watchFS) MkdirAll(dir string, perm os.FileMode) error {
	fs.frozen()
	return fs.check("mkdir", dir, fs.FS.MkdirAll(dir, perm))
}

// Remove and RemoveAll errors are Pebble's to handle (it only logs a file
// it could not delete).
func (fs *watchFS) Remove(name string) error {
	fs.frozen()
	return fs.FS.Remove(name)
}

func (fs *watchFS) RemoveAll(name string) error {
	fs.frozen()
	return fs.FS.RemoveAll(name)
}

// Lock keeps the lock of the directory, so that Close can release it even
// when Pebble is not closed (see FailedError).
func (fs *watchFS) Lock(name string) (io.Closer, error) {
	c, err := fs.FS.Lock(name)
	if err == nil {
		fs.h.lockMu.Lock()
		fs.h.lock = c
		fs.h.lockMu.Unlock()
	}
	return c, err
}

func (fs *watchFS) Unwrap() vfs.FS { return fs.FS }

// releaseLock releases the directory lock of an abandoned Pebble.
func (h *health) releaseLock() {
	h.lockMu.Lock()
	defer h.lockMu.Unlock()
	if h.lock != nil {
		_ = h.lock.Close()
		h.lock = nil
	}
}

// watchFile fails the store on a write or sync error.
type watchFile struct {
	vfs.File
	fs   *watchFS
	name string
}

func (f *watchFile) Write(p []byte) (int, error) {
	f.fs.frozen()
	n, err := f.File.Write(p)
	return n, f.fs.check("write", f.name, err)
}

func (f *watchFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.frozen()
	n, err := f.File.WriteAt(p, off)
	return n, f.fs.check("write", f.name, err)
}

func (f *watchFile) Preallocate(off, length int64) error {
	f.fs.frozen()
	return f.File.Preallocate(off, length)
}

func (f *watchFile) Sync() error {
	f.fs.frozen()
	return f.fs.check("sync", f.name, f.File.Sync())
}

func (f *watchFile) SyncData() error {
	f.fs.frozen()
	return f.fs.check("sync", f.name, f.File.SyncData())
}

func (f *watchFile) SyncTo(length int64) (bool, error) {
	f.fs.frozen()
	full, err := f.File.SyncTo(length)
	return full, f.fs.check("sync", f.name, err)
}

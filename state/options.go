package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults applied by Options.EnsureDefaults.
const (
	DefaultCacheSize    = 8 << 20 // 8 MiB private block cache
	DefaultMemTableSize = 4 << 20 // 4 MiB
)

// Options configures a Store. A nil *Options, or a zero field, means the
// default; Open works on a copy and never modifies the caller's value.
//
// Memory used by one Store is bounded by configuration: the block cache
// (shared or CacheSize), at most two memtables of MemTableSize (Pebble stalls
// writes beyond that), the decoded-value cache of each Table (maxCached entries)
// and the open transaction, whose size the caller bounds by committing often.
type Options struct {
	// FS is the filesystem the store lives on. Default vfs.Default; tests use
	// vfs.NewCrashableMem().
	FS vfs.FS

	// Cache is a block cache shared by many stores. The caller owns a
	// reference and releases it (Unref) after closing every store using it.
	// Default nil: each store gets a private cache of CacheSize. Setting both
	// Cache and CacheSize is an error.
	Cache *pebble.Cache

	// CacheSize is the size in bytes of the private block cache, used only
	// when Cache is nil. Default DefaultCacheSize (8 MiB).
	CacheSize int64

	// MemTableSize is the size in bytes of one Pebble memtable. Default
	// DefaultMemTableSize (4 MiB). Must be below 4 GiB.
	MemTableSize uint64

	// Sync makes Commit, and the batches of Restore, wait for an fsync of the
	// write-ahead log. Default false: Kafka is the source of truth, so a crash
	// may lose a suffix of applied batches; the checkpoint is in the same
	// batch as the data, so it goes back with them and restore replays the
	// lost suffix from the changelog. Wipe always syncs.
	Sync bool

	// Logger receives Pebble's log lines. Default: quiet, meaning Pebble's
	// informational lines are dropped, its errors go to pebble.DefaultLogger
	// and its fatal errors panic with a *PebbleFatalError, which fails the
	// store when it happens in a call of the store (see FailedError).
	Logger pebble.Logger

	// OnFailure, if set, is called once, on any goroutine, with the
	// *FailedError that makes the store unusable (see FailedError), as soon
	// as it happens: a fault in a background write is known here before any
	// method of the store returns it. It must not call the store.
	OnFailure func(error)

	// RestoreBatchSize is the number of bytes of changelog writes Restore
	// buffers before applying them, with their checkpoint, as one batch.
	// Default MemTableSize/4; must not exceed MemTableSize.
	RestoreBatchSize int
}

// EnsureDefaults fills every zero field of o with its default.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Cache == nil && o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.Logger == nil {
		o.Logger = quietLogger{}
	}
	if o.RestoreBatchSize == 0 {
		o.RestoreBatchSize = int(min(o.MemTableSize/4, 1<<30))
	}
}

// Validate reports every problem with o at once, or nil. It does not apply
// defaults: zero fields are valid.
func (o *Options) Validate() error {
	var errs []error
	if o.Cache != nil && o.CacheSize != 0 {
		errs = append(errs, errors.New("state: Options.Cache and Options.CacheSize are both set (CacheSize is only for a private cache)"))
	}
	if o.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("state: Options.CacheSize %d is negative", o.CacheSize))
	}
	if o.MemTableSize >= 4<<30 {
		errs = append(errs, fmt.Errorf("state: Options.MemTableSize %d must be below 4 GiB", o.MemTableSize))
	}
	if o.RestoreBatchSize < 0 {
		errs = append(errs, fmt.Errorf("state: Options.RestoreBatchSize %d is negative", o.RestoreBatchSize))
	}
	mem := o.MemTableSize
	if mem == 0 {
		mem = DefaultMemTableSize
	}
	if o.RestoreBatchSize > 0 && uint64(o.RestoreBatchSize) > mem {
		errs = append(errs, fmt.Errorf("state: Options.RestoreBatchSize %d exceeds MemTableSize %d", o.RestoreBatchSize, mem))
	}
	return errors.Join(errs...)
}

// pebbleOptions translates o, with defaults applied, into Pebble options tuned
// for small values read and rewritten at random: bloom filters on every level
// (point reads of absent keys skip sstables), the latest stable format, and
// Pebble's defaults for the WAL (enabled), L0 thresholds and compactions.
//
// Pebble writes through a watchFS and reports background errors to h, so
// that any write fault fails the store (see FailedError).
func (o *Options) pebbleOptions(cache *pebble.Cache, h *health) *pebble.Options {
	po := &pebble.Options{
		FS:                 &watchFS{FS: o.FS, h: h},
		Cache:              cache,
		MemTableSize:       o.MemTableSize,
		Logger:             o.Logger,
		FormatMajorVersion: pebble.FormatNewest,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { h.fail(fmt.Errorf("background: %w", err)) },
			// Pebble's default calls Logger.Fatalf, on whatever goroutine
			// found the damage (a compaction's, often): the process died.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				h.fail(fmt.Errorf("data corruption in %s: %w", info.Path, info.Details))
			},
		},
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	po.EnsureDefaults()
	return po
}

// quietLogger drops Pebble's informational lines (one per flush, compaction
// and WAL recovery, for every partition) and passes errors on. Its Fatalf
// panics with a *PebbleFatalError instead of exiting the process: in a call
// of the store the panic is recovered and fails the store (see FailedError).
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}

func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}

func (quietLogger) Fatalf(format string, args ...any) {
	panic(&PebbleFatalError{Msg: fmt.Sprintf(format, args...)})
}

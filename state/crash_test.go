package state

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The crash tests run random transactions and restores against a store on
// Pebble's crashable in-memory filesystem, take crash clones (only synced
// data survives, plus a random share of unsynced blocks and directory
// entries), reopen each clone and check that its contents are exactly the
// model state at the checkpoint the reopened store claims: data and
// checkpoint are atomic. With Sync, the claim must also be at least the last
// checkpoint whose Commit returned before the crash.

// snapshot is the model state at one checkpoint.
type snapshot struct {
	data   map[string]string
	inputs map[string]int64
}

type crashCfg struct {
	sync       bool
	adopt      bool // continue from some crash clones (restart after crash)
	concurrent bool // take clones from another goroutine, at arbitrary moments
	deferred   bool // commit with CommitDeferred, apply at random moments
	ops        int
}

func TestCrashConsistency(t *testing.T) {
	ops := 300
	if testing.Short() {
		ops = 100
	}
	for _, sync := range []bool{false, true} {
		for _, mode := range []string{"inline", "concurrent", "deferred"} {
			cfg := crashCfg{sync: sync, adopt: mode != "concurrent", concurrent: mode == "concurrent", deferred: mode == "deferred", ops: ops}
			t.Run(fmt.Sprintf("sync=%v/%s", sync, mode), func(t *testing.T) {
				t.Parallel()
				runCrash(t, cfg, time.Now().UnixNano())
			})
		}
	}
}

// crashOpts are small enough for memtable flushes, WAL rotations and
// compactions to happen during the test.
func crashOpts(fs vfs.FS, sync bool) *Options {
	return &Options{FS: fs, Sync: sync, MemTableSize: 64 << 10, CacheSize: 1 << 20, RestoreBatchSize: 4 << 10}
}

func runCrash(t *testing.T, cfg crashCfg, seed int64) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	fs := vfs.NewCrashableMem()
	s, err := Open("db", crashOpts(fs, cfg.sync))
	must(t, err)
	tbl := NewTable[item](s, "t/", itemCodec{}, 20)

	// history[n] is the model at checkpoint ChangelogOffset n. Strings are
	// shared between snapshots, so each costs a map of headers.
	var mu sync.Mutex // history is read by concurrent verification only after the run
	history := map[int64]snapshot{0: {data: map[string]string{}}}
	model := map[string]string{}
	inputs := map[string]int64(nil)
	var next int64             // next changelog offset
	var committed atomic.Int64 // last checkpoint whose Commit (or FinishRestore) returned
	var pendCP int64           // checkpoint CommitDeferred left pending (0: none)
	// commit commits at checkpoint next: at once, or (deferred) pending
	// until ApplyPending or the next commit or restore. Only an applied
	// checkpoint must survive a crash (with Sync).
	commit := func(cp Checkpoint) {
		if !cfg.deferred {
			must(t, s.Commit(cp))
			committed.Store(cp.ChangelogOffset)
			return
		}
		must(t, s.CommitDeferred(cp))
		if pendCP != 0 {
			committed.Store(pendCP) // applied first
		}
		pendCP = cp.ChangelogOffset
		if rng.IntN(3) == 0 {
			must(t, s.ApplyPending())
			committed.Store(pendCP)
			pendCP = 0
		}
	}

	type clone struct {
		fs    *vfs.MemFS
		minCP int64
	}
	var clones []clone
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if cfg.concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crng := rand.New(rand.NewPCG(uint64(seed), 1))
			for len(clones) < 40 { // each costs a Pebble open to verify
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(crng.IntN(3000)) * time.Microsecond):
				}
				min := committed.Load()
				c := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: []int{0, 10, 50, 100}[crng.IntN(4)], RNG: crng})
				clones = append(clones, clone{c, min})
			}
		}()
	}

	record := func(cp int64) {
		mu.Lock()
		history[cp] = snapshot{data: maps.Clone(model), inputs: maps.Clone(inputs)}
		mu.Unlock()
	}
	value := func(key string) string {
		n := rng.IntN(200)
		if rng.IntN(20) == 0 {
			n = 5000 // spans WAL blocks
		}
		return fmt.Sprintf("%s@%d:%s", key, next, strings.Repeat("x", n))
	}

	crashes, rolledBack := 0, 0
	for op := 0; op < cfg.ops; op++ {
		switch r := rng.IntN(100); {
		case r < 80: // a transaction, raw writes and table writes
			pending := maps.Clone(model)
			for range 1 + rng.IntN(20) {
				k := fmt.Sprintf("k%03d", rng.IntN(150))
				if rng.IntN(2) == 0 {
					k = fmt.Sprintf("t/%03d", rng.IntN(150))
				}
				del := rng.IntN(5) == 0
				if strings.HasPrefix(k, "t/") {
					if del {
						tbl.Delete(k[2:])
						delete(pending, k)
					} else {
						it := &item{N: next, Name: value(k)}
						tbl.Put(k[2:], it)
						enc, _ := itemCodec{}.Append(nil, it)
						pending[k] = string(enc)
					}
				} else if del {
					must(t, s.Txn().Delete([]byte(k)))
					delete(pending, k)
				} else {
					v := value(k)
					must(t, s.Txn().Set([]byte(k), []byte(v)))
					pending[k] = v
				}
				next++
			}
			if rng.IntN(10) == 0 {
				s.Abort()
				continue
			}
			must(t, s.Prepare())
			var n int64
			must(t, s.Txn().Writes(func(k, v []byte) error { n++; return nil }))
			next++ // the Kafka transaction marker
			model = pending
			inputs = map[string]int64{"in": int64(op)}
			record(next)
			commit(Checkpoint{ChangelogOffset: next, InputOffsets: inputs})
		case r < 85: // a restore of a few changelog records
			if pendCP != 0 { // the first Restore applies it
				committed.Store(pendCP)
				pendCP = 0
			}
			for range 1 + rng.IntN(40) {
				k := fmt.Sprintf("k%03d", rng.IntN(150))
				if rng.IntN(5) == 0 {
					delete(model, k)
					must(t, s.Restore([]byte(k), nil, next))
				} else {
					v := value(k)
					model[k] = v
					must(t, s.Restore([]byte(k), []byte(v), next))
				}
				next++
				record(next) // any record may end a restore batch
			}
			must(t, s.FinishRestore())
			committed.Store(next)
		default: // an empty commit: only the checkpoint moves
			next++
			inputs = map[string]int64{"in": int64(op)}
			record(next)
			commit(Checkpoint{ChangelogOffset: next, InputOffsets: inputs})
		}

		if cfg.concurrent || rng.IntN(8) != 0 {
			continue
		}
		crashes++
		c := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: []int{0, 10, 50, 100}[rng.IntN(4)], RNG: rng})
		claimed := verifyCrash(t, c, cfg.sync, committed.Load(), history)
		if claimed < committed.Load() {
			rolledBack++
		}
		if !cfg.adopt || rng.IntN(3) != 0 {
			continue
		}
		// Restart from the crash: the store goes back to what it claims.
		must(t, s.Close())
		pendCP = 0
		fs = c
		s, err = Open("db", crashOpts(fs, cfg.sync))
		must(t, err)
		tbl = NewTable[item](s, "t/", itemCodec{}, 20)
		snap := history[claimed]
		model, inputs = maps.Clone(snap.data), snap.inputs
		committed.Store(claimed)
		for cp := range history {
			if cp > claimed {
				delete(history, cp)
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, c := range clones {
		if verifyCrash(t, c.fs, cfg.sync, c.minCP, history) < c.minCP {
			rolledBack++
		}
	}
	flushes := s.Metrics().Pebble.Flush.Count
	must(t, s.Close())
	t.Logf("%d ops, %d checkpoints, %d inline crashes, %d concurrent clones, %d went back (lost applied batches), %d flushes since last open",
		cfg.ops, next, crashes, len(clones), rolledBack, flushes)
}

// verifyCrash opens a crash clone and checks it against the model at the
// checkpoint it claims, which with Sync must be at least minCP.
func verifyCrash(t *testing.T, fs *vfs.MemFS, sync bool, minCP int64, history map[int64]snapshot) int64 {
	t.Helper()
	s, err := Open("db", crashOpts(fs, sync))
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	cp := s.Checkpoint()
	want, ok := history[cp.ChangelogOffset]
	if !ok {
		t.Fatalf("reopened store claims checkpoint %v, which was never committed", cp)
	}
	if sync && cp.ChangelogOffset < minCP {
		t.Fatalf("Sync: reopened at checkpoint %d, but %d was committed", cp.ChangelogOffset, minCP)
	}
	if !maps.Equal(cp.InputOffsets, want.inputs) {
		t.Fatalf("checkpoint %v: input offsets %v, want %v", cp, cp.InputOffsets, want.inputs)
	}
	got := map[string]string{}
	must(t, s.Txn().Iterate(nil, func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	}))
	if !maps.Equal(got, want.data) {
		for k, v := range want.data {
			if got[k] != v {
				t.Errorf("key %s: got %.30q, want %.30q", k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want.data[k]; !ok {
				t.Errorf("key %s: got %.30q, want absent", k, got[k])
			}
		}
		t.Fatalf("contents differ from the model at checkpoint %v (%d vs %d keys)", cp, len(got), len(want.data))
	}
	return cp.ChangelogOffset
}

package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// openMem opens a store in dir on fs (a new in-memory FS if nil).
func openMem(t testing.TB, fs vfs.FS, o Options) *Store {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	o.FS = fs
	s, err := Open("db", &o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// get reads key through the transaction, as a string ("<absent>" if absent).
func get(t testing.TB, txn *Txn, key string) string {
	t.Helper()
	v, ok, err := txn.Get([]byte(key))
	must(t, err)
	if !ok {
		return "<absent>"
	}
	return string(v)
}

func committed(t testing.TB, s *Store, key string) string {
	t.Helper()
	v, ok, err := s.Get([]byte(key))
	must(t, err)
	if !ok {
		return "<absent>"
	}
	return string(v)
}

// dump renders every key of the store as the transaction sees it.
func dump(t testing.TB, txn *Txn, prefix string) string {
	t.Helper()
	var b strings.Builder
	must(t, txn.Iterate([]byte(prefix), func(k, v []byte) error {
		fmt.Fprintf(&b, "%q=%q ", k, v)
		return nil
	}))
	return strings.TrimSpace(b.String())
}

func writes(t testing.TB, txn *Txn) string {
	t.Helper()
	var b strings.Builder
	must(t, txn.Writes(func(k, v []byte) error {
		if v == nil {
			fmt.Fprintf(&b, "%q:del ", k)
		} else {
			fmt.Fprintf(&b, "%q=%q ", k, v)
		}
		return nil
	}))
	return strings.TrimSpace(b.String())
}

func cpAt(n int64) Checkpoint {
	return Checkpoint{ChangelogOffset: n, InputOffsets: map[string]int64{"orders": n * 10, "movements": n * 7}}
}

func TestOptionsValidate(t *testing.T) {
	c := pebble.NewCache(1 << 20)
	defer c.Unref()
	o := Options{Cache: c, CacheSize: -1, MemTableSize: 1 << 20, RestoreBatchSize: 2 << 20}
	err := o.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"both set", "negative", "exceeds MemTableSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Open("db", &Options{FS: vfs.NewMem(), CacheSize: -5}); err == nil {
		t.Fatal("Open accepted invalid options")
	}
	var d Options
	must(t, d.Validate())
	d.EnsureDefaults()
	if d.FS != vfs.Default || d.CacheSize != DefaultCacheSize || d.MemTableSize != DefaultMemTableSize ||
		d.Logger == nil || d.RestoreBatchSize != DefaultMemTableSize/4 {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestCheckpointEncoding(t *testing.T) {
	for _, cp := range []Checkpoint{
		{},
		{ChangelogOffset: 1},
		{ChangelogOffset: -1},
		cpAt(1 << 40),
		{ChangelogOffset: 5, InputOffsets: map[string]int64{"": 0, strings.Repeat("t", 249): 1 << 62}},
	} {
		b := appendCheckpoint(nil, cp)
		got, err := decodeCheckpoint(b)
		must(t, err)
		if !got.Equal(cp) {
			t.Errorf("round trip %v: got %v", cp, got)
		}
		for i := range b { // every truncation fails cleanly
			if _, err := decodeCheckpoint(b[:i]); err == nil {
				t.Errorf("%v truncated to %d bytes: no error", cp, i)
			}
		}
		if _, err := decodeCheckpoint(append(b, 0)); err == nil {
			t.Errorf("%v with a trailing byte: no error", cp)
		}
	}
	if _, err := decodeCheckpoint([]byte{3, 0, 0}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("version 3: %v", err)
	}
	// SyncedAt round-trips; a version 1 checkpoint (no SyncedAt) still reads.
	cp := Checkpoint{ChangelogOffset: 9, InputOffsets: map[string]int64{"in": 4}, SyncedAt: 1_764_000_000_000}
	if got, err := decodeCheckpoint(appendCheckpoint(nil, cp)); err != nil || !got.Equal(cp) || got.SyncedAt != cp.SyncedAt {
		t.Errorf("round trip of %v: %v, %v", cp, got, err)
	}
	v1 := []byte{1, 18, 1, 2, 'i', 'n', 8} // offset 9, {"in": 4}, as version 1 wrote it
	if got, err := decodeCheckpoint(v1); err != nil || got.ChangelogOffset != 9 || got.InputOffsets["in"] != 4 || got.SyncedAt != 0 {
		t.Errorf("version 1: %v, %v", got, err)
	}
	// Encoding is deterministic whatever the map order.
	a := appendCheckpoint(nil, cpAt(3))
	for range 10 {
		if b := appendCheckpoint(nil, cpAt(3)); !bytes.Equal(a, b) {
			t.Fatal("encoding not deterministic")
		}
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(appendCheckpoint(nil, cpAt(7)))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(appendCheckpoint(nil, Checkpoint{ChangelogOffset: 3, SyncedAt: 1_764_000_000_000}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		if got := appendCheckpoint(nil, cp); !bytes.Equal(got, b) {
			// Varints have one canonical form per value only if minimal;
			// decoding must at least round-trip the value.
			cp2, err := decodeCheckpoint(got)
			if err != nil || !cp2.Equal(cp) || cp2.SyncedAt != cp.SyncedAt {
				t.Fatalf("re-encoding %x: %v (synced %d) %v", b, cp2, cp2.SyncedAt, err)
			}
		}
	})
}

func TestTxnReadYourWrites(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer s.Close()
	txn := s.Txn()
	must(t, txn.Set([]byte("a"), []byte("1")))
	must(t, s.Commit(cpAt(1)))

	must(t, txn.Set([]byte("b"), []byte("2")))
	must(t, txn.Set([]byte("a"), []byte("1b")))
	must(t, txn.Set([]byte("e"), nil))
	if got := get(t, txn, "a"); got != "1b" {
		t.Errorf("txn a = %s", got)
	}
	if got := get(t, txn, "b"); got != "2" {
		t.Errorf("txn b = %s", got)
	}
	if v, ok, _ := txn.Get([]byte("e")); !ok || v == nil || len(v) != 0 {
		t.Errorf("txn e = %q %v, want empty non-nil", v, ok)
	}
	if got := committed(t, s, "a"); got != "1" {
		t.Errorf("committed a = %s", got)
	}
	if got := committed(t, s, "b"); got != "<absent>" {
		t.Errorf("committed b = %s", got)
	}
	must(t, txn.Delete([]byte("a")))
	if got := get(t, txn, "a"); got != "<absent>" {
		t.Errorf("txn a after delete = %s", got)
	}
	// Returned values are copies.
	v, _, _ := txn.Get([]byte("b"))
	v[0] = 'X'
	if got := get(t, txn, "b"); got != "2" {
		t.Errorf("Get did not copy: %s", got)
	}
	// Argument slices may be reused.
	k, val := []byte("k"), []byte("v1")
	must(t, txn.Set(k, val))
	k[0], val[1] = 'z', '9'
	if got := get(t, txn, "k"); got != "v1" {
		t.Errorf("Set retained its arguments: %s", got)
	}
}

func TestTxnWritesFinalValues(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer s.Close()
	txn := s.Txn()
	must(t, txn.Set([]byte("del-committed"), []byte("x")))
	must(t, s.Commit(cpAt(1)))
	if got := writes(t, txn); got != "" {
		t.Fatalf("writes after commit: %s", got)
	}

	ops := []struct {
		del      bool
		key, val string
	}{
		{false, "c", "1"}, {false, "c", "2"}, // set, set
		{false, "a", "1"}, {true, "a", ""}, // set, delete
		{true, "b", ""}, {false, "b", "3"}, // delete, set
		{false, "d", "1"}, {true, "d", ""}, {false, "d", "4"}, {false, "d", "5"}, // set, delete, set, set
		{true, "del-committed", ""}, {true, "del-committed", ""}, // delete twice
		{true, "never", ""}, // delete of an absent key
		{false, "empty", ""},
	}
	for _, op := range ops {
		if op.del {
			must(t, txn.Delete([]byte(op.key)))
		} else {
			must(t, txn.Set([]byte(op.key), []byte(op.val)))
		}
	}
	want := `"a":del "b"="3" "c"="2" "d"="5" "del-committed":del "empty"="" "never":del`
	if got := writes(t, txn); got != want {
		t.Errorf("writes:\n got %s\nwant %s", got, want)
	}
	if txn.Len() != 7 {
		t.Errorf("Len = %d, want 7", txn.Len())
	}
	// Writes is repeatable and does not consume the transaction.
	if got := writes(t, txn); got != want {
		t.Errorf("second writes: %s", got)
	}
	// An error from fn stops Writes and is returned.
	stop := errors.New("stop")
	n := 0
	if err := txn.Writes(func(k, v []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Writes error: %v after %d calls", err, n)
	}
	must(t, s.Commit(cpAt(2)))
	if got := dump(t, txn, ""); got != `"b"="3" "c"="2" "d"="5" "empty"=""` {
		t.Errorf("after commit: %s", got)
	}
}

func TestTxnIterate(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer s.Close()
	txn := s.Txn()
	for _, k := range []string{"a", "ab", "ab\xff", "abc", "ac", "b", "\xff\xff", "\xff\xff\x01"} {
		must(t, txn.Set([]byte(k), []byte("c:"+k)))
	}
	must(t, s.Commit(cpAt(1)))
	must(t, txn.Set([]byte("ab"), []byte("t:ab")))   // overwrite committed
	must(t, txn.Delete([]byte("abc")))               // hide committed
	must(t, txn.Set([]byte("abd"), []byte("t:abd"))) // new
	must(t, txn.Set([]byte("aa"), []byte("t:aa")))   // new, outside "ab"

	for _, tc := range []struct{ prefix, want string }{
		{"ab", `"ab"="t:ab" "abd"="t:abd" "ab\xff"="c:ab\xff"`},
		{"a", `"a"="c:a" "aa"="t:aa" "ab"="t:ab" "abd"="t:abd" "ab\xff"="c:ab\xff" "ac"="c:ac"`},
		{"abc", ``},
		{"\xff\xff", `"\xff\xff"="c:\xff\xff" "\xff\xff\x01"="c:\xff\xff\x01"`},
		{"", `"a"="c:a" "aa"="t:aa" "ab"="t:ab" "abd"="t:abd" "ab\xff"="c:ab\xff" "ac"="c:ac" "b"="c:b" "\xff\xff"="c:\xff\xff" "\xff\xff\x01"="c:\xff\xff\x01"`},
	} {
		if got := dump(t, txn, tc.prefix); got != tc.want {
			t.Errorf("Iterate(%q):\n got %s\nwant %s", tc.prefix, got, tc.want)
		}
	}
	s.Abort()
	if got := dump(t, txn, "ab"); got != `"ab"="c:ab" "abc"="c:abc" "ab\xff"="c:ab\xff"` {
		t.Errorf("committed only: %s", got)
	}
	stop := errors.New("stop")
	if err := txn.Iterate(nil, func(k, v []byte) error { return stop }); err != stop {
		t.Errorf("Iterate error = %v", err)
	}
	if err := txn.Iterate([]byte{0}, func(k, v []byte) error { return nil }); !errors.Is(err, ErrReservedKey) {
		t.Errorf("Iterate reserved prefix = %v", err)
	}
}

func TestAbortDiscards(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer s.Close()
	txn := s.Txn()
	must(t, txn.Set([]byte("a"), []byte("1")))
	must(t, s.Commit(cpAt(1)))
	must(t, txn.Set([]byte("a"), []byte("2")))
	must(t, txn.Set([]byte("b"), []byte("2")))
	s.Abort()
	if txn.Len() != 0 || writes(t, txn) != "" {
		t.Errorf("txn not empty after Abort: %d", txn.Len())
	}
	if got := dump(t, txn, ""); got != `"a"="1"` {
		t.Errorf("after abort: %s", got)
	}
	must(t, s.Commit(cpAt(2))) // the aborted writes do not come back
	if got := dump(t, txn, ""); got != `"a"="1"` || !s.Checkpoint().Equal(cpAt(2)) {
		t.Errorf("after empty commit: %s %v", got, s.Checkpoint())
	}
}

func TestCommitPersistsAndReopen(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			fs := vfs.NewMem()
			s := openMem(t, fs, Options{Sync: sync})
			if cp := s.Checkpoint(); !cp.Equal(Checkpoint{}) {
				t.Fatalf("new store checkpoint %v", cp)
			}
			txn := s.Txn()
			must(t, txn.Set([]byte("a"), []byte("1")))
			must(t, txn.Set([]byte("b"), []byte("2")))
			cp := cpAt(5)
			must(t, s.Commit(cp))
			cp.InputOffsets["orders"] = 999 // the store keeps its own copy
			if got := s.Checkpoint(); !got.Equal(cpAt(5)) {
				t.Fatalf("checkpoint %v", got)
			}
			got := s.Checkpoint()
			got.InputOffsets["orders"] = 1 // and hands out copies
			if !s.Checkpoint().Equal(cpAt(5)) {
				t.Fatal("Checkpoint returned the store's own map")
			}
			must(t, txn.Delete([]byte("a")))
			must(t, s.Commit(cpAt(6)))
			must(t, txn.Set([]byte("c"), []byte("uncommitted")))
			must(t, s.Close())
			if err := s.Close(); !errors.Is(err, ErrClosed) {
				t.Errorf("second Close: %v", err)
			}

			s = openMem(t, fs, Options{Sync: sync})
			defer s.Close()
			if got := s.Checkpoint(); !got.Equal(cpAt(6)) {
				t.Errorf("reopened checkpoint %v", got)
			}
			if got := dump(t, s.Txn(), ""); got != `"b"="2"` {
				t.Errorf("reopened contents: %s", got)
			}
		})
	}
}

func TestReservedKeys(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer s.Close()
	txn := s.Txn()
	for _, err := range []error{
		txn.Set([]byte("\x00checkpoint"), []byte("x")),
		txn.Delete([]byte("\x00x")),
		s.Restore([]byte("\x00checkpoint"), nil, 0),
	} {
		if !errors.Is(err, ErrReservedKey) {
			t.Errorf("got %v, want ErrReservedKey", err)
		}
	}
	// The empty key is refused too (TestEmptyKeyRefused).
}

func TestRestore(t *testing.T) {
	fs := vfs.NewMem()
	// RestoreBatchSize 100 bytes: a batch every few records.
	s := openMem(t, fs, Options{RestoreBatchSize: 100})
	must(t, s.Txn().Set([]byte("old"), []byte("x")))
	must(t, s.Commit(Checkpoint{ChangelogOffset: 10, InputOffsets: map[string]int64{"in": 3}}))

	if err := s.Restore([]byte("k"), []byte("v"), 9); !errors.As(err, new(*RestoreOrderError)) {
		t.Fatalf("offset below checkpoint: %v", err)
	}
	off := int64(10)
	for i := range 20 {
		must(t, s.Restore([]byte(fmt.Sprintf("k%02d", i)), []byte(strings.Repeat("v", 20)), off))
		off += 2 // gaps are fine
		if cp := s.Checkpoint(); cp.ChangelogOffset > off || cp.InputOffsets["in"] != 3 {
			t.Fatalf("checkpoint %v after offset %d", cp, off-2)
		}
	}
	if cp := s.Checkpoint(); cp.ChangelogOffset <= 10 {
		t.Errorf("no intermediate batch applied: %v", cp)
	}
	if err := s.Restore([]byte("k"), nil, off-2); !errors.As(err, new(*RestoreOrderError)) {
		t.Fatalf("repeated offset: %v", err)
	}
	must(t, s.Restore([]byte("k00"), nil, off)) // a delete
	must(t, s.Restore([]byte("old"), []byte{}, off+1))
	if err := s.Commit(cpAt(100)); !errors.Is(err, ErrRestoreInProgress) {
		t.Errorf("Commit during restore: %v", err)
	}
	if err := s.Prepare(); !errors.Is(err, ErrRestoreInProgress) {
		t.Errorf("Prepare during restore: %v", err)
	}
	must(t, s.FinishRestore())
	want := Checkpoint{ChangelogOffset: off + 2, InputOffsets: map[string]int64{"in": 3}}
	if cp := s.Checkpoint(); !cp.Equal(want) {
		t.Errorf("checkpoint %v, want %v", cp, want)
	}
	if got := committed(t, s, "k00"); got != "<absent>" {
		t.Errorf("k00 = %s", got)
	}
	if got := committed(t, s, "old"); got != "" {
		t.Errorf("old = %q", got)
	}
	if got := committed(t, s, "k19"); got != strings.Repeat("v", 20) {
		t.Errorf("k19 = %s", got)
	}
	if m := s.Metrics(); m.RestoredRecords != 22 {
		t.Errorf("RestoredRecords = %d", m.RestoredRecords)
	}

	must(t, s.Txn().Set([]byte("x"), []byte("y")))
	if err := s.Restore([]byte("k"), nil, off+5); !errors.Is(err, ErrTxnOpen) {
		t.Errorf("Restore with open txn: %v", err)
	}
	s.Abort()

	// Buffered records not applied by FinishRestore are lost on Close, and
	// the checkpoint says so.
	must(t, s.Restore([]byte("lost"), []byte("x"), off+10))
	must(t, s.Close())
	s = openMem(t, fs, Options{})
	defer s.Close()
	if cp := s.Checkpoint(); !cp.Equal(want) {
		t.Errorf("reopened checkpoint %v, want %v", cp, want)
	}
	if got := committed(t, s, "lost"); got != "<absent>" {
		t.Errorf("lost = %s", got)
	}
}

func TestWipe(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, Options{})
	must(t, s.Wipe()) // empty store
	txn := s.Txn()
	for i := range 1000 {
		must(t, txn.Set([]byte(fmt.Sprintf("k%04d", i)), []byte("v")))
	}
	must(t, txn.Set([]byte("\xff\xff\xff"), []byte("last")))
	must(t, s.Commit(cpAt(3)))
	must(t, txn.Set([]byte("pending"), []byte("x")))
	must(t, s.Wipe())
	if txn.Len() != 0 {
		t.Error("Wipe kept the transaction")
	}
	if got := dump(t, txn, ""); got != "" {
		t.Errorf("after wipe: %.100s", got)
	}
	if cp := s.Checkpoint(); !cp.Equal(Checkpoint{}) {
		t.Errorf("checkpoint after wipe: %v", cp)
	}
	must(t, s.Restore([]byte("a"), []byte("1"), 0))
	must(t, s.FinishRestore())
	must(t, s.Close())
	s = openMem(t, fs, Options{})
	defer s.Close()
	if got := dump(t, s.Txn(), ""); got != `"a"="1"` || s.Checkpoint().ChangelogOffset != 1 {
		t.Errorf("reopened after wipe: %s %v", got, s.Checkpoint())
	}
}

// TestWipeCompacted wipes, again and again, a store whose keys Pebble has
// compacted already (an earlier wipe compacts): nothing may stay. Found by
// review: with the range deletion starting at the empty key, a -race
// build (Pebble's invariant checks on) kept keys it covered, typically the
// last, in a few dozen rounds.
func TestWipeCompacted(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, Options{})
	defer func() { _ = s.Close() }()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var off int64
		for range 1 + rng.IntN(5) {
			must(t, s.Restore(fmt.Appendf(nil, "r%02d", rng.IntN(12)), []byte("v"), off))
			off++
		}
		must(t, s.FinishRestore())
		if rng.IntN(2) == 0 {
			must(t, s.Close())
			s = openMem(t, fs, Options{})
		}
		must(t, s.Wipe())
		if got := dump(t, s.Txn(), ""); got != "" {
			t.Fatalf("round %d: Wipe left %s", round, got)
		}
	}
}

// TestEmptyKeyRefused: no empty key is stored (ErrEmptyKey).
func TestEmptyKeyRefused(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer func() { _ = s.Close() }()
	for name, err := range map[string]error{
		"Txn.Set": s.Txn().Set(nil, []byte("v")), "Txn.Delete": s.Txn().Delete([]byte{}), "Restore": s.Restore(nil, []byte("v"), 0),
	} {
		if !errors.Is(err, ErrEmptyKey) {
			t.Errorf("%s of an empty key: %v, want ErrEmptyKey", name, err)
		}
	}
}

// TestIteratePanicClosesIterator: a panic of Iterate's callback (the
// caller's, as topology.Query recovers) leaves no Pebble iterator open,
// which would pin Pebble's files and fail Close.
func TestIteratePanicClosesIterator(t *testing.T) {
	s := openMem(t, nil, Options{})
	must(t, s.Txn().Set([]byte("a"), []byte("1")))
	must(t, s.Commit(cpAt(1)))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the callback's panic did not reach the caller")
			}
		}()
		_ = s.Txn().Iterate(nil, func(k, v []byte) error { panic("fn") })
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close after a panicking Iterate: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := openMem(t, nil, Options{})
	txn := s.Txn()
	tbl := NewTable[item](s, "t/", itemCodec{}, 10)
	must(t, s.Close())
	checks := map[string]error{
		"Txn.Set":       txn.Set([]byte("a"), nil),
		"Txn.Delete":    txn.Delete([]byte("a")),
		"Txn.Iterate":   txn.Iterate(nil, func(k, v []byte) error { return nil }),
		"Txn.Writes":    txn.Writes(func(k, v []byte) error { return nil }),
		"Commit":        s.Commit(Checkpoint{}),
		"Prepare":       s.Prepare(),
		"Restore":       s.Restore([]byte("a"), nil, 0),
		"FinishRestore": s.FinishRestore(),
		"Wipe":          s.Wipe(),
		"Table.Flush":   tbl.Flush(),
	}
	_, _, checks["Get"] = s.Get([]byte("a"))
	_, _, checks["Txn.Get"] = txn.Get([]byte("a"))
	_, checks["Table.Get"] = tbl.Get("a")
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	s.Abort() // no-op
	if m := s.Metrics(); m.Pebble != nil || s.ApproxSize() != 0 {
		t.Error("Pebble metrics after Close")
	}
}

func TestSharedCache(t *testing.T) {
	c := pebble.NewCache(1 << 20)
	fs := vfs.NewMem()
	a, err := Open("a", &Options{FS: fs, Cache: c})
	must(t, err)
	b, err := Open("b", &Options{FS: fs, Cache: c})
	must(t, err)
	c.Unref() // the stores hold their own references
	must(t, a.Txn().Set([]byte("k"), []byte("a")))
	must(t, a.Commit(cpAt(1)))
	must(t, b.Txn().Set([]byte("k"), []byte("b")))
	must(t, b.Commit(cpAt(1)))
	if committed(t, a, "k") != "a" || committed(t, b, "k") != "b" {
		t.Error("stores share keys")
	}
	must(t, a.Close())
	must(t, b.Close())
}

// TestMetricsConcurrent reads metrics from another goroutine while the owner
// commits and closes (run with -race).
func TestMetricsConcurrent(t *testing.T) {
	s := openMem(t, nil, Options{})
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				_ = s.Metrics()
				_ = s.ApproxSize()
			}
		}
	}()
	for i := range 200 {
		must(t, s.Txn().Set([]byte(fmt.Sprint(i)), []byte("v")))
		must(t, s.Commit(cpAt(int64(i))))
	}
	must(t, s.Close())
	close(done)
	wg.Wait()
	if m := s.Metrics(); m.Commits != 200 {
		t.Errorf("Commits = %d", m.Commits)
	}
}

// TestLargeTxn commits transactions larger than the memtable (Pebble applies
// those as flushable batches, keeping the batch's memory) and reuses the Txn.
func TestLargeTxn(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs, Options{MemTableSize: 256 << 10})
	txn := s.Txn()
	val := bytes.Repeat([]byte("v"), 1000)
	for round := range 3 {
		for i := range 1000 { // ~1 MB
			must(t, txn.Set([]byte(fmt.Sprintf("k%04d", i)), append(val, byte(round))))
		}
		if got := get(t, txn, "k0500"); got[len(got)-1] != byte(round) {
			t.Fatalf("round %d: read own write failed", round)
		}
		must(t, s.Commit(cpAt(int64(round+1))))
	}
	must(t, s.Close())
	s = openMem(t, fs, Options{MemTableSize: 256 << 10})
	defer s.Close()
	n := 0
	must(t, s.Txn().Iterate(nil, func(k, v []byte) error {
		if v[len(v)-1] != 2 {
			t.Fatalf("%s: stale value", k)
		}
		n++
		return nil
	}))
	if n != 1000 || s.Checkpoint().ChangelogOffset != 3 {
		t.Errorf("%d keys, checkpoint %v", n, s.Checkpoint())
	}
}

// TestCommitDeferred runs one random history of transactions on two stores,
// one committing with Commit, the other with CommitDeferred (and
// ApplyPending at random moments): every read, through the transaction,
// the store, a table with a small cache and iteration, must see the same
// thing in both, and so must the stores reopened after Close.
func TestCommitDeferred(t *testing.T) {
	// A small cache is evicted all the time (reads go to Pebble); a large
	// one keeps every key (a stale entry would be read).
	for _, cached := range []int{5, 100} {
		t.Run(fmt.Sprintf("cache=%d", cached), func(t *testing.T) { testCommitDeferred(t, cached) })
	}
}

// checkTable verifies the table's counts of staged entries.
func checkTable(t *testing.T, op int, tbl *Table[item]) {
	t.Helper()
	committed, unflushed := 0, 0
	for _, e := range tbl.staged {
		if e.seq <= tbl.cseq {
			committed++
		}
		if e.seq > tbl.flushed {
			unflushed++
		}
	}
	if committed != tbl.ncommitted || unflushed != tbl.unflushed {
		t.Fatalf("op %d: %d committed and %d unflushed staged entries, counted %d and %d", op, committed, unflushed, tbl.ncommitted, tbl.unflushed)
	}
}

func testCommitDeferred(t *testing.T, cached int) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	fsA, fsB := vfs.NewMem(), vfs.NewMem()
	a, b := openMem(t, fsA, Options{}), openMem(t, fsB, Options{})
	ta := NewTable[item](a, "t/", itemCodec{}, cached)
	tb := NewTable[item](b, "t/", itemCodec{}, cached)
	var cp int64
	applied, pendingReads := 0, 0
	for op := range 3000 {
		key := fmt.Sprintf("%03d", rng.IntN(40))
		switch r := rng.IntN(100); {
		case r < 25:
			v := []byte(fmt.Sprintf("v%d", op))
			must(t, a.Txn().Set([]byte("k"+key), v))
			must(t, b.Txn().Set([]byte("k"+key), v))
		case r < 30:
			must(t, a.Txn().Delete([]byte("k"+key)))
			must(t, b.Txn().Delete([]byte("k"+key)))
		case r < 33: // a raw write over a table's key
			v, _ := itemCodec{}.Append(nil, &item{N: int64(op), Name: "raw"})
			must(t, a.Txn().Set([]byte("t/"+key), v))
			must(t, b.Txn().Set([]byte("t/"+key), v))
		case r < 50:
			ta.Put(key, &item{N: int64(op), Name: key})
			tb.Put(key, &item{N: int64(op), Name: key})
		case r < 53:
			ta.Delete(key)
			tb.Delete(key)
		case r < 63:
			cp++
			wa, wb := prepareCommit(t, a, cp), func() string {
				must(t, b.Prepare())
				w := writes(t, b.Txn())
				must(t, b.CommitDeferred(cpAt(cp)))
				return w
			}()
			if wa != wb {
				t.Fatalf("op %d: changelogs differ:\n%s\n%s", op, wa, wb)
			}
			if !b.Pending() {
				t.Fatal("CommitDeferred left nothing pending")
			}
			if !a.Checkpoint().Equal(b.Checkpoint()) {
				t.Fatalf("op %d: checkpoints %v and %v", op, a.Checkpoint(), b.Checkpoint())
			}
		case r < 66:
			a.Abort()
			b.Abort()
		case r < 72:
			must(t, b.ApplyPending())
			applied++
		case r < 80:
			if b.Pending() {
				pendingReads++
			}
			if ga, gb := get(t, a.Txn(), "k"+key), get(t, b.Txn(), "k"+key); ga != gb {
				t.Fatalf("op %d: Txn.Get(k%s) = %s and %s", op, key, ga, gb)
			}
			if ga, gb := committed(t, a, "k"+key), committed(t, b, "k"+key); ga != gb {
				t.Fatalf("op %d: Store.Get(k%s) = %s and %s", op, key, ga, gb)
			}
		case r < 95:
			if b.Pending() {
				pendingReads++
			}
			if ga, gb := tget(t, ta, key), tget(t, tb, key); ga != gb {
				t.Fatalf("op %d: Table.Get(%s) = %s and %s", op, key, ga, gb)
			}
			checkTable(t, op, tb)
		default:
			must(t, a.Prepare())
			must(t, b.Prepare())
			if da, db := dump(t, a.Txn(), ""), dump(t, b.Txn(), ""); da != db {
				t.Fatalf("op %d: Iterate:\n%s\n%s", op, da, db)
			}
		}
	}
	t.Logf("%d ApplyPending calls, %d reads while a transaction was pending", applied, pendingReads)
	// Committed but not applied: Close writes it.
	must(t, a.Prepare())
	must(t, b.Prepare())
	prepareCommit(t, a, cp+1)
	must(t, b.CommitDeferred(cpAt(cp+1)))
	must(t, a.Close())
	must(t, b.Close())
	a, b = openMem(t, fsA, Options{}), openMem(t, fsB, Options{})
	defer a.Close()
	defer b.Close()
	if !a.Checkpoint().Equal(b.Checkpoint()) || !b.Checkpoint().Equal(cpAt(cp+1)) {
		t.Fatalf("reopened checkpoints %v and %v, want %v", a.Checkpoint(), b.Checkpoint(), cpAt(cp+1))
	}
	if da, db := dump(t, a.Txn(), ""), dump(t, b.Txn(), ""); da != db {
		t.Fatalf("reopened:\n%s\n%s", da, db)
	}
}

// TestCommitDeferredCrash: a crash before ApplyPending leaves the previous
// checkpoint and its contents; Wipe drops what is pending; Restore applies
// it first.
func TestCommitDeferredCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs, Options{Sync: true})
	must(t, s.Txn().Set([]byte("a"), []byte("1")))
	must(t, s.Commit(cpAt(1)))
	must(t, s.Txn().Set([]byte("a"), []byte("2")))
	must(t, s.CommitDeferred(cpAt(2)))
	if got := committed(t, s, "a"); got != "2" {
		t.Fatalf("pending value not read: %s", got)
	}
	c := openMem(t, fs.CrashClone(vfs.CrashCloneCfg{}), Options{Sync: true})
	if got, cp := committed(t, c, "a"), c.Checkpoint(); got != "1" || !cp.Equal(cpAt(1)) {
		t.Fatalf("crash before ApplyPending: a=%s at %v, want 1 at %v", got, cp, cpAt(1))
	}
	must(t, c.Close())

	must(t, s.Restore([]byte("b"), []byte("r"), 2)) // applies the pending one first
	if s.Pending() {
		t.Fatal("Restore left a transaction pending")
	}
	must(t, s.FinishRestore())
	c = openMem(t, fs.CrashClone(vfs.CrashCloneCfg{}), Options{Sync: true})
	if got := dump(t, c.Txn(), ""); got != `"a"="2" "b"="r"` || c.Checkpoint().ChangelogOffset != 3 {
		t.Fatalf("after Restore: %s at %v", got, c.Checkpoint())
	}
	must(t, c.Close())

	tbl := NewTable[item](s, "t/", itemCodec{}, 10)
	must(t, s.Txn().Set([]byte("a"), []byte("3")))
	tbl.Put("x", &item{N: 1})
	must(t, s.Prepare())
	must(t, s.CommitDeferred(cpAt(4)))
	must(t, s.Wipe())
	if s.Pending() || committed(t, s, "a") != "<absent>" || tget(t, tbl, "x") != "<absent>" {
		t.Fatal("Wipe kept the pending transaction")
	}
	must(t, s.Close())
}

// TestKeysAfter steps a cursor through a key space: keys after the cursor,
// at most limit, and whether more follow, over committed and pending
// writes, not past the prefix.
func TestKeysAfter(t *testing.T) {
	s := openMem(t, nil, Options{})
	defer func() { _ = s.Close() }()
	txn := s.Txn()
	for _, k := range []string{"p/a", "p/b", "p/c", "q/x"} {
		must(t, txn.Set([]byte(k), []byte("v")))
	}
	must(t, s.Commit(cpAt(1)))
	must(t, txn.Set([]byte("p/d"), []byte("v"))) // pending
	for _, c := range []struct {
		after string
		limit int
		want  []string
		more  bool
	}{
		{"", 2, []string{"a", "b"}, true},
		{"b", 2, []string{"c", "d"}, false},
		{"b", 1, []string{"c"}, true},
		{"d", 5, nil, false},
	} {
		keys, more, err := txn.KeysAfter("p/", c.after, c.limit)
		if err != nil || !slices.Equal(keys, c.want) || more != c.more {
			t.Errorf("after %q, limit %d: %v %t %v, want %v %t", c.after, c.limit, keys, more, err, c.want, c.more)
		}
	}
}

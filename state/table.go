package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Codec encodes and decodes the values of a Table.
type Codec[V any] interface {
	// Append appends the encoding of *v to dst and returns the result.
	Append(dst []byte, v *V) ([]byte, error)
	// Decode decodes b into *v, which is zero. It must not retain b, and must
	// return an error, never panic, on malformed bytes.
	Decode(b []byte, v *V) error
}

// table is what a Store needs from a Table[V], whatever V.
type table interface {
	tablePrefix() string
	owns(key []byte) bool
	flush() error
	dirty() bool   // staged values not yet flushed into the transaction
	pending() bool // staged values, flushed or not
	commit(deferred bool)
	settle()
	abort()
	dropCache()
	invalidate(key []byte)
}

// Table is a typed view of the keys of a Store under a prefix: the Pebble key
// of key is prefix+key and its value is encoded by a Codec.
//
// Put and Delete stage values in a map (the table's part of the open
// transaction); Store.Prepare encodes them, once, into the transaction;
// Store.Commit then moves them into a bounded cache of decoded committed
// values (CLOCK eviction, see cache), and Store.Abort drops them. The cache is
// dropped by FinishRestore and Wipe and is never filled from uncommitted
// data, so it always holds committed values.
//
// Values returned by Get are shared with the table: callers must not modify
// them. To change a value, copy it, modify the copy and Put it; a value passed
// to Put must not be modified afterwards either.
//
// A Table belongs to its Store's goroutine (see Store). Tables of one store
// must have prefixes none of which is a prefix of another.
type Table[V any] struct {
	s      *Store
	prefix string
	codec  Codec[V]

	staged    map[string]staged[V]
	seq       uint64 // Puts so far (staged[V].seq)
	flushed   uint64 // seq as of the last flush: entries up to it are in the transaction
	unflushed int    // staged entries not yet flushed
	// Staged entries with seq <= cseq (ncommitted of them) are values of a
	// transaction CommitDeferred committed: they serve reads like the cache
	// until settle moves them into it (when the store applies the
	// transaction), so that the commit itself does not wait for the move.
	cseq       uint64
	ncommitted int
	cache      *cache[V] // nil if maxCached == 0

	key  []byte     // scratch: prefix+key
	keys []keyed[V] // scratch: unflushed entries in key order
	val  []byte     // scratch: encoded value
}

// staged is a value written in the open transaction; v nil means deleted.
// It is flushed into the transaction if its seq is at most Table.flushed.
type staged[V any] struct {
	v   *V
	seq uint64
}

type keyed[V any] struct {
	key string
	v   *V
}

// NewTable registers and returns the table of the keys of s under prefix,
// caching up to maxCached decoded committed values (0 disables the cache). It
// panics if prefix starts with 0x00 (reserved), overlaps the prefix of
// another table of s, or if maxCached is negative.
func NewTable[V any](s *Store, prefix string, c Codec[V], maxCached int) *Table[V] {
	if strings.HasPrefix(prefix, "\x00") {
		panic(fmt.Sprintf("state: table prefix %q starts with reserved byte 0x00", prefix))
	}
	if maxCached < 0 {
		panic(fmt.Sprintf("state: table %q: negative maxCached %d", prefix, maxCached))
	}
	for _, o := range s.tables {
		p := o.tablePrefix()
		if strings.HasPrefix(p, prefix) || strings.HasPrefix(prefix, p) {
			panic(fmt.Sprintf("state: table prefix %q overlaps table prefix %q", prefix, p))
		}
	}
	t := &Table[V]{s: s, prefix: prefix, codec: c, staged: make(map[string]staged[V])}
	if maxCached > 0 {
		t.cache = newCache[V](maxCached)
	}
	s.tables = append(s.tables, t)
	return t
}

// Prefix returns the table's key prefix.
func (t *Table[V]) Prefix() string { return t.prefix }

func (t *Table[V]) tablePrefix() string { return t.prefix }

// Cached returns the number of decoded values (including known-absent keys)
// in the table's cache.
func (t *Table[V]) Cached() int {
	if t.cache == nil {
		return 0
	}
	return t.cache.len()
}

func (t *Table[V]) pebbleKey(key string) []byte {
	t.key = append(append(t.key[:0], t.prefix...), key...)
	return t.key
}

// Get returns the value of key as the open transaction sees it, or nil if it
// is absent: the staged value if key was written, else the cached committed
// value, else the value read from Pebble and decoded (cached if committed).
// The result must not be modified.
func (t *Table[V]) Get(key string) (*V, error) {
	if err := t.s.check(); err != nil {
		return nil, err
	}
	if e, ok := t.staged[key]; ok {
		return e.v, nil
	}
	if t.cache != nil {
		if v, ok := t.cache.get(key); ok {
			t.s.tableHits.Add(1)
			return v, nil
		}
	}
	t.s.tableMisses.Add(1)
	pk := t.pebbleKey(key)
	if t.s.txn.wrote(pk) {
		// A raw Txn write under our prefix: decode it, but do not cache
		// an uncommitted value.
		raw, ok, err := t.s.txn.getWritten(pk)
		if err != nil || !ok {
			return nil, err
		}
		return t.decode(key, raw)
	}
	t.s.pebbleGets.Add(1)
	raw, closer, err := t.s.get(pk)
	if errors.Is(err, pebble.ErrNotFound) {
		if t.cache != nil {
			t.cache.put(key, nil)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: table %q: get %q: %w", t.prefix, key, err)
	}
	v, err := t.decode(key, raw)
	_ = closer.Close()
	if err != nil {
		return nil, err
	}
	if t.cache != nil {
		t.cache.put(key, v)
	}
	return v, nil
}

func (t *Table[V]) decode(key string, raw []byte) (*V, error) {
	v := new(V)
	if err := t.codec.Decode(raw, v); err != nil {
		return nil, fmt.Errorf("state: table %q: decode %q: %w", t.prefix, key, err)
	}
	return v, nil
}

// Put stages key = v in the open transaction (v nil deletes). v is encoded
// by Prepare and must not be modified afterwards.
func (t *Table[V]) Put(key string, v *V) {
	if e, ok := t.staged[key]; !ok || e.seq <= t.flushed {
		t.unflushed++
		if ok && e.seq <= t.cseq { // a committed value, now shadowed: cache it
			t.ncommitted--
			if t.cache != nil {
				t.cache.put(key, e.v)
			}
		}
	}
	t.seq++
	t.staged[key] = staged[V]{v: v, seq: t.seq}
}

// Delete stages the deletion of key in the open transaction.
func (t *Table[V]) Delete(key string) { t.Put(key, nil) }

// Flush encodes the values staged since the last Flush into the transaction.
// Store.Prepare flushes every table.
func (t *Table[V]) Flush() error {
	if err := t.s.check(); err != nil {
		return err
	}
	return t.flush()
}

func (t *Table[V]) flush() error {
	if t.unflushed == 0 {
		return nil
	}
	// In key order: the batch, and the memtable it is applied to, insert
	// each key next to the one before (Pebble's skiplists reuse the splice
	// of the previous insert), which costs less than random order.
	// The entries are taken with their values (no second look-up), and
	// marked flushed all at once when every one is in the transaction.
	t.keys = t.keys[:0]
	for key, e := range t.staged {
		if e.seq > t.flushed {
			t.keys = append(t.keys, keyed[V]{key, e.v})
		}
	}
	slices.SortFunc(t.keys, func(a, b keyed[V]) int { return strings.Compare(a.key, b.key) })
	defer clear(t.keys) // do not pin the keys and values
	for _, e := range t.keys {
		key := e.key
		pk := t.pebbleKey(key)
		if isReserved(pk) {
			return fmt.Errorf("state: table %q: key %q: %w", t.prefix, key, ErrReservedKey)
		}
		if e.v == nil {
			if err := t.s.txn.del(pk); err != nil {
				return err
			}
		} else {
			var err error
			if t.val, err = t.codec.Append(t.val[:0], e.v); err != nil {
				return fmt.Errorf("state: table %q: encode %q: %w", t.prefix, key, err)
			}
			if err := t.s.txn.set(pk, t.val); err != nil {
				return err
			}
		}
	}
	t.flushed, t.unflushed = t.seq, 0
	if cap(t.val) > 64<<10 {
		t.val = nil // do not keep one huge value's buffer
	}
	return nil
}

func (t *Table[V]) owns(key []byte) bool { return strings.HasPrefix(string(key), t.prefix) }
func (t *Table[V]) dirty() bool          { return t.unflushed > 0 }
func (t *Table[V]) pending() bool        { return len(t.staged) > t.ncommitted }

// commit moves the staged values, now committed, into the cache; deferred,
// it only marks them committed (see cseq), for settle to move.
func (t *Table[V]) commit(deferred bool) {
	if deferred {
		t.cseq, t.ncommitted = t.seq, len(t.staged) // all flushed (not dirty)
		return
	}
	if t.cache != nil {
		for key, e := range t.staged {
			t.cache.put(key, e.v)
		}
	}
	t.clearStaged()
}

// settle moves the committed staged values (see cseq) into the cache.
func (t *Table[V]) settle() { t.dropCommitted(t.cache) }

// dropCommitted removes the committed staged values (see cseq), putting
// them into c unless it is nil.
func (t *Table[V]) dropCommitted(c *cache[V]) {
	if t.ncommitted == 0 {
		return
	}
	for key, e := range t.staged {
		if e.seq <= t.cseq {
			if c != nil {
				c.put(key, e.v)
			}
			delete(t.staged, key)
		}
	}
	t.ncommitted = 0
}

// abort drops the staged values of the open transaction, not the committed
// ones (see cseq).
func (t *Table[V]) abort() {
	if t.ncommitted == 0 {
		t.clearStaged()
		return
	}
	for key, e := range t.staged {
		if e.seq > t.cseq {
			delete(t.staged, key)
		}
	}
	t.unflushed = 0
}

func (t *Table[V]) clearStaged() {
	if len(t.staged) > 4096 {
		t.staged = make(map[string]staged[V])
	} else {
		clear(t.staged)
	}
	t.unflushed, t.ncommitted = 0, 0
}

// dropCache forgets every committed value the table holds: the cache and
// the committed staged values (see cseq).
func (t *Table[V]) dropCache() {
	t.dropCommitted(nil)
	if t.cache != nil {
		t.cache.clear()
	}
}

// invalidate forgets what the table staged or cached for the Pebble key pk,
// which a raw transaction write just replaced.
func (t *Table[V]) invalidate(pk []byte) {
	key := string(pk[len(t.prefix):])
	if e, ok := t.staged[key]; ok {
		if e.seq > t.flushed {
			t.unflushed--
		}
		if e.seq <= t.cseq {
			t.ncommitted--
		}
		delete(t.staged, key)
	}
	if t.cache != nil {
		t.cache.remove(key)
	}
}

// cache is a bounded cache of decoded values with CLOCK eviction (second
// chance, an approximation of LRU): a map from key to a slot of an array
// grown up to the bound, and a hand that sweeps the slots for a victim,
// sparing (once) those read since it last passed. A hit is one map look-up
// and one store to the slot; the LRU list it replaced also rewrote the links
// of two neighbours, memory the CPU cache rarely holds when the table is
// large. BenchmarkTableCache, side by side on a hot working set: 28-30 vs
// 31-38 ns per access, and slightly fewer misses. A nil value records a key
// known to be absent.
type cache[V any] struct {
	m     map[string]int32 // key -> its slot
	slots []cacheSlot[V]   // grown up to max, then reused
	free  []int32          // slots freed by remove, reused before evicting
	max   int
	hand  int
}

type cacheSlot[V any] struct {
	key string
	v   *V
	ref bool // read since the hand last passed
}

func newCache[V any](max int) *cache[V] {
	return &cache[V]{m: make(map[string]int32, min(max, 1<<16)), max: max}
}

func (c *cache[V]) len() int { return len(c.m) }

func (c *cache[V]) get(key string) (*V, bool) {
	i, ok := c.m[key]
	if !ok {
		return nil, false
	}
	s := &c.slots[i]
	s.ref = true
	return s.v, true
}

func (c *cache[V]) put(key string, v *V) {
	if i, ok := c.m[key]; ok {
		s := &c.slots[i]
		s.v, s.ref = v, true
		return
	}
	var i int
	switch {
	case len(c.free) > 0:
		i = int(c.free[len(c.free)-1])
		c.free = c.free[:len(c.free)-1]
	case len(c.slots) < c.max:
		i = len(c.slots)
		c.slots = append(c.slots, cacheSlot[V]{})
	default:
		i = c.victim()
	}
	c.slots[i] = cacheSlot[V]{key: key, v: v}
	c.m[key] = int32(i)
}

// victim frees and returns a slot of a full cache with no free slot (every
// slot in use): the first one the hand finds not read since its last pass,
// clearing the marks it passes over. It ends within two sweeps.
func (c *cache[V]) victim() int {
	for {
		i := c.hand
		c.hand++
		if c.hand == len(c.slots) {
			c.hand = 0
		}
		s := &c.slots[i]
		if !s.ref {
			delete(c.m, s.key)
			return i
		}
		s.ref = false
	}
}

func (c *cache[V]) remove(key string) {
	if i, ok := c.m[key]; ok {
		delete(c.m, key)
		c.slots[i] = cacheSlot[V]{}
		c.free = append(c.free, i)
	}
}

func (c *cache[V]) clear() {
	if len(c.m) == 0 {
		return
	}
	clear(c.m)
	clear(c.slots) // do not pin the values
	c.slots, c.free, c.hand = c.slots[:0], c.free[:0], 0
}

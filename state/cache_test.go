package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCacheAgainstModel: random puts, gets, removes and clears against a
// map of the last value put per key. The cache never returns a stale or
// removed value, holds at most max keys, and a key just put is there.
func TestCacheAgainstModel(t *testing.T) {
	for _, max := range []int{1, 2, 7, 64} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(max), 1))
			c := newCache[int](max)
			last := map[string]*int{}
			for op := range 20_000 {
				k := fmt.Sprint(rng.IntN(3 * max))
				switch r := rng.IntN(100); {
				case r < 45:
					var v *int
					if rng.IntN(10) > 0 {
						v = new(op)
					}
					c.put(k, v)
					last[k] = v
					if got, ok := c.get(k); !ok || got != v {
						t.Fatalf("op %d: %s just put is not there", op, k)
					}
				case r < 90:
					want, inModel := last[k]
					if got, ok := c.get(k); ok && (!inModel || got != want) {
						t.Fatalf("op %d: get %s returned a value that is not the last put", op, k)
					}
				case r < 99:
					c.remove(k)
					delete(last, k)
					if _, ok := c.get(k); ok {
						t.Fatalf("op %d: %s still there after remove", op, k)
					}
				default:
					c.clear()
					clear(last)
				}
				if c.len() > max || len(c.slots) > max {
					t.Fatalf("op %d: %d keys in %d slots, max %d", op, c.len(), len(c.slots), max)
				}
				if c.len()+len(c.free) != len(c.slots) {
					t.Fatalf("op %d: %d keys and %d free slots of %d", op, c.len(), len(c.free), len(c.slots))
				}
				for key, i := range c.m {
					if c.slots[i].key != key {
						t.Fatalf("op %d: map and slots disagree on %s", op, key)
					}
				}
			}
		})
	}
}

// TestCacheRemovedSlotReused: a slot freed by remove takes the next key;
// no live key is evicted while one is free.
func TestCacheRemovedSlotReused(t *testing.T) {
	c := newCache[int](4)
	for _, k := range []string{"a", "b", "c", "d"} {
		c.put(k, nil)
	}
	c.remove("d")
	c.put("e", nil)
	for _, k := range []string{"a", "b", "c", "e"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted while a slot was free", k)
		}
	}
}

// TestCacheSecondChance: a full cache evicts a key not read since the hand
// last passed, sparing those read.
func TestCacheSecondChance(t *testing.T) {
	c := newCache[int](4)
	for _, k := range []string{"a", "b", "c", "d"} {
		c.put(k, nil)
	}
	c.get("a")
	c.get("b")
	c.get("d")
	c.put("e", nil) // the hand spares a and b, takes c
	for k, want := range map[string]bool{"a": true, "b": true, "c": false, "d": true, "e": true} {
		if _, ok := c.get(k); ok != want {
			t.Errorf("after evicting for e: %s present %v, want %v", k, ok, want)
		}
	}
}

// BenchmarkTableCache compares the CLOCK cache with the LRU list it
// replaced (lruRef below), side by side, on the engine's access pattern:
// Zipf-skewed keys over 16,000 SKUs of a partition, 10,000 cached (the
// default state_cache), a miss puts the key. Run:
// go test -run X -bench TableCache ./state/
func BenchmarkTableCache(b *testing.B) {
	keys := make([]string, 16_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("SKU-%06d", i*6)
	}
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, uint64(len(keys)-1))
	seq := make([]string, 1<<20)
	for i := range seq {
		seq[i] = keys[zipf.Uint64()]
	}
	v := new(int)
	run := func(b *testing.B, get func(string) (*int, bool), put func(string, *int)) {
		misses := 0
		for i := range b.N {
			k := seq[i&(len(seq)-1)]
			if _, ok := get(k); !ok {
				misses++
				put(k, v)
			}
		}
		b.ReportMetric(float64(misses)/float64(b.N), "misses/op")
	}
	b.Run("lru", func(b *testing.B) { c := newLRURef[int](10_000); run(b, c.get, c.put) })
	b.Run("clock", func(b *testing.B) { c := newCache[int](10_000); run(b, c.get, c.put) })
}

// lruRef is the LRU (a map plus a doubly linked list) the tables used
// before the CLOCK cache, kept for BenchmarkTableCache.
type lruRef[V any] struct {
	max  int
	m    map[string]*lruRefEntry[V]
	root lruRefEntry[V]
}

type lruRefEntry[V any] struct {
	key        string
	v          *V
	prev, next *lruRefEntry[V]
}

func newLRURef[V any](max int) *lruRef[V] {
	c := &lruRef[V]{max: max, m: make(map[string]*lruRefEntry[V], min(max, 1<<16))}
	c.root.prev, c.root.next = &c.root, &c.root
	return c
}

func (c *lruRef[V]) unlink(e *lruRefEntry[V]) { e.prev.next, e.next.prev = e.next, e.prev }

func (c *lruRef[V]) pushFront(e *lruRefEntry[V]) {
	e.prev, e.next = &c.root, c.root.next
	e.prev.next, e.next.prev = e, e
}

func (c *lruRef[V]) get(key string) (*V, bool) {
	e, ok := c.m[key]
	if !ok {
		return nil, false
	}
	if c.root.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.v, true
}

func (c *lruRef[V]) put(key string, v *V) {
	var e *lruRefEntry[V]
	if len(c.m) >= c.max {
		e = c.root.prev
		c.unlink(e)
		delete(c.m, e.key)
	} else {
		e = new(lruRefEntry[V])
	}
	e.key, e.v = key, v
	c.m[key] = e
	c.pushFront(e)
}

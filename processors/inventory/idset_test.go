package inventory

import (
	"math/rand/v2"
	"testing"
)

// TestIDSetAgainstMap runs random adds, removes and look-ups against a Go
// map, over id distributions that stress the probing: random hashes, small
// integers (and 0, the empty-slot marker), and ids that all share a home
// slot under the set's own hash (long chains, removes in their middle).
func TestIDSetAgainstMap(t *testing.T) {
	for _, kind := range []string{"random", "small", "colliding"} {
		t.Run(kind, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(kind))))
			var s idSet
			ref := map[int64]bool{}
			var pool []int64
			switch kind {
			case "random":
				for range 5000 {
					pool = append(pool, int64(rng.Uint64()))
				}
			case "small":
				for i := range 3000 {
					pool = append(pool, int64(i)-10)
				}
			case "colliding":
				// A fixed seed and size, and ids whose home is one of the
				// last two slots: their probe chains wrap around the end.
				s.seed = 0x5DEECE66D
				s.grow()
				mask := uint64(len(s.slots) - 1)
				for x := uint64(1); len(pool) < 300; x++ {
					if h := s.home(x); h == mask || h == mask-1 {
						pool = append(pool, int64(x))
					}
				}
				pool = append(pool, 0)
			}
			for op := range 200_000 {
				id := pool[rng.IntN(len(pool))]
				switch rng.IntN(3) {
				case 0:
					if got, want := s.add(id), !ref[id]; got != want {
						t.Fatalf("op %d: add(%d) = %v, want %v", op, id, got, want)
					}
					ref[id] = true
				case 1:
					s.remove(id)
					delete(ref, id)
				case 2:
					if got := s.has(id); got != ref[id] {
						t.Fatalf("op %d: has(%d) = %v, want %v", op, id, got, ref[id])
					}
				}
				if s.Len() != len(ref) {
					t.Fatalf("op %d: Len %d, want %d", op, s.Len(), len(ref))
				}
			}
			for _, id := range pool {
				if s.has(id) != ref[id] {
					t.Fatalf("end: has(%d) = %v, want %v", id, s.has(id), ref[id])
				}
			}
			if len(s.slots) > 0 && 2*s.n > len(s.slots) {
				t.Fatalf("load above half: %d ids in %d slots", s.n, len(s.slots))
			}
		})
	}
}

// TestIDSetGrowsAndEmpties: growth keeps every id; removing all leaves
// every slot empty.
func TestIDSetGrowsAndEmpties(t *testing.T) {
	var s idSet
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int64, 100_000)
	for i := range ids {
		ids[i] = int64(rng.Uint64())
		if !s.add(ids[i]) {
			t.Fatalf("add %d: reported present", i)
		}
	}
	if s.Len() != len(ids) || len(s.slots) < 2*len(ids) {
		t.Fatalf("Len %d in %d slots, want %d ids at most half load", s.Len(), len(s.slots), len(ids))
	}
	for i, id := range ids {
		if !s.has(id) || s.add(id) {
			t.Fatalf("id %d lost after growth", i)
		}
	}
	for _, id := range ids {
		s.remove(id)
	}
	for i, x := range s.slots {
		if x != 0 {
			t.Fatalf("slot %d still holds %d after every id was removed", i, x)
		}
	}
	if s.Len() != 0 {
		t.Fatalf("Len %d after removing all", s.Len())
	}
}

// BenchmarkWindowSet compares the window's set with the Go map it
// replaced, side by side, in the window's steady state: 200,000 ids
// remembered (Config.DedupeMax), each operation claims a new id and drops
// the oldest. Run: go test -run X -bench WindowSet ./processors/inventory/
func BenchmarkWindowSet(b *testing.B) {
	const size = 200_000
	ring := make([]int64, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range ring {
		ring[i] = int64(rng.Uint64())
	}
	b.Run("map", func(b *testing.B) {
		m := make(map[int64]struct{})
		for _, id := range ring {
			m[id] = struct{}{}
		}
		b.ResetTimer()
		for i := range b.N {
			j := i % size
			delete(m, ring[j])
			id := int64(rng.Uint64())
			n := len(m)
			m[id] = struct{}{}
			if len(m) == n {
				b.Fatal("present")
			}
			ring[j] = id
		}
	})
	b.Run("idSet", func(b *testing.B) {
		var s idSet
		for _, id := range ring {
			s.add(id)
		}
		b.ResetTimer()
		for i := range b.N {
			j := i % size
			s.remove(ring[j])
			id := int64(rng.Uint64())
			if !s.add(id) {
				b.Fatal("present")
			}
			ring[j] = id
		}
	})
}

// Len and has serve the tests only: the window needs add and remove.

// Len returns the number of ids in the set.
func (s *idSet) Len() int {
	if s.zero {
		return s.n + 1
	}
	return s.n
}

// has reports whether id is in the set.
func (s *idSet) has(id int64) bool {
	x := uint64(id)
	if x == 0 {
		return s.zero
	}
	if s.n == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := s.home(x); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return false
		case x:
			return true
		}
	}
}

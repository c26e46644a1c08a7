package bench

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkMachine tells whether this machine runs two threads' work in
// the time of one, for work that only computes and for work that is
// bound by memory latency (random read-modify-writes over an 8 MiB array,
// larger than a core's L2, like the engine's hash maps, caches and
// skiplists). Each op is the same amount of work on each of the threads;
// with two cores to spare, threads=2 takes as long per op as threads=1.
//
//	go test ./cmd/internal/bench -run '^$' -bench Machine -count 3
//
// On the 2 vCPUs of the README's machine the compute loop scales and the
// memory loop does not (Performance, "Why the remaining gap resists").
func BenchmarkMachine(b *testing.B) {
	for _, kind := range []string{"compute", "memory"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", kind, threads), func(b *testing.B) {
				arrays := make([][]uint64, threads)
				for i := range arrays {
					arrays[i] = make([]uint64, 1<<20) // 8 MiB each
				}
				var sink uint64
				var mu sync.Mutex
				b.ResetTimer()
				for range b.N {
					var wg sync.WaitGroup
					for i := range threads {
						wg.Go(func() {
							var r uint64
							if kind == "compute" {
								r = computeLoop(1 << 20)
							} else {
								r = memoryLoop(arrays[i], 1<<20)
							}
							mu.Lock()
							sink += r
							mu.Unlock()
						})
					}
					wg.Wait()
				}
				if sink == 42 {
					b.Log(sink) // keeps the loops from being optimised away
				}
			})
		}
	}
}

// computeLoop is n steps of a linear congruential generator: registers only.
func computeLoop(n int) uint64 {
	x := uint64(1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 13
	}
	return x
}

// memoryLoop is n read-modify-writes at pseudo-random places of a.
func memoryLoop(a []uint64, n int) uint64 {
	x := uint64(1)
	mask := uint64(len(a) - 1)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
		a[(x>>40)&mask] += x
	}
	return x + a[0]
}

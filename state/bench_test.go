package state

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The benchmarks compare read-modify-write of a ~100-byte value over 100k keys
// chosen with a skewed (zipf) distribution, committing every 1000 operations,
// with a 128 MiB block cache on the real filesystem (Sync false):
//
//	RawPebble       indexed batch Get + decode + encode + Set, Apply every 1000 ops
//	Txn             the same through Store.Txn, with Prepare, Writes (the
//	                changelog) and Commit(checkpoint)
//	Table/C/cache=N Table.Get + copy + Put, Prepare, Writes and Commit; N
//	                decoded values cached (0 = no cache); codec C is binary
//	                (decoding is a copy) or json (decoding costs like a real
//	                schema codec)
//
// go test -run XXX -bench RMW ./state/

const (
	benchKeys     = 100_000
	benchCommitN  = 1000
	benchValueLen = 100
)

// benchVal is a counter and a note; benchCodec encodes it in 100 bytes.
type benchVal struct {
	Count int64  `json:"count"`
	Note  string `json:"note"`
}

var benchNote = strings.Repeat("n", benchValueLen-8)

// benchCodec is a trivial binary codec: decoding costs one small copy.
type benchCodec struct{}

func (benchCodec) Append(dst []byte, v *benchVal) ([]byte, error) {
	dst = binary.BigEndian.AppendUint64(dst, uint64(v.Count))
	return append(dst, v.Note...), nil
}

func (benchCodec) Decode(b []byte, v *benchVal) error {
	if len(b) < 8 {
		return errors.New("short value")
	}
	v.Count = int64(binary.BigEndian.Uint64(b))
	v.Note = string(b[8:])
	return nil
}

// jsonCodec stands for a real schema codec (Avro, JSON), where decoding
// costs far more than a copy.
type jsonCodec struct{}

func (jsonCodec) Append(dst []byte, v *benchVal) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}

func (jsonCodec) Decode(b []byte, v *benchVal) error { return json.Unmarshal(b, v) }

func benchKey(i uint64) string { return fmt.Sprintf("inv/sku-%06d", i) }

// zipfKeys returns a cycle of zipf-distributed keys (s=1.1: the hottest 1%
// of keys take about 70% of the operations).
func zipfKeys() []string {
	rng := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(rng, 1.1, 1, benchKeys-1)
	keys := make([]string, 1<<18)
	for i := range keys {
		keys[i] = benchKey(z.Uint64())
	}
	return keys
}

// benchStore opens a store holding benchKeys values on disk.
func benchStore(b *testing.B, cache *pebble.Cache, c Codec[benchVal]) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), &Options{FS: vfs.Default, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	enc, err := c.Append(nil, &benchVal{Note: benchNote})
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchKeys {
		must(b, s.Txn().Set([]byte(benchKey(uint64(i))), enc))
		if i%10_000 == 9_999 {
			must(b, s.Commit(Checkpoint{ChangelogOffset: int64(i)}))
		}
	}
	must(b, s.Commit(Checkpoint{ChangelogOffset: benchKeys}))
	// Start from a settled LSM, not in the middle of the load's compactions.
	must(b, s.db.Flush())
	must(b, s.db.Compact(context.Background(), []byte("inv/"), []byte("inv0"), true))
	return s
}

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkRMW(b *testing.B) {
	keys := zipfKeys()
	cache := pebble.NewCache(128 << 20)
	defer cache.Unref()

	b.Run("RawPebble", func(b *testing.B) {
		s := benchStore(b, cache, benchCodec{})
		defer s.Close()
		db := s.db // the same database, used directly
		batch := db.NewIndexedBatch()
		defer batch.Close()
		var v benchVal
		var buf []byte
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := []byte(keys[i%len(keys)])
			raw, closer, err := batch.Get(k)
			if err != nil {
				b.Fatal(err)
			}
			must(b, benchCodec{}.Decode(raw, &v))
			_ = closer.Close()
			v.Count++
			buf, _ = benchCodec{}.Append(buf[:0], &v)
			must(b, batch.Set(k, buf, nil))
			if i%benchCommitN == benchCommitN-1 {
				must(b, db.Apply(batch, pebble.NoSync))
				batch.Reset()
			}
		}
		reportOps(b)
	})

	b.Run("Txn", func(b *testing.B) {
		s := benchStore(b, cache, benchCodec{})
		defer s.Close()
		txn := s.Txn()
		var v benchVal
		var buf []byte
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := []byte(keys[i%len(keys)])
			raw, _, err := txn.Get(k)
			if err != nil {
				b.Fatal(err)
			}
			must(b, benchCodec{}.Decode(raw, &v))
			v.Count++
			buf, _ = benchCodec{}.Append(buf[:0], &v)
			must(b, txn.Set(k, buf))
			if i%benchCommitN == benchCommitN-1 {
				benchCommit(b, s, i)
			}
		}
		reportOps(b)
	})

	for _, tc := range []struct {
		codec     string
		maxCached int
	}{
		{"binary", 100_000}, {"binary", 10_000}, {"binary", 0},
		{"json", 100_000}, {"json", 10_000}, {"json", 0},
	} {
		b.Run(fmt.Sprintf("Table/%s/cache=%d", tc.codec, tc.maxCached), func(b *testing.B) {
			var c Codec[benchVal] = benchCodec{}
			if tc.codec == "json" {
				c = jsonCodec{}
			}
			s := benchStore(b, cache, c)
			defer s.Close()
			tbl := NewTable[benchVal](s, "inv/", c, tc.maxCached)
			before := s.Metrics()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := keys[i%len(keys)][len("inv/"):]
				v, err := tbl.Get(k)
				if err != nil || v == nil {
					b.Fatal(k, err)
				}
				nv := *v
				nv.Count++
				tbl.Put(k, &nv)
				if i%benchCommitN == benchCommitN-1 {
					benchCommit(b, s, i)
				}
			}
			reportOps(b)
			m := s.Metrics()
			if hits, misses := m.TableHits-before.TableHits, m.TableMisses-before.TableMisses; hits+misses > 0 {
				b.ReportMetric(float64(hits)/float64(hits+misses)*100, "cache-hit%")
			}
		})
	}
}

// benchCommit runs Prepare, Writes and Commit, and returns the changelog bytes.
func benchCommit(b *testing.B, s *Store, i int) int {
	must(b, s.Prepare())
	n := 0
	must(b, s.Txn().Writes(func(k, v []byte) error { n += len(k) + len(v); return nil }))
	must(b, s.Commit(Checkpoint{ChangelogOffset: int64(i), InputOffsets: map[string]int64{"in": int64(i)}}))
	return n
}

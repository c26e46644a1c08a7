package topology

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// largeBrokers returns the real broker of KAFKA_BROKERS or, without it, an
// in-process kfake (which enforces max.message.bytes like Kafka does);
// INVROUTE_REQUIRE_KAFKA=1 without KAFKA_BROKERS fails.
func largeBrokers(t *testing.T) []string {
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return []string{b}
	}
	if os.Getenv("INVROUTE_REQUIRE_KAFKA") == "1" {
		t.Fatal("INVROUTE_REQUIRE_KAFKA=1 but KAFKA_BROKERS is not set")
	}
	return newCluster(t).ListenAddrs()
}

// TestLargeRecordDeadLettered: an input topic that accepts records of
// several MiB receives a 3 MiB record between two small ones. The engine
// (MaxRecordBytes 1 MiB) must dead-letter it with its original bytes and
// headers and go on with the partition: the dead letter must fit both the
// producer's batch limit and the dead-letter topic's max.message.bytes, or
// every transaction would abort and retry the same record for ever.
//
// With a dead-letter topic that already exists with a small
// max.message.bytes (256 KiB), the record must be dead-lettered with its
// value truncated, saying so in headers (original size and SHA-256), and a
// burst of small dead letters must not form batches the topic refuses.
func TestLargeRecordDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dlqLimit int // 0: invroute creates the dead-letter topic
		maxRec   int
	}{
		{name: "created", maxRec: 1 << 20},
		{name: "small-dlq-topic", dlqLimit: 256 << 10, maxRec: 1 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := largeBrokers(t)
			prefix := fmt.Sprintf("t%d-large-%s.", time.Now().UnixNano()%1e9, tc.name)
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(16<<20),
				kgo.DefaultProduceTopic(prefix+"in"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			create := func(topic string, maxBytes int) {
				resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": kadm.StringPtr(strconv.Itoa(maxBytes))}, topic)
				if err == nil {
					err = resp.Err
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			create(prefix+"in", 16<<20)
			if tc.dlqLimit > 0 {
				create(prefix+"dlq", tc.dlqLimit)
			}

			big := make([]byte, 3<<20) // incompressible: no codec makes it small
			rand.New(rand.NewSource(1)).Read(big)
			recs := []*kgo.Record{
				{Key: []byte("a"), Value: []byte("small")},
				{Key: []byte("big"), Value: big, Headers: []kgo.RecordHeader{{Key: "producer", Value: []byte("wms-7")}}},
			}
			nSmall := 0
			if tc.dlqLimit > 0 {
				// Many dead letters of 2 KiB in one transaction: batched
				// together they exceed the topic's 256 KiB.
				nSmall = 300
				for i := range nSmall {
					recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("s%d", i)), Value: bytes.Repeat([]byte{byte(i)}, 2<<10)})
				}
			}
			recs = append(recs, &kgo.Record{Key: []byte("b"), Value: []byte("small")})
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}

			topo := echoTopology()
			eng, err := NewEngine(Config{Brokers: brokers, TopicPrefix: prefix, InstanceID: "a", StateDir: t.TempDir(), Partitions: 1,
				MaxRecordBytes: tc.maxRec, CommitInterval: 50 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, topo)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- eng.Run(runCtx) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()

			rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(prefix+"out", prefix+"dlq"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			var gotB bool
			var dead *kgo.Record
			smallDead := 0
			waitCtx, waitCancel := context.WithTimeout(ctx, 60*time.Second)
			defer waitCancel()
			for !gotB || dead == nil || smallDead < nSmall {
				fs := rd.PollFetches(waitCtx)
				if waitCtx.Err() != nil {
					t.Fatalf("after 60 s: output b=%v, big dead letter=%v, %d/%d small dead letters; transactions aborted %v, committed %v",
						gotB, dead != nil, smallDead, nSmall, testutil.ToFloat64(eng.m.aborted), testutil.ToFloat64(eng.m.committed))
				}
				fs.EachRecord(func(r *kgo.Record) {
					switch {
					case r.Topic == prefix+"out" && string(r.Key) == "b":
						gotB = true
					case r.Topic == prefix+"out" && string(r.Key) != "a":
						t.Errorf("unexpected output %q", r.Key)
					case r.Topic == prefix+"dlq" && string(r.Key) == "big":
						dead = r
					case r.Topic == prefix+"dlq":
						smallDead++
					}
				})
			}
			h := map[string]string{}
			for _, kv := range dead.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["producer"] != "wms-7" || h["invroute.stage"] != "size" || h["invroute.source.topic"] != prefix+"in" ||
				h["invroute.source.offset"] != "1" || h["invroute.source.partition"] != "0" {
				t.Errorf("dead letter headers %v", h)
			}
			sum := sha256.Sum256(big)
			if tc.dlqLimit == 0 {
				if !bytes.Equal(dead.Value, big) {
					t.Errorf("dead letter value of %d bytes, want the original %d", len(dead.Value), len(big))
				}
				if _, ok := h["invroute.truncated"]; ok {
					t.Errorf("truncated although it fits: %v", h)
				}
				return
			}
			if len(dead.Value) >= tc.dlqLimit || !bytes.Equal(dead.Value, big[:len(dead.Value)]) || len(dead.Value) < tc.dlqLimit/2 {
				t.Errorf("dead letter value of %d bytes: want a prefix of the original, below %d", len(dead.Value), tc.dlqLimit)
			}
			if h["invroute.truncated"] != "value" || h["invroute.original.value.size"] != strconv.Itoa(len(big)) ||
				h["invroute.original.value.sha256"] != hex.EncodeToString(sum[:]) {
				t.Errorf("truncation headers %v", h)
			}
		})
	}
}

// TestFitDeadLetter: what fitDeadLetter cuts, in order (value, key, the
// source's headers), and that the result fits.
func TestFitDeadLetter(t *testing.T) {
	engine := []kgo.RecordHeader{{Key: "invroute.error", Value: []byte("too big")}, {Key: "invroute.stage", Value: []byte("size")}}
	mk := func(key, value, srcHeader int) *kgo.Record {
		hs := []kgo.RecordHeader{{Key: "src", Value: bytes.Repeat([]byte("h"), srcHeader)}}
		return &kgo.Record{Key: bytes.Repeat([]byte("k"), key), Value: bytes.Repeat([]byte("v"), value), Headers: append(hs, engine...)}
	}
	const limit = 8 << 10
	for _, tc := range []struct {
		key, value, hdr int
		cut             string
	}{
		{10, 1000, 10, ""},
		{10, limit, 10, "value"},
		{limit, limit, 10, "value,key"},
		{10, 10, limit, "value,key,headers"},
	} {
		r := mk(tc.key, tc.value, tc.hdr)
		cut := fitDeadLetter(r, limit)
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if cut != (tc.cut != "") || h["invroute.truncated"] != tc.cut {
			t.Errorf("%+v: cut %v, header %q", tc, cut, h["invroute.truncated"])
		}
		if n := recordBytes(r); n > limit-deadLetterSlack {
			t.Errorf("%+v: %d bytes after fitting, limit %d", tc, n, limit-deadLetterSlack)
		}
		if h["invroute.error"] != "too big" || h["invroute.stage"] != "size" {
			t.Errorf("%+v: engine headers lost: %v", tc, h)
		}
		if tc.cut != "" && h["invroute.original.value.size"] != strconv.Itoa(tc.value) {
			t.Errorf("%+v: original size header %q", tc, h["invroute.original.value.size"])
		}
		if tc.cut == "value" && len(r.Value) < limit-2*deadLetterSlack {
			t.Errorf("%+v: value cut to %d bytes, more than needed", tc, len(r.Value))
		}
		if _, ok := h["src"]; ok == (tc.cut == "value,key,headers") {
			t.Errorf("%+v: source header kept = %v", tc, ok)
		}
	}
}

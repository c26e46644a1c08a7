package topology

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Large records and the dead-letter topic.
//
// An input topic may accept records of any size its operator allows (and a
// compressed batch may hold a record far larger than the topic's
// max.message.bytes). A dead letter is written inside the transaction, so a
// dead letter that the producer or the dead-letter topic refuses aborts the
// transaction, and the next one meets the same record again: the partition
// would be wedged for ever. Hence:
//
//   - a dead-letter topic invroute creates gets max.message.bytes =
//     DeadLetterTopicMaxBytes (8 MiB), and the producer's batch limit for
//     that topic is the topic's limit (read at start-up; the default 1 MB
//     batch limit of franz-go cannot hold a dead letter of 1 MiB);
//   - a dead letter that would still not fit (a larger record, or a topic
//     created beforehand with a smaller limit) is written with its value,
//     then if need be its key and its original headers, cut to fit, and
//     headers saying so: invroute.truncated (what was cut: "value",
//     "value,key", "value,key,headers"), invroute.original.value.size and
//     invroute.original.value.sha256 (and .key. ones if the key was cut).

// DeadLetterTopicMaxBytes is the max.message.bytes of a dead-letter topic
// that invroute creates: records up to about this size are dead-lettered
// whole.
const DeadLetterTopicMaxBytes = 8 << 20

// kafkaDefaultMaxMessageBytes is Kafka's default max.message.bytes, assumed
// when the dead-letter topic's configuration cannot be read.
const kafkaDefaultMaxMessageBytes = 1048588

// deadLetterSlack is kept free of the topic's limit for the record batch
// header and the record's own framing (varints, attributes).
const deadLetterSlack = 1 << 10

// deadLetterTopicLimit returns the batch limit to use for the dead-letter
// topic: its max.message.bytes, at most DeadLetterTopicMaxBytes.
func deadLetterTopicLimit(ctx context.Context, adm *kadm.Client, topic string, log *slog.Logger) int {
	limit := DeadLetterTopicMaxBytes
	v, ok, err := topicConfig(ctx, adm, topic, "max.message.bytes")
	if err != nil {
		log.Warn("reading the dead-letter topic's max.message.bytes; assuming Kafka's default", "topic", topic, "err", err)
		limit = min(limit, kafkaDefaultMaxMessageBytes)
	} else if ok && v < int64(limit) {
		limit = int(v)
	}
	return max(limit, 4*deadLetterSlack)
}

// topicConfig reads a numeric configuration of topic (ok false if the
// broker does not report it).
func topicConfig(ctx context.Context, adm *kadm.Client, topic, key string) (v int64, ok bool, err error) {
	s, ok, err := topicConfigString(ctx, adm, topic, key)
	if err != nil || !ok {
		return 0, false, err
	}
	if v, err = strconv.ParseInt(s, 10, 64); err != nil {
		return 0, false, fmt.Errorf("%s of %s: %w", key, topic, err)
	}
	return v, true, nil
}

// topicConfigString reads a configuration of topic (ok false if the broker
// does not report it).
func topicConfigString(ctx context.Context, adm *kadm.Client, topic, key string) (string, bool, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return "", false, err
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return "", false, err
	}
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value, true, nil
		}
	}
	return "", false, nil
}

// recordBytes bounds the bytes r takes in a record batch (without the
// batch header): key, value, headers, and generous varint framing.
func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + 32
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// fitDeadLetter cuts dl so that it fits a batch of topicLimit bytes, and
// adds headers that say what was cut (see above). It reports whether it
// cut anything.
func fitDeadLetter(dl *kgo.Record, topicLimit int) bool {
	budget := topicLimit - deadLetterSlack
	if recordBytes(dl) <= budget {
		return false
	}
	own := len(dl.Headers) // the engine's headers are the last five
	for i, h := range dl.Headers {
		if h.Key == "invroute.error" {
			own = i
		}
	}
	cut := "value"
	sum := sha256.Sum256(dl.Value)
	info := []kgo.RecordHeader{
		{Key: "invroute.original.value.size", Value: []byte(strconv.Itoa(len(dl.Value)))},
		{Key: "invroute.original.value.sha256", Value: []byte(hex.EncodeToString(sum[:]))},
	}
	value := dl.Value
	dl.Value = nil
	if recordBytes(dl)+infoBytes(info)+64 > budget {
		cut += ",key"
		ks := sha256.Sum256(dl.Key)
		info = append(info,
			kgo.RecordHeader{Key: "invroute.original.key.size", Value: []byte(strconv.Itoa(len(dl.Key)))},
			kgo.RecordHeader{Key: "invroute.original.key.sha256", Value: []byte(hex.EncodeToString(ks[:]))})
		key := dl.Key
		dl.Key = nil
		if recordBytes(dl)+infoBytes(info)+64 > budget {
			cut += ",headers"
			info = append(info, kgo.RecordHeader{Key: "invroute.original.headers", Value: []byte(strconv.Itoa(own))})
			dl.Headers = dl.Headers[own:]
		}
		dl.Key = key[:max(0, min(len(key), budget-recordBytes(dl)-infoBytes(info)-64))]
	}
	dl.Headers = append(append(dl.Headers, kgo.RecordHeader{Key: "invroute.truncated", Value: []byte(cut)}), info...)
	dl.Value = value[:max(0, min(len(value), budget-recordBytes(dl)))]
	return true
}

func infoBytes(hs []kgo.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}

// batchMaxBytes is the producer's batch limit per topic: the dead-letter
// topic's own limit for it, franz-go's default (Kafka's default
// max.message.bytes) for the others.
func (e *Engine) batchMaxBytes(topic string) int32 {
	if topic == e.dlq && e.dlqLimit > 0 {
		return int32(e.dlqLimit)
	}
	return 1000012
}

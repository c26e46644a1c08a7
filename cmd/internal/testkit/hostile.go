package testkit

import (
	"fmt"
	"math/rand"
	"time"

	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Hostile input (issue 4 §3): records a producer may send by mistake or in
// malice, what the engine must do with each, and a stream that mixes them
// into the movements of Stream. This file does not depend on package
// testing: the bench uses it too.

// HostileKind is one kind of hostile input record.
type HostileKind int

const (
	HostileRandomBytes     HostileKind = iota // random bytes of random length (16 B .. 4 KiB)
	HostileTruncated                          // a valid movement cut short
	HostileTrailing                           // a valid movement followed by extra bytes
	HostileUnknownSchemaID                    // Confluent framing with schema id 999 (no schema_ids accepted)
	HostileWrongKey                           // record key differs from the movement's sku
	HostileZeroQty                            // RECEIPT of 0
	HostileNegativeQty                        // SHIPMENT of -3
	HostileUnknownEnum                        // type enum index 42
	HostileFutureTime                         // occurred_at two hours after the record's timestamp
	HostileUnknownSKU                         // a valid movement of a SKU never seen: a new SKU
	HostileUnknownNode                        // a valid movement at a node not configured: kept, not sold
	HostileDuplicate                          // a valid movement sent again (same id)
	HostileHuge                               // random bytes of several MiB (HugeBytes); opt in
	hostileKinds
)

var hostileNames = [...]string{"random-bytes", "truncated", "trailing-bytes", "unknown-schema-id", "wrong-key",
	"zero-qty", "negative-qty", "unknown-enum", "future-time", "unknown-sku", "unknown-node", "duplicate", "huge"}

func (k HostileKind) String() string {
	if k >= 0 && k < hostileKinds {
		return hostileNames[k]
	}
	return fmt.Sprintf("HostileKind(%d)", int(k))
}

// HostileOutcome is what the engine must do with a hostile record.
type HostileOutcome int

const (
	// DeadLettered: written once to the dead-letter topic, with the
	// original key, value and headers and invroute.* headers; no state
	// change.
	DeadLettered HostileOutcome = iota
	// Accepted: a valid movement, applied like any other. An unknown SKU is
	// a new SKU; stock at an unconfigured node is kept and shown in the
	// AtsUpdate (available 0) but not sold until the node is configured
	// active.
	Accepted
	// Dropped: a repeat inside the idempotency window, counted and ignored;
	// not dead-lettered (a WMS retry is normal).
	Dropped
)

func (o HostileOutcome) String() string {
	return [...]string{"dead-lettered", "accepted", "dropped"}[o]
}

// Outcome is what the engine must do with a record of kind k.
func (k HostileKind) Outcome() HostileOutcome {
	switch k {
	case HostileUnknownSKU, HostileUnknownNode:
		return Accepted
	case HostileDuplicate:
		return Dropped
	}
	return DeadLettered
}

// Stage is the invroute.stage header of a dead-lettered kind ("" for the
// others).
func (k HostileKind) Stage() string {
	switch k {
	case HostileRandomBytes, HostileTruncated, HostileTrailing, HostileUnknownSchemaID, HostileUnknownEnum:
		return "decode"
	case HostileWrongKey, HostileZeroQty, HostileNegativeQty, HostileFutureTime:
		return "validate"
	case HostileHuge:
		return "size"
	}
	return ""
}

// HostileKinds returns every kind; HostileHuge only if huge.
func HostileKinds(huge bool) []HostileKind {
	var out []HostileKind
	for k := HostileKind(0); k < hostileKinds; k++ {
		if k != HostileHuge || huge {
			out = append(out, k)
		}
	}
	return out
}

// UnknownNode is the node of HostileUnknownNode movements: never configured.
const UnknownNode = "NODE-NEVER-CONFIGURED"

// Hostile makes hostile stock-movement records. Not safe for concurrent use.
type Hostile struct {
	rnd *rand.Rand
	seq int
	// HugeBytes is the value size of HostileHuge records (default 3 MiB).
	HugeBytes int
}

// NewHostile returns a generator of hostile records.
func NewHostile(seed int64) *Hostile {
	return &Hostile{rnd: rand.New(rand.NewSource(seed)), HugeBytes: 3 << 20}
}

func encodeMovement(mv *schemas.StockMovement) []byte {
	b, err := schemas.StockMovements.Encode(mv)
	if err != nil {
		panic(fmt.Sprintf("testkit: encoding a movement: %v", err))
	}
	return b
}

// Movement returns a record of kind k for a stock-movements topic: key,
// value and, for accepted kinds, the movement (nil for the others). sku is
// a known SKU to use where the kind needs one; dup is the record a
// HostileDuplicate repeats (required for that kind). now is the record
// timestamp the producer will use, in milliseconds.
func (h *Hostile) Movement(k HostileKind, sku string, dup *kgo.Record, now int64) (key, value []byte, mv *schemas.StockMovement) {
	h.seq++
	good := schemas.StockMovement{MovementID: fmt.Sprintf("hostile-%d-%d", h.seq, h.rnd.Int63()), SKU: sku, NodeID: "W1",
		Type: schemas.Receipt, Qty: 1 + h.rnd.Int63n(5), OccurredAt: now}
	key = []byte(sku)
	switch k {
	case HostileRandomBytes:
		for {
			value = make([]byte, 16+h.rnd.Intn(4096-16))
			h.rnd.Read(value)
			var m schemas.StockMovement
			if schemas.StockMovements.Decode(value, &m) != nil {
				break // (random bytes that decode are vanishingly rare; drawn again)
			}
		}
	case HostileTruncated:
		// At least the movement id's bytes: values stay distinct.
		b := encodeMovement(&good)
		keep := 1 + len(good.MovementID)
		value = b[:keep+h.rnd.Intn(len(b)-keep)]
	case HostileTrailing:
		value = append(encodeMovement(&good), byte(1+h.rnd.Intn(255)))
	case HostileUnknownSchemaID:
		value = schemas.Frame(nil, 999, encodeMovement(&good))
	case HostileWrongKey:
		key = []byte(sku + "-other")
		value = encodeMovement(&good)
	case HostileZeroQty:
		good.Qty = 0
		value = encodeMovement(&good)
	case HostileNegativeQty:
		good.Type, good.Qty = schemas.Shipment, -3
		value = encodeMovement(&good)
	case HostileUnknownEnum:
		value = tweakEnum(encodeMovement(&good), good)
	case HostileFutureTime:
		good.OccurredAt = now + (2 * time.Hour).Milliseconds()
		value = encodeMovement(&good)
	case HostileUnknownSKU:
		good.SKU = fmt.Sprintf("UNKNOWN-SKU-%d", h.seq)
		key, value, mv = []byte(good.SKU), encodeMovement(&good), &good
	case HostileUnknownNode:
		good.NodeID = UnknownNode
		value, mv = encodeMovement(&good), &good
	case HostileDuplicate:
		if dup == nil {
			panic("testkit: HostileDuplicate needs the record it repeats")
		}
		key, value = dup.Key, dup.Value
	case HostileHuge:
		value = make([]byte, h.HugeBytes) // incompressible
		h.rnd.Read(value)
		value[0] = 0x07 // never a Confluent frame, never valid Avro of this size
	default:
		panic(fmt.Sprintf("testkit: unknown hostile kind %d", k))
	}
	return key, value, mv
}

// HostileStream is Stream with hostile records mixed in: after each record
// of the embedded Stream, with probability Share, one hostile record of a
// kind drawn uniformly from Kinds. Dead-lettered kinds are added to Bad
// (so Output.Check requires each in the dead-letter topic exactly once),
// accepted kinds to the model, duplicates are repeats the model ignores;
// each when Next returns it, never before: a producer that stops after any
// call has sent every record the expectations count.
// HostileHuge records, if in Kinds, are limited to MaxHuge (default 2) per
// stream: producers of a stream with them need a client with
// ProducerBatchMaxBytes above HugeBytes and an input topic whose
// max.message.bytes accepts them.
type HostileStream struct {
	*Stream
	H       *Hostile
	Share   float64
	Kinds   []HostileKind
	MaxHuge int
	// Sent counts the hostile records sent, by kind.
	Sent map[HostileKind]int
	// Kind maps a dead-lettered record's value to its kind.
	Kind map[string]HostileKind
	// next: the kind of the hostile record the next call returns, drawn
	// with the record before it; made (and counted) only when returned.
	next    HostileKind
	hasNext bool
}

// NewHostileStream returns a stream over skus SKUs with share hostile
// records of kinds (all but HostileHuge if kinds is empty).
func NewHostileStream(seed int64, skus int, prefix string, share float64, kinds ...HostileKind) *HostileStream {
	if len(kinds) == 0 {
		kinds = HostileKinds(false)
	}
	return &HostileStream{Stream: NewStream(seed, skus, prefix), H: NewHostile(seed + 1), Share: share, Kinds: kinds,
		MaxHuge: 2, Sent: map[HostileKind]int{}, Kind: map[string]HostileKind{}}
}

// Next returns the next record.
func (s *HostileStream) Next() *kgo.Record {
	if s.hasNext {
		s.hasNext = false
		return s.hostile(s.next)
	}
	r := s.Stream.Next()
	if s.rnd.Float64() < s.Share {
		s.next, s.hasNext = s.Kinds[s.rnd.Intn(len(s.Kinds))], true
	}
	return r
}

// Produce sends n records of s (hostile ones included) and waits for
// them; fails t on the first error.
func (s *HostileStream) Produce(t interface{ Fatal(...any) }, cl *kgo.Client, n int) {
	produceAll(cl, n, s.Next, t.Fatal)
}

func (s *HostileStream) hostile(k HostileKind) *kgo.Record {
	if k == HostileHuge && s.Sent[HostileHuge] >= s.MaxHuge {
		k = HostileRandomBytes
	}
	if k == HostileDuplicate && len(s.sent) == 0 {
		k = HostileUnknownSKU
	}
	var dup *kgo.Record
	if k == HostileDuplicate {
		dup = s.sent[s.rnd.Intn(len(s.sent))]
	}
	sku := fmt.Sprintf("S%05d", s.rnd.Intn(s.skus))
	key, value, mv := s.H.Movement(k, sku, dup, time.Now().UnixMilli())
	s.Sent[k]++
	switch k.Outcome() {
	case DeadLettered:
		s.Bad[string(value)] = true
		s.Kind[string(value)] = k
	case Accepted:
		s.Model.Apply(mv)
	}
	return &kgo.Record{Topic: s.Prefix + "stock-movements", Key: key, Value: value}
}

// CheckHostileDeadLetters checks the headers of every dead letter of a
// hostile kind in o: the engine's five headers, the stage of its kind and
// the source topic. It returns one line per difference (at most 20).
func CheckHostileDeadLetters(o *Output, s *HostileStream) []string {
	var diffs []string
	for v, k := range s.Kind {
		h, ok := o.Headers[v]
		if !ok {
			if len(diffs) < 20 {
				diffs = append(diffs, fmt.Sprintf("%s record (%d bytes) not in dead-letter", k, len(v)))
			}
			continue
		}
		bad := h["invroute.stage"] != k.Stage() || h["invroute.error"] == "" ||
			h["invroute.source.topic"] != s.Prefix+"stock-movements" ||
			h["invroute.source.partition"] == "" || h["invroute.source.offset"] == ""
		if bad && len(diffs) < 20 {
			diffs = append(diffs, fmt.Sprintf("%s record: dead-letter headers %v, want stage %q", k, h, k.Stage()))
		}
	}
	return diffs
}

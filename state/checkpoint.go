package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Checkpoint is what a store's contents reflect. It is written in the same
// Pebble batch as the data of every Commit and every Restore batch, so after
// a crash the data and the checkpoint always agree.
type Checkpoint struct {
	// ChangelogOffset is the next offset of the store's changelog partition to
	// replay from: every changelog record below it is in the store. 0 means
	// replay from the beginning.
	ChangelogOffset int64

	// InputOffsets maps an input topic to the next offset of this partition
	// that the store's contents do not yet reflect. Informational, for logs
	// and consistency checks: the group's committed offsets are authoritative.
	InputOffsets map[string]int64

	// SyncedAt is when the store last saw its changelog: the wall clock of
	// the commit, or of the restore batch, that wrote this checkpoint, in
	// Unix milliseconds; 0 if unknown (written before it was kept). The
	// log cleaner keeps tombstones only so long, so a store that has not
	// seen its changelog for longer may miss deletions on a replay.
	// Informational like InputOffsets: Equal does not compare it.
	SyncedAt int64
}

// Clone returns a deep copy of cp.
func (cp Checkpoint) Clone() Checkpoint {
	cp.InputOffsets = maps.Clone(cp.InputOffsets)
	return cp
}

// Equal reports whether cp and o hold the same offsets. A nil and an empty
// InputOffsets are equal.
func (cp Checkpoint) Equal(o Checkpoint) bool {
	return cp.ChangelogOffset == o.ChangelogOffset && maps.Equal(cp.InputOffsets, o.InputOffsets)
}

func (cp Checkpoint) String() string {
	return fmt.Sprintf("changelog@%d inputs%v", cp.ChangelogOffset, cp.InputOffsets)
}

// checkpointKey is the Pebble key of the checkpoint. Every key starting with
// 0x00 is reserved for metadata.
var checkpointKey = []byte("\x00checkpoint")

// Checkpoint encodings: version 1 is the offsets; version 2 (written since
// the eighth session of 2026-11-28) adds SyncedAt after them. Both are read.
const (
	checkpointV1 = 1
	checkpointV2 = 2
)

// maxTopicLen bounds topic names when decoding (Kafka allows 249 bytes).
const maxTopicLen = 1 << 10

// appendCheckpoint encodes cp (format in the Store doc comment). Topics are
// sorted so that equal checkpoints encode to equal bytes.
func appendCheckpoint(dst []byte, cp Checkpoint) []byte {
	dst = append(dst, checkpointV2)
	dst = binary.AppendVarint(dst, cp.ChangelogOffset)
	dst = binary.AppendUvarint(dst, uint64(len(cp.InputOffsets)))
	for _, topic := range slices.Sorted(maps.Keys(cp.InputOffsets)) {
		dst = binary.AppendUvarint(dst, uint64(len(topic)))
		dst = append(dst, topic...)
		dst = binary.AppendVarint(dst, cp.InputOffsets[topic])
	}
	return binary.AppendVarint(dst, cp.SyncedAt)
}

// decodeCheckpoint decodes what appendCheckpoint wrote. It never panics on
// hostile bytes: unknown versions, truncation, oversized counts and trailing
// bytes are errors.
func decodeCheckpoint(b []byte) (Checkpoint, error) {
	var cp Checkpoint
	if len(b) == 0 {
		return cp, errors.New("empty")
	}
	version := b[0]
	if version != checkpointV1 && version != checkpointV2 {
		return cp, fmt.Errorf("unknown version %d", b[0])
	}
	b = b[1:]
	off, n := binary.Varint(b)
	if n <= 0 {
		return cp, errors.New("bad changelog offset")
	}
	cp.ChangelogOffset = off
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return cp, errors.New("bad topic count")
	}
	b = b[n:]
	// Each topic takes at least 2 bytes (length and offset).
	if count > uint64(len(b))/2 {
		return cp, fmt.Errorf("topic count %d exceeds remaining %d bytes", count, len(b))
	}
	if count > 0 {
		cp.InputOffsets = make(map[string]int64, count)
	}
	for i := uint64(0); i < count; i++ {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxTopicLen || l > uint64(len(b)-n) {
			return cp, fmt.Errorf("bad length of topic %d", i)
		}
		topic := string(b[n : n+int(l)])
		b = b[n+int(l):]
		off, n := binary.Varint(b)
		if n <= 0 {
			return cp, fmt.Errorf("bad offset of topic %q", topic)
		}
		b = b[n:]
		if _, dup := cp.InputOffsets[topic]; dup {
			return cp, fmt.Errorf("duplicate topic %q", topic)
		}
		cp.InputOffsets[topic] = off
	}
	if version == checkpointV2 {
		at, n := binary.Varint(b)
		if n <= 0 {
			return cp, errors.New("bad synced-at time")
		}
		cp.SyncedAt = at
		b = b[n:]
	}
	if len(b) != 0 {
		return cp, fmt.Errorf("%d trailing bytes", len(b))
	}
	return cp, nil
}

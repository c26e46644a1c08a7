package inventory

import (
	"encoding/binary"
	"fmt"
)

// window is a partition's idempotency window: the hashed (sku, movement_id)
// pairs of the movements applied recently, kept in blocks of at most
// blockIDs ids each, one or more per transaction, oldest first.
//
// A block is written to the store once, when it is sealed, and deleted
// when it falls out of the window, so the cost of remembering a movement is
// 8 bytes in one store value and one changelog record per transaction, not
// a rewrite of every remembered id. In memory the window is a hash set (idSet) over
// the same blocks; it mirrors the committed store plus the open
// transaction, and is rebuilt from the store after an abort.
//
// A block leaves the window when its newest occurred_at is older than the
// partition's newest minus Config.DedupeWindow, or when more than
// Config.DedupeMax ids are remembered without it. Whole blocks leave, so at
// least DedupeMax - blockIDs of the newest ids are always remembered.
type window struct {
	loaded bool
	ids    idSet       // every id hash in blocks and cur (each once)
	blocks []seenBlock // sealed blocks, oldest first
	cur    seenBlock   // the open block (this transaction's newest ids)
	total  int         // ids in blocks and cur
	newest int64       // newest occurred_at in the window
}

type seenBlock struct {
	seq   uint64
	maxAt int64
	ids   []int64
}

// blockIDs bounds one block: 8192 ids make a 64 KiB value, well under any
// changelog record limit.
const blockIDs = 8192

// SeenStore is where the window keeps its blocks.
type SeenStore interface {
	// SeenBlocks calls fn for every stored block, in seq order. b is valid
	// only during the call.
	SeenBlocks(fn func(seq uint64, b []byte) error) error
	PutSeenBlock(seq uint64, b []byte)
	DeleteSeenBlock(seq uint64)
}

func (w *window) load(st SeenStore) error {
	if w.loaded {
		return nil
	}
	*w = window{}
	var next uint64 = 1
	err := st.SeenBlocks(func(seq uint64, b []byte) error {
		blk, err := decodeBlock(seq, b)
		if err != nil {
			return err
		}
		for _, h := range blk.ids {
			w.ids.add(h)
		}
		w.blocks = append(w.blocks, blk)
		w.total += len(blk.ids)
		w.newest = max(w.newest, blk.maxAt)
		next = seq + 1
		return nil
	})
	if err != nil {
		return err
	}
	w.cur = seenBlock{seq: next}
	w.loaded = true
	return nil
}

// claim puts h in the window's set and reports whether it was not there
// (one probe for the look-up and the insert). A claimed id is then either
// added (add) or released (release).
func (w *window) claim(h int64) bool { return w.ids.add(h) }

// release takes back a claim that was not added.
func (w *window) release(h int64) { w.ids.remove(h) }

// add remembers h, claimed before, which occurred at at.
func (w *window) add(st SeenStore, h, at int64) {
	w.cur.ids = append(w.cur.ids, h)
	w.cur.maxAt = max(w.cur.maxAt, at)
	w.newest = max(w.newest, at)
	w.total++
	if len(w.cur.ids) == blockIDs {
		w.seal(st)
	}
}

// seal writes the open block and opens the next.
func (w *window) seal(st SeenStore) {
	if len(w.cur.ids) == 0 {
		return
	}
	st.PutSeenBlock(w.cur.seq, encodeBlock(w.cur))
	w.blocks = append(w.blocks, w.cur)
	w.cur = seenBlock{seq: w.cur.seq + 1}
}

// flush seals the open block and drops the blocks that fell out of the
// window. It runs once per transaction, before the commit.
func (w *window) flush(st SeenStore, cfg Config) {
	if !w.loaded {
		return
	}
	w.seal(st)
	cut := w.newest - cfg.DedupeWindow.Milliseconds()
	for len(w.blocks) > 0 {
		b := w.blocks[0]
		if w.total-len(b.ids) < cfg.DedupeMax && b.maxAt >= cut {
			break
		}
		for _, h := range b.ids {
			w.ids.remove(h) // an id is added only when not in the window: it is in no other block
		}
		st.DeleteSeenBlock(b.seq)
		w.total -= len(b.ids)
		w.blocks[0] = seenBlock{}
		w.blocks = w.blocks[1:]
	}
	// The clock is the newest occurred_at still remembered: an outlier
	// that left takes its time with it.
	w.newest = 0
	for _, b := range w.blocks {
		w.newest = max(w.newest, b.maxAt)
	}
}

// reset forgets the in-memory window; the next use reloads it from the
// store (after an abort, the committed state).
func (w *window) reset() { *w = window{} }

// A stored block: newest occurred_at (8 bytes, big endian), then the id
// hashes, 8 bytes each.
func encodeBlock(b seenBlock) []byte {
	out := make([]byte, 0, 8+8*len(b.ids))
	out = binary.BigEndian.AppendUint64(out, uint64(b.maxAt))
	for _, h := range b.ids {
		out = binary.BigEndian.AppendUint64(out, uint64(h))
	}
	return out
}

func decodeBlock(seq uint64, b []byte) (seenBlock, error) {
	if len(b) < 8 || len(b)%8 != 0 {
		return seenBlock{}, fmt.Errorf("inventory: corrupt idempotency block %d (%d bytes)", seq, len(b))
	}
	blk := seenBlock{seq: seq, maxAt: int64(binary.BigEndian.Uint64(b)), ids: make([]int64, 0, len(b)/8-1)}
	for i := 8; i < len(b); i += 8 {
		blk.ids = append(blk.ids, int64(binary.BigEndian.Uint64(b[i:])))
	}
	return blk, nil
}

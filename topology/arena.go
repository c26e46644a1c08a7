package topology

// Arena hands out byte slices cut from large chunks, for the keys and values
// of records a task emits: one allocation per chunk instead of one or two
// per record. A slice stays valid for good (a chunk is never reused; the
// garbage collector frees it once no record refers to it), so it may be
// given to Emit. The zero Arena is ready; it is not safe for concurrent use.
type Arena struct {
	buf []byte
}

// arenaChunk is the size of a chunk; larger requests get a chunk of their own.
const arenaChunk = 64 << 10

// Alloc returns a slice of n bytes (contents undefined) with capacity n, so
// that appending to it never writes into its neighbour.
func (a *Arena) Alloc(n int) []byte {
	if n == 0 {
		return []byte{} // not nil, even from a zero Arena: nil means a tombstone
	}
	if n > cap(a.buf)-len(a.buf) {
		if n > arenaChunk/4 {
			return make([]byte, n)
		}
		a.buf = make([]byte, 0, arenaChunk)
	}
	i := len(a.buf)
	a.buf = a.buf[:i+n]
	return a.buf[i : i+n : i+n]
}

// Copy returns a copy of b cut from the arena; nil stays nil (a tombstone
// stays a tombstone), and an empty b gives an empty, non-nil slice.
func (a *Arena) Copy(b []byte) []byte {
	if b == nil {
		return nil
	}
	c := a.Alloc(len(b))
	copy(c, b)
	return c
}

// CopyString returns s as bytes cut from the arena.
func (a *Arena) CopyString(s string) []byte {
	c := a.Alloc(len(s))
	copy(c, s)
	return c
}

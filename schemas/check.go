package schemas

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

// This file holds the strict reader that every record passes before hamba
// decodes it, and the canonicaliser that every record passes after hamba
// encodes it.
//
// hamba is fast but lenient: it accepts truncated input as long as it ends
// on a field boundary (io.EOF is treated as success), it ignores trailing
// bytes, and it allocates a whole array block before reading its items. The
// check below walks the bytes once against the schema, without allocating,
// and only bytes that pass it reach hamba, so hamba sees well-formed input
// whose every length is backed by bytes that are really there.
//
// # Canonical form
//
// A value has many valid Avro encodings: arrays and maps may be split in
// blocks, a block count may be negative and followed by the block's byte
// size, and map entries come in any order. Other producers use all of these
// (hamba's default config writes sized blocks of 100 items; Java writes maps in
// HashMap order), so the check accepts them, but it notes that the input is
// not canonical. The canonical encoding, the only one Encode produces, is:
//
//	array, map:  count>0, item..., 0     (one block, positive count; just 0 when empty)
//	map entries: sorted by key bytes, no key twice
//
// Anything else that could be two encodings of one value is refused outright:
// varints must be minimal (no 0x80 0x00 for zero), ints must fit 32 bits and
// booleans are 0 or 1. So a canonical input decodes and re-encodes to the very
// same bytes, and any accepted input re-encodes to its canonical form.

// kind is the Avro type of a compiled schema node.
type kind uint8

const (
	kNull kind = iota
	kBool
	kInt
	kLong
	kFloat
	kDouble
	kString
	kBytes
	kFixed
	kEnum
	kRecord
	kArray
	kMap
	kUnion
)

// node is a schema compiled for the check: a tree of the parts the check
// needs, without hamba's interfaces in the way.
type node struct {
	kind kind
	// n is the symbol count of an enum or the size of a fixed.
	n int
	// name is the full name of a named type, for error messages.
	name string
	// fields holds a record's fields or a union's branches.
	fields []*node
	// fieldNames holds a record's field names, for error messages.
	fieldNames []string
	// items is the item type of an array or the value type of a map.
	items *node
	// min is the smallest number of bytes an encoded value takes.
	min int
}

// compile turns a hamba schema into the tree the check walks. Named types are
// compiled once and shared, so a recursive schema does not loop.
func compile(s avro.Schema, named map[string]*node) (*node, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if ns, ok := s.(avro.NamedSchema); ok {
		if n, ok := named[ns.FullName()]; ok {
			return n, nil
		}
	}
	switch s.Type() {
	case avro.Null:
		return &node{kind: kNull}, nil
	case avro.Boolean:
		return &node{kind: kBool, min: 1}, nil
	case avro.Int:
		return &node{kind: kInt, min: 1}, nil
	case avro.Long:
		return &node{kind: kLong, min: 1}, nil
	case avro.Float:
		return &node{kind: kFloat, min: 4}, nil
	case avro.Double:
		return &node{kind: kDouble, min: 8}, nil
	case avro.String:
		return &node{kind: kString, min: 1}, nil
	case avro.Bytes:
		return &node{kind: kBytes, min: 1}, nil
	case avro.Fixed:
		f := s.(*avro.FixedSchema)
		n := &node{kind: kFixed, n: f.Size(), min: f.Size(), name: f.FullName()}
		named[n.name] = n
		return n, nil
	case avro.Enum:
		e := s.(*avro.EnumSchema)
		n := &node{kind: kEnum, n: len(e.Symbols()), min: 1, name: e.FullName()}
		named[n.name] = n
		return n, nil
	case avro.Record:
		r := s.(*avro.RecordSchema)
		n := &node{kind: kRecord, name: r.FullName()}
		named[n.name] = n
		for _, f := range r.Fields() {
			fn, err := compile(f.Type(), named)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, fn)
			n.fieldNames = append(n.fieldNames, f.Name())
			n.min += fn.min
		}
		return n, nil
	case avro.Array:
		items, err := compile(s.(*avro.ArraySchema).Items(), named)
		if err != nil {
			return nil, err
		}
		return &node{kind: kArray, items: items, min: 1}, nil
	case avro.Map:
		values, err := compile(s.(*avro.MapSchema).Values(), named)
		if err != nil {
			return nil, err
		}
		return &node{kind: kMap, items: values, min: 1}, nil
	case avro.Union:
		n := &node{kind: kUnion, min: 1}
		branchMin := math.MaxInt
		for _, t := range s.(*avro.UnionSchema).Types() {
			b, err := compile(t, named)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, b)
			branchMin = min(branchMin, b.min)
		}
		n.min += branchMin
		return n, nil
	}
	return nil, fmt.Errorf("schemas: Avro type %s is not supported", s.Type())
}

// reader walks Avro bytes against a compiled schema. It never allocates on
// the happy path, never panics and never trusts a length before checking it
// against the bytes that are left.
type reader struct {
	b   []byte
	pos int
	// canonical stays true while the bytes seen are in canonical form.
	canonical bool
}

// check reads one value of n from b and requires that it uses all of b. It
// reports whether b is in canonical form.
func check(n *node, b []byte) (canonical bool, err error) {
	r := reader{b: b, canonical: true}
	if err := r.value(n); err != nil {
		return false, err
	}
	if r.pos != len(b) {
		return false, fmt.Errorf("%w: %d of %d bytes unread", ErrTrailingBytes, len(b)-r.pos, len(b))
	}
	return r.canonical, nil
}

func (r *reader) truncated(what string) error {
	return fmt.Errorf("%w: %s at byte %d of %d", ErrTruncated, what, r.pos, len(r.b))
}

// varint reads one zig-zag varint of at most 64 bits and refuses encodings
// longer than needed.
func (r *reader) varint() (int64, error) {
	if r.pos < len(r.b) && r.b[r.pos] < 0x80 { // one byte: -64..63
		u := uint64(r.b[r.pos])
		r.pos++
		return int64(u>>1) ^ -int64(u&1), nil
	}
	var u uint64
	for i, s := 0, uint(0); i < 10; i, s = i+1, s+7 {
		if r.pos >= len(r.b) {
			return 0, r.truncated("varint")
		}
		c := r.b[r.pos]
		r.pos++
		if i == 9 && c > 1 {
			return 0, fmt.Errorf("%w: varint overflows 64 bits at byte %d", ErrMalformed, r.pos-1)
		}
		u |= uint64(c&0x7f) << s
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, fmt.Errorf("%w: varint longer than needed at byte %d", ErrMalformed, r.pos-1)
			}
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	panic("unreachable")
}

// int reads a varint that must fit an Avro int.
func (r *reader) int() (int64, error) {
	v, err := r.varint()
	if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		err = fmt.Errorf("%w: int %d overflows 32 bits at byte %d", ErrMalformed, v, r.pos)
	}
	return v, err
}

// length reads the length of a string or bytes value and checks it against
// MaxStringBytes and the bytes left.
func (r *reader) length() (int, error) {
	l, err := r.varint()
	switch {
	case err != nil:
		return 0, err
	case l < 0:
		return 0, fmt.Errorf("%w: negative length %d at byte %d", ErrMalformed, l, r.pos)
	case l > MaxStringBytes:
		return 0, fmt.Errorf("%w: length %d exceeds MaxStringBytes (%d)", ErrTooLarge, l, MaxStringBytes)
	case l > int64(len(r.b)-r.pos):
		return 0, r.truncated(fmt.Sprintf("%d-byte string", l))
	}
	return int(l), nil
}

// str reads a string and returns its bytes, which alias r.b.
func (r *reader) str() ([]byte, error) {
	l, err := r.length()
	if err != nil {
		return nil, err
	}
	s := r.b[r.pos : r.pos+l]
	for _, c := range s { // ids are mostly ASCII: skip the call for them
		if c >= utf8.RuneSelf {
			if !utf8.Valid(s) {
				return nil, fmt.Errorf("%w: string is not UTF-8 at byte %d", ErrMalformed, r.pos)
			}
			break
		}
	}
	r.pos += l
	return s, nil
}

func (r *reader) skip(n int, what string) error {
	if n > len(r.b)-r.pos {
		return r.truncated(what)
	}
	r.pos += n
	return nil
}

func (r *reader) value(n *node) error {
	switch n.kind {
	case kNull:
		return nil
	case kBool:
		if r.pos >= len(r.b) {
			return r.truncated("boolean")
		}
		if r.b[r.pos] > 1 {
			return fmt.Errorf("%w: boolean byte %#x at byte %d", ErrMalformed, r.b[r.pos], r.pos)
		}
		r.pos++
		return nil
	case kInt:
		_, err := r.int()
		return err
	case kLong:
		_, err := r.varint()
		return err
	case kFloat:
		return r.skip(4, "float")
	case kDouble:
		return r.skip(8, "double")
	case kString:
		_, err := r.str()
		return err
	case kBytes:
		l, err := r.length()
		r.pos += l
		return err
	case kFixed:
		return r.skip(n.n, "fixed")
	case kEnum:
		i, err := r.int()
		if err == nil && (i < 0 || i >= int64(n.n)) {
			err = fmt.Errorf("%w: %s index %d, want 0..%d", ErrUnknownSymbol, n.name, i, n.n-1)
		}
		return err
	case kRecord:
		for i, f := range n.fields {
			var err error
			switch f.kind { // the common leaves without a call to value
			case kString:
				_, err = r.str()
			case kLong:
				_, err = r.varint()
			default:
				err = r.value(f)
			}
			if err != nil {
				return inField(n.fieldNames[i], err)
			}
		}
		return nil
	case kUnion:
		i, err := r.varint()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.fields)) {
			return fmt.Errorf("%w: union branch %d, want 0..%d", ErrMalformed, i, len(n.fields)-1)
		}
		return r.value(n.fields[i])
	case kArray, kMap:
		return r.blocks(n)
	}
	panic("schemas: unknown kind")
}

// blocks reads the blocks of an array or map.
func (r *reader) blocks(n *node) error {
	var (
		total  int64
		sorted = true
		stack  [8][]byte
		keys   = stack[:0] // map keys, aliasing r.b
	)
	for {
		count, err := r.varint()
		if err != nil {
			return err
		}
		if count == 0 {
			break
		}
		end := -1 // end of a sized block
		if count < 0 {
			r.canonical = false
			if count == math.MinInt64 {
				return fmt.Errorf("%w: block count %d", ErrMalformed, count)
			}
			count = -count
			size, err := r.varint()
			if err != nil {
				return err
			}
			if size < 0 || size > int64(len(r.b)-r.pos) {
				return fmt.Errorf("%w: block size %d with %d bytes left", ErrMalformed, size, len(r.b)-r.pos)
			}
			end = r.pos + int(size)
		} else if total > 0 {
			r.canonical = false // a second block
		}
		if count > MaxItems-total { // not total+count: it may overflow
			return fmt.Errorf("%w: %d and %d more items exceed MaxItems (%d)", ErrTooLarge, total, count, MaxItems)
		}
		total += count
		// Every item takes at least min bytes (a map key at least one): a
		// count that the bytes left cannot hold is refused at once rather
		// than item by item. (Nothing is allocated either way: hamba sees
		// the bytes only once the whole record has passed.)
		least := int64(n.items.min)
		if n.kind == kMap {
			least++
		}
		if count*least > int64(len(r.b)-r.pos) {
			return r.truncated(fmt.Sprintf("block of %d items", count))
		}
		for i := range count {
			if n.kind == kMap {
				k, err := r.str()
				if err != nil {
					return inField(fmt.Sprintf("[key %d]", total-count+i), err)
				}
				if len(keys) > 0 && bytes.Compare(keys[len(keys)-1], k) >= 0 {
					sorted = false
				}
				keys = append(keys, k)
			}
			if err := r.value(n.items); err != nil {
				if n.kind == kMap {
					return inField(fmt.Sprintf("[%q]", keys[len(keys)-1]), err)
				}
				return inField(fmt.Sprintf("[%d]", total-count+i), err)
			}
		}
		if end >= 0 && r.pos != end {
			return fmt.Errorf("%w: block size says byte %d, items end at byte %d", ErrMalformed, end, r.pos)
		}
	}
	if !sorted {
		r.canonical = false
		slices.SortFunc(keys, bytes.Compare)
		for i := 1; i < len(keys); i++ {
			if bytes.Equal(keys[i-1], keys[i]) {
				return fmt.Errorf("%w: map key %q twice", ErrMalformed, keys[i])
			}
		}
	}
	return nil
}

// fieldError is an error in a field of a record; path names the field from
// the top record down, like "nodes[2].node_id".
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// inField puts err in the field or item called name.
func inField(name string, err error) error {
	fe, ok := err.(*fieldError)
	if !ok {
		return &fieldError{path: name, err: err}
	}
	if fe.path[0] == '[' {
		fe.path = name + fe.path
	} else {
		fe.path = name + "." + fe.path
	}
	return fe
}

// splitField returns the field path of err, if any, and the error under it.
func splitField(err error) (string, error) {
	if fe, ok := err.(*fieldError); ok {
		return fe.path, fe.err
	}
	return "", err
}

// canonicalize appends the canonical encoding of b, a value of n that check
// accepted, to dst: arrays and maps in one block, map entries sorted by key.
func canonicalize(dst []byte, n *node, b []byte) ([]byte, error) {
	c := canonicalizer{reader: reader{b: b}, out: dst}
	if err := c.value(n); err != nil {
		return dst, err
	}
	return c.out, nil
}

type canonicalizer struct {
	reader
	out []byte
}

func (c *canonicalizer) value(n *node) error {
	switch n.kind {
	case kRecord:
		for _, f := range n.fields {
			if err := c.value(f); err != nil {
				return err
			}
		}
		return nil
	case kUnion:
		start := c.pos
		i, err := c.varint()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(n.fields)) {
			return fmt.Errorf("%w: union branch %d", ErrMalformed, i)
		}
		c.out = append(c.out, c.b[start:c.pos]...)
		return c.value(n.fields[i])
	case kArray, kMap:
		return c.blocks(n)
	default:
		start := c.pos
		if err := c.reader.value(n); err != nil {
			return err
		}
		c.out = append(c.out, c.b[start:c.pos]...)
		return nil
	}
}

func (c *canonicalizer) blocks(n *node) error {
	type item struct{ key, enc []byte }
	var items []item
	outer := c.out
	for {
		count, err := c.varint()
		if err != nil {
			return err
		}
		if count == 0 {
			break
		}
		if count < 0 {
			if count == math.MinInt64 {
				return fmt.Errorf("%w: block count %d", ErrMalformed, count)
			}
			count = -count
			if _, err := c.varint(); err != nil {
				return err
			}
		}
		if count > MaxItems || int64(len(items))+count > MaxItems {
			return fmt.Errorf("%w: more than MaxItems (%d) items", ErrTooLarge, MaxItems)
		}
		for range count {
			var it item
			c.out = nil
			if n.kind == kMap {
				start := c.pos
				if it.key, err = c.str(); err != nil {
					return err
				}
				c.out = append(c.out, c.b[start:c.pos]...)
			}
			if err := c.value(n.items); err != nil {
				return err
			}
			it.enc = c.out
			items = append(items, it)
		}
	}
	c.out = outer
	if n.kind == kMap {
		slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.key, b.key) })
	}
	if len(items) > 0 {
		c.out = appendLong(c.out, int64(len(items)))
		for _, it := range items {
			c.out = append(c.out, it.enc...)
		}
	}
	c.out = append(c.out, 0)
	return nil
}

// appendLong appends the zig-zag varint encoding of v to dst.
func appendLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

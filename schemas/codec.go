package schemas

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"
	"github.com/modern-go/reflect2"
)

// Limits on what a decoder accepts. They bound the memory a hostile record
// can make the decoder allocate: a record is at most MaxRecordBytes, each of
// its strings at most MaxStringBytes, and each array or map at most MaxItems
// items, each backed by at least one byte of input.
const (
	// MaxStringBytes is the longest string or bytes value, in bytes.
	MaxStringBytes = 64 << 10
	// MaxItems is the most items of one array or entries of one map.
	MaxItems = 100_000
)

// MaxRecordBytes is the largest plain Avro record, in bytes, that Decode
// accepts and that Append and Encode produce; larger ones fail with
// ErrTooLarge. It defaults to 1 MiB, Kafka's default message size. It is read
// on every call: change it only at start-up, before any codec is used.
var MaxRecordBytes = 1 << 20

// api is the hamba configuration of every codec: canonical output (arrays
// and maps in one block with a positive count, as goavro writes them) and
// the limits above.
var api = avro.Config{
	TagKey:                 "avro",
	BlockLength:            1 << 30,
	DisableBlockSizeHeader: true,
	UnionResolutionError:   true,
	MaxByteSliceSize:       MaxStringBytes,
	MaxSliceAllocSize:      MaxItems,
}.Freeze()

// Codec reads and writes values of T as plain Avro records of one schema.
//
// Decoding is strict: it accepts exactly the bytes of one record, with
// nothing after it, and returns a *DecodeError for anything else, never
// panicking, whatever the bytes. Encoding produces the canonical encoding:
// each array and map in one block with a positive count, map entries sorted
// by key, minimal varints. So equal values encode to equal bytes, and a
// canonical record decodes and re-encodes to the same bytes.
//
// A Codec is safe for concurrent use. The package-level codecs are the only
// ones; they are built when the package is initialised.
type Codec[T any] struct {
	name   string
	text   string
	schema avro.Schema
	prog   *node
	dec    avro.ValDecoder
	enc    avro.ValEncoder
	// authority is goavro's codec of the same schema: it validated the
	// schema at start-up, and tests check hamba against it.
	authority *goavro.Codec

	readers sync.Pool // *avro.Reader
	writers sync.Pool // *avro.Writer

	// internal codecs write only values invroute builds from input that was
	// decoded strictly already; Append skips the strict pass for them (the
	// size limit still applies; tests check that the strict decoder accepts
	// what they write). Set only for schemas without maps, whose hamba
	// output is canonical.
	internal bool

	// fast, if set, decodes the common case in one pass and reports
	// whether it could; Decode falls back to the general path when not.
	fast func([]byte, *T) bool
	// fastAppend, if set, writes the canonical encoding directly, as hamba
	// would (schemas/fast.go), or reports false (a value it leaves to the
	// general path, which refuses it). On a codec that is not internal it
	// must refuse what the strict pass refuses.
	fastAppend func([]byte, *T) ([]byte, bool)
}

// newInternalCodec is newCodec for a record type that only invroute writes
// (state and outputs), on the hot path.
func newInternalCodec[T any](text string) *Codec[T] {
	c := newCodec[T](text)
	if strings.Contains(text, `"map"`) {
		panic("schemas: internal codec " + c.name + " has a map: its encoding needs the canonicalising pass")
	}
	c.internal = true
	return c
}

// newCodec builds the codec of the schema text, which must be a record whose
// fields match T's avro tags. It panics on any error: the schemas are
// embedded, so an error is a programmer error.
func newCodec[T any](text string) *Codec[T] {
	c, err := buildCodec[T](text)
	if err != nil {
		panic(err)
	}
	return c
}

func buildCodec[T any](text string) (*Codec[T], error) {
	authority, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("schemas: goavro rejects schema: %w", err)
	}
	// A fresh cache per schema: a name one schema uses must be defined in
	// that schema, not borrowed from another one parsed before.
	schema, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("schemas: hamba rejects schema: %w", err)
	}
	rec, ok := schema.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("schemas: schema is a %s, want a record", schema.Type())
	}
	// The Confluent framing rule of DecodeInput depends on this.
	if f := rec.Fields(); len(f) == 0 || f[0].Type().Type() != avro.String {
		return nil, fmt.Errorf("schemas: %s does not start with a string field", rec.FullName())
	}
	prog, err := compile(schema, map[string]*node{})
	if err != nil {
		return nil, err
	}
	typ := reflect2.TypeOf((*T)(nil))
	c := &Codec[T]{
		name:      rec.FullName(),
		text:      text,
		schema:    schema,
		prog:      prog,
		dec:       api.DecoderOf(schema, typ),
		enc:       api.EncoderOf(schema, typ.(*reflect2.UnsafePtrType).Elem()),
		authority: authority,
	}
	c.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(api)) }
	c.writers.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(api)) }
	return c, nil
}

// Name returns the full name of the record schema, like
// "io.invroute.StockMovement".
func (c *Codec[T]) Name() string { return c.name }

// Schema returns the schema as the JSON text of its .avsc file.
func (c *Codec[T]) Schema() string { return c.text }

// Append appends the canonical plain Avro encoding of *v to dst. It fails
// with an *EncodeError if an enum field is not one of its symbols, a string
// is not UTF-8, or a limit (MaxRecordBytes, MaxStringBytes, MaxItems) is
// exceeded, so that everything it writes, Decode reads. On error it returns
// dst unchanged. v must not be nil.
func (c *Codec[T]) Append(dst []byte, v *T) ([]byte, error) {
	if v == nil {
		panic("schemas: " + c.name + " Append of a nil value")
	}
	if c.fastAppend != nil {
		if out, ok := c.fastAppend(dst, v); ok {
			if n := len(out) - len(dst); n > MaxRecordBytes {
				return dst, &EncodeError{Schema: c.name,
					Err: fmt.Errorf("%w: %d bytes exceed MaxRecordBytes (%d)", ErrTooLarge, n, MaxRecordBytes)}
			}
			return out, nil
		}
	}
	return c.appendGeneral(dst, v)
}

// appendGeneral is Append through hamba, without the fast path.
func (c *Codec[T]) appendGeneral(dst []byte, v *T) ([]byte, error) {
	w := c.writers.Get().(*avro.Writer)
	defer c.putWriter(w)
	w.Reset(nil)
	c.enc.Encode(unsafe.Pointer(v), w)
	if w.Error != nil {
		return dst, &EncodeError{Schema: c.name, Err: hambaError(w.Error)}
	}
	b := w.Buffer()
	if len(b) > MaxRecordBytes {
		return dst, &EncodeError{Schema: c.name,
			Err: fmt.Errorf("%w: %d bytes exceed MaxRecordBytes (%d)", ErrTooLarge, len(b), MaxRecordBytes)}
	}
	if c.internal {
		return append(dst, b...), nil
	}
	canonical, err := check(c.prog, b)
	if err != nil {
		field, err := splitField(err)
		return dst, &EncodeError{Schema: c.name, Field: field, Err: err}
	}
	if canonical {
		return append(dst, b...), nil
	}
	// Only map entries come out of hamba in Go's random map order.
	out, err := canonicalize(dst, c.prog, b)
	if err != nil {
		return dst, &EncodeError{Schema: c.name, Err: err}
	}
	return out, nil
}

func (c *Codec[T]) putWriter(w *avro.Writer) {
	if cap(w.Buffer()) > 64<<10 {
		return // let a rare big buffer go rather than pin it in the pool
	}
	w.Error = nil
	c.writers.Put(w)
}

// hambaError maps an encoding error of hamba to the sentinel it stands for.
func hambaError(err error) error {
	// hamba's only encoding failure for a value of a Go type that matches the
	// schema is an enum value that is not a symbol.
	if strings.Contains(err.Error(), "unknown enum symbol") {
		return fmt.Errorf("%w: %v", ErrUnknownSymbol, err)
	}
	return err
}

// Encode returns the canonical plain Avro encoding of *v; see Append.
func (c *Codec[T]) Encode(v *T) ([]byte, error) {
	return c.Append(nil, v)
}

// Decode sets *v to the record in b, which must be plain Avro: exactly one
// record of the schema, with nothing after it.
//
// Besides what the schema demands, Decode refuses (with a *DecodeError
// wrapping the sentinel): records over MaxRecordBytes, strings over
// MaxStringBytes, arrays and maps over MaxItems, strings that are not UTF-8,
// enum indexes out of range (ErrUnknownSymbol), varints longer than needed
// and map keys that appear twice (ErrMalformed). It accepts arrays and maps
// in several blocks, with sized blocks and with map keys in any order, as
// other Avro writers produce them; re-encoding such a value gives the
// canonical form.
//
// Decode resets *v to its zero value before it fills it, so nothing of what
// *v held before survives. On error the contents of *v are unspecified. An
// empty array or map decodes as an empty, non-nil slice or map.
//
// Decoded strings do not alias b, but hamba carves short ones out of shared
// 1 KiB blocks: a cache that keeps a few strings of many records for long
// should strings.Clone them.
func (c *Codec[T]) Decode(b []byte, v *T) error {
	if len(b) > MaxRecordBytes {
		return &DecodeError{Schema: c.name,
			Err: fmt.Errorf("%w: %d bytes exceed MaxRecordBytes (%d)", ErrTooLarge, len(b), MaxRecordBytes)}
	}
	if c.fast != nil && c.fast(b, v) {
		return nil
	}
	return c.decode(b, v)
}

// decode is Decode without the size check and the fast path.
func (c *Codec[T]) decode(b []byte, v *T) error {
	if _, err := check(c.prog, b); err != nil {
		field, err := splitField(err)
		return &DecodeError{Schema: c.name, Field: field, Err: err}
	}
	var zero T
	*v = zero
	r := c.readers.Get().(*avro.Reader)
	r.Reset(b)
	c.dec.Decode(unsafe.Pointer(v), r)
	err := r.Error
	r.Reset(nil)
	r.Error = nil
	c.readers.Put(r)
	if err != nil {
		// The check accepted b, so hamba should too.
		return &DecodeError{Schema: c.name, Err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	return nil
}

// DecodeInput is Decode for records read from an input topic: b is either
// plain Avro or in Confluent wire format (see Frame).
//
// The two are told apart by the first byte. Every schema here starts with a
// string id that must not be empty, and a non-empty string starts with its
// zig-zag length, never 0; so a leading 0 byte is never valid plain Avro of
// an acceptable record and is read as the Confluent magic byte. (A plain
// record with an empty first id is therefore refused, as the processors
// would refuse it anyway.)
//
// A Confluent-framed record must carry a schema id in ids, else the error
// wraps a *SchemaIDError; with nil or empty ids every framed record is
// refused that way, with a message that says to configure the ids. The id is
// not looked up anywhere: ids lists the registry ids whose schema writes the
// same bytes as this codec's, which is what registering the .avsc file gives.
func (c *Codec[T]) DecodeInput(b []byte, v *T, ids SchemaIDs) error {
	b, err := unframe(c.name, b, ids)
	if err != nil {
		return &DecodeError{Schema: c.name, Err: err}
	}
	return c.Decode(b, v)
}

package schemas

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Confluent wire format
//
// Producers that use a Confluent schema registry put a 5-byte header in
// front of the Avro bytes:
//
//	+------+------+------+------+------+--------------------+
//	| 0x00 |  schema id, int32 big-endian | plain Avro record  |
//	+------+------+------+------+------+--------------------+
//
// Codec.DecodeInput accepts both this format and plain Avro; its doc comment
// tells how it tells them apart and what the schema ids mean.

// confluentHeader is the length of the Confluent wire-format header.
const confluentHeader = 5

// SchemaIDs is a small set of accepted Confluent schema registry ids. Nil or
// empty accepts none: Confluent-framed records are then refused with an error
// that says how to configure the ids.
type SchemaIDs []int32

// Contains reports whether id is in s.
func (s SchemaIDs) Contains(id int32) bool {
	return slices.Contains(s, id)
}

// String formats s as a comma-separated list, like "7,12".
func (s SchemaIDs) String() string {
	b := make([]byte, 0, 8*len(s))
	for i, id := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return string(b)
}

// ParseSchemaIDs parses a comma-separated list of schema ids, like "7,12",
// as found in a flag or config file. Spaces around ids are ignored; an empty
// string gives nil.
func ParseSchemaIDs(s string) (SchemaIDs, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ids SchemaIDs
	for f := range strings.SplitSeq(s, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("schemas: schema id %q is not a non-negative 32-bit integer", strings.TrimSpace(f))
		}
		if !ids.Contains(int32(id)) {
			ids = append(ids, int32(id))
		}
	}
	return ids, nil
}

// Frame appends to dst the Confluent wire format of the plain Avro record
// avro with schema id id: the magic byte 0, id as 4 big-endian bytes, then
// avro.
func Frame(dst []byte, id int32, avro []byte) []byte {
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(id))
	return append(dst, avro...)
}

// unframe returns the Avro bytes of b: b itself if it is plain Avro, or what
// follows the header if b is Confluent-framed with an id in ids.
func unframe(name string, b []byte, ids SchemaIDs) ([]byte, error) {
	if len(b) == 0 || b[0] != 0 {
		return b, nil
	}
	if len(b) < confluentHeader {
		return nil, fmt.Errorf("%w: %d bytes of a %d-byte Confluent header", ErrTruncated, len(b), confluentHeader)
	}
	id := int32(binary.BigEndian.Uint32(b[1:confluentHeader]))
	if !ids.Contains(id) {
		return nil, &SchemaIDError{Schema: name, ID: id, Accepted: ids}
	}
	return b[confluentHeader:], nil
}

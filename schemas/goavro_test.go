package schemas

import (
	"bytes"
	"reflect"
	"testing"
)

// TestMatchesGoavro checks hamba against goavro, the schema authority, for
// every sample: the bytes Encode writes are the bytes goavro writes for the
// same datum (after sorting map entries, which goavro writes in Go's random
// map order), goavro reads them back to the same datum, and Decode reads
// goavro's bytes to the same value.
func TestMatchesGoavro(t *testing.T) {
	forEachSample(t, func(t *testing.T, c anyCodec, v any) {
		native := toNative(c.hamba(), reflect.ValueOf(v).Elem())
		ours, err := c.encode(v)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := c.goavro().BinaryFromNative(nil, native)
		if err != nil {
			t.Fatalf("goavro encode: %v", err)
		}
		sorted, err := canonicalize(nil, c.program(), theirs)
		if err != nil {
			t.Fatalf("goavro bytes: %v", err)
		}
		if !bytes.Equal(ours, sorted) {
			t.Fatalf("hamba and goavro differ:\nhamba  % x\ngoavro % x", ours, sorted)
		}

		back, rest, err := c.goavro().NativeFromBinary(ours)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro decode: %v, %d bytes left", err, len(rest))
		}
		if !reflect.DeepEqual(back, native) {
			t.Fatalf("goavro decodes\n%v\nwant\n%v", back, native)
		}

		got, err := c.decode(theirs)
		if err != nil {
			t.Fatalf("decoding goavro's bytes: %v", err)
		}
		if !equalValues(v, got) {
			t.Fatalf("decoding goavro's bytes:\n got %+v\nwant %+v", got, v)
		}
	})
}

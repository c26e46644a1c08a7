package schemas

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestFrame(t *testing.T) {
	got := Frame([]byte("k"), 0x01020304, []byte{9, 8})
	if want := []byte{'k', 0, 1, 2, 3, 4, 9, 8}; !bytes.Equal(got, want) {
		t.Fatalf("Frame = % x, want % x", got, want)
	}
	if got := Frame(nil, -1, nil); !bytes.Equal(got, []byte{0, 0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("Frame(-1) = % x", got)
	}
}

func TestDecodeInputFramed(t *testing.T) {
	want := stockMovementSamples[1]
	plain, _ := StockMovements.Encode(&want)
	framed := Frame(nil, 7, plain)

	var got StockMovement
	for _, ids := range []SchemaIDs{{7}, {3, 7, 12}} {
		if err := StockMovements.DecodeInput(framed, &got, ids); err != nil || !equalValues(&want, &got) {
			t.Fatalf("ids %v: %v %+v", ids, err, got)
		}
	}
	// Negative ids (over 2^31 as unsigned) round-trip too.
	if err := StockMovements.DecodeInput(Frame(nil, -5, plain), &got, SchemaIDs{-5}); err != nil {
		t.Fatal(err)
	}
	// Plain Avro needs no ids.
	if err := StockMovements.DecodeInput(plain, &got, nil); err != nil {
		t.Fatal(err)
	}
	// Decode is plain Avro only: the header is not a record.
	if err := StockMovements.Decode(framed, &got); err == nil {
		t.Fatal("Decode accepted a framed record")
	}
}

func TestDecodeInputUnknownID(t *testing.T) {
	plain, _ := StockMovements.Encode(&stockMovementSamples[0])
	framed := Frame(nil, 8, plain)
	for _, ids := range []SchemaIDs{nil, {}, {7}, {1, 2}} {
		var v StockMovement
		err := StockMovements.DecodeInput(framed, &v, ids)
		var se *SchemaIDError
		if !errors.As(err, &se) || !errors.Is(err, ErrSchemaID) {
			t.Fatalf("ids %v: %v", ids, err)
		}
		if se.ID != 8 || se.Schema != "io.invroute.StockMovement" || !slices.Equal(se.Accepted, ids) {
			t.Fatalf("ids %v: %+v", ids, se)
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("not a *DecodeError: %v", err)
		}
		msg := err.Error()
		if len(ids) == 0 && !strings.Contains(msg, "no schema ids are accepted") {
			t.Errorf("message does not say how to configure ids: %s", msg)
		}
		if len(ids) > 0 && !strings.Contains(msg, "schema id 8 is not one of "+ids.String()) {
			t.Errorf("message: %s", msg)
		}
	}
}

func TestDecodeInputShort(t *testing.T) {
	plain, _ := StockMovements.Encode(&stockMovementSamples[0])
	for _, b := range [][]byte{{0}, {0, 0}, {0, 0, 0, 7}, {0, 0, 0, 0, 7}} {
		var v StockMovement
		if err := StockMovements.DecodeInput(b, &v, SchemaIDs{7}); !errors.Is(err, ErrTruncated) {
			t.Fatalf("% x: %v", b, err)
		}
	}
	framed := append(Frame(nil, 7, plain), 0)
	var v StockMovement
	if err := StockMovements.DecodeInput(framed, &v, SchemaIDs{7}); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("trailing: %v", err)
	}
	for i := confluentHeader; i < len(framed)-1; i++ {
		if err := StockMovements.DecodeInput(framed[:i], &v, SchemaIDs{7}); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
}

func TestParseSchemaIDs(t *testing.T) {
	for in, want := range map[string]SchemaIDs{
		"":               nil,
		"  ":             nil,
		"7":              {7},
		"7, 12,7":        {7, 12},
		" 0 ,2147483647": {0, 2147483647},
	} {
		got, err := ParseSchemaIDs(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseSchemaIDs(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "7,", "-1", "2147483648", "7;8"} {
		if got, err := ParseSchemaIDs(in); err == nil {
			t.Errorf("ParseSchemaIDs(%q) = %v, want an error", in, got)
		}
	}
	if s := (SchemaIDs{7, 12}).String(); s != "7,12" {
		t.Errorf("String() = %q", s)
	}
}

package schemas

import (
	"errors"
	"reflect"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// TestChannelOfTheInventoryOnlyVersion: a channel record written by the
// inventory-only version (five fields, before max_order_value_cents and
// ship_countries; the channels topic is compacted, so it outlives the
// upgrade) reads as the same channel with the new fields at their schema
// defaults, plain or framed; a record of the current schema is not read
// with the old one, and damaged bytes keep the current schema's error.
func TestChannelOfTheInventoryOnlyVersion(t *testing.T) {
	old, err := goavro.NewCodec(mustSchema("legacy/channel_v1.avsc")) // the schema authority writes the old bytes
	if err != nil {
		t.Fatal(err)
	}
	b, err := old.BinaryFromNative(nil, map[string]any{"channel_id": "web", "nodes": []any{"W-PAR"},
		"node_types": []any{"STORE"}, "buffer_units": int32(2), "buffer_percent": int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	// what the current schema's defaults give the same channel
	cur, err := Channels.Encode(&Channel{ChannelID: "web", Nodes: []string{"W-PAR"}, NodeTypes: []NodeType{Store}, BufferUnits: 2, BufferPercent: 10})
	if err != nil {
		t.Fatal(err)
	}
	var want Channel
	if err := Channels.Decode(cur, &want); err != nil {
		t.Fatal(err)
	}
	if err := Channels.Decode(b, new(Channel)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("the old bytes under the current schema: %v, want truncated", err)
	}
	for name, in := range map[string][]byte{"plain": b, "framed": Frame(nil, 7, b)} {
		var got Channel
		if err := DecodeChannel(in, &got, SchemaIDs{7}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %+v, want %+v", name, got, want)
		}
	}
	// a current record is read with the current schema only
	full := &Channel{ChannelID: "web", BufferUnits: 1, MaxOrderValueCents: 5000, ShipCountries: []string{"FR"}}
	fb, err := Channels.Encode(full)
	if err != nil {
		t.Fatal(err)
	}
	var got Channel
	if err := DecodeChannel(fb, &got, nil); err != nil || got.MaxOrderValueCents != 5000 || !reflect.DeepEqual(got.ShipCountries, []string{"FR"}) {
		t.Fatalf("current record: %+v, %v", got, err)
	}
	if err := ChannelsV1.Decode(fb, new(Channel)); !errors.Is(err, ErrTrailingBytes) {
		t.Fatalf("a current record under the old schema: %v, want trailing bytes", err)
	}
	// damaged: cut inside the old fields; the error is the current schema's
	err = DecodeChannel(b[:3], &got, nil)
	var de *DecodeError
	if !errors.As(err, &de) || de.Schema != Channels.name {
		t.Fatalf("cut record: %v, want the current schema's error", err)
	}
}

package topology

import (
	"bytes"
	"testing"
)

func TestArena(t *testing.T) {
	var a Arena
	if e := a.Copy([]byte{}); e == nil { // first call, no chunk yet
		t.Fatal("Copy(empty) of a zero Arena is nil: an empty value would become a tombstone")
	}
	var got [][]byte
	var want [][]byte
	for i := range 5000 { // several chunks
		b := bytes.Repeat([]byte{byte(i)}, i%97)
		want = append(want, b)
		got = append(got, a.Copy(b))
	}
	big := bytes.Repeat([]byte{7}, arenaChunk)
	want = append(want, big)
	got = append(got, a.Copy(big))
	s := a.CopyString("sku-1")
	got[0] = append(got[0], 1, 2, 3) // appending must not overwrite a neighbour
	want[0] = append(want[0], 1, 2, 3)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("slice %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if a.Copy(nil) != nil {
		t.Fatal("Copy(nil) is not nil: a tombstone would become an empty value")
	}
	if e := a.Copy([]byte{}); e == nil || len(e) != 0 {
		t.Fatalf("Copy(empty) = %#v, want an empty non-nil slice", e)
	}
	if string(s) != "sku-1" {
		t.Fatalf("CopyString: %q", s)
	}
	if n := testing.AllocsPerRun(100, func() { a.Copy([]byte("0123456789")) }); n > 0.01 {
		t.Fatalf("%v allocations per small copy", n)
	}
}

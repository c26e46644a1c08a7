package router

import (
	"testing"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
)

// TestLoadDays: a node's count is per UTC day; a record stamped with an
// earlier day (clock skew) neither wipes nor moves today's count.
func TestLoadDays(t *testing.T) {
	st, err := state.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &pebbleStore{st: st, orders: state.NewTable[schemas.RouterOrder](st, prefixOrder, orderCodec{}, 10), dirty: map[string]int64{}}
	for range 5 {
		if err := s.AddLoad("W1", 101, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddLoad("W1", 100, -1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Load("W1", 101); err != nil || n != 5 {
		t.Fatalf("day 101: %d, %v; want 5", n, err)
	}
	if n, _ := s.Load("W1", 100); n != 0 {
		t.Fatalf("day 100: %d, want 0 (a new day has begun)", n)
	}
	if err := s.AddLoad("W1", 102, 1); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Load("W1", 102); n != 1 {
		t.Fatalf("day 102: %d, want 1 (the count starts again)", n)
	}
}

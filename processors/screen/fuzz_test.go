package screen

import (
	"errors"
	"testing"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

type nopEmitter struct{}

func (nopEmitter) Emit(topology.Topic, []byte, []byte) {}

// FuzzProcess feeds arbitrary checks to the screen task on Pebble: no
// panic, and every error is bad input (dead letter).
func FuzzProcess(f *testing.F) {
	for _, c := range []schemas.CustomerCheck{
		{OrderID: "o1", CustomerID: "c1", PlacedAt: 1000, MaxOrders: 2, WindowMs: 3600000},
		{OrderID: "o2", CustomerID: "c1", PlacedAt: 1 << 62, MaxOrders: 1 << 30, WindowMs: 1 << 62},
	} {
		b := encoded(schemas.CustomerChecks.Encode(&c))
		f.Add([]byte(c.CustomerID), b)
	}
	st, err := state.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	task, err := Topology("g", "dlq", nil).NewTask(topology.TaskContext{Stores: map[string]*state.Store{StoreName: st}, CacheEntries: 100})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	f.Fuzz(func(t *testing.T, key, value []byte) {
		err := task.Process(&topology.Record{Topic: string(TopicChecks), Key: key, Value: value}, nopEmitter{})
		var bad *topology.BadInputError
		if err != nil && !errors.As(err, &bad) {
			t.Fatalf("not a dead letter: %v", err)
		}
		if n++; n%16 == 0 {
			if err := st.Prepare(); err != nil {
				t.Fatal(err)
			}
			if err := st.Commit(state.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// encoded is an encoded seed: one that does not encode would silently be
// an empty input and weaken the corpus.
func encoded(b []byte, err error) []byte {
	if err != nil {
		panic("a fuzz seed does not encode: " + err.Error())
	}
	return b
}

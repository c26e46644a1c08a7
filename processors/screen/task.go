package screen

import (
	"fmt"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// Topic names of the screen topology, before the prefix.
const (
	TopicChecks    topology.Topic = "invroute-customer-checks"
	TopicVerdicts  topology.Topic = "invroute-customer-verdicts"
	TopicChangelog topology.Topic = "invroute-screen-changelog"
	StoreName                     = "screen"
)

// Topology returns the customer screen's topology: checks in (key
// customer_id), verdicts out (key order_id, for the router).
func Topology(group string, deadLetter topology.Topic) *topology.Topology {
	return &topology.Topology{
		Group:      group,
		Inputs:     []topology.Input{{Topic: TopicChecks}},
		Stores:     []topology.Store{{Name: StoreName, Changelog: TopicChangelog}},
		Outputs:    []topology.Output{{Topic: TopicVerdicts}},
		DeadLetter: deadLetter,
		NewTask: func(tc topology.TaskContext) (topology.Task, error) {
			st := tc.Stores[StoreName]
			return &Task{hist: state.NewTable[schemas.CustomerHistory](st, "c/", historyCodec{}, tc.CacheEntries)}, nil
		},
	}
}

// Task runs the screen for one partition.
type Task struct {
	hist *state.Table[schemas.CustomerHistory]
	c    schemas.CustomerCheck
}

func (t *Task) Get(customer string) (*schemas.CustomerHistory, error) { return t.hist.Get(customer) }
func (t *Task) Put(h *schemas.CustomerHistory)                        { t.hist.Put(h.CustomerID, h) }

// Process answers one check.
func (t *Task) Process(r *topology.Record, out topology.Emitter) error {
	t.c = schemas.CustomerCheck{}
	if err := schemas.CustomerChecks.Decode(r.Value, &t.c); err != nil {
		return topology.BadInput("decode", err)
	}
	v, err := Check(t, r.Key, &t.c)
	if IsInvalid(err) {
		return topology.BadInput("validate", err)
	}
	if err != nil {
		return err
	}
	b, err := schemas.CustomerVerdicts.Encode(v)
	if err != nil {
		return err
	}
	out.Emit(TopicVerdicts, []byte(v.OrderID), b)
	return nil
}

func (t *Task) GlobalChanged(topology.Topic, []byte, int64, topology.Emitter) error { return nil }
func (t *Task) Flush(topology.Emitter) error                                        { return nil }
func (t *Task) Aborted()                                                            {}

const historyFormat byte = 1

type historyCodec struct{}

func (historyCodec) Append(dst []byte, v *schemas.CustomerHistory) ([]byte, error) {
	return schemas.CustomerHistories.Append(append(dst, historyFormat), v)
}

func (historyCodec) Decode(b []byte, v *schemas.CustomerHistory) error {
	if len(b) == 0 || b[0] != historyFormat {
		return fmt.Errorf("screen: stored history has format %v, this version reads %d", b[:min(len(b), 1)], historyFormat)
	}
	return schemas.CustomerHistories.Decode(b[1:], v)
}

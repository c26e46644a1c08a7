package topology

import (
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Status is what an engine shows of itself to health and readiness checks;
// every field is safe to read from any goroutine.
type Status struct {
	Group  string   // consumer group
	Inputs []string // input topics, prefixed
	// Owned is how many partitions the engine owns with restored stores.
	Owned int32
	// Assigning: the group assigned or revoked partitions that the loop
	// has not taken over yet, or is restoring now (restores pending).
	Assigning bool
	// LastRound is when the processing loop last went round (between two
	// transactions); zero before its first round.
	LastRound time.Time
	// Restored counts the changelog records replayed into stores so far.
	Restored float64
	// Err is Healthy's answer.
	Err error
}

// Group returns the engine's consumer group.
func (e *Engine) Group() string { return e.topo.Group }

// Inputs returns the engine's input topics, with their prefix.
func (e *Engine) Inputs() []string { return slices.Clone(e.inputs) }

// Status returns the engine's status now.
func (e *Engine) Status() Status {
	s := Status{Group: e.topo.Group, Inputs: slices.Clone(e.inputs), Owned: e.owned.Load(), Err: e.Healthy()}
	e.mu.Lock()
	s.Assigning = len(e.events) > 0 || e.applying
	e.mu.Unlock()
	if b := e.queries.beat.Load(); b != 0 {
		s.LastRound = time.Unix(0, b)
	}
	var m dto.Metric
	if e.m.restored.Write(&m) == nil {
		s.Restored = m.GetCounter().GetValue()
	}
	return s
}

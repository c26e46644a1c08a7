// Package topology declares invroute's processing graph and runs it on Kafka
// with exactly-once semantics.
//
// A Topology is one value: the inputs a task consumes, the stores it owns
// (each backed by a compacted changelog topic), the outputs it writes, and
// the global (replicated, read-only) tables every instance keeps whole.
// Inputs, store changelogs and co-partitioned outputs share one key space
// and must have the same partition count; Validate checks the graph and
// EnsureTopics creates topics or reports the ones that disagree.
//
//	           +-----------------------------+
//	inputs --> | task (one per partition p)  | --> outputs (partition p)
//	           |   stores (Pebble, local)    | --> changelogs (partition p)
//	globals -> |   read-only tables          | --> dead-letter
//	           +-----------------------------+
package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Topic is a Kafka topic name, before the configured prefix is applied.
type Topic string

// Input is a topic the tasks consume, partition p by the task of p.
type Input struct {
	Topic Topic
}

// Store is a local state store, one Pebble database per partition, backed by
// a compacted changelog topic co-partitioned with the inputs.
type Store struct {
	Name      string
	Changelog Topic
}

// Output is a topic the tasks write. A co-partitioned output is keyed like
// the inputs and receives a task's records in the task's partition; others
// are written with the default key hash.
type Output struct {
	Topic         Topic
	CoPartitioned bool
	Compacted     bool
}

// Global is a topic every instance reads whole into a replicated read-only
// table, like a Kafka Streams GlobalKTable. Apply is called for every record
// in offset order from the global reader's goroutine.
type Global struct {
	Topic Topic
	Apply func(key, value []byte) error
	// Silent tables are read but their changes are not handed to the tasks
	// (GlobalChanged): no history is kept and task state does not record
	// positions in them. For large, busy tables only looked up (the ats
	// table of the router).
	Silent bool
	// Partitioned tables are another topology's co-partitioned output (the
	// router reads the inventory's ats): if invroute creates the topic, it
	// gets the configured partition count, not the single partition of a
	// small table.
	Partitioned bool
}

// Topology is the processing graph of one application.
type Topology struct {
	// Group is the consumer group and the prefix of transactional ids.
	Group      string
	Inputs     []Input
	Stores     []Store
	Outputs    []Output
	Globals    []Global
	DeadLetter Topic
	// NewTask builds the processing task of one partition.
	NewTask func(TaskContext) (Task, error)
}

// Validate reports every problem of the graph at once.
func (t *Topology) output(tp Topic) *Output {
	for i := range t.Outputs {
		if t.Outputs[i].Topic == tp {
			return &t.Outputs[i]
		}
	}
	return nil
}

func (t *Topology) Validate() error {
	var errs []error
	if t.Group == "" {
		errs = append(errs, errors.New("topology: Group is empty"))
	}
	if len(t.Inputs) == 0 {
		errs = append(errs, errors.New("topology: no inputs"))
	}
	if t.DeadLetter == "" {
		errs = append(errs, errors.New("topology: DeadLetter is empty"))
	}
	if t.NewTask == nil {
		errs = append(errs, errors.New("topology: NewTask is nil"))
	}
	seen := map[Topic]string{}
	use := func(tp Topic, role string) {
		if tp == "" {
			errs = append(errs, fmt.Errorf("topology: empty topic name for %s", role))
			return
		}
		if prev, ok := seen[tp]; ok {
			errs = append(errs, fmt.Errorf("topology: topic %q is both %s and %s", tp, prev, role))
			return
		}
		seen[tp] = role
	}
	for _, in := range t.Inputs {
		use(in.Topic, "input")
	}
	names := map[string]bool{}
	for _, s := range t.Stores {
		if s.Name == "" || strings.ContainsAny(s.Name, "/\\. ") {
			errs = append(errs, fmt.Errorf("topology: bad store name %q", s.Name))
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("topology: duplicate store %q", s.Name))
		}
		names[s.Name] = true
		use(s.Changelog, "changelog of store "+s.Name)
	}
	for _, o := range t.Outputs {
		use(o.Topic, "output")
	}
	for _, g := range t.Globals {
		// A silent global may be a compacted output too: a table every
		// task publishes to and every instance reads (shared state such as
		// the router's node loads). Others would feed back into the tasks.
		if g.Silent && seen[g.Topic] == "output" && t.output(g.Topic).Compacted && !t.output(g.Topic).CoPartitioned {
			continue
		}
		use(g.Topic, "global table")
		if g.Apply == nil {
			errs = append(errs, fmt.Errorf("topology: global %q has no Apply", g.Topic))
		}
	}
	if t.DeadLetter != "" {
		use(t.DeadLetter, "dead-letter")
	}
	return errors.Join(errs...)
}

// TopicSpec is a topic the topology needs, with its settings.
type TopicSpec struct {
	Name          string
	CoPartitioned bool
	Compacted     bool
	// Single: created with one partition (a small global table).
	Single bool
	// MaxMessageBytes, if positive, is the topic's max.message.bytes at
	// creation (the dead-letter topic: DeadLetterTopicMaxBytes).
	MaxMessageBytes int
}

// Topics lists every topic of the topology with the prefix applied.
func (t *Topology) Topics(prefix string) []TopicSpec {
	var out []TopicSpec
	for _, in := range t.Inputs {
		out = append(out, TopicSpec{Name: prefix + string(in.Topic), CoPartitioned: true})
	}
	for _, s := range t.Stores {
		out = append(out, TopicSpec{Name: prefix + string(s.Changelog), CoPartitioned: true, Compacted: true})
	}
	for _, o := range t.Outputs {
		out = append(out, TopicSpec{Name: prefix + string(o.Topic), CoPartitioned: o.CoPartitioned, Compacted: o.Compacted,
			Single: o.Compacted && !o.CoPartitioned})
	}
	for _, g := range t.Globals {
		if t.output(g.Topic) == nil {
			out = append(out, TopicSpec{Name: prefix + string(g.Topic), Compacted: true, Single: !g.Partitioned})
		}
	}
	out = append(out, TopicSpec{Name: prefix + string(t.DeadLetter), MaxMessageBytes: DeadLetterTopicMaxBytes})
	return out
}

// CoPartitionError reports topics whose partition counts disagree with the
// inputs'. Surfaces from EnsureTopics and Engine.Run at start-up.
type CoPartitionError struct {
	Want   int32
	Topics map[string]int32 // topic -> its partition count
}

func (e *CoPartitionError) Error() string {
	var parts []string
	for t, n := range e.Topics {
		parts = append(parts, fmt.Sprintf("%s has %d", t, n))
	}
	slices.Sort(parts)
	return fmt.Sprintf("topology: co-partitioned topics must all have %d partitions, but %s; "+
		"repartition them (or recreate with the same count) before starting", e.Want, strings.Join(parts, ", "))
}

// EnsureTopics creates missing topics and checks co-partitioning. New topics
// get the partition count of the existing co-partitioned topics, or
// partitions if there are none; global tables get one partition, compacted
// topics cleanup.policy=compact. replication -1 means the broker default. It returns the partition
// count of the co-partitioned topics and every topic's count.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec, partitions int32, replication int16) (int32, map[string]int32, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return 0, nil, fmt.Errorf("topology: listing topics: %w", err)
	}
	want := int32(0)
	for _, s := range specs {
		if d, ok := details[s.Name]; ok && d.Err == nil && s.CoPartitioned {
			want = int32(len(d.Partitions))
			break
		}
	}
	if want == 0 {
		want = partitions
	}
	for _, s := range specs {
		if d, ok := details[s.Name]; ok && d.Err == nil {
			continue
		}
		n := want // other outputs and the dead-letter topic keep the source partition
		if s.Single {
			n = 1 // global tables are small and read whole
		}
		cfg := map[string]*string{}
		if s.Compacted {
			cfg["cleanup.policy"] = kadm.StringPtr("compact")
		}
		if s.MaxMessageBytes > 0 {
			cfg["max.message.bytes"] = kadm.StringPtr(strconv.Itoa(s.MaxMessageBytes))
		}
		resp, err := adm.CreateTopic(ctx, n, replication, cfg, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, nil, fmt.Errorf("topology: creating topic %s: %w", s.Name, err)
		}
	}
	// Re-read and check co-partitioning; topic creation is asynchronous, so
	// wait until every topic reports its partitions.
	for {
		details, err = adm.ListTopics(ctx, names...)
		if err != nil {
			return 0, nil, fmt.Errorf("topology: listing topics: %w", err)
		}
		ready := true
		for _, s := range specs {
			if d, ok := details[s.Name]; !ok || d.Err != nil || len(d.Partitions) == 0 {
				ready = false
			}
		}
		if ready {
			break
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-afterMillis(50):
		}
	}
	bad := &CoPartitionError{Want: want, Topics: map[string]int32{}}
	for _, s := range specs {
		if n := int32(len(details[s.Name].Partitions)); s.CoPartitioned && n != want {
			bad.Topics[s.Name] = n
		}
	}
	if len(bad.Topics) > 0 {
		return 0, nil, bad
	}
	// A topic that must be compacted (a changelog, a global table, a
	// compacted output) and exists with another policy would lose, by
	// retention, the values a restore or a start reads: refused, as Kafka
	// Streams refuses a misconfigured internal topic.
	for _, s := range specs {
		if !s.Compacted {
			continue
		}
		policy, ok, err := topicConfigString(ctx, adm, s.Name, "cleanup.policy")
		if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
			continue // the minimal ACLs (docs/security.md) have no DESCRIBE_CONFIGS here: not checked
		}
		if err != nil {
			return 0, nil, fmt.Errorf("topology: reading the cleanup.policy of %s: %w", s.Name, err)
		}
		if ok && !slices.ContainsFunc(strings.Split(policy, ","), func(p string) bool { return strings.TrimSpace(p) == "compact" }) {
			return 0, nil, fmt.Errorf("topology: topic %s has cleanup.policy=%s, but it must be compacted (it keeps the latest value of every key, "+
				"which retention would delete): set it with kafka-configs.sh --bootstrap-server ... --alter --entity-type topics "+
				"--entity-name %s --add-config cleanup.policy=compact", s.Name, policy, s.Name)
		}
	}
	counts := map[string]int32{}
	for _, s := range specs {
		counts[s.Name] = int32(len(details[s.Name].Partitions))
	}
	return want, counts, nil
}

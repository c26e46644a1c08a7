package topology

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func validTopology() *Topology {
	return &Topology{
		Group:      "g",
		Inputs:     []Input{{Topic: "in"}},
		Stores:     []Store{{Name: "st", Changelog: "st-changelog"}},
		Outputs:    []Output{{Topic: "out", CoPartitioned: true, Compacted: true}},
		Globals:    []Global{{Topic: "glob", Apply: func(k, v []byte) error { return nil }}},
		DeadLetter: "dlq",
		NewTask:    func(TaskContext) (Task, error) { return nil, nil },
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	if err := validTopology().Validate(); err != nil {
		t.Fatalf("valid topology: %v", err)
	}
	bad := &Topology{
		Inputs:  []Input{{Topic: "a"}},
		Stores:  []Store{{Name: "x/y", Changelog: "a"}, {Name: "s", Changelog: ""}},
		Globals: []Global{{Topic: "g"}},
	}
	err := bad.Validate()
	for _, want := range []string{"Group is empty", "DeadLetter is empty", "NewTask is nil",
		`bad store name "x/y"`, `topic "a" is both input and changelog of store x/y`,
		"empty topic name for changelog of store s", `global "g" has no Apply`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	c.EnsureDefaults()
	c.InstanceID = ""
	c.MaxTxnRecords = -1
	c.CommitInterval = time.Hour
	err := c.Validate()
	for _, want := range []string{"no brokers", "InstanceID is empty", "MaxTxnRecords -1", "CommitInterval 1h0m0s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// TestEnsureTopics creates the topics with their policies, and refuses to
// start when a co-partitioned topic disagrees with the inputs.
func TestEnsureTopics(t *testing.T) {
	c := newCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	topo := validTopology()
	n, counts, err := EnsureTopics(ctx, adm, topo.Topics("p."), 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || counts["p.in"] != 3 || counts["p.st-changelog"] != 3 || counts["p.out"] != 3 ||
		counts["p.dlq"] != 3 || counts["p.glob"] != 1 {
		t.Errorf("partitions: %d %v", n, counts)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, "p.st-changelog", "p.in")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range cfgs {
		for _, kv := range rc.Configs {
			if kv.Key == "cleanup.policy" {
				want := map[string]string{"p.st-changelog": "compact", "p.in": "delete"}[rc.Name]
				if kv.MaybeValue() != want {
					t.Errorf("%s cleanup.policy = %s, want %s", rc.Name, kv.MaybeValue(), want)
				}
			}
		}
	}
	// Existing inputs win: a second topology sees 3 partitions even if asked for 5.
	if n, _, err := EnsureTopics(ctx, adm, topo.Topics("p."), 5, 1); err != nil || n != 3 {
		t.Errorf("second EnsureTopics = %d, %v", n, err)
	}
	// A changelog with the wrong partition count is refused with a clear error.
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "q.st-changelog"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "q.in"); err != nil {
		t.Fatal(err)
	}
	_, _, err = EnsureTopics(ctx, adm, topo.Topics("q."), 4, 1)
	var cpe *CoPartitionError
	if !errors.As(err, &cpe) || cpe.Want != 4 || cpe.Topics["q.st-changelog"] != 2 {
		t.Fatalf("EnsureTopics with a 2-partition changelog = %v, want a CoPartitionError", err)
	}
	if !strings.Contains(err.Error(), "q.st-changelog has 2") {
		t.Errorf("error does not name the topic: %v", err)
	}
}

// TestSharedTable: a silent global may also be a compacted, not
// co-partitioned output (tasks publish, every instance reads); a notified
// global may not.
func TestSharedTable(t *testing.T) {
	mk := func(silent, compacted bool) *Topology {
		return &Topology{Group: "g", Inputs: []Input{{Topic: "in"}}, DeadLetter: "dlq",
			NewTask: func(TaskContext) (Task, error) { return nil, nil },
			Outputs: []Output{{Topic: "load", Compacted: compacted}},
			Globals: []Global{{Topic: "load", Silent: silent, Apply: func(k, v []byte) error { return nil }}}}
	}
	if err := mk(true, true).Validate(); err != nil {
		t.Errorf("silent shared table: %v", err)
	}
	if n := len(mk(true, true).Topics("")); n != 3 {
		t.Errorf("%d topic specs, want 3 (in, load once, dlq)", n)
	}
	if err := mk(false, true).Validate(); err == nil {
		t.Error("a notified global that is also an output was accepted")
	}
	if err := mk(true, false).Validate(); err == nil {
		t.Error("a shared table that is not compacted was accepted")
	}
}

package topology

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestExistingTopicPolicyChecked: a topic that must be compacted (here a
// global table) but exists with cleanup.policy=delete (an operator's topic
// created with the broker's defaults) is refused with an error that says
// how to fix it; "compact,delete" is taken. Found by review: it was
// accepted, and retention then deleted node configuration that a restart
// no longer found.
func TestExistingTopicPolicyChecked(t *testing.T) {
	c := newCluster(t)
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "nodes"); err != nil {
		t.Fatal(err)
	}
	topo := echoTopology(Global{Topic: "nodes", Apply: func(k, v []byte) error { return nil }})
	_, _, err = EnsureTopics(ctx, adm, topo.Topics(""), 1, -1)
	if err == nil || !strings.Contains(err.Error(), "nodes has cleanup.policy=delete") || !strings.Contains(err.Error(), "cleanup.policy=compact") {
		t.Fatalf("EnsureTopics with a delete-policy global table: %v, want a refusal naming the topic and the fix", err)
	}
	// Without DESCRIBE_CONFIGS (the minimal ACLs), the check is skipped.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.DescribeConfigs}, Err: kerr.TopicAuthorizationFailed, Count: -1})
	if _, _, err := EnsureTopics(ctx, adm, topo.Topics(""), 1, -1); err != nil {
		t.Fatalf("EnsureTopics without DESCRIBE_CONFIGS: %v, want the check skipped", err)
	}
	h.Remove()
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("compact,delete")}}, "nodes"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureTopics(ctx, adm, topo.Topics(""), 1, -1); err != nil {
		t.Fatalf("EnsureTopics with compact,delete: %v", err)
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("delete, compact")}}, "nodes"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureTopics(ctx, adm, topo.Topics(""), 1, -1); err != nil {
		t.Fatalf("EnsureTopics with \"delete, compact\": %v", err)
	}
}

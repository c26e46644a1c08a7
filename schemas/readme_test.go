package schemas

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// TestREADMEDocumentsEveryField: the README's section on each topic's record
// names every top-level field of its schema (in backticks), so a field
// added to a schema cannot go undocumented.
func TestREADMEDocumentsEveryField(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for name, schema := range map[string]avro.Schema{
		"StockMovement": StockMovements.schema, "Node": Nodes.schema, "Channel": Channels.schema,
		"AtsUpdate": AtsUpdates.schema, "OrderEvent": OrderEvents.schema, "FulfillmentFeedback": FulfillmentFeedbacks.schema,
		"RoutingDecision": RoutingDecisions.schema, "FulfillmentRequest": FulfillmentRequests.schema, "OrderStatus": OrderStatuses.schema,
	} {
		head := "\n**" + name + "** (`"
		i := strings.Index(readme, head)
		if i < 0 {
			t.Errorf("README has no section %q", strings.TrimSpace(head))
			continue
		}
		section := readme[i+len(head):]
		if j := strings.Index(section, "\n**"); j >= 0 {
			section = section[:j]
		}
		named := map[string]bool{}
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(section, -1) {
			named[m[1]] = true
		}
		for _, f := range schema.(*avro.RecordSchema).Fields() {
			if !named[f.Name()] {
				t.Errorf("README's %s section does not name field %s", name, f.Name())
			}
		}
	}
}

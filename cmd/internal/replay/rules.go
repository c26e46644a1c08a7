package replay

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/invroute/invroute/processors/router"
	"github.com/invroute/invroute/schemas"
	"go.yaml.in/yaml/v3"
)

// Rules is an alternative rule set: router settings and changes to nodes,
// on top of the catalog as it was recorded. Absent fields keep the
// recorded (or configured) value.
type Rules struct {
	CentsPerKm       *float64            `yaml:"cents_per_km"`
	VIPSafetyStock   *bool               `yaml:"vip_safety_stock"`
	RejectIncomplete *bool               `yaml:"reject_incomplete"`
	Nodes            map[string]NodeRule `yaml:"nodes"`
}

// NodeRule changes one node. A node the catalog never had is added when
// the replay starts (it needs type, lat and lon); it has stock only if
// stock movements name it.
type NodeRule struct {
	Remove            bool             `yaml:"remove"` // the node does not exist
	Type              *string          `yaml:"type"`
	Country           *string          `yaml:"country"`
	Lat               *float64         `yaml:"lat"`
	Lon               *float64         `yaml:"lon"`
	Active            *bool            `yaml:"active"`
	ShipEnabled       *bool            `yaml:"ship_enabled"`
	PickupEnabled     *bool            `yaml:"pickup_enabled"`
	DailyCapacity     *int32           `yaml:"daily_capacity"`
	ShipmentCostCents *int32           `yaml:"shipment_cost_cents"`
	SafetyStock       *int32           `yaml:"safety_stock"`
	SKUSafetyStock    map[string]int32 `yaml:"sku_safety_stock"` // replaces the node's map
}

// LoadRules reads a rules file (YAML, or JSON, which is YAML). Unknown
// keys are errors naming their line.
func LoadRules(path string) (*Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ParseRules(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseRules is LoadRules on the file's contents.
func ParseRules(b []byte) (*Rules, error) {
	var r Rules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	var errs []error
	if r.CentsPerKm != nil {
		if err := router.CheckCentsPerKm(*r.CentsPerKm); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(r.Nodes)) {
		n := r.Nodes[id]
		if n.Type != nil && !slices.Contains([]string{string(schemas.Warehouse), string(schemas.ThreePL), string(schemas.Store)}, *n.Type) {
			errs = append(errs, fmt.Errorf("nodes.%s.type %q: expected WAREHOUSE, THREE_PL or STORE", id, *n.Type))
		}
		for name, v := range map[string]*int32{"daily_capacity": n.DailyCapacity, "shipment_cost_cents": n.ShipmentCostCents, "safety_stock": n.SafetyStock} {
			if v != nil && *v < 0 {
				errs = append(errs, fmt.Errorf("nodes.%s.%s %d must not be negative", id, name, *v))
			}
		}
		if n.Remove && (n.Type != nil || n.Active != nil || n.Lat != nil || n.Lon != nil || n.DailyCapacity != nil ||
			n.ShipmentCostCents != nil || n.SafetyStock != nil || n.ShipEnabled != nil || n.PickupEnabled != nil) {
			errs = append(errs, fmt.Errorf("nodes.%s: remove goes alone", id))
		}
	}
	return &r, errors.Join(errs...)
}

// apply returns node n under rule r: a changed copy, or nil if removed.
func (r NodeRule) apply(n *schemas.Node) *schemas.Node {
	if r.Remove {
		return nil
	}
	c := *n
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	if r.Type != nil {
		c.Type = schemas.NodeType(*r.Type)
	}
	set(&c.Country, r.Country)
	for _, p := range []struct {
		dst *float64
		v   *float64
	}{{&c.Lat, r.Lat}, {&c.Lon, r.Lon}} {
		if p.v != nil {
			*p.dst = *p.v
		}
	}
	for _, p := range []struct {
		dst *bool
		v   *bool
	}{{&c.Active, r.Active}, {&c.ShipEnabled, r.ShipEnabled}, {&c.PickupEnabled, r.PickupEnabled}} {
		if p.v != nil {
			*p.dst = *p.v
		}
	}
	for _, p := range []struct {
		dst *int32
		v   *int32
	}{{&c.DailyCapacity, r.DailyCapacity}, {&c.ShipmentCostCents, r.ShipmentCostCents}, {&c.SafetyStock, r.SafetyStock}} {
		if p.v != nil {
			*p.dst = *p.v
		}
	}
	if r.SKUSafetyStock != nil {
		c.SKUSafetyStock = maps.Clone(r.SKUSafetyStock)
	}
	return &c
}

// added returns the nodes the rules add (those with type, lat and lon);
// the others must exist in the recorded catalog.
func (r *Rules) added() []*schemas.Node {
	var out []*schemas.Node
	for _, id := range slices.Sorted(maps.Keys(r.Nodes)) {
		nr := r.Nodes[id]
		if nr.Remove || nr.Type == nil || nr.Lat == nil || nr.Lon == nil {
			continue
		}
		out = append(out, nr.apply(&schemas.Node{NodeID: id, Active: true, ShipEnabled: true}))
	}
	return out
}

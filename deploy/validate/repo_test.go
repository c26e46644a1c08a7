// Package validate checks the deployment files of invroute (deploy/) with
// real validators: kubeconform and the Kubernetes API types for the
// manifests, KEDA's CRD schema for the ScaledObject, Prometheus' rule parser
// and PromQL engine for the alerts, the PromQL parser for the Grafana
// dashboard, compose-go (docker compose's loader) for docker-compose.yml and
// BuildKit's Dockerfile parser and linter for the Dockerfile. It is a module
// of its own (deploy/go.mod) so that these dependencies stay out of the
// engine's module; run it with `cd deploy && go test ./...`.
package validate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repo is the repository root, seen from deploy/validate.
const repo = "../.."

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// metricKind is what the engine's code registers under a metric name.
type metricKind string

const (
	kindCounter   metricKind = "counter"
	kindGauge     metricKind = "gauge"
	kindHistogram metricKind = "histogram"
	kindSummary   metricKind = "summary"
)

var optsKinds = map[string]metricKind{
	"CounterOpts": kindCounter, "GaugeOpts": kindGauge, "HistogramOpts": kindHistogram, "SummaryOpts": kindSummary,
}

// codeMetrics reads the repository's Go sources (not tests, not deploy/) and
// returns every invroute_ metric name they register with client_golang: a
// Name: "literal" in a prometheus.*Opts, or Name: "prefix" + param in a
// helper func literal (c := func(name, help string) ...), called with a
// literal for that param.
func codeMetrics(t *testing.T) map[string]metricKind {
	t.Helper()
	out := map[string]metricKind{}
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != repo && (name == "deploy" || name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		collectMetrics(f, out)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type helper struct {
	prefix string
	kind   metricKind
	param  int
}

func collectMetrics(f *ast.File, out map[string]metricKind) {
	// optsName returns the kind and the Name field of a prometheus.*Opts literal.
	optsName := func(n ast.Node) (metricKind, ast.Expr) {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return "", nil
		}
		sel, ok := cl.Type.(*ast.SelectorExpr)
		if !ok {
			return "", nil
		}
		kind, ok := optsKinds[sel.Sel.Name]
		if !ok {
			return "", nil
		}
		for _, e := range cl.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok {
				if id, ok := kv.Key.(*ast.Ident); ok && id.Name == "Name" {
					return kind, kv.Value
				}
			}
		}
		return "", nil
	}
	lit := func(e ast.Expr) (string, bool) {
		bl, ok := e.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(bl.Value)
		return s, err == nil
	}
	helpers := map[string]helper{}
	ast.Inspect(f, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
			id, ok1 := as.Lhs[0].(*ast.Ident)
			fl, ok2 := as.Rhs[0].(*ast.FuncLit)
			if ok1 && ok2 {
				var params []string
				for _, fld := range fl.Type.Params.List {
					for _, nm := range fld.Names {
						params = append(params, nm.Name)
					}
				}
				ast.Inspect(fl.Body, func(m ast.Node) bool {
					kind, name := optsName(m)
					be, ok := name.(*ast.BinaryExpr)
					if !ok || be.Op != token.ADD {
						return true
					}
					prefix, ok1 := lit(be.X)
					p, ok2 := be.Y.(*ast.Ident)
					if ok1 && ok2 {
						for i, nm := range params {
							if nm == p.Name {
								helpers[id.Name] = helper{prefix, kind, i}
							}
						}
					}
					return true
				})
			}
		}
		if kind, name := optsName(n); name != nil {
			if s, ok := lit(name); ok && strings.HasPrefix(s, "invroute_") {
				out[s] = kind
			}
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		id, ok := call.Fun.(*ast.Ident)
		if !ok {
			return true
		}
		h, ok := helpers[id.Name]
		if !ok || h.param >= len(call.Args) {
			return true
		}
		if s, ok := lit(call.Args[h.param]); ok && strings.HasPrefix(h.prefix+s, "invroute_") {
			out[h.prefix+s] = h.kind
		}
		return true
	})
}

// seriesNames are the names a query may select for the metrics the code
// registers (a histogram is _bucket, _sum and _count), plus the few from
// outside the engine's own code that the deploy files use: up (Prometheus
// itself) and the process collector's resident memory, which the engine
// registers (collectors.NewProcessCollector, checked here).
func seriesNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true}
	for n, k := range codeMetrics(t) {
		switch k {
		case kindHistogram, kindSummary:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = k == kindHistogram, true, true
		default:
			names[n] = true
		}
	}
	if processCollector(t) {
		names["process_resident_memory_bytes"] = true
	}
	return names
}

func processCollector(t *testing.T) bool {
	found := false
	filepath.WalkDir(filepath.Join(repo, "cmd"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), "collectors.NewProcessCollector(") {
				found = true
			}
		}
		return nil
	})
	return found
}

// TestCodeMetrics checks the extraction itself on names the README lists,
// built each way (literal, helper, vec helper, histogram).
func TestCodeMetrics(t *testing.T) {
	m := codeMetrics(t)
	for name, kind := range map[string]metricKind{
		"invroute_records_processed_total":              kindCounter,
		"invroute_partitions_owned":                     kindGauge,
		"invroute_transaction_seconds":                  kindHistogram,
		"invroute_transaction_phase_seconds":            kindHistogram,
		"invroute_inventory_ats_updates_total":          kindCounter,
		"invroute_inventory_reservation_commands_total": kindCounter,
		"invroute_router_decisions_total":               kindCounter,
	} {
		if m[name] != kind {
			t.Errorf("%s: found %q, want %s", name, m[name], kind)
		}
	}
	if _, ok := m["invroute_inventory_"]; ok {
		t.Error("a prefix was taken for a metric name")
	}
	t.Logf("%d invroute metrics in the code", len(m))
}

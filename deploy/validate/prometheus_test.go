package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

const rulesFile = "../prometheus/invroute-rules.yaml"

var promParser = parser.NewParser(parser.Options{})

func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(readFile(t, rulesFile), false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if groups == nil || t.Failed() {
		t.FailNow()
	}
	return groups
}

// selectorNames returns the metric names an expression selects; it fails the
// test on a selector without a literal name.
func selectorNames(t *testing.T, expr string) []string {
	t.Helper()
	node, err := promParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%q: selector %s has no metric name", expr, vs)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestAlertRules parses the rules with Prometheus' own rule parser (rulefmt:
// YAML structure, PromQL, label and annotation templates), then checks that
// each alert has a severity, a summary, a description, and selects only
// metrics the code registers.
func TestAlertRules(t *testing.T) {
	groups := loadRules(t)
	names := seriesNames(t)
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			for _, n := range selectorNames(t, r.Expr) {
				if !names[n] {
					t.Errorf("%s: metric %s is not registered by the engine's code", r.Alert, n)
				}
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts")
	}
}

// TestAlertRulesBadInput: the parser used above does reject bad rules.
func TestAlertRulesBadInput(t *testing.T) {
	for _, bad := range []string{
		"groups:\n- name: x\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n",                                // PromQL syntax
		"groups:\n- name: x\n  rules:\n  - alert: A\n    expr: up == 0\n    fo: 5m\n",                            // unknown field
		"groups:\n- name: x\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: '{{ $labels.x '\n", // template
	} {
		if _, errs := rulefmt.Parse([]byte(bad), false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler)); len(errs) == 0 {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// alertCases are series (promqltest load syntax, 1m steps) on which each
// alert's expression must return something at 30m (fire) or nothing (quiet).
var alertCases = map[string]struct{ fire, quiet string }{
	"InvrouteInstanceDown": {
		fire:  `up{job="invroute",instance="a"} 1x10 0x30`,
		quiet: `up{job="invroute",instance="a"} 1x40`,
	},
	"InvrouteEngineUnhealthy": {
		fire: `invroute_engine_healthy{job="invroute",instance="a",topology="inventory"} 1x10 0x30
		       invroute_engine_healthy{job="invroute",instance="a",topology="router"} 1x40`,
		quiet: `invroute_engine_healthy{job="invroute",instance="a",topology="inventory"} 1x40`,
	},
	"InvrouteTopologyNotProcessing": {
		fire: `invroute_partitions_owned{job="invroute",instance="a",topology="router"} 0x40
		       invroute_partitions_owned{job="invroute",instance="b",topology="router"} 0x40
		       invroute_partitions_owned{job="invroute",instance="a",topology="inventory"} 3x40`,
		quiet: `invroute_partitions_owned{job="invroute",instance="a",topology="router"} 0x40
		        invroute_partitions_owned{job="invroute",instance="b",topology="router"} 6x40`,
	},
	"InvrouteConsumerLagHigh": {
		fire: `invroute_consumer_lag{job="invroute",instance="a",topology="router",topic="orders",partition="0"} 9000x40
		       invroute_consumer_lag{job="invroute",instance="b",topology="router",topic="orders",partition="1"} 9000x40
		       invroute_consumer_lag{job="invroute",instance="a",topology="inventory",topic="stock-movements",partition="0"} 100x40`,
		quiet: `invroute_consumer_lag{job="invroute",instance="a",topology="router",topic="orders",partition="0"} 9000x40
		        invroute_consumer_lag{job="invroute",instance="a",topology="inventory",topic="stock-movements",partition="0"} 90000x40
		        invroute_consumer_lag{job="invroute",instance="b",topology="inventory",topic="stock-movements",partition="1"} 50000x40`,
	},
	"InvrouteTransactionsAborting": {
		fire: `invroute_transactions_aborted_total{job="invroute",instance="a",topology="inventory"} 0+5x40
		       invroute_transactions_committed_total{job="invroute",instance="a",topology="inventory"} 0+50x40`,
		quiet: `invroute_transactions_aborted_total{job="invroute",instance="a",topology="inventory"} 0+1x40
		        invroute_transactions_committed_total{job="invroute",instance="a",topology="inventory"} 0+600x40`,
	},
	"InvrouteDeadLettersRising": {
		fire:  `invroute_dead_letters_total{job="invroute",instance="a",topology="router"} 0+20x40`,
		quiet: `invroute_dead_letters_total{job="invroute",instance="a",topology="router"} 0+2x40`,
	},
	"InvrouteSessionReinits": {
		fire:  `invroute_session_reinits_total{job="invroute",instance="a",topology="inventory"} 0+1x40`,
		quiet: `invroute_session_reinits_total{job="invroute",instance="a",topology="inventory"} 0x20 1x20`,
	},
	"InvrouteStandbyLagging": {
		fire: `invroute_standby_lag_records{job="invroute",instance="a",topology="inventory"} 0x10 2000000x30
		       invroute_standby_lag_records{job="invroute",instance="b",topology="inventory"} 0x40`,
		quiet: `invroute_standby_lag_records{job="invroute",instance="a",topology="inventory"} 0x30 2000000x10
		        invroute_standby_lag_records{job="invroute",instance="b",topology="inventory"} 500000x40`,
	},
	"InvrouteProcessStalled": {
		fire:  `invroute_process_stalls_total{job="invroute",instance="a",topology="inventory"} 0x20 1x20`,
		quiet: `invroute_process_stalls_total{job="invroute",instance="a",topology="inventory"} 0x40`,
	},
	"InvrouteRestoreShort": {
		fire:  `invroute_restores_short_total{job="invroute",instance="a",topology="inventory"} 0x20 1x20`,
		quiet: `invroute_restores_short_total{job="invroute",instance="a",topology="inventory"} 0x40`,
	},
	"InvrouteStoreRebuilt": {
		fire:  `invroute_stores_rebuilt_total{job="invroute",instance="a",topology="inventory"} 0x20 1x20`,
		quiet: `invroute_stores_rebuilt_total{job="invroute",instance="a",topology="inventory"} 0x40`,
	},
	"InvrouteTransactionsSlow": {
		fire: `invroute_transaction_seconds_bucket{job="invroute",instance="a",topology="inventory",le="0.64"} 0x40
		       invroute_transaction_seconds_bucket{job="invroute",instance="a",topology="inventory",le="5.12"} 0+10x40
		       invroute_transaction_seconds_bucket{job="invroute",instance="a",topology="inventory",le="+Inf"} 0+10x40`,
		quiet: `invroute_transaction_seconds_bucket{job="invroute",instance="a",topology="inventory",le="0.64"} 0+10x40
		        invroute_transaction_seconds_bucket{job="invroute",instance="a",topology="inventory",le="5.12"} 0+10x40
		        invroute_transaction_seconds_bucket{job="invroute",instance="a",topology="inventory",le="+Inf"} 0+10x40`,
	},
}

// TestAlertRulesFire evaluates every alert's expression with Prometheus'
// PromQL engine on series where it must fire and on series where it must
// not. Every alert needs a case here.
func TestAlertRulesFire(t *testing.T) {
	groups := loadRules(t)
	engine := newEngine()
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			c, ok := alertCases[r.Alert]
			if !ok {
				t.Errorf("%s: no test case", r.Alert)
				continue
			}
			for _, want := range []bool{true, false} {
				series := c.quiet
				if want {
					series = c.fire
				}
				got := evalAt(t, engine, loadSeries(t, series), r.Expr, 30*time.Minute)
				if (len(got) > 0) != want {
					t.Errorf("%s: fired=%v, want %v on\n%s\nresult: %v", r.Alert, len(got) > 0, want, series, got)
				}
			}
		}
	}
	for name := range alertCases {
		if !seen[name] {
			t.Errorf("test case for %s, which the rules do not have", name)
		}
	}
}

func evalAt(t *testing.T, engine *promql.Engine, st *memStore, expr string, at time.Duration) promql.Vector {
	t.Helper()
	q, err := engine.NewInstantQuery(context.Background(), st, nil, expr, time.Unix(0, 0).Add(at))
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%q: %v", expr, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	return v
}

// Grafana dashboard.

const dashboardFile = "../grafana/invroute.json"

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Time struct{ From, To string } `json:"time"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Datasource *struct{ Type, UID string } `json:"datasource"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// dashboardVars replaces the dashboard's variables by values PromQL parses.
var dashboardVars = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")

// TestGrafanaDashboard checks that the dashboard is JSON with the fields
// Grafana needs to import it (title, uid, schemaVersion, panels with unique
// ids, a type, a title, a grid position inside the 24 columns, a Prometheus
// data source and targets with refIds), that every panel query parses with
// the PromQL parser, and that every metric it selects is registered by the
// engine's code.
func TestGrafanaDashboard(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 || d.Time.From == "" {
		t.Errorf("title %q uid %q schemaVersion %d time %+v: Grafana needs all four", d.Title, d.UID, d.SchemaVersion, d.Time)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want datasource (datasource) and instance (query)", vars)
	}
	names := seriesNames(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	queries := 0
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "" || p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %d %q: type, title or gridPos (%+v) wrong", p.ID, p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || len(p.Targets) == 0 {
			t.Errorf("panel %q: needs a prometheus datasource and targets", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			queries++
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			for _, n := range selectorNames(t, dashboardVars.Replace(tg.Expr)) {
				used[n] = true
				if !names[n] {
					t.Errorf("panel %q: metric %s is not registered by the engine's code", p.Title, n)
				}
			}
		}
	}
	// no two panels overlap on the grid
	for i, a := range d.Panels {
		for _, b := range d.Panels[i+1:] {
			if a.GridPos == nil || b.GridPos == nil {
				continue
			}
			A, B := a.GridPos, b.GridPos
			if A.X < B.X+B.W && B.X < A.X+A.W && A.Y < B.Y+B.H && B.Y < A.Y+A.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
	// the panels the deployment spec asks for
	for _, n := range []string{"invroute_records_processed_total", "invroute_inventory_ats_updates_total",
		"invroute_router_decisions_total", "invroute_dead_letters_total", "invroute_transaction_seconds_bucket",
		"invroute_transactions_aborted_total", "invroute_partitions_owned", "invroute_changelog_records_restored_total",
		"invroute_consumer_lag"} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
	var list []string
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("%d panels, %d queries, metrics: %s", len(d.Panels), queries, strings.Join(list, " "))
}

// TestGrafanaDashboardRejectsUnknownMetric: the name check above does fail.
func TestGrafanaDashboardRejectsUnknownMetric(t *testing.T) {
	names := seriesNames(t)
	for _, expr := range []string{`rate(invroute_records_procesed_total[5m])`, `invroute_transaction_seconds_total`} {
		for _, n := range selectorNames(t, expr) {
			if names[n] {
				t.Errorf("%s: %s accepted", expr, n)
			}
		}
	}
	if _, err := promParser.ParseExpr(dashboardVars.Replace(`sum(rate(x{instance=~"$instance"}[$__rate_interval])`)); err == nil {
		t.Error("unbalanced parenthesis parsed")
	}
}

// TestScrapeConfig: deploy/prometheus/scrape.yaml has the job the rules and
// the dashboard select, discovering the pods of one namespace (the rules sum
// over the job: two deployments in one job would hide each other's faults),
// with relabel rules that Prometheus' own relabel package accepts, keeping
// the StatefulSet's pods on their http port, named by pod. (Prometheus'
// whole configuration loader would pull every service discovery into this
// module; the keys decoded here are checked strictly.) Found by review: the rules
// selected job="invroute", which nothing shipped produced.
func TestScrapeConfig(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			ScrapeInterval string `yaml:"scrape_interval"`
			MetricsPath    string `yaml:"metrics_path"`
			Scheme         string `yaml:"scheme"`
			KubernetesSD   []struct {
				Role       string `yaml:"role"`
				Namespaces struct {
					Names []string `yaml:"names"`
				} `yaml:"namespaces"`
			} `yaml:"kubernetes_sd_configs"`
			RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(readFile(t, "../prometheus/scrape.yaml")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	var job []*relabel.Config
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "invroute" {
			continue
		}
		if len(sc.KubernetesSD) != 1 || sc.KubernetesSD[0].Role != "pod" || len(sc.KubernetesSD[0].Namespaces.Names) != 1 {
			t.Errorf("kubernetes_sd_configs %+v: want role pod in one namespace", sc.KubernetesSD)
		}
		for _, rc := range sc.RelabelConfigs {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				t.Errorf("relabel config %+v: %v", rc, err)
			}
		}
		job = sc.RelabelConfigs
	}
	if job == nil {
		t.Fatal("no job invroute with relabel_configs")
	}
	if !strings.Contains(string(readFile(t, rulesFile)), `job="invroute"`) {
		t.Error(`the rules no longer select job="invroute": keep them and the scrape job together`)
	}
	// The pod of the StatefulSet, as Kubernetes service discovery labels
	// it, on each of its ports: kept on http only.
	m := loadManifests(t)
	pod := map[string]string{"__meta_kubernetes_namespace": "shop", "__meta_kubernetes_pod_name": "invroute-0"}
	for k, v := range m.sts.Spec.Template.Labels {
		pod["__meta_kubernetes_pod_label_"+strings.NewReplacer(".", "_", "/", "_", "-", "_").Replace(k)] = v
	}
	kept := 0
	for _, p := range append(m.sts.Spec.Template.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "other", ContainerPort: 1}) {
		b := labels.NewBuilder(labels.EmptyLabels())
		for k, v := range pod {
			b.Set(k, v)
		}
		b.Set("__meta_kubernetes_pod_container_port_name", p.Name)
		keep := relabel.ProcessBuilder(b, job...)
		out := b.Labels()
		if keep != (p.Name == "http") {
			t.Errorf("port %q: kept %v", p.Name, keep)
		}
		if keep {
			kept++
			if out.Get("pod") != "invroute-0" || out.Get("namespace") != "shop" || out.Get("instance") != "invroute-0" {
				t.Errorf("target labels %v", out)
			}
		}
	}
	if kept != 1 {
		t.Errorf("%d ports kept, want the http port", kept)
	}
	// another app's pod is not scraped
	b := labels.NewBuilder(labels.EmptyLabels())
	b.Set("__meta_kubernetes_pod_label_app_kubernetes_io_name", "kafka")
	b.Set("__meta_kubernetes_pod_container_port_name", "http")
	if relabel.ProcessBuilder(b, job...) {
		t.Error("a pod of another app is kept")
	}
}

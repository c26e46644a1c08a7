package validate

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yannh/kubeconform/pkg/validator"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	k8sDir = "../k8s"
	// kubeconform schema locations: vendored, standalone schemas (see
	// testdata/update-schemas.sh); kubeconform fetches nothing.
	k8sSchemas = "testdata/schemas/kubernetes/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
	crdSchemas = "testdata/schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
	k8sVersion = "1.37.0"
)

func kubeconform(t *testing.T) validator.Validator {
	t.Helper()
	v, err := validator.New([]string{k8sSchemas, crdSchemas}, validator.Opts{KubernetesVersion: k8sVersion, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	return files
}

// TestKubeconform validates every manifest with kubeconform (strict: unknown
// fields are errors) against the Kubernetes 1.37 schemas and KEDA's
// ScaledObject CRD schema, and checks that each kind the deployment needs is
// there.
func TestKubeconform(t *testing.T) {
	v := kubeconform(t)
	kinds := map[string]int{}
	for _, f := range manifestFiles(t) {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range v.Validate(f, r) {
			sig, _ := res.Resource.Signature()
			if res.Status != validator.Valid {
				t.Errorf("%s: %v: status %v: %v %v", f, sig, res.Status, res.Err, res.ValidationErrors)
				continue
			}
			kinds[sig.Kind]++
			t.Logf("%s: %s %s valid", filepath.Base(f), sig.Kind, sig.Name)
		}
	}
	for _, k := range []string{"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap", "ScaledObject"} {
		if kinds[k] != 1 {
			t.Errorf("%d %s, want 1", kinds[k], k)
		}
	}
}

// TestKubeconformRejects: the same validator, schemas and options reject
// broken variants of the manifests (so TestKubeconform can fail).
func TestKubeconformRejects(t *testing.T) {
	v := kubeconform(t)
	for _, tc := range []struct{ file, old, new string }{
		{"statefulset.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: \"60\""},                       // wrong type
		{"statefulset.yaml", "imagePullPolicy: IfNotPresent", "imagePullPolicy: IfNotPresent\n          restartPolicyy: Always"}, // unknown field
		{"pdb.yaml", "maxUnavailable: 1", "maxUnavailable: 1\n  maxUnavaliable: 1"},
		{"keda.yaml", "lagThreshold: \"20000\"", "lagThreshold: 20000"},             // trigger metadata values are strings
		{"keda.yaml", "maxReplicaCount: 6", "maxReplicaCount: 6\n  maxReplicas: 6"}, // unknown ScaledObject field
		{"service.yaml", "clusterIP: None", "clusterIP: None\n  headless: true"},
	} {
		b := readFile(t, filepath.Join(k8sDir, tc.file))
		if !bytes.Contains(b, []byte(tc.old)) {
			t.Fatalf("%s has no %q", tc.file, tc.old)
		}
		bad := bytes.Replace(b, []byte(tc.old), []byte(tc.new), 1)
		for _, res := range v.Validate(tc.file, io.NopCloser(bytes.NewReader(bad))) {
			if res.Status != validator.Invalid {
				t.Errorf("%s with %q: status %v (%v), want invalid", tc.file, tc.new, res.Status, res.Err)
			}
		}
	}
}

// manifests are the Kubernetes objects, strictly decoded into the
// Kubernetes API's own Go types (k8s.io/api): unknown or duplicate fields and
// wrong types are errors.
type manifests struct {
	sts     appsv1.StatefulSet
	svc     corev1.Service
	pdb     policyv1.PodDisruptionBudget
	cm      corev1.ConfigMap
	scaled  map[string]any
	content map[string][]byte
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{content: map[string][]byte{}}
	for file, into := range map[string]any{
		"statefulset.yaml": &m.sts, "service.yaml": &m.svc, "pdb.yaml": &m.pdb, "configmap.yaml": &m.cm, "keda.yaml": &m.scaled,
	} {
		b := readFile(t, filepath.Join(k8sDir, file))
		m.content[file] = b
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	return m
}

func TestManifestsStrictDecode(t *testing.T) {
	loadManifests(t)
	var sts appsv1.StatefulSet
	if err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: StatefulSet\nspec:\n  replica: 2\n"), &sts); err == nil {
		t.Error("strict decoding accepted an unknown field")
	}
}

func envValue(c corev1.Container, cm corev1.ConfigMap, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	v, ok := cm.Data[name]
	return v, ok
}

// TestStatefulSet checks what the engine needs from its pods.
func TestStatefulSet(t *testing.T) {
	m := loadManifests(t)
	sts, cm := m.sts, m.cm
	spec := sts.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]

	// a stable instance id per pod: the pod name
	var idFromPod bool
	for _, e := range c.Env {
		if e.Name == "INVROUTE_INSTANCE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			idFromPod = true
		}
	}
	if !idFromPod {
		t.Error("INVROUTE_INSTANCE_ID must come from metadata.name (the stable pod name)")
	}

	// state_dir on a volume claim template
	dir, ok := envValue(c, cm, "INVROUTE_STATE_DIR")
	if !ok {
		t.Fatal("INVROUTE_STATE_DIR not set")
	}
	var stateVolume string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dir {
			stateVolume = vm.Name
		}
	}
	var claimed bool
	for _, pvc := range sts.Spec.VolumeClaimTemplates {
		if pvc.Name == stateVolume && pvc.Spec.Resources.Requests.Storage().Sign() > 0 {
			claimed = true
		}
	}
	if stateVolume == "" || !claimed {
		t.Errorf("state_dir %s is not mounted from a volumeClaimTemplate (mount %q)", dir, stateVolume)
	}

	// probes on the HTTP listener of metrics_addr
	addr, ok := envValue(c, cm, "INVROUTE_HTTP_ADDR")
	if !ok {
		t.Fatal("INVROUTE_HTTP_ADDR not set")
	}
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("INVROUTE_HTTP_ADDR %q: %v", addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	var httpPort string
	for _, p := range c.Ports {
		if int(p.ContainerPort) == port {
			httpPort = p.Name
		}
	}
	if httpPort == "" {
		t.Fatalf("no container port %d", port)
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != httpPort {
			t.Errorf("%s probe: want GET %s on port %s, got %+v", name, want, httpPort, probe)
		}
	}

	// /healthz answers 200 as soon as the engines run, restoring or not: a
	// startup probe on it would pass at once and protect nothing (restores
	// are protected by live_timeout, which counts their progress)
	if sp := c.StartupProbe; sp != nil && sp.HTTPGet != nil && sp.HTTPGet.Path == "/healthz" {
		t.Error("a startup probe on /healthz passes at once: it does not wait for restores")
	}

	// the advertised HTTP address: the pod's DNS name under the headless
	// Service; $(INVROUTE_INSTANCE_ID) expands only if defined before it
	wantAdv := "$(INVROUTE_INSTANCE_ID)." + m.svc.Name + ":" + portStr
	idAt, advAt := -1, -1
	for i, e := range c.Env {
		switch e.Name {
		case "INVROUTE_INSTANCE_ID":
			idAt = i
		case "INVROUTE_HTTP_ADVERTISE":
			advAt = i
			if e.Value != wantAdv {
				t.Errorf("INVROUTE_HTTP_ADVERTISE %q, want %q", e.Value, wantAdv)
			}
		}
	}
	if advAt < 0 || idAt < 0 || idAt > advAt {
		t.Error("INVROUTE_HTTP_ADVERTISE must be set after INVROUTE_INSTANCE_ID")
	}

	// graceful shutdown: the open transaction is finished or aborted (its
	// flush gives up after txn_timeout), then the groups are left (bounded
	// by the session timeout, at least 5 s); 10 s more for the rest
	dur := func(name string, def time.Duration) time.Duration {
		v, ok := envValue(c, cm, name)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s %q: %v", name, v, err)
		}
		return d
	}
	need := dur("INVROUTE_TXN_TIMEOUT", 10*time.Second) + max(dur("INVROUTE_SESSION_TIMEOUT", 10*time.Second), 5*time.Second) + 10*time.Second
	if g := sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %v: want >= %v for a graceful stop (txn_timeout + session_timeout + 10s)", g, need)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod must run as a non-root user")
	}
	if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("the container must not allow privilege escalation")
	}

	// the SASL password comes from a Secret, optional while SASL is off
	var secret bool
	for _, e := range c.Env {
		if e.Name == "INVROUTE_SASL_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secret = e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional
		}
	}
	if !secret {
		t.Error("INVROUTE_SASL_PASSWORD must come from an optional secretKeyRef")
	}

	// envFrom the ConfigMap of configmap.yaml
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("envFrom must name ConfigMap %s", cm.Name)
	}

	// selectors and the headless Service
	podLabels := labels.Set(sts.Spec.Template.Labels)
	sel := labels.SelectorFromSet(sts.Spec.Selector.MatchLabels)
	if !sel.Matches(podLabels) {
		t.Error("the StatefulSet's selector does not match its pods")
	}
	if m.svc.Name != sts.Spec.ServiceName || m.svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q: want the headless Service %q (clusterIP None)", sts.Spec.ServiceName, m.svc.Name)
	}
	if !labels.SelectorFromSet(m.svc.Spec.Selector).Matches(podLabels) {
		t.Error("the Service does not select the pods")
	}
	var svcPort bool
	for _, p := range m.svc.Spec.Ports {
		svcPort = svcPort || p.TargetPort.String() == httpPort || int(p.TargetPort.IntVal) == port
	}
	if !svcPort {
		t.Error("the Service does not expose the HTTP port")
	}

	// the PodDisruptionBudget
	if mu := m.pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() != 1 || m.pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1 only, got %+v", m.pdb.Spec)
	}
	if s := m.pdb.Spec.Selector; s == nil || !labels.SelectorFromSet(s.MatchLabels).Matches(podLabels) {
		t.Error("the PodDisruptionBudget does not select the pods")
	}
}

// TestScaledObject checks the KEDA ScaledObject against the StatefulSet, the
// ConfigMap and the engine's defaults: it scales this StatefulSet, on the lag
// of the inventory group on stock-movements and the router group on orders,
// with the ConfigMap's brokers, and never beyond the partition count.
func TestScaledObject(t *testing.T) {
	m := loadManifests(t)
	var so struct {
		Spec struct {
			ScaleTargetRef  struct{ APIVersion, Kind, Name string } `json:"scaleTargetRef"`
			MinReplicaCount int                                     `json:"minReplicaCount"`
			MaxReplicaCount int                                     `json:"maxReplicaCount"`
			Triggers        []struct {
				Type     string            `json:"type"`
				Metadata map[string]string `json:"metadata"`
			} `json:"triggers"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(m.content["keda.yaml"], &so); err != nil {
		t.Fatal(err)
	}
	ref := so.Spec.ScaleTargetRef
	if ref.Kind != "StatefulSet" || ref.APIVersion != "apps/v1" || ref.Name != m.sts.Name {
		t.Errorf("scaleTargetRef %+v: want StatefulSet %s", ref, m.sts.Name)
	}
	if m.sts.Spec.Replicas != nil {
		t.Errorf("the StatefulSet sets replicas %d, and KEDA scales it: every `kubectl apply` would set it back", *m.sts.Spec.Replicas)
	}
	partitions, err := strconv.Atoi(m.cm.Data["INVROUTE_PARTITIONS"])
	if err != nil {
		t.Fatalf("INVROUTE_PARTITIONS: %v", err)
	}
	if so.Spec.MaxReplicaCount < 1 || so.Spec.MaxReplicaCount > partitions || so.Spec.MinReplicaCount < 1 || so.Spec.MinReplicaCount > so.Spec.MaxReplicaCount {
		t.Errorf("replicas %d..%d: want 1 <= min <= max <= partitions (%d)", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount, partitions)
	}
	group := m.cm.Data["INVROUTE_GROUP"]
	want := map[string]string{group: "stock-movements", strings.TrimSuffix(group, "inventory") + "router": "orders"}
	got := map[string]string{}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "kafka" {
			t.Errorf("trigger type %q", tr.Type)
			continue
		}
		md := tr.Metadata
		got[md["consumerGroup"]] = md["topic"]
		if md["bootstrapServers"] != m.cm.Data["INVROUTE_BROKERS"] {
			t.Errorf("trigger %s: bootstrapServers %q, ConfigMap brokers %q", md["consumerGroup"], md["bootstrapServers"], m.cm.Data["INVROUTE_BROKERS"])
		}
		if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n <= 0 {
			t.Errorf("trigger %s: lagThreshold %q", md["consumerGroup"], md["lagThreshold"])
		}
		if md["allowIdleConsumers"] == "true" {
			t.Errorf("trigger %s: allowIdleConsumers would scale beyond the partitions", md["consumerGroup"])
		}
	}
	if len(got) != len(want) || got[group] != want[group] || got["invroute-router"] != "orders" || group != "invroute-inventory" {
		t.Errorf("triggers %v, want %v", got, want)
	}
}

// TestEnvNamesAreOptions: every INVROUTE_* variable the manifests and the
// compose file set is an option of `invroute run` (flag -x-y for
// INVROUTE_X_Y), read from the binary's own help.
func TestEnvNamesAreOptions(t *testing.T) {
	flags := runFlags(t)
	m := loadManifests(t)
	var names []string
	for k := range m.cm.Data {
		names = append(names, k)
	}
	for _, e := range m.sts.Spec.Template.Spec.Containers[0].Env {
		names = append(names, e.Name)
	}
	re := regexp.MustCompile(`\bINVROUTE_[A-Z0-9_]+`)
	names = append(names, re.FindAllString(string(readFile(t, "../docker-compose.yml")), -1)...)
	names = append(names, re.FindAllString(string(readFile(t, "../Dockerfile")), -1)...)
	// the commented-out SASL keys of the ConfigMap too
	names = append(names, re.FindAllString(string(m.content["configmap.yaml"]), -1)...)
	sort.Strings(names)
	for _, n := range names {
		if !strings.HasPrefix(n, "INVROUTE_") {
			continue
		}
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(n, "INVROUTE_")), "_", "-")
		if !flags[flag] {
			t.Errorf("%s: `invroute run` has no flag -%s", n, flag)
		}
	}
}

func runFlags(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/invroute", "run", "-h")
	cmd.Dir = repo
	out, _ := cmd.CombinedOutput() // -h exits 2
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["brokers"] || !flags["instance-id"] {
		t.Fatalf("`invroute run -h` lists no -brokers or -instance-id:\n%s", out)
	}
	return flags
}

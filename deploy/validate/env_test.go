package validate

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// invrouteBinary builds the engine's binary once per test run.
func invrouteBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "invroute-validate-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "invroute")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/invroute")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build ./cmd/invroute: %v\n%s", binErr, binPath)
	}
	return binPath
}

// configCheck runs `invroute config check` on an empty file with exactly
// env as the INVROUTE_ environment, as a container would start with it,
// and returns its output and whether it said OK.
func configCheck(t *testing.T, env map[string]string) (string, bool) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(invrouteBinary(t), "config", "check", empty)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INVROUTE_") && !strings.HasPrefix(kv, "KAFKA_BROKERS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err == nil && strings.TrimSpace(string(out)) == "OK"
}

// podEnv is the environment of the StatefulSet's container in pod
// invroute-0: the ConfigMap, then env in order, with $(VAR) references
// expanded as Kubernetes does, the pod name and IP filled in, and an
// optional Secret left out.
func podEnv(t *testing.T, m *manifests) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range m.cm.Data {
		env[k] = v
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z0-9_]+)\)`)
	for _, e := range m.sts.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(s string) string {
				if v, ok := env[s[2:len(s)-1]]; ok {
					return v
				}
				return s
			})
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = map[string]string{"metadata.name": "invroute-0", "status.podIP": "10.0.0.7"}[e.ValueFrom.FieldRef.FieldPath]
		case e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional:
			// absent until the Secret is created
		default:
			t.Errorf("env %s: a source this test does not know", e.Name)
		}
	}
	return env
}

// TestEnvironmentsAccepted: the environment each deployment file gives the
// engine is one `invroute run` starts with (`invroute config check` says
// OK): the StatefulSet's pods, the compose services, the image's own ENV
// (with brokers given). Found by review: the image's INVROUTE_METRICS_ADDR
// refused every INVROUTE_HTTP_ADDR, and the name-only check let values
// through that do not parse.
func TestEnvironmentsAccepted(t *testing.T) {
	m := loadManifests(t)
	envs := map[string]map[string]string{"statefulset.yaml (pod invroute-0)": podEnv(t, m)}
	p, err := loadCompose(t, readFile(t, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		if name == "kafka" {
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		envs["docker-compose.yml ("+name+")"] = env
	}
	image := imageEnv(t)
	image["INVROUTE_BROKERS"] = "kafka:9092"
	envs["Dockerfile ENV, brokers given"] = image
	image2 := map[string]string{}
	for k, v := range image {
		image2[k] = v
	}
	image2["INVROUTE_HTTP_ADDR"] = ":8080" // README: a user's own port
	envs["Dockerfile ENV, another http_addr"] = image2
	for name, env := range envs {
		if out, ok := configCheck(t, env); !ok {
			t.Errorf("%s: `invroute config check` refuses it:\n%s", name, out)
		}
	}
	// and the check can fail: a duration without a unit
	bad := podEnv(t, m)
	bad["INVROUTE_COMMIT_INTERVAL"] = "100"
	if out, ok := configCheck(t, bad); ok || !strings.Contains(out, "commit_interval") {
		t.Errorf("commit_interval 100 accepted:\n%s", out)
	}
}

// imageEnv is the ENV of the Dockerfile's final stage.
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	ast, err := parser.Parse(bytes.NewReader(readFile(t, dockerfile)))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, c := range stages[len(stages)-1].Commands {
		if e, ok := c.(*instructions.EnvCommand); ok {
			for _, kv := range e.Env {
				env[kv.Key] = kv.Value
			}
		}
	}
	return env
}

package validate

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/opencontainers/go-digest"
)

const (
	dockerfile    = "../Dockerfile"
	composeFile   = "../docker-compose.yml"
	kafkaenvGo    = "../../cmd/internal/kafkaenv/kafkaenv.go"
	containerEnvG = "../../cmd/internal/kafkaenv/container.go"
)

// lintDockerfile runs BuildKit's Dockerfile linter (the checks of
// `docker build --check`) on dt: the parse error or the warnings.
func lintDockerfile(t *testing.T, dt []byte) (string, []string) {
	t.Helper()
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{} // what the results record of the source; no LLB is built
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{SourceMap: sm, MetaResolver: offlineImages{}})
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.RuleName+": "+w.Detail)
	}
	if res.Error != nil {
		return res.Error.Message, warnings
	}
	return "", warnings
}

// offlineImages answers BuildKit's base image look-ups without a registry
// (none is reachable here): every image is an empty linux/amd64 image. The
// linter then checks the Dockerfile itself, not the base images' contents.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers"}}`)
	return ref, digest.FromBytes(cfg), cfg, nil
}

// TestDockerfile parses the Dockerfile with BuildKit's parser, lints it with
// BuildKit's linter (no warning allowed) and checks the image it describes: a
// build stage named build that compiles with CGO_ENABLED=0, a final stage
// that copies the binary from it, runs as a non-root user and starts
// invroute in exec form, and no secret in ARG or ENV.
func TestDockerfile(t *testing.T) {
	dt := readFile(t, dockerfile)
	if msg, warnings := lintDockerfile(t, dt); msg != "" || len(warnings) > 0 {
		t.Fatalf("BuildKit: error %q, warnings %q", msg, warnings)
	}
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "build" || !strings.HasPrefix(stages[0].BaseName, "golang:") {
		t.Fatalf("want FROM golang:... AS build, then the runtime stage; got %d stages", len(stages))
	}
	var cgoOff bool
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "CGO_ENABLED=0") &&
			strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			cgoOff = true
		}
	}
	if !cgoOff {
		t.Error("the build stage must run `CGO_ENABLED=0 go build` (a static binary)")
	}
	final := stages[1]
	var user string
	var copied, entry bool
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			copied = copied || (c.From == "build" && slices.Contains(c.SourcePaths, "/out/invroute"))
		case *instructions.EntrypointCommand:
			entry = !c.PrependShell && len(c.CmdLine) > 0 && strings.HasSuffix(c.CmdLine[0], "/invroute")
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if secretName.MatchString(kv.Key) {
					t.Errorf("ENV %s: no secrets in the image", kv.Key)
				}
			}
		}
	}
	uid := strings.Split(user, ":")[0]
	if user == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: the final stage must run as a non-root user", user)
	}
	if !copied || !entry {
		t.Errorf("the final stage must COPY --from=build /out/invroute (%v) and ENTRYPOINT it in exec form (%v)", copied, entry)
	}
}

var secretName = regexp.MustCompile(`(?i)password|secret|token|key`)

// TestDockerfileLintRejects: the linter and the checks above catch broken
// variants.
func TestDockerfileLintRejects(t *testing.T) {
	dt := string(readFile(t, dockerfile))
	for _, bad := range []string{
		strings.Replace(dt, "FROM golang:${GO_VERSION} AS build", "FROM golang:${GO_VERSION} as build", 1),               // FromAsCasing
		strings.Replace(dt, `ENTRYPOINT ["/usr/local/bin/invroute"]`, `ENTRYPOINT /usr/local/bin/invroute`, 1),           // JSONArgsRecommended
		strings.Replace(dt, "USER 65532:65532", "USER 65532:65532\nENV INVROUTE_SASL_PASSWORD=changeme", 1),              // SecretsUsedInArgOrEnv
		strings.Replace(dt, "AS build", "AS Build", 1),                                                                   // StageNameCasing
		strings.Replace(dt, "FROM golang:${GO_VERSION} AS build", "FROM golang:${GO_VERSION} AS build\nMAINTAINER x", 1), // MaintainerDeprecated
	} {
		if bad == dt {
			t.Fatal("replacement did not apply")
		}
		msg, warnings := lintDockerfile(t, []byte(bad))
		if msg == "" && len(warnings) == 0 {
			t.Errorf("no error or warning for a broken Dockerfile")
		}
		t.Logf("error %q warnings %q", msg, warnings)
	}
}

// TestDockerIgnore: the build context the Dockerfile's own ignore file leaves
// holds every package `invroute` is built from (go list -deps).
func TestDockerIgnore(t *testing.T) {
	var keep []string
	for _, l := range strings.Split(string(readFile(t, dockerfile+".dockerignore")), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			keep = append(keep, strings.TrimSuffix(p, "/"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/invroute")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repo)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, downloaded by `go mod download`
		}
		n++
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !slices.Contains(keep, top) {
			t.Errorf("package dir %s is not in the build context (Dockerfile.dockerignore keeps %v)", rel, keep)
		}
	}
	if n == 0 {
		t.Fatal("no package of the repository in go list's output")
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(keep, f) {
			t.Errorf("%s is not in the build context", f)
		}
	}
}

func loadCompose(t *testing.T, content []byte) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: content}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("invroute", true) })
}

// TestCompose loads docker-compose.yml with compose-go (what `docker compose
// config` does: schema, interpolation, references) and checks the services:
// apache/kafka (the image of cmd/internal/kafkaenv), healthy before invroute
// starts, topics created first, invroute built from deploy/Dockerfile with
// its brokers, state volume, HTTP port and a stop grace period.
func TestCompose(t *testing.T) {
	p, err := loadCompose(t, readFile(t, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	kafka, ok := p.Services["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	img := regexp.MustCompile(`DefaultImage = "([^"]+)"`).FindSubmatch(readFile(t, kafkaenvGo))
	if img == nil || kafka.Image != string(img[1]) {
		t.Errorf("kafka image %q, kafkaenv.DefaultImage %q: keep them equal", kafka.Image, img)
	}
	if kafka.HealthCheck == nil || len(kafka.HealthCheck.Test) == 0 {
		t.Error("kafka needs a healthcheck")
	}
	adv := kafka.Environment["KAFKA_ADVERTISED_LISTENERS"]
	for _, key := range regexp.MustCompile(`"(KAFKA_[A-Z_]+)":`).FindAllSubmatch(readFile(t, containerEnvG), -1) {
		if _, ok := kafka.Environment[string(key[1])]; !ok {
			t.Errorf("kafka: %s is set in the test container (kafkaenv) but not here", key[1])
		}
	}

	inv, ok := p.Services["invroute"]
	if !ok {
		t.Fatal("no invroute service")
	}
	topics, ok := p.Services["topics"]
	if !ok {
		t.Fatal("no topics service")
	}
	if topics.Build == nil || topics.Build.Dockerfile != "deploy/Dockerfile" || topics.Image != inv.Image {
		t.Errorf("topics must build %s from deploy/Dockerfile (build %+v)", inv.Image, topics.Build)
	}
	if ctxDir, _ := filepath.Abs(repo); topics.Build != nil && topics.Build.Context != ctxDir {
		t.Errorf("build context %s, want the repository root %s", topics.Build.Context, ctxDir)
	}
	if strings.Join(topics.Command, " ") != "topics create" {
		t.Errorf("topics command %q", topics.Command)
	}
	for name, s := range map[string]types.ServiceConfig{"invroute": inv, "topics": topics} {
		b := s.Environment["INVROUTE_BROKERS"]
		if b == nil || !strings.Contains(*adv, "PLAINTEXT://"+*b) {
			t.Errorf("%s: INVROUTE_BROKERS %v is not kafka's advertised PLAINTEXT listener (%s)", name, b, *adv)
		}
		if d, ok := s.DependsOn["kafka"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s must wait for a healthy kafka", name)
		}
	}
	if d, ok := inv.DependsOn["topics"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("invroute must wait for the topics")
	}
	if strings.Join(inv.Command, " ") != "run" {
		t.Errorf("invroute command %q", inv.Command)
	}
	stateDir := inv.Environment["INVROUTE_STATE_DIR"]
	var volume bool
	for _, v := range inv.Volumes {
		volume = volume || (stateDir != nil && v.Target == *stateDir && v.Type == types.VolumeTypeVolume)
	}
	if !volume {
		t.Errorf("state dir %v is not on a named volume", stateDir)
	}
	var port bool
	for _, pc := range inv.Ports {
		port = port || pc.Target == 9100
	}
	if a := inv.Environment["INVROUTE_HTTP_ADDR"]; !port || a == nil || *a != ":9100" {
		t.Error("invroute must serve and publish its HTTP port 9100")
	}
	if inv.StopGracePeriod == nil || time.Duration(*inv.StopGracePeriod) < 30*time.Second {
		t.Error("stop_grace_period must leave time for a graceful stop")
	}
}

// TestComposeRejects: compose-go refuses broken variants.
func TestComposeRejects(t *testing.T) {
	dt := string(readFile(t, composeFile))
	for _, tc := range []struct{ old, new string }{
		{"stop_grace_period: 60s", "stop_grace_period: 60s\n    restart_policy: always"}, // unknown key
		{"condition: service_completed_successfully", "condition: service_finished"},     // bad enum
		{"- invroute-state:/var/lib/invroute", "- missing-volume:/var/lib/invroute"},     // undefined volume
		{"      topics:\n        condition", "      topicz:\n        condition"},         // unknown dependency
	} {
		if !strings.Contains(dt, tc.old) {
			t.Fatalf("compose file has no %q", tc.old)
		}
		if _, err := loadCompose(t, []byte(strings.Replace(dt, tc.old, tc.new, 1))); err == nil {
			t.Errorf("accepted %q", tc.new)
		} else {
			t.Logf("%q: %v", tc.new, err)
		}
	}
}

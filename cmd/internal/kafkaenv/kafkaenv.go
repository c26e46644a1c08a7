// Package kafkaenv finds a real Kafka broker for integration tests.
//
// Start picks, in this order:
//
//  1. KAFKA_BROKERS, when it is set: the caller's broker, used as it is;
//  2. a broker in a container, when a Docker engine answers (testcontainers-go,
//     image apache/kafka, single KRaft node);
//  3. a local broker of deploy/kafka/kafka.sh (Apache Kafka from Maven
//     Central jars, no Docker), started for the caller on free ports with a
//     data directory of its own.
//
// Choose makes that decision without starting anything and says why, so the
// choice itself is tested; the Docker check is a field of Config so that the
// container branch is selected in tests on machines without Docker.
package kafkaenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Source says where the brokers of an Env come from.
type Source string

const (
	// FromEnv: KAFKA_BROKERS was set.
	FromEnv Source = "env"
	// FromContainer: a Kafka container started with testcontainers-go.
	FromContainer Source = "testcontainers"
	// FromLocalBroker: the broker of deploy/kafka/kafka.sh.
	FromLocalBroker Source = "local-broker"
)

// DefaultImage is the Kafka image of the container branch (the image of
// docker-compose.yml too).
const DefaultImage = "apache/kafka:4.1.1"

// Config says how Start looks for a broker. The zero value is ready to use.
type Config struct {
	// Getenv reads the environment. Default: os.Getenv.
	Getenv func(string) string
	// Docker reports whether a Docker engine is reachable: nil if it is.
	// Default: DockerReachable (testcontainers-go's provider health check).
	Docker func(context.Context) error
	// DockerTimeout bounds the Docker check. Default: 10 s.
	DockerTimeout time.Duration
	// Image is the Kafka image of the container branch. Default: DefaultImage.
	Image string
	// Script is deploy/kafka/kafka.sh. Default: found from the working
	// directory upwards (the repository root holds deploy/kafka/kafka.sh).
	Script string
	// DataRoot is where the local broker's data directory is made (a new
	// one for every Start). Default: os.TempDir().
	DataRoot string
}

func (c *Config) ensureDefaults() {
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Docker == nil {
		c.Docker = DockerReachable
	}
	if c.DockerTimeout == 0 {
		c.DockerTimeout = 10 * time.Second
	}
	if c.Image == "" {
		c.Image = DefaultImage
	}
}

// Choice is the broker source Choose picked and why.
type Choice struct {
	Source Source
	Reason string
	// Brokers is set for FromEnv only: the others know it once started.
	Brokers string
}

// Choose decides where the brokers come from without starting anything.
func Choose(ctx context.Context, cfg Config) Choice {
	cfg.ensureDefaults()
	if b := strings.TrimSpace(cfg.Getenv("KAFKA_BROKERS")); b != "" {
		return Choice{Source: FromEnv, Brokers: b, Reason: "KAFKA_BROKERS is set"}
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.DockerTimeout)
	defer cancel()
	if err := cfg.Docker(dctx); err != nil {
		return Choice{Source: FromLocalBroker,
			Reason: "KAFKA_BROKERS is not set and no Docker engine answered (" + oneLine(err.Error()) + "): deploy/kafka/kafka.sh"}
	}
	return Choice{Source: FromContainer, Reason: "KAFKA_BROKERS is not set and a Docker engine answered: " + cfg.Image}
}

// DockerReachable asks testcontainers-go's Docker provider for the engine's
// health: nil if a Docker engine answers.
func DockerReachable(ctx context.Context) (err error) {
	defer func() {
		// the provider panics on some broken set-ups (testcontainers'
		// SkipIfProviderIsNotHealthy recovers the same way)
		if r := recover(); r != nil {
			err = fmt.Errorf("docker provider: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Health(ctx)
}

// Env is a running broker (or the caller's).
type Env struct {
	Choice
	stop func(context.Context) error
}

// Stop stops what Start started: the container, or the local broker (and
// removes its data). Nothing for KAFKA_BROKERS.
func (e *Env) Stop(ctx context.Context) error {
	if e == nil || e.stop == nil {
		return nil
	}
	return e.stop(ctx)
}

// Start returns brokers as Choose picks them, starting the container or the
// local broker if needed. Call Env.Stop when done.
func Start(ctx context.Context, cfg Config) (*Env, error) {
	cfg.ensureDefaults()
	ch := Choose(ctx, cfg)
	env := &Env{Choice: ch}
	switch ch.Source {
	case FromEnv:
		return env, nil
	case FromContainer:
		brokers, stop, err := startContainer(ctx, cfg.Image)
		if err != nil {
			return nil, fmt.Errorf("kafkaenv: %s: %w", ch.Reason, err)
		}
		env.Brokers, env.stop = brokers, stop
		return env, nil
	default:
		brokers, stop, err := startLocal(ctx, cfg.Script, cfg.DataRoot)
		if err != nil {
			return nil, fmt.Errorf("kafkaenv: %s: %w", ch.Reason, err)
		}
		env.Brokers, env.stop = brokers, stop
		return env, nil
	}
}

// startLocal starts a broker of its own with kafka.sh: free ports and a new
// data directory (under root), so that two runs at once (two `make test`)
// never share one, and the end of one never takes the other's broker away.
// A start that fails or is cancelled stops what it started (the broker's
// JVM runs in a session of its own, which a signal to this process group
// does not reach) and removes the directory; so does the returned stop.
func startLocal(ctx context.Context, script, root string) (string, func(context.Context) error, error) {
	if script == "" {
		var err error
		if script, err = FindScript(); err != nil {
			return "", nil, err
		}
	}
	// The ports are free when chosen, not reserved: another process may
	// take one before the broker binds it. Then the start is tried again on
	// other ports, a few times.
	for attempt := 1; ; attempt++ {
		brokers, stop, taken, err := startLocalOnce(ctx, script, root)
		if err == nil || !taken || attempt == 3 || ctx.Err() != nil {
			return brokers, stop, err
		}
	}
}

// startLocalOnce is one try of startLocal; taken says it failed because a
// port was taken (the broker's log says so, and err quotes it).
func startLocalOnce(ctx context.Context, script, root string) (string, func(context.Context) error, bool, error) {
	dir, err := os.MkdirTemp(root, "invroute-kafka-run-")
	if err != nil {
		return "", nil, false, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, false, err
	}
	data := filepath.Join(dir, "data")
	env := append(os.Environ(), fmt.Sprintf("KAFKA_PORT=%d", ports[0]), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", ports[1]),
		"INVROUTE_KAFKA_DATA="+data)
	stop := func(ctx context.Context) error {
		var stderr bytes.Buffer
		cmd := scriptCommand(ctx, env, script, "down", "--wipe")
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%s down: %w: %s", script, err, lastLines(stderr.String(), 5))
		}
		return errors.Join(err, os.RemoveAll(dir))
	}
	var stderr bytes.Buffer
	cmd := scriptCommand(ctx, env, script, "up")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		var brokers string
		if brokers, err = ParseBrokersLine(string(out)); err == nil {
			return brokers, stop, false, nil
		}
	}
	if lines := lastLines(stderr.String(), 5); lines != "" {
		err = fmt.Errorf("%w: %s", err, lines)
	}
	// before the stop wipes them: does the broker's log say a port was
	// taken? (Or kafka.sh itself, which checks the ports before it starts
	// the broker: its message is in err already.)
	bind := bindFailure(filepath.Join(data, "logs", "server.log"), filepath.Join(data, "kafka.out"))
	if bind != "" {
		err = fmt.Errorf("%w (the broker's log: %s)", err, bind)
	} else if strings.Contains(stderr.String(), "is already in use by another process") {
		bind = "kafka.sh: a port is already in use"
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return "", nil, bind != "", errors.Join(fmt.Errorf("%s up: %w", script, err), stop(sctx))
}

// bindFailure returns the first line of the files that says a port could
// not be bound, or "".
func bindFailure(files ...string) string {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "Address already in use") {
				return oneLine(line)
			}
		}
	}
	return ""
}

// scriptCommand runs kafka.sh in a process group of its own, killed whole
// when ctx is done (mvn or java under it too, not only bash).
func scriptCommand(ctx context.Context, env []string, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// freePorts returns n TCP ports free on the loopback now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ParseBrokersLine returns host:port of the KAFKA_BROKERS=host:port line that
// kafka.sh up prints.
func ParseBrokersLine(out string) (string, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if b, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "KAFKA_BROKERS="); ok && b != "" {
			return b, nil
		}
	}
	return "", errors.New("no KAFKA_BROKERS=host:port line in its output")
}

// FindScript finds deploy/kafka/kafka.sh from the working directory upwards.
func FindScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "deploy", "kafka", "kafka.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("deploy/kafka/kafka.sh not found above the working directory")
		}
		dir = parent
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

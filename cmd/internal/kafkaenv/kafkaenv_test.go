package kafkaenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestChoose covers the decision table with an injected Docker check.
func TestChoose(t *testing.T) {
	ctx := context.Background()
	noDocker := func(context.Context) error { return errors.New("Cannot connect to the Docker daemon") }
	docker := func(context.Context) error { return nil }
	mustNotCall := func(context.Context) error { t.Error("Docker checked although KAFKA_BROKERS is set"); return nil }

	for _, tc := range []struct {
		name        string
		getenv      map[string]string
		docker      func(context.Context) error
		want        Source
		wantBrokers string
		reason      string
	}{
		{"env wins over Docker", map[string]string{"KAFKA_BROKERS": "k1:9092,k2:9092"}, mustNotCall, FromEnv, "k1:9092,k2:9092", "KAFKA_BROKERS is set"},
		{"blank env is unset", map[string]string{"KAFKA_BROKERS": "  "}, docker, FromContainer, "", "a Docker engine answered: apache/kafka:4.1.1"},
		{"Docker answers", nil, docker, FromContainer, "", "a Docker engine answered"},
		{"no Docker", nil, noDocker, FromLocalBroker, "", "no Docker engine answered (Cannot connect to the Docker daemon): deploy/kafka/kafka.sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Choose(ctx, Config{Getenv: env(tc.getenv), Docker: tc.docker})
			if got.Source != tc.want || got.Brokers != tc.wantBrokers || !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("Choose = %+v, want source %s, brokers %q, reason containing %q", got, tc.want, tc.wantBrokers, tc.reason)
			}
		})
	}
}

// TestChooseDockerTimeout: a Docker check that hangs counts as no Docker.
func TestChooseDockerTimeout(t *testing.T) {
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	start := time.Now()
	got := Choose(context.Background(), Config{Getenv: env(nil), Docker: hang, DockerTimeout: 50 * time.Millisecond})
	if got.Source != FromLocalBroker || !strings.Contains(got.Reason, "deadline exceeded") {
		t.Fatalf("Choose = %+v, want the local broker after the deadline", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Choose took %v", d)
	}
}

// TestChooseOnThisMachine runs the real Docker check (testcontainers-go's
// provider health). Without a Docker socket or DOCKER_HOST, as on the
// project's machines, it must pick the local broker and say why.
func TestChooseOnThisMachine(t *testing.T) {
	got := Choose(context.Background(), Config{Getenv: env(nil)})
	t.Logf("choice without KAFKA_BROKERS: %s (%s)", got.Source, got.Reason)
	_, sockErr := os.Stat("/var/run/docker.sock")
	if os.Getenv("DOCKER_HOST") == "" && errors.Is(sockErr, os.ErrNotExist) {
		if got.Source != FromLocalBroker || !strings.Contains(got.Reason, "no Docker engine answered") {
			t.Fatalf("no Docker engine here, yet Choose = %+v", got)
		}
	}
	// KAFKA_BROKERS set: used as it is, whatever Docker says
	got = Choose(context.Background(), Config{Getenv: env(map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"})})
	if got.Source != FromEnv || got.Brokers != "127.0.0.1:1" {
		t.Fatalf("with KAFKA_BROKERS: %+v", got)
	}
}

func TestParseBrokersLine(t *testing.T) {
	b, err := ParseBrokersLine("noise\nKAFKA_BROKERS=127.0.0.1:19092\n")
	if err != nil || b != "127.0.0.1:19092" {
		t.Fatalf("got %q, %v", b, err)
	}
	if _, err := ParseBrokersLine("started\n"); err == nil {
		t.Fatal("no error without a KAFKA_BROKERS line")
	}
}

func TestStartScript(t *testing.T) {
	s := startScriptFor("localhost:32768", "abc123")
	for _, want := range []string{"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:32768,BROKER://abc123:9093", "exec /etc/kafka/docker/run"} {
		if !strings.Contains(s, want) {
			t.Errorf("start script lacks %q:\n%s", want, s)
		}
	}
}

// TestStartLocalBroker takes the local-broker branch for real (the Docker
// check is forced to fail, KAFKA_BROKERS hidden): a broker of its own, on
// free ports, that it produces to; Stop stops it and removes its data.
// Skipped with -short (a first start downloads the broker's jars).
func TestStartLocalBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a Kafka broker")
	}
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := Start(ctx, Config{Getenv: env(nil), Docker: forcedNoDocker, DataRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = e.Stop(context.Background())
		}
	}()
	if e.Source != FromLocalBroker || e.Brokers == "" {
		t.Fatalf("Start = %+v", e.Choice)
	}
	t.Logf("brokers %s (%s)", e.Brokers, e.Reason)
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.Brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("ping %s: %v", e.Brokers, err)
	}
	stopped = true
	if err := e.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	if c, err := net.DialTimeout("tcp", e.Brokers, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still answers after Stop", e.Brokers)
	}
	leftOver(t, root)
}

// TestStartLocalBrokerInterrupted: a start cancelled while kafka.sh runs
// (a signal to withkafka) fails and leaves nothing behind: no broker
// process, no data. Found by review: an interrupted start left the broker
// running, and later runs reused it and never stopped it.
func TestStartLocalBrokerInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a Kafka broker")
	}
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once the broker's JVM (in a session of its own) runs
		for ctx.Err() == nil {
			if procsUnder(root, "kafka.Kafka") > 0 {
				time.Sleep(200 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	e, err := Start(ctx, Config{Getenv: env(nil), Docker: forcedNoDocker, DataRoot: root})
	if err == nil {
		_ = e.Stop(context.Background())
		t.Skip("the broker was up before the start could be interrupted")
	}
	t.Logf("interrupted start: %v", err)
	leftOver(t, root)
}

func forcedNoDocker(context.Context) error { return errors.New("forced: no Docker") }

// leftOver fails if a process still names root on its command line or
// anything is left in root.
func leftOver(t *testing.T, root string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); procsUnder(root) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d processes still run under %s", procsUnder(root), root)
			break
		}
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) > 0 {
		t.Errorf("left in %s: %v %v", root, ents, err)
	}
}

// procsUnder counts the processes whose command line names dir (and has
// every one of also).
func procsUnder(dir string, also ...string) int {
	n := 0
	ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
next:
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		for _, a := range also {
			if !bytes.Contains(b, []byte(a)) {
				continue next
			}
		}
		n++
	}
	return n
}

// TestStartLocalBrokerPortTaken: a port chosen free and taken by another
// process before the broker binds it (simulated by a wrapper that gives
// the first start a port held by a bound socket) makes the start try again
// on other ports, as does one taken before kafka.sh checks the ports (a
// listening socket); a port taken every time fails with the broker's own
// words for it. Found by review: the error said only that Kafka failed to
// start, pointing at a log the clean-up had wiped, and nothing was retried.
func TestStartLocalBrokerPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a Kafka broker")
	}
	real, err := FindScript()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	held := sa.(*syscall.SockaddrInet4).Port
	// a listening one: taken before kafka.sh's own check of the ports
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listening := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		always bool
		port   int
	}{{false, held}, {true, held}, {false, listening}} {
		always, held := tc.always, tc.port
		t.Run(fmt.Sprintf("always=%t/port=%d", always, held), func(t *testing.T) {
			root, dir := t.TempDir(), t.TempDir()
			// the wrapper hands `up` the held port once (or always)
			marker := filepath.Join(dir, "once")
			wrapper := filepath.Join(dir, "kafka.sh")
			cond := fmt.Sprintf(`[[ $1 == up && ! -e %q ]]`, marker)
			if always {
				cond = `[[ $1 == up ]]`
			}
			script := fmt.Sprintf("#!/usr/bin/env bash\nif %s; then touch %q; export KAFKA_PORT=%d; fi\nexec bash %q \"$@\"\n", cond, marker, held, real)
			if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			brokers, stop, err := startLocal(ctx, wrapper, root)
			if always {
				if err == nil {
					_ = stop(context.Background())
					t.Fatalf("started on %s although port %d is always held", brokers, held)
				}
				if !strings.Contains(err.Error(), "Address already in use") {
					t.Errorf("the error does not say the port was taken:\n%v", err)
				}
			} else {
				if err != nil {
					t.Fatalf("not started on other ports after the held one: %v", err)
				}
				if strings.HasSuffix(brokers, fmt.Sprintf(":%d", held)) {
					t.Errorf("started on the held port %d", held)
				}
				if err := stop(context.Background()); err != nil {
					t.Error(err)
				}
			}
			leftOver(t, root)
		})
	}
}

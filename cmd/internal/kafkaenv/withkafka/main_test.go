package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/kafkaenv"
)

// TestSignalStopsTheBroker: withkafka sent SIGTERM (or SIGHUP) alone, as a
// supervisor does, while its command runs, passes it on to the command and
// stops the broker it started before it exits. Found by review: SIGTERM was
// swallowed until the command ended, and SIGHUP killed withkafka with the
// broker left running.
func TestSignalStopsTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a Kafka broker")
	}
	if kafkaenv.DockerReachable(context.Background()) == nil {
		t.Skip("a Docker engine answers: withkafka would start a container")
	}
	bin := filepath.Join(t.TempDir(), "withkafka")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	script, err := kafkaenv.FindScript()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			root := t.TempDir() // withkafka's TMPDIR: the broker's data directory goes there
			cmd := exec.Command(bin, "sleep", "120")
			cmd.Dir = filepath.Dir(filepath.Dir(filepath.Dir(script))) // the repository root
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "KAFKA_BROKERS=") && !strings.HasPrefix(kv, "TMPDIR=") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env, "TMPDIR="+root)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			up := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "withkafka: KAFKA_BROKERS=") {
						close(up)
					}
				}
				done <- cmd.Wait()
			}()
			select {
			case <-up:
			case err := <-done:
				t.Fatalf("withkafka ended before the broker was up: %v", err)
			case <-time.After(5 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatal("the broker did not come up")
			}
			if n := procs(root); n == 0 {
				t.Fatalf("no broker process names %s", root)
			}
			_ = cmd.Process.Signal(sig)
			select {
			case err := <-done:
				t.Logf("withkafka exited: %v", err)
			case <-time.After(90 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("withkafka did not exit within 90 s of the signal")
			}
			if n := procs(root); n > 0 {
				t.Errorf("%d processes still run under %s", n, root)
			}
			if ents, _ := os.ReadDir(root); len(ents) > 0 {
				t.Errorf("left in %s: %v", root, ents)
			}
		})
	}
}

// procs counts the processes whose command line names dir.
func procs(dir string) int {
	n := 0
	ms, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range ms {
		if b, err := os.ReadFile(m); err == nil && bytes.Contains(b, []byte(dir)) {
			n++
		}
	}
	return n
}

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRun: the command sees the chosen KAFKA_BROKERS, and its exit code is
// returned (with KAFKA_BROKERS set, nothing is started or stopped).
func TestRun(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "broker.example:9092")
	out := filepath.Join(t.TempDir(), "out")
	if code := run([]string{"sh", "-c", `printf %s "$KAFKA_BROKERS" > ` + out}); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "broker.example:9092" {
		t.Fatalf("the command saw KAFKA_BROKERS=%q (%v)", b, err)
	}
	if code := run([]string{"sh", "-c", "exit 3"}); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if code := run([]string{"/nonexistent/command"}); code != 1 {
		t.Errorf("exit code %d for a missing command, want 1", code)
	}
}

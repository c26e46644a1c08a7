// Command withkafka runs a command with KAFKA_BROKERS pointing at a real
// Kafka broker chosen by kafkaenv: the caller's KAFKA_BROKERS, else a
// testcontainers-go container when a Docker engine answers, else the local
// broker of deploy/kafka/kafka.sh. What it started it stops afterwards. The
// command's exit code is returned. `make test` runs the test suite with it.
//
//	go run ./cmd/internal/kafkaenv/withkafka go test ./...
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/invroute/invroute/cmd/internal/kafkaenv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: withkafka COMMAND [ARGS...]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	env, err := kafkaenv.Start(ctx, kafkaenv.Config{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "withkafka:", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "withkafka: stopping the broker:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "withkafka: KAFKA_BROKERS=%s (%s)\n", env.Brokers, env.Reason)
	// Signals reach the command (same process group); this process only
	// waits for it, then stops what it started.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+env.Brokers)
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return max(ee.ExitCode(), 1)
	default:
		fmt.Fprintln(os.Stderr, "withkafka:", err)
		return 1
	}
}

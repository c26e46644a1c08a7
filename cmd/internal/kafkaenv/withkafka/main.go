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
	// Catch SIGINT/SIGTERM from here on (a caught signal is reset to its
	// default in the command; an ignored one would stay ignored there):
	// the command, in the same process group, gets them from the terminal
	// itself; this process stops what it started, also when a signal
	// comes while the broker is starting.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	env, err := kafkaenv.Start(ctx, kafkaenv.Config{})
	interrupted := ctx.Err() == context.Canceled
	cancel()
	if err != nil || interrupted {
		if env != nil {
			stopEnv(env)
		}
		if err == nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintln(os.Stderr, "withkafka:", err)
		return 1
	}
	defer stopEnv(env)
	fmt.Fprintf(os.Stderr, "withkafka: KAFKA_BROKERS=%s (%s)\n", env.Brokers, env.Reason)
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

func stopEnv(env *kafkaenv.Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "withkafka: stopping the broker:", err)
	}
}

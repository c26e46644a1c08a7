// Command withkafka runs a command with KAFKA_BROKERS pointing at a real
// Kafka broker chosen by kafkaenv: the caller's KAFKA_BROKERS, else a
// testcontainers-go container when a Docker engine answers, else the local
// broker of deploy/kafka/kafka.sh (on free ports, with a data directory of
// its own). What it started it stops afterwards, also when it is
// interrupted. The command's exit code is returned. `make test` runs the test suite with it.
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

// startTimeout bounds the broker's start, the first download of its jars
// from Maven Central included.
const startTimeout = 10 * time.Minute

func run(args []string) int {
	// Catch SIGINT, SIGTERM and SIGHUP from here on (a caught signal is
	// reset to its default in the command; an ignored one would stay
	// ignored there). While the broker starts, a signal cancels the start,
	// which stops what it started; while the command runs, it is passed on
	// to the command (which, in the same process group, also gets a
	// terminal's signals itself), and the broker is stopped once the
	// command has ended. This process never dies of them with a broker
	// left behind.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	env, err := kafkaenv.Start(ctx, kafkaenv.Config{})
	interrupted, late := ctx.Err() == context.Canceled, ctx.Err() == context.DeadlineExceeded
	cancel()
	<-watched
	if err != nil || interrupted {
		if env != nil {
			stopEnv(env)
		}
		switch {
		case interrupted:
			err = fmt.Errorf("interrupted: %v", err)
		case late:
			err = fmt.Errorf("the broker did not start within %v (the first run downloads its jars from Maven Central): %w", startTimeout, err)
		}
		fmt.Fprintln(os.Stderr, "withkafka:", err)
		return 1
	}
	defer stopEnv(env)
	fmt.Fprintf(os.Stderr, "withkafka: KAFKA_BROKERS=%s (%s)\n", env.Brokers, env.Reason)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+env.Brokers)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "withkafka:", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
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

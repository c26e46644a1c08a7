package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/invroute/invroute/topology"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/twmb/franz-go/pkg/kgo"
)

// workerFlag starts a hidden subprocess role of the bench:
//
//	invroute bench -worker passthrough -brokers B -in T -out T -group G ...
//	invroute bench -worker engine [-cpuprofile F] [-trace F] <invroute run flags>
//
// The engine worker is `invroute run` (app.Flags, app.NewEngine, Run) with a
// CPU profile that stops at SIGUSR1 (sent at the end of the throughput
// phase) or exit, and an execution trace of its whole life.
const workerFlag = "-worker"

func worker(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench: -worker needs a role")
	}
	switch args[0] {
	case "passthrough":
		return passthroughWorker(ctx, args[1:], stderr)
	case "engine":
		return engineWorker(ctx, args[1:], stderr)
	}
	return fmt.Errorf("bench: unknown worker role %q", args[0])
}

func engineWorker(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	load := app.Flags(fs)
	profile := fs.String("cpuprofile", "", "CPU profile file; stopped at SIGUSR1 or exit")
	traceFile := fs.String("trace", "", "execution trace file, until exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o, err := load()
	if err != nil {
		return err
	}
	eng, err := app.NewEngine(o, o.Logger(), nil)
	if err != nil {
		return err
	}
	if *profile != "" || *traceFile != "" {
		var stops []func()
		if *profile != "" {
			f, err := os.Create(*profile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
		if *traceFile != "" {
			f, err := os.Create(*traceFile)
			if err != nil {
				return err
			}
			if err := trace.Start(f); err != nil {
				return err
			}
			defer func() { trace.Stop(); f.Close() }() // the whole life: throughput and latency phases
		}
		var once sync.Once
		stop := func() {
			once.Do(func() {
				for _, s := range stops {
					s()
				}
			})
		}
		defer stop()
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() {
			select {
			case <-usr1:
				stop()
			case <-ctx.Done():
			}
		}()
	}
	return eng.Run(ctx)
}

// passthroughWorker is the baseline: a bare franz-go transactional
// consume-produce loop shaped like the engine's (one GroupTransactSession,
// read_committed, transactions of at most max-txn-records input records or
// commit-interval) that copies every input record to the same partition of
// the output topic.
func passthroughWorker(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-passthrough", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "seed brokers")
	in := fs.String("in", "", "input topic")
	out := fs.String("out", "", "output topic")
	group := fs.String("group", "", "consumer group")
	txnID := fs.String("txn-id", "", "transactional id")
	interval := fs.Duration("commit-interval", 100*time.Millisecond, "longest transaction")
	maxRecs := fs.Int("max-txn-records", 5000, "input records per transaction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sess, err := kgo.NewGroupTransactSession(append(
		topology.SessionOpts(*group, *txnID, 30*time.Second, 10*time.Second, *in),
		kgo.SeedBrokers(strings.Split(*brokers, ",")...))...)
	if err != nil {
		return err
	}
	defer sess.Close()
	var produceErr error
	var mu sync.Mutex
	for ctx.Err() == nil {
		if err := sess.Begin(); err != nil {
			return err
		}
		pollCtx, cancel := context.WithTimeout(ctx, *interval)
		n := 0
		for n < *maxRecs && pollCtx.Err() == nil {
			fs := sess.PollRecords(pollCtx, *maxRecs-n)
			if fs.IsClientClosed() {
				cancel()
				return errors.New("bench: passthrough client closed")
			}
			fs.EachRecord(func(r *kgo.Record) {
				n++
				sess.Produce(context.Background(), &kgo.Record{Topic: *out, Partition: r.Partition, Key: r.Key, Value: r.Value},
					func(_ *kgo.Record, err error) {
						if err != nil {
							mu.Lock()
							produceErr = err
							mu.Unlock()
						}
					})
			})
		}
		cancel()
		mu.Lock()
		commit := kgo.TryCommit
		if n == 0 {
			// Nothing polled: end it as an abort, as the engine does
			// (topology: an idle transaction). franz-go holds the session
			// 500 ms after committing a transaction without offsets (it
			// takes the broker for one without KIP-447), which would slow
			// the passthrough's start and flatter the ratio.
			commit = kgo.TryAbort
		}
		if produceErr != nil {
			fmt.Fprintln(stderr, "passthrough: produce failed, aborting:", produceErr)
			commit, produceErr = kgo.TryAbort, nil
		}
		mu.Unlock()
		endCtx, endCancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := sess.End(endCtx, commit)
		endCancel()
		if err != nil {
			return fmt.Errorf("bench: passthrough commit: %w", err)
		}
		sess.AllowRebalance()
	}
	return nil
}

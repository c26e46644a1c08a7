// Package demo is `invroute demo`: an in-process kfake broker, the topics,
// sample EU fulfillment nodes and sales channels, a generator of realistic
// stock movements, and the unchanged engine on top, with a live progress
// line and a final summary checked against the generator's own model.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options of the demo.
type Options struct {
	Duration   time.Duration // 0: until interrupted
	Rate       int           // movements per second
	SKUs       int
	BadEvery   int // one undecodable record every BadEvery movements; 0 = none
	Seed       int64
	StateDir   string
	Brokers    string // use these brokers instead of the embedded one
	LogLevel   string
	Partitions int
	Verbose    bool // print every SKU that disagrees with the model
}

// Main parses args and runs the demo; the summary goes to stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long and print the summary (0: run until interrupted)")
	fs.IntVar(&o.Rate, "rate", 2000, "stock movements per second")
	fs.IntVar(&o.SKUs, "skus", 5000, "catalogue size (popularity is Zipf-skewed)")
	fs.IntVar(&o.BadEvery, "bad-every", 500, "send one undecodable record every N movements (0: none)")
	fs.Int64Var(&o.Seed, "seed", 1, "random seed of the generator")
	fs.StringVar(&o.StateDir, "state-dir", "", "state directory (default: a temporary one, removed at exit)")
	fs.StringVar(&o.Brokers, "brokers", "", "use these Kafka brokers instead of the embedded kfake broker")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "engine log level")
	fs.IntVar(&o.Partitions, "partitions", 6, "partitions of the demo topics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Rate < 1 || o.SKUs < 1 {
		return errors.New("demo: -rate and -skus must be positive")
	}
	return Run(ctx, o, stdout)
}

// Run runs the demo until o.Duration has passed or ctx is done.
func Run(ctx context.Context, o Options, out io.Writer) error {
	brokers := o.Brokers
	if brokers == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("demo: embedded broker: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()[0]
	}
	if o.StateDir == "" {
		dir, err := os.MkdirTemp("", "invroute-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.StateDir = dir
	}
	opts := app.Defaults()
	opts.Brokers = brokers
	opts.StateDir = o.StateDir
	opts.InstanceID = "demo"
	opts.Group = "invroute-demo"
	opts.Partitions = o.Partitions
	opts.LogLevel = o.LogLevel
	if _, err := app.CreateTopics(ctx, opts); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := seedCatalog(ctx, cl); err != nil {
		return err
	}

	log := opts.Logger()
	eng, err := app.NewEngine(opts, log, nil)
	if err != nil {
		return err
	}
	engCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	engErr := make(chan error, 1)
	go func() { engErr <- eng.Run(engCtx) }()

	w, err := newWatcher(brokers)
	if err != nil {
		return err
	}
	defer w.close()
	gen := newGenerator(o)

	runCtx := ctx
	if o.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	var genErr error
	wg.Add(1)
	go func() { defer wg.Done(); genErr = gen.run(runCtx, cl) }()
	prog := newProgress(out, gen, w)
	wg.Add(1)
	go func() { defer wg.Done(); prog.run(runCtx) }()

	select {
	case <-runCtx.Done():
	case err := <-engErr:
		return fmt.Errorf("demo: engine stopped: %w", err)
	}
	wg.Wait()
	if genErr != nil && !errors.Is(genErr, context.Canceled) && !errors.Is(genErr, context.DeadlineExceeded) {
		return genErr
	}
	fmt.Fprintln(out)
	// Let the engine catch up, then compare with the generator's model.
	caught := waitCaughtUp(ctx, cl, opts.Group, gen, w)
	stopEngine()
	if err := <-engErr; err != nil {
		return fmt.Errorf("demo: engine: %w", err)
	}
	ok, total := gen.check(w)
	fmt.Fprintf(out, "check: ATS of %d/%d SKUs equals the generator's model (caught up: %t)\n", ok, total, caught)
	fmt.Fprintf(out, "summary: movements=%d ats_updates=%d dead_letters=%d\n",
		gen.movements.Load(), w.atsUpdates.Load(), w.deadLetters.Load())
	if ok != total {
		return fmt.Errorf("demo: %d SKUs disagree with the model", total-ok)
	}
	return nil
}

// waitCaughtUp waits (at most 60 s) until the engine has committed every
// movement and the watcher has read every ATS update up to the end.
func waitCaughtUp(ctx context.Context, cl *kgo.Client, group string, gen *generator, w *watcher) bool {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ends, err1 := adm.ListEndOffsets(ctx, string(inventory.TopicMovements))
		committed, err2 := adm.FetchOffsets(ctx, group)
		if err1 == nil && err2 == nil {
			lag := kadm.CalculateGroupLag(kadm.DescribedGroup{State: "Stable"}, committed, ends)
			var total int64
			for _, ps := range lag {
				for _, l := range ps {
					total += l.Lag
				}
			}
			if total == 0 && committed.Ok() && len(committed) > 0 && w.idleFor() > 500*time.Millisecond {
				return true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

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
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/processors/router"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options of the demo.
type Options struct {
	Duration   time.Duration // 0: until interrupted
	Rate       int           // movements per second
	OrderRate  int           // orders per second
	SKUs       int
	BadEvery   int // one undecodable record every BadEvery movements; 0 = none
	Seed       int64
	StateDir   string
	Brokers    string // use these brokers instead of the embedded one
	LogLevel   string
	Partitions int
	Verbose    bool // print every SKU that disagrees with the model
	// HTTPAddr is where the engine's HTTP API and the live dashboard listen
	// ("": off); its URL is printed. DefaultAddr: on a busy port, take a
	// free one instead of failing.
	HTTPAddr    string
	DefaultAddr bool
	Open        bool          // open the dashboard in a browser (never with CI set)
	Hold        time.Duration // after the summary, keep the engine and the dashboard up this long (<0: until interrupted)
}

// DefaultHTTPAddr is where the demo serves its dashboard by default.
const DefaultHTTPAddr = "127.0.0.1:8080"

// Main parses args and runs the demo; the summary goes to stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long and print the summary (0: run until interrupted)")
	fs.IntVar(&o.Rate, "rate", 2000, "stock movements per second")
	fs.IntVar(&o.OrderRate, "order-rate", 50, "orders per second (0: none), from several channels; the demo ships, cancels and returns what the router decides")
	fs.IntVar(&o.SKUs, "skus", 5000, "catalogue size (popularity is Zipf-skewed)")
	fs.IntVar(&o.BadEvery, "bad-every", 500, "send one undecodable record every N movements (0: none)")
	fs.Int64Var(&o.Seed, "seed", 1, "random seed of the generator")
	fs.StringVar(&o.StateDir, "state-dir", "", "parent of the run's state directory, a subdirectory per run (default: a temporary one, removed at exit)")
	fs.StringVar(&o.Brokers, "brokers", "", "use these Kafka brokers instead of the embedded kfake broker")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "engine log level")
	fs.IntVar(&o.Partitions, "partitions", 6, "partitions of the demo topics")
	fs.StringVar(&o.HTTPAddr, "http-addr", DefaultHTTPAddr, "host:port of the HTTP API and the live dashboard (off: none; a busy default port falls back to a free one)")
	fs.BoolVar(&o.Open, "open", true, "open the dashboard in a browser (xdg-open or open; never when CI is set)")
	fs.DurationVar(&o.Hold, "hold", 0, "after the summary, keep the engine and the dashboard up this long (-1s: until interrupted)")
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := app.NoArgs(fs); err != nil {
		return err
	}
	if o.HTTPAddr == "off" {
		o.HTTPAddr = ""
	}
	o.DefaultAddr = o.HTTPAddr == DefaultHTTPAddr
	if o.Rate < 1 || o.SKUs < 1 || o.OrderRate < 0 {
		return errors.New("demo: -rate and -skus must be positive, -order-rate not negative")
	}
	return Run(ctx, o, stdout)
}

// Run runs the demo until o.Duration has passed or ctx is done.
func Run(ctx context.Context, o Options, out io.Writer) error {
	// A run of its own: on a broker given (--brokers), its own topics and
	// groups (the model starts from nothing, and an earlier run's stock,
	// committed offsets and movement ids would disagree with it); under a
	// state directory given, a directory of its own.
	run := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	var prefix string
	brokers := o.Brokers
	if brokers != "" {
		prefix = run + "-"
	} else {
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
	} else {
		o.StateDir = filepath.Join(o.StateDir, run)
	}
	opts := app.Defaults()
	opts.Brokers = brokers
	opts.StateDir = o.StateDir
	opts.InstanceID = "demo"
	opts.Group = prefix + "invroute-demo"
	opts.TopicPrefix = prefix
	opts.Partitions = o.Partitions
	opts.LogLevel = o.LogLevel
	opts.LagInterval = time.Second // the dashboard shows it
	if _, err := app.CreateTopics(ctx, opts); err != nil {
		return err
	}
	// Where the records are, for invroute replay, produce and the Kafka
	// tools (the embedded broker lives as long as the demo: --hold keeps it).
	if prefix == "" {
		fmt.Fprintf(out, "broker: %s (embedded, up while the demo runs; --hold keeps it up)\n", brokers)
	} else {
		fmt.Fprintf(out, "broker: %s, topics %s*\n", brokers, prefix)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	if prefix != "" {
		fmt.Fprintf(out, "topics: %s* (groups %s, %s)\n", prefix, opts.Group, opts.RouterGroupName())
	}
	if err := seedCatalog(ctx, cl, prefix); err != nil {
		return err
	}

	log := opts.Logger()
	api, err := bindHTTP(&opts, o)
	if err != nil {
		return err
	}
	eng, err := app.NewEngine(opts, log, nil)
	if err != nil {
		if api != nil {
			api.Close()
		}
		return err
	}
	engCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	engErr := make(chan error, 1)
	go func() { engErr <- eng.Run(engCtx) }()
	var dashURL string
	if api != nil {
		httpCtx, stopHTTP := context.WithCancel(context.Background())
		defer stopHTTP()
		api.Serve(httpCtx, eng.APIHandlerWithDashboard(httpCtx))
		dashURL = URL(api.Addr)
		fmt.Fprintf(out, "dashboard: %s\n", dashURL)
		if o.Open {
			openBrowser(dashURL)
		}
	}

	gen := newGenerator(o, prefix)
	ords := newOrders(gen)
	w, err := newWatcher(brokers, prefix, fmt.Sprintf("ORD-%d-", o.Seed), ords.decided)
	if err != nil {
		return err
	}
	defer w.close()

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
	var ordErr error
	wg.Add(1)
	go func() { defer wg.Done(); ordErr = ords.run(runCtx, cl) }()
	prog := newProgress(out, gen, ords, w)
	wg.Add(1)
	go func() { defer wg.Done(); prog.run(runCtx) }()

	select {
	case <-runCtx.Done():
	case err := <-engErr:
		return fmt.Errorf("demo: engine stopped: %w", err)
	}
	wg.Wait()
	for _, err := range []error{genErr, ordErr} {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	// The load is over, by --duration or by a signal (ctx is done then):
	// the engine still catches up and the summary is printed, on a context
	// of their own (a second signal exits at once).
	endCtx, endCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer endCancel()
	if err := cl.Flush(endCtx); err != nil {
		return err
	}
	fmt.Fprintln(out)
	// Let the engine catch up, then compare with the generator's model.
	caught := waitCaughtUp(endCtx, cl, w, prefix, map[string][]string{
		opts.Group:             {prefix + string(inventory.TopicMovements), prefix + string(inventory.TopicCommands)},
		opts.RouterGroupName(): {prefix + string(router.TopicOrders), prefix + string(inventory.TopicResults)},
	})
	ok, total := gen.check(w)
	fmt.Fprintf(out, "check: ATS of %d/%d SKUs equals the generator's model (caught up: %t)\n", ok, total, caught)
	fmt.Fprintf(out, "orders: placed=%d cancelled=%d shipped_lines=%d returned=%d retried=%d\n",
		ords.placed.Load(), ords.cancelled.Load(), ords.shipped.Load(), ords.returned.Load(), w.retried.Load())
	fmt.Fprintf(out, "summary: movements=%d ats_updates=%d dead_letters=%d orders=%d decisions=%d splits=%d backordered=%d\n",
		gen.movements.Load(), w.atsUpdates.Load(), w.deadLetters.Load(), ords.placed.Load(), w.decisions.Load(),
		w.splits.Load(), w.backordered.Load())
	if o.Hold != 0 && dashURL != "" {
		var until <-chan time.Time
		if o.Hold > 0 {
			fmt.Fprintf(out, "dashboard: %s stays up for %v\n", dashURL, o.Hold)
			until = time.After(o.Hold)
		} else {
			fmt.Fprintf(out, "dashboard: %s stays up until interrupted\n", dashURL)
		}
		select {
		case <-ctx.Done():
		case <-until:
		case err := <-engErr:
			engErr <- err
		}
	}
	stopEngine()
	if err := <-engErr; err != nil {
		return fmt.Errorf("demo: engine: %w", err)
	}
	if ok != total {
		return fmt.Errorf("demo: %d SKUs disagree with the model", total-ok)
	}
	return nil
}

// waitCaughtUp waits (at most 60 s) until every group has committed the
// end of its topics and the watcher has read everything up to the end. The
// inventory and the router feed each other (reservation commands and
// results), so it waits for both, twice in a row.
func waitCaughtUp(ctx context.Context, cl *kgo.Client, w *watcher, prefix string, groups map[string][]string) bool {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	quiet := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if lag(ctx, adm, prefix, groups) == 0 && w.idleFor() > 500*time.Millisecond {
			if quiet++; quiet == 2 {
				return true
			}
		} else {
			quiet = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func transactional(topic string) bool {
	return topic == string(inventory.TopicCommands) || topic == string(inventory.TopicResults)
}

// lag is the total lag of the groups on their topics (with prefix), -1 if
// unknown. A partition without a committed offset lags its whole end: 0
// when nothing was ever written (a demo without orders has a router group
// that never commits).
func lag(ctx context.Context, adm *kadm.Client, prefix string, groups map[string][]string) int64 {
	var total int64
	for group, topics := range groups {
		ends, err1 := adm.ListEndOffsets(ctx, topics...)
		committed, err2 := adm.FetchOffsets(ctx, group)
		if err1 != nil || err2 != nil || ends.Error() != nil || !committed.Ok() {
			return -1
		}
		ends.Each(func(e kadm.ListedOffset) {
			var at int64
			if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.At > 0 {
				at = c.At
			}
			l := max(0, e.Offset-at)
			// A topic written in transactions ends with a commit marker
			// that no consumer commits past: one behind is caught up there.
			if l == 1 && transactional(strings.TrimPrefix(e.Topic, prefix)) {
				l = 0
			}
			total += l
		})
	}
	return total
}

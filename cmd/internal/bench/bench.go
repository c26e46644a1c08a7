// Package bench is `invroute bench`: the figures of the README's
// performance section, measured side by side in one run.
//
// First, with -routing, the routing quality of the generated EU scenario
// (scenario.go, quality.go; pure computation, no broker): split-shipment
// rate and distance of invroute's planner against two line-by-line
// baselines on the same orders and stock, and its plans against the
// exhaustive optimum on small orders.
//
// Then for each broker (the real one named by -brokers, then an in-process
// kfake broker) it runs, on topics and consumer groups of its own:
//
//	1 throughput  -rounds rounds, each on fresh topics, groups and engine
//	              state: -records pre-loaded movements through a bare franz-go
//	              GroupTransactSession passthrough, then through the engine;
//	              wall time from process start to the group's committed
//	              offsets reaching the end offsets. The report gives every
//	              round and the medians (passthrough rate, engine rate,
//	              per-round ratio): on a shared machine one pair swings too
//	              much to be read alone. A warm-up round before them
//	              (-warmup) is shown and left out of every figure
//	2 latency     movement produced -> its AtsUpdate visible to a
//	              read_committed consumer, at half the engine's median
//	              rate after its first commit (start-up excluded), on the
//	              last round's engine; then the same load
//	              through the passthrough (input -> copy visible): the
//	              broker's share of that latency
//	3 CPU         user+sys CPU of the engine process (/proc/PID/stat) over
//	              the throughput phase, per movement, summed over the rounds
//	4 scale       (real broker only) SKUs x nodes receipts into an
//	              `invroute run` subprocess: RSS, warm restart after kill -9,
//	              cold restore from the changelog
//	5 routing     (-routing) pre-loaded orders of the EU scenario through
//	              `invroute run` with the router on: orders/s; then order ->
//	              decision latency at -routing-rate (routing.go)
//
// Sections 1 to 4 measure the inventory on stock movements and run the
// engine with -router=false: an idle router would still read the whole ats
// topic as a replicated table and take CPU from the inventory.
//
// The passthrough and the engine both run as subprocesses of the invroute
// binary, so that their CPU is measured alone (kfake runs in the bench
// process). Everything is bounded by timeouts; subprocesses, temporary
// directories and the topics and groups of the run are removed at the end
// (an earlier round's topics and state right after it), also after Ctrl-C.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/twmb/franz-go/pkg/kfake"
)

// config is the parsed command line.
type config struct {
	brokers        string
	kfake          bool
	records        int
	rounds         int
	warmup         bool
	partitions     int
	commitInterval time.Duration
	maxTxnRecords  int
	skus           int
	scaleSKUs      int
	scaleNodes     int
	quick          bool
	latencyFor     time.Duration
	latencyRate    int
	probeRate      int
	phaseTimeout   time.Duration
	stallTimeout   time.Duration
	engineBin      string
	cpuprofile     string
	trace          string
	scaleOnKfake   bool
	keepTopics     bool
	keepDir        bool
	seed           int64
	routing        bool
	routingOrders  int
	routingRate    int
	hostile        hostileConfig
}

// Main runs the benchmark; the report goes to stdout, progress to stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == workerFlag {
		return worker(ctx, args[1:], stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return run(ctx, cfg, stdout, stderr)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := app.Defaults()
	c := &config{maxTxnRecords: d.MaxTxnRecords}
	fs.StringVar(&c.brokers, "brokers", os.Getenv("KAFKA_BROKERS"), "real Kafka brokers (default $KAFKA_BROKERS; empty skips the real-broker section)")
	fs.BoolVar(&c.kfake, "kfake", true, "also run on an in-process kfake broker")
	fs.IntVar(&c.records, "records", 200000, "pre-loaded movements of the throughput phase")
	fs.IntVar(&c.rounds, "rounds", 3, "throughput rounds (passthrough then engine, each on fresh topics); the report uses the medians")
	fs.BoolVar(&c.warmup, "warmup", true, "run one throughput round first and leave it out of every figure: a broker just started is slower while its JVM compiles, which would flatter the engine (measured second)")
	fs.IntVar(&c.partitions, "partitions", d.Partitions, "partitions of every co-partitioned topic")
	fs.DurationVar(&c.commitInterval, "commit-interval", d.CommitInterval, "transaction length of the engine and the passthrough")
	fs.IntVar(&c.maxTxnRecords, "max-txn-records", d.MaxTxnRecords, "input records per transaction at most, of the engine and the passthrough (default: the engine's)")
	fs.IntVar(&c.skus, "skus", 100000, "catalogue size of the throughput and latency phases (Zipf-skewed popularity)")
	fs.IntVar(&c.scaleSKUs, "scale-skus", 1000000, "SKUs of the state-at-scale section (0 skips it)")
	fs.IntVar(&c.scaleNodes, "scale-nodes", 5, "nodes of the state-at-scale section: one RECEIPT per (sku, node)")
	fs.BoolVar(&c.quick, "quick", false, "small sizes for a smoke run (records 20000, scale-skus 50000, latency 5s, rounds 1 and no warm-up round, routing-orders 5000, hostile-rounds 1) unless set explicitly")
	fs.DurationVar(&c.latencyFor, "latency-duration", 15*time.Second, "length of the latency phase")
	fs.IntVar(&c.latencyRate, "latency-rate", 0, "movements per second of the latency phase (0: half the engine's measured maximum, the goal's load); a fixed rate compares two builds at the same load")
	fs.IntVar(&c.probeRate, "probe-rate", 100, "latency probes per second (each a distinct SKU), part of the load")
	fs.DurationVar(&c.phaseTimeout, "phase-timeout", 20*time.Minute, "longest wait for one catch-up")
	fs.DurationVar(&c.stallTimeout, "stall-timeout", 90*time.Second, "fail a catch-up whose committed offsets do not move for this long")
	fs.StringVar(&c.engineBin, "engine-bin", "", "invroute binary to run as subprocess (default: this binary if it is invroute, else `go build`)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write CPU profiles of the engine process over each throughput round (FILE.<broker>-round<i>) and scale load (FILE.<broker>-scale); the engine then runs as `invroute bench -worker engine`, which is `invroute run` plus the profiler")
	fs.StringVar(&c.trace, "trace", "", "write an execution trace of each round's engine process to FILE.<broker>-round<i> (the last round's also covers the latency phase)")
	fs.BoolVar(&c.scaleOnKfake, "scale-on-kfake", false, "also run the state-at-scale section on kfake")
	fs.BoolVar(&c.keepTopics, "keep-topics", false, "do not delete the run's topics and groups at the end")
	fs.BoolVar(&c.keepDir, "keep-dir", false, "keep the temporary directory (subprocess logs, state) and print its path")
	fs.Int64Var(&c.seed, "seed", 1, "random seed of the movement generator and of the routing scenario")
	fs.BoolVar(&c.routing, "routing", true, "run the routing sections: quality on the generated EU scenario (no broker), then orders/s and order -> decision latency on each broker")
	fs.IntVar(&c.routingOrders, "routing-orders", 20000, "orders of the EU scenario: planned by invroute and the baselines, and pre-loaded for the routing throughput")
	fs.IntVar(&c.routingRate, "routing-rate", 500, "orders per second of the routing latency phase")
	c.hostile.flags(fs)
	if err := app.ParseFlags(fs, args); err != nil {
		return nil, err
	}
	if c.hostile.only {
		c.routing = false
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if c.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["records"] {
			c.records = 20000
		}
		if !set["scale-skus"] {
			c.scaleSKUs = 50000
		}
		if !set["latency-duration"] {
			c.latencyFor = 5 * time.Second
		}
		if !set["skus"] {
			c.skus = 20000
		}
		if !set["rounds"] {
			c.rounds = 1
		}
		if !set["warmup"] {
			c.warmup = false
		}
		if !set["routing-orders"] {
			c.routingOrders = 5000
		}
		if !set["hostile-rounds"] {
			c.hostile.rounds = 1
		}
	}
	var errs []error
	if c.records < 1 || c.rounds < 1 || c.partitions < 1 || c.skus < 2 || c.scaleSKUs < 0 || c.scaleNodes < 1 || c.probeRate < 1 || c.latencyRate < 0 {
		errs = append(errs, errors.New("bench: -records, -rounds, -partitions, -scale-nodes, -probe-rate must be positive, -skus >= 2, -scale-skus and -latency-rate >= 0"))
	}
	if c.routingOrders < 1 || c.routingRate < 1 {
		errs = append(errs, errors.New("bench: -routing-orders and -routing-rate must be positive"))
	}
	if c.hostile.on || c.hostile.only {
		errs = append(errs, c.hostile.validate())
	}
	if c.maxTxnRecords < 1 {
		errs = append(errs, errors.New("bench: -max-txn-records must be positive"))
	}
	if c.commitInterval < time.Millisecond {
		errs = append(errs, errors.New("bench: -commit-interval must be at least 1ms"))
	}
	if c.brokers == "" && !c.kfake {
		errs = append(errs, errors.New("bench: nothing to do: no -brokers and -kfake=false"))
	}
	return c, errors.Join(errs...)
}

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	began := time.Now()
	r, err := newRunner(cfg, stderr)
	if err != nil {
		return err
	}
	defer r.close()
	printHeader(stdout, cfg)
	if err := r.prepareBinary(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "engine binary: %s\n", r.bin)
	r.progress("generating %d movements (%d SKUs, Zipf-skewed)", cfg.records, cfg.skus)
	r.recs = newGenerator(cfg.seed, cfg.skus).batch(cfg.records)
	fmt.Fprintf(stdout, "movements: %d pre-generated, mean encoded size %d bytes (key %d bytes)\n\n",
		len(r.recs), meanSize(r.recs, false), meanSize(r.recs, true))

	var quality *qualityResult
	if cfg.routing {
		r.progress("routing quality: %d orders of the EU scenario, invroute and two baselines", cfg.routingOrders)
		quality = routingQuality(cfg.seed, cfg.routingOrders)
		quality.print(stdout)
	}

	var results []*brokerResult
	if cfg.brokers != "" {
		res := r.runBroker(ctx, brokerEnv{name: "kafka", brokers: cfg.brokers, real: true})
		res.print(stdout, cfg)
		results = append(results, res)
	}
	if cfg.kfake && ctx.Err() == nil {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("bench: kfake: %w", err)
		}
		res := r.runBroker(ctx, brokerEnv{name: "kfake", brokers: cluster.ListenAddrs()[0]})
		r.stopAll() // nothing may outlive the broker it talks to
		cluster.Close()
		res.print(stdout, cfg)
		results = append(results, res)
	}
	printSummary(stdout, cfg, quality, results)
	fmt.Fprintf(stdout, "total time: %s\n", time.Since(began).Round(time.Second))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted: %w", err)
	}
	var errs []error
	for _, res := range results {
		errs = append(errs, res.errs...)
	}
	return errors.Join(errs...)
}

func printHeader(w io.Writer, cfg *config) {
	fmt.Fprintln(w, "invroute bench")
	cmd := "invroute " + strings.Join(os.Args[1:], " ")
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		cmd = "KAFKA_BROKERS=" + env + " " + cmd
	}
	fmt.Fprintf(w, "command: %s   (binary %s)\n", cmd, os.Args[0])
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s RAM, %s %s/%s, GOMAXPROCS=%d\n",
		runtime.NumCPU(), cpuModel(), memTotal(), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "settings: records=%d rounds=%d warmup=%t partitions=%d commit_interval=%s max_txn_records=%d skus=%d scale_skus=%d scale_nodes=%d latency=%s routing=%t routing_orders=%d routing_rate=%d seed=%d quick=%t\n",
		cfg.records, cfg.rounds, cfg.warmup, cfg.partitions, cfg.commitInterval, cfg.maxTxnRecords, cfg.skus, cfg.scaleSKUs, cfg.scaleNodes, cfg.latencyFor,
		cfg.routing, cfg.routingOrders, cfg.routingRate, cfg.seed, cfg.quick)
	fmt.Fprintln(w, "note: the machine is shared and noisy; compare figures measured side by side in one run, as ratios.")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb); err == nil {
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "unknown"
}

func meanSize(recs []record, key bool) int {
	if len(recs) == 0 {
		return 0
	}
	var n int
	for _, r := range recs {
		if key {
			n += len(r.key)
		} else {
			n += len(r.value)
		}
	}
	return n / len(recs)
}

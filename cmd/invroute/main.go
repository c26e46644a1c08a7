// Command invroute is the inventory and routing engine.
//
//	invroute run [flags]             run an instance against Kafka
//	invroute topics create [flags]   create the topics (and check co-partitioning)
//	invroute config check FILE       check a config file: OK or every problem (exit 1)
//	invroute config defaults         a YAML config of every key with its default
//	invroute ats SKU / order ID      query an instance's HTTP API
//	invroute produce [FILE]          produce events written in JSON
//	invroute replay --rules FILE     re-route the recorded orders under other rules: what would change
//	invroute demo [flags]            everything in-process on an embedded broker
//
// The first SIGINT or SIGTERM shuts down gracefully (the open transaction is
// finished and applied); a second one exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/bench"
	"github.com/invroute/invroute/cmd/internal/demo"
	"github.com/invroute/invroute/cmd/internal/produce"
	"github.com/invroute/invroute/cmd/internal/replay"
)

const usage = `usage: invroute <command> [flags]

commands:
  run             run an engine instance against Kafka
  topics create   create invroute's topics and check co-partitioning
  config check FILE   check a config file (with the INVROUTE_ environment): OK or every problem
  config defaults     print a YAML config file of every key with its default and meaning
  config markdown     print the README's table of every key
  ats SKU         ask an instance's HTTP API for a SKU's ATS (--addr host:port, --json)
  order ID        ask an instance's HTTP API where an order is (--addr host:port, --json)
  produce [FILE]  produce events written in JSON (stdin without FILE): movements, nodes, channels, orders, feedback
  replay --rules FILE  re-route the recorded orders under other rules (nodes, capacities, costs): what would change
  demo            run the engine on an embedded broker with generated stock movements
  bench           measure throughput, latency, CPU and state at scale (make bench)

"invroute <command> -h" lists a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signalContext()
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; {
	case cmd == "run":
		err = run(ctx, args)
	case cmd == "topics" && len(args) > 0 && args[0] == "create":
		err = topicsCreate(ctx, args[1:])
	case cmd == "topics" && len(args) > 0 && (args[0] == "-h" || args[0] == "--help"):
		fmt.Println("usage: invroute topics create [flags] (invroute topics create -h lists them)")
	case cmd == "topics":
		err = fmt.Errorf("usage: invroute topics create [flags]: %w", flag.ErrHelp)
	case cmd == "config":
		err = app.ConfigMain(args, os.Stdout, os.Stderr)
	case cmd == "ats" || cmd == "order":
		err = app.QueryMain(ctx, cmd, args, os.Stdout)
	case cmd == "produce":
		err = produce.Main(ctx, args, os.Stdin, os.Stdout)
	case cmd == "replay":
		err = replay.Main(ctx, args, os.Stdout)
	case cmd == "demo":
		err = demo.Main(ctx, args, os.Stdout, os.Stderr)
	case cmd == "bench":
		err = bench.Main(ctx, args, os.Stdout, os.Stderr)
	case cmd == "-h" || cmd == "help" || cmd == "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "invroute: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err (unless the flag package has) and returns the exit
// code: 0 for none or a request for the flags (-h, printed by the flag
// package), 2 for a usage error, 1 for any other.
func exitCode(err error, stderr io.Writer) int {
	var fe *app.FlagError
	switch {
	case err == nil || err == flag.ErrHelp:
		return 0
	case errors.As(err, &fe):
		return 2
	}
	if errors.Is(err, flag.ErrHelp) { // a usage error, wrapping flag.ErrHelp
		fmt.Fprintln(stderr, "invroute:", strings.TrimSuffix(err.Error(), ": "+flag.ErrHelp.Error()))
		return 2
	}
	fmt.Fprintln(stderr, "invroute:", err)
	return 1
}

// signalContext is cancelled by the first SIGINT/SIGTERM; the second exits.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		fmt.Fprintln(os.Stderr, "invroute: shutting down (signal again to exit at once)")
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "invroute: exiting at once")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := app.Flags(fs)
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := app.NoArgs(fs); err != nil {
		return err
	}
	o, err := load()
	if err != nil {
		return err
	}
	log := o.Logger()
	// The API is bound first: the engines' group members advertise its
	// address to the other instances.
	api, err := app.BindAPI(&o)
	if err != nil {
		return err
	}
	eng, err := app.NewEngine(o, log, nil)
	if err != nil {
		if api != nil {
			api.Close()
		}
		return err
	}
	if api != nil {
		wait := api.Serve(ctx, eng.APIHandler())
		defer func() {
			if ctx.Err() != nil {
				wait() // a graceful stop: the queries in flight finish (at most 2 s)
			}
		}()
		log.Info("serving the HTTP API", "addr", "http://"+api.Addr, "advertised", api.Adverts)
	}
	if o.AdminAddr != "" {
		addr, err := app.Listen(ctx, app.AdminListenAddr(o.AdminAddr), eng.AdminHandler())
		if err != nil {
			return fmt.Errorf("admin_addr %s: %w", o.AdminAddr, err)
		}
		log.Info("serving the admin endpoints", "addr", "http://"+addr, "token", o.AdminToken != "")
	}
	return eng.Run(ctx)
}

func topicsCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("topics create", flag.ContinueOnError)
	load := app.Flags(fs)
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := app.NoArgs(fs); err != nil {
		return err
	}
	o, err := load()
	if err != nil {
		return err
	}
	specs, err := app.CreateTopics(ctx, o)
	if err != nil {
		return err
	}
	for _, s := range specs {
		fmt.Printf("%s compacted=%t co-partitioned=%t\n", s.Name, s.Compacted, s.CoPartitioned)
	}
	return nil
}

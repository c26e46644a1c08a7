package produce

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Main is `invroute produce [FILE] [flags]`: the events of FILE (or stdin,
// or "-") are checked, then produced in input order, acks=all and
// idempotent, with the brokers and security settings of `invroute run`
// (config file, INVROUTE_ environment, flags). It prints one line per
// record produced, or with -q a summary.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: invroute produce [FILE|-] [flags]\n\nJSON events, one object a line or one array; kinds: %s.\n\n", KindNames())
		fs.PrintDefaults()
	}
	load := app.Flags(fs)
	file := fs.String("f", "-", "file of JSON events (- is stdin); a FILE argument works too")
	quiet := fs.Bool("q", false, "print only a summary, not one line per record")
	timeout := fs.Duration("timeout", 15*time.Second, "time allowed to reach the brokers and produce every record")
	// FILE may come before, between or after the flags.
	var pos []string
	for {
		if err := app.ParseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) > 1 {
		return fmt.Errorf("usage: invroute produce [FILE|-] [flags]: one file at most, got %s: %w", strings.Join(pos, " "), flag.ErrHelp)
	}
	if len(pos) == 1 {
		*file = pos[0]
	}
	o, err := load()
	if err != nil {
		return err
	}
	var in io.Reader = stdin
	name := "stdin"
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, *file
	}
	data, err := io.ReadAll(io.LimitReader(in, MaxInput+1))
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > MaxInput {
		return fmt.Errorf("%s: more than %d MiB of input", name, MaxInput>>20)
	}
	evs, err := Parse(data, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was produced)", name, err)
	}
	sec, err := o.SecurityOpts()
	if err != nil {
		return err
	}
	res, err := Produce(ctx, o, evs, *timeout, sec...)
	for _, r := range res {
		if !*quiet {
			fmt.Fprintf(stdout, "%s[%d]@%d key=%s (line %d)\n", r.Topic, r.Partition, r.Offset, r.Key, r.Line)
		}
	}
	if err != nil {
		return err
	}
	if *quiet {
		counts := map[string]int{}
		for _, r := range res {
			counts[r.Topic]++
		}
		var parts []string
		for _, t := range slices.Sorted(mapKeysAny(counts)) {
			parts = append(parts, fmt.Sprintf("%s %d", t, counts[t]))
		}
		fmt.Fprintf(stdout, "produced %d records: %s\n", len(res), strings.Join(parts, ", "))
	}
	return nil
}

func mapKeysAny[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Result is one record produced.
type Result struct {
	Topic     string // with the prefix
	Partition int32
	Offset    int64
	Key       string
	Line      int
}

// Produce sends evs in order to o's brokers (topics with o's prefix),
// acks=all and idempotent; extra are more client options (security). It
// returns the records produced, in input order, and the first error; on a
// broker that cannot be reached it gives up after timeout.
func Produce(ctx context.Context, o app.Options, evs []Event, timeout time.Duration, extra ...kgo.Opt) ([]Result, error) {
	brokers := app.SplitBrokers(o.Brokers)
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent is franz-go's default with acks=all
		kgo.RecordDeliveryTimeout(timeout),
		kgo.ProducerLinger(0),
		kgo.UnknownTopicRetries(2),
		kgo.ClientID("invroute-produce"),
	}, extra...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return nil, fmt.Errorf("no broker of %s answered within %v: %w", o.Brokers, timeout, err)
	}
	recs := make([]*kgo.Record, len(evs))
	index := make(map[*kgo.Record]int, len(evs))
	for i, e := range evs {
		recs[i] = &kgo.Record{Topic: o.TopicPrefix + e.Topic, Key: []byte(e.Key), Value: e.Value}
		index[recs[i]] = i
	}
	// In order per partition (one idempotent producer); ProduceSync
	// answers in completion order, put back in input order here.
	out := cl.ProduceSync(ctx, recs...)
	slices.SortFunc(out, func(a, b kgo.ProduceResult) int { return index[a.Record] - index[b.Record] })
	var res []Result
	var first error
	for _, r := range out {
		i := index[r.Record]
		if r.Err != nil {
			if first == nil {
				first = explain(r.Err, r.Record.Topic, evs[i].Line, o.Brokers, timeout)
			}
			continue
		}
		res = append(res, Result{Topic: r.Record.Topic, Partition: r.Record.Partition, Offset: r.Record.Offset, Key: evs[i].Key, Line: evs[i].Line})
	}
	if first != nil {
		first = fmt.Errorf("%w (%d of %d records produced)", first, len(res), len(evs))
	}
	return res, first
}

func explain(err error, topic string, line int, brokers string, timeout time.Duration) error {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("line %d: topic %s does not exist (create the topics with invroute topics create): %w", line, topic, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout):
		return fmt.Errorf("line %d: not produced to %s within %v (brokers %s): %w", line, topic, timeout, brokers, err)
	}
	return fmt.Errorf("line %d: producing to %s: %w", line, topic, err)
}

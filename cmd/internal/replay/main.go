package replay

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Main is `invroute replay --rules FILE [flags]`: the recorded history of
// the brokers and topic prefix of `invroute run` (config file, INVROUTE_
// environment, flags), replayed under the current rules (the catalog as
// recorded, cents_per_km, vip_safety_stock and reject_incomplete as
// configured) and under the rules of FILE, printed side by side with what
// the engine decided.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	load := app.Flags(fs)
	rulesFile := fs.String("rules", "", "YAML (or JSON) file of the alternative rules (required; see the README's CLI section)")
	top := fs.Int("top", 10, "list at most this many changed decisions (and disagreements with the recorded ones)")
	timeout := fs.Duration("timeout", 10*time.Minute, "time allowed to read the whole history")
	lag := fs.Duration("lag", 0, "a stock movement counts this long after its timestamp (the engine's router sees it through the ats topic about a commit interval later)")
	if err := app.ParseFlags(fs, args); err != nil {
		return err
	}
	if *rulesFile == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: invroute replay --rules FILE [--brokers ...] [--top N]: %w", flag.ErrHelp)
	}
	rules, err := LoadRules(*rulesFile)
	if err != nil {
		return err
	}
	o, err := load()
	if err != nil {
		return err
	}
	sec, err := o.SecurityOpts()
	if err != nil {
		return err
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(app.SplitBrokers(o.Brokers)...), kgo.ClientID("invroute-replay"),
		kgo.RequestRetries(3)}, sec...)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := Run(ctx, o, rules, *top, *lag, opts...)
	if err != nil {
		return fmt.Errorf("replaying the history of %s: %w", o.Brokers, err)
	}
	return Print(stdout, rep, *rulesFile)
}

// Settings of o.
func SettingsOf(o app.Options) Settings {
	return Settings{CentsPerKm: o.CentsPerKm, VIPSafetyStock: o.VIPSafetyStock, RejectIncomplete: o.RejectIncomplete}
}

// Run replays the history of o's topics; opts are the Kafka client's
// options (seed brokers, security); lag delays stock movements.
func Run(ctx context.Context, o app.Options, rules *Rules, top int, lag time.Duration, opts ...kgo.Opt) (*Report, error) {
	ids, err := schemas.ParseSchemaIDs(o.SchemaIDs)
	if err != nil {
		return nil, err
	}
	r := New(SettingsOf(o), rules, top)
	r.SetLag(lag)
	r.SetSchemaIDs(ids)
	err = Read(ctx, o.TopicPrefix, Topics, opts, func(topic string, rec *kgo.Record) {
		r.Record(topic, rec.Key, rec.Value, rec.Timestamp.UnixMilli())
	})
	if err != nil {
		return nil, err
	}
	return r.Finish(), nil
}

// Print writes the report's tables.
func Print(w io.Writer, r *Report, rulesName string) error {
	fmt.Fprintf(w, "replayed %d orders, %d stock movements (and %d duplicates dropped), %d node and channel records; %d recorded decisions (the first of each order: the \"recorded\" column)\n",
		r.Current.Orders, r.Movements, r.MovementDuplicates, r.CatalogRecords, r.Recorded.Decided)
	if n := r.DuplicateOrders; n > 0 {
		fmt.Fprintf(w, "skipped: %d duplicate PLACED events\n", n)
	}
	for _, t := range slices.Sorted(maps.Keys(r.Invalid)) {
		fmt.Fprintf(w, "skipped: %d invalid records of %s (the engine dead-letters them)\n", r.Invalid[t], t)
	}
	fmt.Fprintf(w, "current rules:     the catalog as recorded; %s\n", r.CurrentSettings)
	fmt.Fprintf(w, "alternative rules: %s; %s\n", rulesName, r.AlternativeSettings)
	for _, id := range r.UnmatchedRules {
		fmt.Fprintf(w, "warning: the rules change node %s, which the catalog never had (to add it, give type, lat and lon)\n", id)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-36s\trecorded\tcurrent rules\talternative\tchange\t\n", "")
	row := func(name string, rec, cur, alt float64, format string) {
		fmt.Fprintf(tw, "%-36s\t%s\t%s\t%s\t%s\t\n", name, fmt.Sprintf(format, rec), fmt.Sprintf(format, cur), fmt.Sprintf(format, alt),
			signed(alt-cur, format))
	}
	pct := func(name string, rec, cur, alt float64) {
		fmt.Fprintf(tw, "%-36s\t%.1f%%\t%.1f%%\t%.1f%%\t%+.1f pt\t\n", name, 100*rec, 100*cur, 100*alt, 100*(alt-cur))
	}
	rc, cu, al := &r.Recorded, &r.Current, &r.Alternative
	row("orders decided", float64(rc.Decided), float64(cu.Decided), float64(al.Decided), "%.0f")
	row("routed (1+ shipment)", float64(rc.Routed), float64(cu.Routed), float64(al.Routed), "%.0f")
	pct("split rate", rc.SplitRate(), cu.SplitRate(), al.SplitRate())
	row("shipments", float64(rc.Shipments), float64(cu.Shipments), float64(al.Shipments), "%.0f")
	row("mean km per routed order", rc.MeanKm(), cu.MeanKm(), al.MeanKm(), "%.1f")
	row("total km", rc.Km, cu.Km, al.Km, "%.0f")
	row("total cost (cents)", float64(rc.CostCents), float64(cu.CostCents), float64(al.CostCents), "%.0f")
	row("mean cost per routed order (cents)", rc.MeanCost(), cu.MeanCost(), al.MeanCost(), "%.0f")
	row("units backordered", float64(rc.Backordered), float64(cu.Backordered), float64(al.Backordered), "%.0f")
	for _, st := range []schemas.DecisionStatus{schemas.DecisionRouted, schemas.DecisionPartiallyRouted, schemas.DecisionBackordered, schemas.DecisionRejected} {
		row("  "+string(st), float64(rc.Status[st]), float64(cu.Status[st]), float64(al.Status[st]), "%.0f")
	}
	fmt.Fprintf(tw, "%-36s\t-\t%d\t%d\t%s\t\n", "still ON_HOLD", r.HeldCurrent, r.HeldAlternative, signed(float64(r.HeldAlternative-r.HeldCurrent), "%.0f"))
	fmt.Fprintln(tw, "\t\t\t\t\t")
	fmt.Fprintf(tw, "%-36s\trecorded\tcurrent rules\talternative\tchange\t\n", "shipments (units) per node")
	nodes := map[string]bool{}
	for _, s := range []*Stats{rc, cu, al} {
		for n := range s.PerNode {
			nodes[n] = true
		}
	}
	get := func(s *Stats, n string) NodeStats {
		if v := s.PerNode[n]; v != nil {
			return *v
		}
		return NodeStats{}
	}
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		a, b, c := get(rc, n), get(cu, n), get(al, n)
		fmt.Fprintf(tw, "%-36s\t%d (%d)\t%d (%d)\t%d (%d)\t%s\t\n", "  "+n, a.Shipments, a.Units, b.Shipments, b.Units, c.Shipments, c.Units,
			signed(float64(c.Shipments-b.Shipments), "%.0f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "agreement of the replay (current rules) with the recorded decisions: %d of %d orders (%.1f%%)",
		r.Agreed, r.Compared, 100*r.Agreement())
	if r.OnlyReplayed+r.OnlyRecorded > 0 {
		fmt.Fprintf(w, "; not compared: %d replayed without a recorded decision, %d recorded without a replayed one", r.OnlyReplayed, r.OnlyRecorded)
	}
	fmt.Fprintln(w)
	for _, d := range r.Disagreements {
		fmt.Fprintf(w, "  %s  replay: %s  recorded: %s\n", d.OrderID, d.Replay, d.Recorded)
	}
	fmt.Fprintf(w, "orders decided differently under the alternative rules: %d", r.Changed)
	if len(r.Changes) > 0 {
		fmt.Fprintf(w, " (the first %d)", len(r.Changes))
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Changes {
		fmt.Fprintf(tw, "  %s\t%s\t->  %s\n", c.OrderID, c.Current, c.Alternative)
	}
	return tw.Flush()
}

func signed(v float64, format string) string {
	if v == 0 {
		return "0"
	}
	s := fmt.Sprintf(format, v)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return s
}

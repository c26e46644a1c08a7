package bench

// The hostile-input section (issue 4 §3): the engine on the same movements
// twice per round, side by side, each on fresh topics and a fresh state
// dir: once clean (the throughput section's load) and once with hostile
// records mixed in (-hostile-share of every kind testkit knows: random
// bytes of random length, truncated Avro, trailing bytes, an unknown schema
// id, a wrong key, zero and negative quantities, an unknown enum symbol, an
// occurred_at two hours ahead, unknown SKUs and nodes (valid: accepted),
// duplicates (dropped by the idempotency window), plus -hostile-huge
// records of -hostile-huge-mib MiB). The two alternate which runs first
// (clean, hostile; hostile, clean; ...) so that slow spells of a shared
// machine fall on both. Both input topics accept 16 MiB records and both
// loads are produced by the same client, so only the records differ. After
// each run the dead-letter topic is read (read_committed) and must hold the
// clean run's dead letters plus exactly one per refused hostile record; an
// engine that exits fails the run.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// goalHostile is the hostile run's throughput goal, relative to the clean
// run's: less than 10% slower.
const goalHostile = 0.90

// hostileConfig is the section's flags.
type hostileConfig struct {
	on      bool
	only    bool
	share   float64
	rounds  int
	huge    int
	hugeMiB int
}

func (h *hostileConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&h.on, "hostile", true, "run the hostile-input section: the engine on the movements clean and with hostile records mixed in, interleaved")
	fs.BoolVar(&h.only, "hostile-only", false, "run only the hostile-input section (implies -routing=false)")
	fs.Float64Var(&h.share, "hostile-share", 0.01, "hostile records added per movement, of every kind")
	fs.IntVar(&h.rounds, "hostile-rounds", 3, "rounds of the hostile-input section (each: clean and hostile, alternating which runs first)")
	fs.IntVar(&h.huge, "hostile-huge", 2, "records of -hostile-huge-mib MiB in the hostile load")
	fs.IntVar(&h.hugeMiB, "hostile-huge-mib", 3, "size of the huge records, MiB (at most 8: the dead-letter topic invroute creates takes 8 MiB)")
}

func (h *hostileConfig) validate() error {
	if h.share <= 0 || h.share > 0.5 || h.rounds < 1 || h.huge < 0 || h.hugeMiB < 1 || h.hugeMiB > 7 {
		return errors.New("bench: -hostile-share must be in (0, 0.5], -hostile-rounds >= 1, -hostile-huge >= 0, -hostile-huge-mib in [1, 7]")
	}
	return nil
}

// hostileLoad is the clean movements with hostile records mixed in.
type hostileLoad struct {
	recs      []record
	kinds     map[testkit.HostileKind]int
	refused   int // records of kinds the engine must dead-letter
	hugeBytes int
}

// newHostileLoad mixes hostile records into clean: after each movement,
// with probability share, one of a kind drawn uniformly (a duplicate
// repeats a movement of the last thousand), and huge records at evenly
// spaced places.
func newHostileLoad(seed int64, clean []record, share float64, huge, hugeMiB int) *hostileLoad {
	rnd := rand.New(rand.NewSource(seed))
	h := testkit.NewHostile(seed)
	h.HugeBytes = hugeMiB << 20
	kinds := testkit.HostileKinds(false)
	l := &hostileLoad{kinds: map[testkit.HostileKind]int{}, hugeBytes: h.HugeBytes}
	l.recs = make([]record, 0, len(clean)+int(float64(len(clean))*share*1.2)+huge)
	now := time.Now().UnixMilli()
	add := func(k testkit.HostileKind, i int) {
		d := clean[max(0, i-rnd.Intn(1000))]
		if k == testkit.HostileDuplicate && len(d.value) <= 4 {
			k = testkit.HostileUnknownSKU // not a repeat of the generator's undecodable record
		}
		key, value, _ := h.Movement(k, string(clean[i].key), &kgo.Record{Key: d.key, Value: d.value}, now)
		l.recs = append(l.recs, record{key: key, value: value})
		l.kinds[k]++
		if k.Outcome() == testkit.DeadLettered {
			l.refused++
		}
	}
	nextHuge := 1
	for i, r := range clean {
		l.recs = append(l.recs, r)
		if rnd.Float64() < share {
			add(kinds[rnd.Intn(len(kinds))], i)
		}
		if nextHuge <= huge && i == nextHuge*len(clean)/(huge+1) {
			add(testkit.HostileHuge, i)
			nextHuge++
		}
	}
	return l
}

func (l *hostileLoad) extra(clean int) int { return len(l.recs) - clean }

func (l *hostileLoad) kindList() string {
	var parts []string
	for _, k := range testkit.HostileKinds(true) {
		if n := l.kinds[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// hostileRun is one engine run of the section.
type hostileRun struct {
	c           catchUp
	err         error
	deadLetters int64 // committed records in the dead-letter topic after it
}

func (h *hostileRun) ok() bool { return h.err == nil && h.c.wall > 0 }

type hostileRound struct {
	i              int
	hostileFirst   bool
	clean, hostile hostileRun
}

// ratio is the round's hostile/clean rate, by the steady rate (after the
// first commit: start-up, the same in both, would dilute the difference);
// by wall time if a run was too short to have one.
func (rd *hostileRound) ratio() (float64, bool) {
	if !rd.clean.ok() || !rd.hostile.ok() {
		return 0, false
	}
	if rd.clean.c.steadyRPS() == 0 || rd.hostile.c.steadyRPS() == 0 {
		return rd.wallRatio()
	}
	return rd.hostile.c.steadyRPS() / rd.clean.c.steadyRPS(), true
}

func (rd *hostileRound) wallRatio() (float64, bool) {
	if !rd.clean.ok() || !rd.hostile.ok() {
		return 0, false
	}
	return rd.hostile.c.rps() / rd.clean.c.rps(), true
}

// hostileResult is the section's outcome on one broker.
type hostileResult struct {
	clean  int // movements of the clean load
	load   *hostileLoad
	rounds []*hostileRound
}

func (hr *hostileResult) median(f func(*hostileRound) (float64, bool)) (float64, int) {
	var xs []float64
	for _, rd := range hr.rounds {
		if x, ok := f(rd); ok {
			xs = append(xs, x)
		}
	}
	return median(xs), len(xs)
}

// dlOK reports whether every round's hostile run added exactly the refused
// hostile records to the clean run's dead letters.
func (hr *hostileResult) dlOK() (ok bool, n int) {
	for _, rd := range hr.rounds {
		if rd.clean.ok() && rd.hostile.ok() {
			n++
			if rd.hostile.deadLetters != rd.clean.deadLetters+int64(hr.load.refused) {
				return false, n
			}
		}
	}
	return n > 0, n
}

// cpuPerRecord sums the engine's CPU and input records of each side over
// the rounds where both caught up: CPU time suffers less from a shared
// machine's noise than wall time.
func (hr *hostileResult) cpuPerRecord() (clean, hostile float64, n int) {
	var cc, ch time.Duration
	var rc, rh int64
	for _, rd := range hr.rounds {
		if rd.clean.ok() && rd.hostile.ok() && rd.clean.c.cpu > 0 && rd.hostile.c.cpu > 0 {
			cc, rc = cc+rd.clean.c.cpu, rc+rd.clean.c.records
			ch, rh = ch+rd.hostile.c.cpu, rh+rd.hostile.c.records
			n++
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return usPer(cc, rc), usPer(ch, rh), n
}

// hostile runs the section on b.
func (r *runner) hostile(ctx context.Context, b *brokerEnv, res *brokerResult) error {
	hc := r.cfg.hostile
	hr := &hostileResult{clean: len(r.recs)}
	res.hostile = hr
	hr.load = newHostileLoad(r.cfg.seed, r.recs, hc.share, hc.huge, hc.hugeMiB)
	r.progress("hostile input: %d movements + %d hostile records (%s)", len(r.recs), hr.load.extra(len(r.recs)), hr.load.kindList())
	cl, err := kgo.NewClient(kgo.SeedBrokers(app.SplitBrokers(b.brokers)...),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100000),
		kgo.ProducerBatchMaxBytes(hostileTopicBytes))
	if err != nil {
		return err
	}
	defer cl.Close()
	var errs []error
	for i := 1; i <= hc.rounds && ctx.Err() == nil; i++ {
		rd := &hostileRound{i: i, hostileFirst: i%2 == 0}
		hr.rounds = append(hr.rounds, rd)
		order := []bool{false, true}
		if rd.hostileFirst {
			order = []bool{true, false}
		}
		for _, hostile := range order {
			run, recs, tag := &rd.clean, r.recs, fmt.Sprintf("clean%d", i)
			if hostile {
				run, recs, tag = &rd.hostile, hr.load.recs, fmt.Sprintf("hostile%d", i)
			}
			*run = r.hostileRun(ctx, b, cl, tag, recs)
			if run.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", tag, run.err))
				continue
			}
			r.progress("hostile round %d/%d: %s: %.0f records/s (steady %.0f/s), %d dead letters",
				i, hc.rounds, tag, run.c.rps(), run.c.steadyRPS(), run.deadLetters)
		}
		if ratio, ok := rd.ratio(); ok {
			r.progress("hostile round %d/%d: ratio hostile/clean %.3f", i, hc.rounds, ratio)
		}
	}
	return errors.Join(errs...)
}

// hostileTopicBytes is the max.message.bytes of both runs' movement topics
// and the producer's batch limit: room for the huge records.
const hostileTopicBytes = 16 << 20

// hostileRun creates fresh topics, pre-loads recs, runs `invroute run`
// until its group has committed everything, stops it, counts the dead
// letters and drops the topics and state.
func (r *runner) hostileRun(ctx context.Context, b *brokerEnv, cl *kgo.Client, tag string, recs []record) (out hostileRun) {
	prefix := r.runID + "-" + b.name + "-" + tag + "."
	stateDir := filepath.Join(r.dir, b.name+"-engine-state-"+tag)
	o := b.options(r.cfg, prefix, stateDir)
	defer func() {
		if !r.cfg.keepDir {
			os.RemoveAll(stateDir)
		}
		if !r.cfg.keepTopics {
			dctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := b.deleteTopics(dctx, []string{prefix}); err != nil {
				r.progress("%s: deleting its topics: %v", tag, err)
			}
		}
	}()
	movements := prefix + string(inventory.TopicMovements)
	if _, err := app.CreateTopics(ctx, o); err != nil {
		out.err = err
		return out
	}
	adm := kadm.NewClient(cl)
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(strconv.Itoa(hostileTopicBytes))}}, movements)
	if err == nil {
		_, err = rs.On(movements, nil)
	}
	if err != nil {
		out.err = fmt.Errorf("raising max.message.bytes of %s: %w", movements, err)
		return out
	}
	if err := b.seedCatalog(ctx, o.TopicPrefix, benchNodes, benchChannels); err != nil {
		out.err = err
		return out
	}
	pb := *b
	pb.cl = cl
	i := 0
	t0 := time.Now()
	n, err := pb.produceAll(ctx, movements, func() (record, bool) {
		if i == len(recs) {
			return record{}, false
		}
		i++
		return recs[i-1], true
	}, nil)
	if err != nil {
		out.err = fmt.Errorf("pre-loading %s: %w", movements, err)
		return out
	}
	r.progress("%s: pre-loaded %d records (%.0f/s)", tag, n, float64(n)/time.Since(t0).Seconds())
	ends, err := b.ends(ctx, movements)
	if err != nil {
		out.err = err
		return out
	}
	p, err := r.start(b.name+"-engine-"+tag, append([]string{"run"}, runArgs(o)...)...)
	if err != nil {
		out.err = err
		return out
	}
	out.c, out.err = r.waitCaughtUp(ctx, b, p, o.Group, movements, ends, 0)
	if err := p.stop(60 * time.Second); err != nil && out.err == nil {
		out.err = fmt.Errorf("engine shutdown: %w", err)
	}
	if out.err != nil {
		return out
	}
	out.deadLetters, out.err = countCommitted(ctx, cl, prefix+string(inventory.TopicDeadLetter))
	return out
}

// countCommitted counts the committed records of topic, reading it
// read_committed from the start to its last stable offsets.
func countCommitted(ctx context.Context, base *kgo.Client, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(base).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	need := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			need[o.Partition] = o.Offset
		}
	})
	if len(need) == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(base.Opts()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	for len(need) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("reading %s: %w (%d partitions left)", topic, err, len(need))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := need[r.Partition]; ok && r.Offset+1 >= end {
				delete(need, r.Partition)
			}
			if !r.Attrs.IsControl() {
				n++
			}
		})
	}
	return n, nil
}

// printHostile writes the section's rows.
func (res *brokerResult) printHostile(row func(...string)) {
	hr := res.hostile
	if hr == nil {
		if res.hostileErr != nil {
			row("6", "hostile input", errText(res.hostileErr), "")
		}
		return
	}
	l := hr.load
	row("6", fmt.Sprintf("hostile input: %d movements, and the same with %d hostile records mixed in", hr.clean, l.extra(hr.clean)),
		l.kindList(), "")
	for _, rd := range hr.rounds {
		first := "clean first"
		if rd.hostileFirst {
			first = "hostile first"
		}
		v := ""
		switch {
		case !rd.clean.ok():
			v = errText(rd.clean.err)
		case !rd.hostile.ok():
			v = errText(rd.hostile.err)
		default:
			ratio, _ := rd.ratio()
			v = fmt.Sprintf("clean %.0f rec/s (steady %.0f), hostile %.0f rec/s (steady %.0f), ratio %.3f; dead letters %d / %d",
				rd.clean.c.rps(), rd.clean.c.steadyRPS(), rd.hostile.c.rps(), rd.hostile.c.steadyRPS(), ratio,
				rd.clean.deadLetters, rd.hostile.deadLetters)
		}
		row("", fmt.Sprintf("  round %d (%s)", rd.i, first), v, "")
	}
	c, n := hr.median(func(rd *hostileRound) (float64, bool) { return rd.clean.c.steadyRPS(), rd.clean.ok() })
	h, _ := hr.median(func(rd *hostileRound) (float64, bool) { return rd.hostile.c.steadyRPS(), rd.hostile.ok() })
	if n > 0 {
		row("", fmt.Sprintf("  steady records/s, median of %d: clean / hostile", n), fmt.Sprintf("%.0f / %.0f", c, h), "")
	}
	if ratio, n := hr.median((*hostileRound).ratio); n > 0 {
		wr, _ := hr.median((*hostileRound).wallRatio)
		row("", fmt.Sprintf("  ratio hostile/clean, median of %d rounds", n), fmt.Sprintf("%.3f (by wall time incl. start-up: %.3f)", ratio, wr),
			fmt.Sprintf(">= %.2f %s", goalHostile, verdict(ratio >= goalHostile)))
	}
	if cc, ch, n := hr.cpuPerRecord(); n > 0 {
		row("", fmt.Sprintf("  CPU per input record, engine process (sum of %d rounds): clean / hostile", n),
			fmt.Sprintf("%.2f / %.2f µs user+sys (hostile/clean %.3f)", cc, ch, ch/cc), "")
	}
	if ok, n := hr.dlOK(); n > 0 {
		row("", "  dead letters: hostile run = clean run + refused hostile records", fmt.Sprintf("%t (+%d expected per round, %d of %d MiB among them; engine exits: 0)",
			ok, l.refused, l.kinds[testkit.HostileHuge], l.hugeBytes>>20), "")
	}
}

// printHostileSummary writes the summary line.
func (res *brokerResult) printHostileSummary(w io.Writer) {
	hr := res.hostile
	if hr == nil {
		return
	}
	ratio, n := hr.median((*hostileRound).ratio)
	if n == 0 {
		return
	}
	wr, _ := hr.median((*hostileRound).wallRatio)
	c, _ := hr.median(func(rd *hostileRound) (float64, bool) { return rd.clean.c.steadyRPS(), rd.clean.ok() })
	h, _ := hr.median(func(rd *hostileRound) (float64, bool) { return rd.hostile.c.steadyRPS(), rd.hostile.ok() })
	dl, _ := hr.dlOK()
	cc, ch, _ := hr.cpuPerRecord()
	fmt.Fprintf(w, "broker=%s hostile_clean_rps=%.0f hostile_rps=%.0f hostile_ratio=%.3f hostile_wall_ratio=%.3f hostile_cpu_us_clean=%.2f hostile_cpu_us=%.2f rounds=%d movements=%d hostile_records=%d huge=%dx%dMiB dead_letters_exact=%t goal_ratio=%.2f met=%t\n",
		res.name, c, h, ratio, wr, cc, ch, n, hr.clean, hr.load.extra(hr.clean), hr.load.kinds[testkit.HostileHuge], hr.load.hugeBytes>>20, dl, goalHostile, ratio >= goalHostile)
}

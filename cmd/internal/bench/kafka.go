package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/cmd/internal/app"
	"github.com/invroute/invroute/processors/inventory"
	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerEnv is one broker under test.
type brokerEnv struct {
	name    string // "kafka" or "kfake": the summary lines' broker=
	brokers string
	real    bool

	cl  *kgo.Client
	adm *kadm.Client
	// topics and groups created on it, deleted at the end.
	prefixes []string
	groups   []string
}

func (b *brokerEnv) connect() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(app.SplitBrokers(b.brokers)...),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100000),
		kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		return err
	}
	b.cl, b.adm = cl, kadm.NewClient(cl)
	return nil
}

// describe names the broker: Kafka's version guess, or kfake.
func (b *brokerEnv) describe(ctx context.Context) string {
	if !b.real {
		return "kfake (franz-go's in-process fake Kafka, running inside the bench process) at " + b.brokers
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	vs, err := b.adm.ApiVersions(actx)
	if err != nil {
		return "Apache Kafka (version unknown: " + err.Error() + ") at " + b.brokers
	}
	var parts []string
	for _, v := range vs.Sorted() {
		if v.Err == nil {
			parts = append(parts, v.VersionGuess())
		}
	}
	return fmt.Sprintf("Apache Kafka %s (%d broker(s)) at %s", strings.Join(parts, ", "), len(vs), b.brokers)
}

// options returns engine options for one phase on this broker.
func (b *brokerEnv) options(cfg *config, prefix, stateDir string) app.Options {
	o := app.Defaults()
	o.Brokers = b.brokers
	o.TopicPrefix = prefix
	o.Group = prefix + "inventory"
	o.InstanceID = "bench"
	o.StateDir = stateDir
	o.CommitInterval = cfg.commitInterval
	o.MaxTxnRecords = cfg.maxTxnRecords
	o.Partitions = cfg.partitions
	o.Replication = 1
	o.Router = false // the routing section turns it on
	b.prefixes = append(b.prefixes, prefix)
	b.groups = append(b.groups, o.Group)
	return o
}

// runArgs are the `invroute run` flags of o.
func runArgs(o app.Options) []string {
	return []string{
		"-brokers", o.Brokers, "-topic-prefix", o.TopicPrefix, "-group", o.Group,
		"-instance-id", o.InstanceID, "-state-dir", o.StateDir,
		"-commit-interval", o.CommitInterval.String(), "-max-txn-records", fmt.Sprint(o.MaxTxnRecords),
		"-partitions", fmt.Sprint(o.Partitions), "-replication", fmt.Sprint(o.Replication),
		"-router=" + fmt.Sprint(o.Router), "-log-level", "info",
	}
}

// seedCatalog writes the nodes and channels of a phase.
func (b *brokerEnv) seedCatalog(ctx context.Context, prefix string, nodes []schemas.Node, channels []schemas.Channel) error {
	var rs []*kgo.Record
	for i := range nodes {
		v, err := schemas.Nodes.Encode(&nodes[i])
		if err != nil {
			return err
		}
		rs = append(rs, &kgo.Record{Topic: prefix + string(inventory.TopicNodes), Key: []byte(nodes[i].NodeID), Value: v})
	}
	for i := range channels {
		v, err := schemas.Channels.Encode(&channels[i])
		if err != nil {
			return err
		}
		rs = append(rs, &kgo.Record{Topic: prefix + string(inventory.TopicChannels), Key: []byte(channels[i].ChannelID), Value: v})
	}
	return b.cl.ProduceSync(ctx, rs...).FirstErr()
}

// createTopic creates a plain topic of n partitions.
func (b *brokerEnv) createTopic(ctx context.Context, n int, names ...string) error {
	resps, err := b.adm.CreateTopics(ctx, int32(n), 1, nil, names...)
	if err != nil {
		return err
	}
	return resps.Error()
}

// produceAll writes records to topic (key-hash partitioning, like a WMS
// connector would) and waits for every ack. next returns false when done.
func (b *brokerEnv) produceAll(ctx context.Context, topic string, next func() (record, bool), progress func(int64)) (int64, error) {
	var sent, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	last := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return sent.Load(), err
		}
		r, ok := next()
		if !ok {
			break
		}
		b.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: r.key, Value: r.value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			sent.Add(1)
		})
		if progress != nil && time.Since(last) > 5*time.Second {
			last = time.Now()
			progress(sent.Load())
		}
	}
	if err := b.cl.Flush(ctx); err != nil {
		return sent.Load(), err
	}
	if p := firstErr.Load(); p != nil {
		return sent.Load(), fmt.Errorf("bench: %d records not produced: %w", failed.Load(), *p)
	}
	return sent.Load(), nil
}

// ends returns the end offsets of topic by partition.
func (b *brokerEnv) ends(ctx context.Context, topic string) (map[int32]int64, error) {
	lo, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := lo.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// topicBytes returns the bytes on disk of each of topics (all partitions,
// all log dirs), or nil if the broker does not tell (kfake).
func (b *brokerEnv) topicBytes(ctx context.Context, topics ...string) map[string]int64 {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	all, err := b.adm.DescribeAllLogDirs(dctx, nil)
	if err != nil {
		return nil
	}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	out := map[string]int64{}
	all.Each(func(d kadm.DescribedLogDir) {
		for t, ps := range d.Topics {
			if want[t] {
				for _, p := range ps {
					out[t] += p.Size
				}
			}
		}
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

func sum(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// catchUp is the outcome of waiting for a group to commit up to the ends.
type catchUp struct {
	wall       time.Duration // process start -> committed == ends
	firstAt    time.Duration // process start -> first committed progress seen
	firstDone  int64         // records committed when first seen
	records    int64
	cpu        time.Duration // of the process, at catch-up
	rss, hwm   int64         // of the process, at catch-up
	commitSeen time.Time
}

func (c catchUp) rps() float64 { return float64(c.records) / c.wall.Seconds() }

// steadyRPS is the rate after the first commit (start-up excluded).
func (c catchUp) steadyRPS() float64 {
	d := c.wall - c.firstAt
	if d <= 0 || c.records <= c.firstDone {
		return 0
	}
	return float64(c.records-c.firstDone) / d.Seconds()
}

// waitCaughtUp polls the group's committed offsets on topic every 20 ms
// until they reach ends (at least base records are already committed at
// the start and not counted), the process exits, offsets stall for
// stallTimeout, or phaseTimeout passes.
func (r *runner) waitCaughtUp(ctx context.Context, b *brokerEnv, p *proc, group, topic string, ends map[int32]int64, base int64) (catchUp, error) {
	want := sum(ends)
	res := catchUp{records: want - base}
	deadline := time.Now().Add(r.cfg.phaseTimeout)
	lastMove, lastDone := time.Now(), int64(-1)
	lastPrint := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if p.exited() {
			return res, p.failure()
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		offs, err := b.adm.FetchOffsetsForTopics(fctx, group, topic)
		cancel()
		now := time.Now()
		if err == nil {
			var done int64
			for part, end := range ends {
				if o, ok := offs.Lookup(topic, part); ok && o.Err == nil && o.At > 0 {
					done += min(o.At, end)
				}
			}
			if done > lastDone {
				lastMove, lastDone = now, done
			}
			if res.firstAt == 0 && done > base {
				res.firstAt, res.firstDone = now.Sub(p.started), done-base
			}
			if done >= want {
				res.wall = now.Sub(p.started)
				res.commitSeen = now
				res.cpu, _ = p.cpu()
				res.rss, res.hwm, _ = p.mem()
				return res, nil
			}
			if now.Sub(lastPrint) > 5*time.Second {
				lastPrint = now
				r.progress("%s: %d/%d committed (%.0f/s)", p.name, done-base, want-base,
					float64(done-base)/now.Sub(p.started).Seconds())
			}
		}
		if now.Sub(lastMove) > r.cfg.stallTimeout {
			return res, fmt.Errorf("bench: %s: committed offsets of %s stalled at %d/%d for %s; last log lines:\n%s",
				p.name, group, lastDone-base, want-base, r.cfg.stallTimeout, p.tail(15))
		}
		if now.After(deadline) {
			return res, fmt.Errorf("bench: %s: not caught up after %s (%d/%d)", p.name, r.cfg.phaseTimeout, lastDone-base, want-base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanup deletes the run's topics and consumer groups on b.
func (r *runner) cleanup(b *brokerEnv) {
	if b.adm == nil {
		return
	}
	defer b.cl.Close()
	if r.cfg.keepTopics || !b.real {
		return // kfake forgets everything when it closes
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := b.deleteTopics(ctx, b.prefixes)
	if err != nil {
		r.progress("cleanup: deleting topics: %v", err)
	}
	if len(b.groups) > 0 {
		if _, err := b.adm.DeleteGroups(ctx, b.groups...); err != nil {
			r.progress("cleanup: deleting groups: %v", err)
		}
	}
	r.progress("cleanup: deleted %d topics and %d groups on %s", n, len(b.groups), b.name)
}

// deleteTopics deletes every topic whose name starts with one of prefixes
// and returns how many there were.
func (b *brokerEnv) deleteTopics(ctx context.Context, prefixes []string) (int, error) {
	topics, err := b.adm.ListTopics(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing topics: %w", err)
	}
	var del []string
	for _, t := range topics.Names() {
		for _, p := range prefixes {
			if strings.HasPrefix(t, p) {
				del = append(del, t)
				break
			}
		}
	}
	if len(del) == 0 {
		return 0, nil
	}
	sort.Strings(del)
	resps, err := b.adm.DeleteTopics(ctx, del...)
	if err == nil {
		err = resps.Error()
	}
	return len(del), err
}

// atsWatcher reads an ats topic read_committed from given offsets, as a
// channel syncer would, and reports when it sees keys it was asked about.
type atsWatcher struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	want    map[string]time.Time // key -> send time
	seen    map[string]time.Duration
	skew    []time.Duration // seen - UpdatedAt (record time of the movement)
	ack     map[string]time.Duration
	records atomic.Int64
}

func newATSWatcher(b *brokerEnv, topic string, from map[int32]int64) (*atsWatcher, error) {
	offs := map[int32]kgo.Offset{}
	for p, o := range from {
		offs[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(app.SplitBrokers(b.brokers)...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &atsWatcher{cl: cl, cancel: cancel, done: make(chan struct{}),
		want: map[string]time.Time{}, seen: map[string]time.Duration{}, ack: map[string]time.Duration{}}
	go w.run(ctx)
	return w, nil
}

func (w *atsWatcher) expect(key string, sent time.Time) {
	w.mu.Lock()
	w.want[key] = sent
	w.mu.Unlock()
}

func (w *atsWatcher) acked(key string, d time.Duration) {
	w.mu.Lock()
	w.ack[key] = d
	w.mu.Unlock()
}

func (w *atsWatcher) run(ctx context.Context) {
	defer close(w.done)
	var u schemas.AtsUpdate
	for ctx.Err() == nil {
		fs := w.cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			w.records.Add(1)
			w.mu.Lock()
			defer w.mu.Unlock()
			sent, ok := w.want[string(r.Key)]
			if !ok {
				return
			}
			if _, dup := w.seen[string(r.Key)]; dup {
				return
			}
			w.seen[string(r.Key)] = now.Sub(sent)
			u = schemas.AtsUpdate{}
			if schemas.AtsUpdates.Decode(r.Value, &u) == nil && u.UpdatedAt > 0 {
				w.skew = append(w.skew, now.Sub(time.UnixMilli(u.UpdatedAt)))
			}
		})
	}
}

// latencyOf returns the latency of key once seen.
func (w *atsWatcher) latencyOf(key string) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.seen[key]
	return d, ok
}

// waitFor waits until key is seen or timeout passes.
func (w *atsWatcher) waitFor(ctx context.Context, key string, timeout time.Duration, alive func() error) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if d, ok := w.latencyOf(key); ok {
			return d, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if alive != nil {
			if err := alive(); err != nil {
				return 0, err
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("bench: ATS update of %s not visible within %s", key, timeout)
}

func (w *atsWatcher) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

var errSkipped = errors.New("skipped")

package topology

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// standbys keeps warm copies of the stores of partitions this instance does
// not own (Config.Standbys, like Kafka Streams' num.standby.replicas): for
// each partition, that many other members of the group tail its changelogs
// into their local stores, so that when the partition moves to one of them
// (its owner died, or the group scaled) the restore replays only the last
// moments instead of the whole changelog.
//
// Placement needs no coordination: the group's members, sorted by client id
// (the instance, stable across restarts), form a ring, and the
// standbys of partition p are the Standbys members after p's owner. Every
// instance works out its own share from the group's description every
// standbyRefresh.
//
// A standby store is the very directory an owned task uses. When the engine
// takes a partition over it first stops the standby (take), then opens the
// store as usual: restore starts from the standby's checkpoint. When the
// engine gives a partition up (give), the standby may start on it.
type standbys struct {
	e       *Engine
	count   int
	refresh time.Duration

	me atomic.Pointer[string] // this member's id in the group, set on assignment

	mu     sync.Mutex
	tasks  map[int32]*standbyTask
	local  map[int32]bool      // owned by the engine: never a standby
	failed map[int32]time.Time // a standby that ended on an error: not retried before standbyRetry

	partitions prometheus.Gauge
	records    prometheus.Counter
	lag        prometheus.Gauge
}

// standbyTask tails the changelogs of one partition into its stores.
type standbyTask struct {
	p      int32
	cancel context.CancelFunc
	done   chan struct{}
	// next is, per changelog topic, the offset the task's store has read
	// up to (see standbys.measureLag); -1 until the store is open and
	// restored. Written by the task's goroutine, read by run's.
	next map[string]*atomic.Int64
}

const (
	standbyRefresh = 2 * time.Second
	standbyRetry   = 30 * time.Second
	// standbySyncedEvery: how often a caught-up standby records that it
	// has seen its changelog (a checkpoint write per store).
	standbySyncedEvery = time.Minute
)

func newStandbys(e *Engine) *standbys {
	s := &standbys{e: e, count: e.cfg.Standbys, refresh: standbyRefresh,
		tasks: map[int32]*standbyTask{}, local: map[int32]bool{}, failed: map[int32]time.Time{},
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "invroute_standby_partitions",
			Help: "Partitions whose stores this instance keeps warm as a standby."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "invroute_standby_records_total",
			Help: "Changelog records applied to standby stores."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "invroute_standby_lag_records",
			Help: "Changelog offsets between a standby store of this instance and its changelog's last stable offset, the largest over its standby stores (measured every 2 s; a store counts once its first restore is over)."}),
	}
	if reg := e.cfg.Registerer; reg != nil {
		reg.MustRegister(s.partitions, s.records, s.lag)
	}
	return s
}

// member records this instance's member id (from the group callbacks).
func (s *standbys) member(cl *kgo.Client) {
	if id, _ := cl.GroupMetadata(); id != "" {
		s.me.Store(&id)
	}
}

// run places standbys until ctx is done, then stops them all.
func (s *standbys) run(ctx context.Context) {
	defer s.stopAll()
	if s.count <= 0 {
		return
	}
	t := time.NewTicker(s.refresh)
	defer t.Stop()
	for fails := 0; ; {
		want, err := s.desired(ctx)
		if err != nil && ctx.Err() == nil {
			// Transient while the group rebalances; worth a warning when
			// it lasts (a minute of refreshes).
			if fails++; fails%30 == 0 {
				s.e.log.Warn("standby placement keeps failing", "err", err, "attempts", fails)
			} else {
				s.e.log.Debug("standby placement", "err", err)
			}
		}
		if err == nil {
			fails = 0
			s.place(ctx, want)
		}
		if err := s.measureLag(ctx); err != nil && ctx.Err() == nil {
			s.e.log.Debug("standby lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// desired returns the partitions this instance should keep warm, from the
// group's description.
func (s *standbys) desired(ctx context.Context) (map[int32]bool, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	gs, err := s.e.adm.DescribeGroups(dctx, s.e.topo.Group)
	if err != nil {
		return nil, err
	}
	g, ok := gs[s.e.topo.Group]
	if !ok || g.Err != nil {
		return nil, fmt.Errorf("describing group %s: %v", s.e.topo.Group, g.Err)
	}
	if g.State != "Stable" {
		return nil, fmt.Errorf("group %s is %s", s.e.topo.Group, g.State)
	}
	me := s.me.Load()
	if me == nil {
		return nil, fmt.Errorf("not a member of group %s yet", s.e.topo.Group)
	}
	// Members are named by client id (the instance, stable across
	// restarts) where they have one, else by member id.
	name := func(m kadm.DescribedGroupMember) string { return cmp.Or(m.ClientID, m.MemberID) + "\x00" + m.MemberID }
	owner := map[int32]string{} // partition of the first input -> member name
	var ring []string
	var self string
	for _, m := range g.Members {
		ring = append(ring, name(m))
		if m.MemberID == *me {
			self = name(m)
		}
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range a.Topics {
			if t.Topic == s.e.inputs[0] {
				for _, p := range t.Partitions {
					owner[p] = name(m)
				}
			}
		}
	}
	if self == "" {
		return nil, fmt.Errorf("member %s not in group %s", *me, s.e.topo.Group)
	}
	return standbyShare(ring, owner, self, s.count), nil
}

// standbyShare returns the partitions me keeps warm: members sorted by id
// form a ring, and each partition's standbys are the count members after
// its owner.
func standbyShare(ring []string, owner map[int32]string, me string, count int) map[int32]bool {
	ring = slices.Clone(ring)
	slices.Sort(ring)
	want := map[int32]bool{}
	for p, o := range owner {
		i := slices.Index(ring, o)
		if i < 0 {
			continue
		}
		for k := 1; k <= count && k < len(ring); k++ {
			if ring[(i+k)%len(ring)] == me {
				want[p] = true
			}
		}
	}
	return want
}

// measureLag sets the lag gauge: the largest distance, in offsets, between
// a running standby's store and the last stable offset of its changelog
// partition (0 without standbys). tail reads the transaction markers too,
// so a caught-up store reads 0, and a store whose changelog ends in an
// aborted transaction as well.
func (s *standbys) measureLag(ctx context.Context) error {
	type pos struct {
		topic string
		p     int32
		next  int64
	}
	var ps []pos
	topics := map[string]bool{}
	s.mu.Lock()
	for p, t := range s.tasks {
		for topic, n := range t.next {
			if next := n.Load(); next >= 0 {
				ps = append(ps, pos{topic, p, next})
				topics[topic] = true
			}
		}
	}
	s.mu.Unlock()
	if len(ps) == 0 {
		s.lag.Set(0)
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := s.e.adm.ListCommittedOffsets(lctx, slices.Sorted(maps.Keys(topics))...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err // the gauge keeps its last value
	}
	var lag int64
	for _, q := range ps {
		if o, ok := ends.Lookup(q.topic, q.p); ok {
			lag = max(lag, o.Offset-q.next)
		}
	}
	s.lag.Set(float64(lag))
	return nil
}

// place starts and stops standby tasks to match want.
func (s *standbys) place(ctx context.Context, want map[int32]bool) {
	s.mu.Lock()
	var stop []*standbyTask
	for p, t := range s.tasks {
		if !want[p] || s.local[p] {
			stop = append(stop, t)
		}
	}
	for p := range want {
		if s.tasks[p] == nil && !s.local[p] && time.Since(s.failed[p]) > standbyRetry {
			s.tasks[p] = s.start(ctx, p)
		}
	}
	s.mu.Unlock()
	// The tasks stay listed while they stop, so that a take of their
	// partition meanwhile waits for them too (its stores are closed when
	// take returns: the engine opens them next).
	for _, t := range stop {
		t.stop()
	}
	s.mu.Lock()
	for _, t := range stop {
		if s.tasks[t.p] == t {
			delete(s.tasks, t.p)
		}
	}
	s.partitions.Set(float64(len(s.tasks)))
	s.mu.Unlock()
}

// take stops the standby of p, if any, before the engine opens its stores;
// p is not a standby again until give.
func (s *standbys) take(p int32) {
	s.mu.Lock()
	s.local[p] = true
	t := s.tasks[p]
	delete(s.tasks, p)
	s.partitions.Set(float64(len(s.tasks)))
	s.mu.Unlock()
	if t != nil {
		t.stop()
	}
}

// give tells the standbys that the engine closed p's stores.
func (s *standbys) give(p int32) {
	s.mu.Lock()
	delete(s.local, p)
	s.mu.Unlock()
}

func (s *standbys) stopAll() {
	s.mu.Lock()
	tasks := s.tasks
	s.tasks = map[int32]*standbyTask{}
	s.partitions.Set(0)
	s.mu.Unlock()
	for _, t := range tasks {
		t.stop()
	}
}

func (t *standbyTask) stop() {
	t.cancel()
	<-t.done
}

// start opens p's stores and tails its changelogs until stopped; errors
// end the task (the next placement may start it again).
func (s *standbys) start(ctx context.Context, p int32) *standbyTask {
	ctx, cancel := context.WithCancel(ctx)
	t := &standbyTask{p: p, cancel: cancel, done: make(chan struct{}), next: map[string]*atomic.Int64{}}
	for _, def := range s.e.topo.Stores {
		n := new(atomic.Int64)
		n.Store(-1)
		t.next[s.e.changelogs[def.Name]] = n
	}
	go func() {
		defer close(t.done)
		if err := s.tail(ctx, p, t.next); err != nil && ctx.Err() == nil {
			s.e.log.Warn("standby stopped", "partition", p, "err", err)
			s.mu.Lock()
			if s.tasks[p] == t {
				delete(s.tasks, p)
				s.failed[p] = time.Now()
				s.partitions.Set(float64(len(s.tasks)))
			}
			s.mu.Unlock()
		}
	}()
	return t
}

// tail keeps p's stores at the end of their changelogs (read_committed),
// recording in next how far each has read.
func (s *standbys) tail(ctx context.Context, p int32, next map[string]*atomic.Int64) error {
	e := s.e
	var stores []*state.Store
	var names []string
	defer func() {
		for i, st := range stores {
			if err := st.Close(); err != nil {
				e.log.Warn("closing standby store", "partition", p, "err", err)
			}
			e.untrustCorrupt(names[i], p, st) // found corrupt: rebuilt when next opened
		}
	}()
	offsets := map[string]map[int32]kgo.Offset{}
	byTopic := map[string]*state.Store{}
	for _, def := range e.topo.Stores {
		// Restored to the changelog's end (or rebuilt if not trusted) the
		// way an owned task's store is; then tailed from there.
		st, err := e.openRestored(ctx, def.Name, p, true)
		if err != nil {
			return err
		}
		stores = append(stores, st)
		names = append(names, def.Name)
		topic := e.changelogs[def.Name]
		offsets[topic] = map[int32]kgo.Offset{p: kgo.NewOffset().At(st.Checkpoint().ChangelogOffset)}
		byTopic[topic] = st
		next[topic].Store(st.Checkpoint().ChangelogOffset)
	}
	cl, err := kgo.NewClient(e.clientOpts(kgo.ConsumePartitions(offsets),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.FetchMaxWait(time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	e.log.Info("standby started", "partition", p)
	marked := map[*state.Store]time.Time{}
	for {
		polled := e.wallClock()
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.log.Info("standby stopped", "partition", p)
			return nil
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return ferr
		}
		touched := map[*state.Store]bool{}
		caughtUp := map[*state.Store]int64{} // the offset read to
		n := 0
		var rerr error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			st := byTopic[fp.Topic]
			if st == nil || fp.Partition != p || rerr != nil {
				return
			}
			for _, r := range fp.Records {
				if r.Attrs.IsControl() { // a commit or abort marker
					continue
				}
				if rerr = st.Restore(r.Key, r.Value, r.Offset); rerr != nil {
					return
				}
				touched[st] = true
				n++
			}
			// Read (markers included) up to the fetch's stable end: the
			// store has seen what the changelog held when this poll began.
			if len(fp.Records) > 0 {
				read := fp.Records[len(fp.Records)-1].Offset + 1
				if read >= fp.LastStableOffset {
					caughtUp[st] = read
				}
				next[fp.Topic].Store(read)
			}
		})
		if rerr != nil {
			return rerr
		}
		for st := range touched {
			if err := st.FinishRestore(); err != nil {
				return err
			}
		}
		// Record it now and then (a checkpoint write): a takeover then
		// trusts the store (see tombstonesMayBeGone).
		for st, read := range caughtUp {
			if polled.Sub(marked[st]) >= standbySyncedEvery {
				// Every record below read is applied: past an aborted
				// tail too (see Store.MarkSyncedThrough).
				if err := st.MarkSyncedThrough(polled.UnixMilli(), read); err != nil {
					return err
				}
				marked[st] = polled
			}
		}
		s.records.Add(float64(n))
	}
}

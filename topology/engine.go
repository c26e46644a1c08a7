package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/invroute/invroute/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Engine runs a Topology: one consume-transform-produce loop per instance on
// a franz-go GroupTransactSession, read_committed everywhere.
//
// # One transaction
//
//	Begin
//	poll input (up to MaxTxnRecords or CommitInterval)
//	  task.Process -> state writes (open store txn) + outputs + dead letters
//	global table changes -> task.GlobalChanged
//	task.Flush (coalesced outputs), store.Prepare
//	produce each written key's final value to the store's changelog
//	End(commit) -- outputs, changelog and input offsets commit atomically
//	  committed: store.CommitDeferred(checkpoint{changelog offset, input offsets}),
//	             written to Pebble while the next End flushes (end)
//	  aborted:   store.Abort, task.Aborted (the consumer rewinds)
//	  unknown:   drop every task, re-initialise the producer, restore
//	             every store from its changelog
//
// Assigned partitions are paused until their stores are restored from the
// changelog (from the local checkpoint to the last stable offset), then
// resumed. Run is called once; the Engine is not reusable.
type Engine struct {
	cfg  Config
	topo *Topology
	log  *slog.Logger
	m    *metrics

	adm        *kadm.Client
	admCl      *kgo.Client
	cache      *pebble.Cache
	partitions int32
	counts     map[string]int32 // topic -> partitions
	inputs     []string         // prefixed
	dlq        string
	dlqLimit   int               // the dead-letter topic's batch limit (deadletter.go)
	changelogs map[string]string // store -> prefixed changelog topic
	outputs    map[Topic]output

	globals *globalReader

	mu     sync.Mutex // guards events, applying and synced
	events []assignEvent
	// applying: applyEvents is closing and restoring the partitions of
	// events it took off the queue (Status().Assigning, so that readiness
	// waits for the restore).
	applying bool
	// synced is this member's whole assignment in the session's newest
	// generation (syncBalancer): the partitions it has of every input
	// (nil: none synced yet in this session).
	synced map[int32]bool

	sess  *kgo.GroupTransactSession
	tasks map[int32]*taskState
	sb    *standbys
	owned atomic.Int32 // len(tasks), readable from any goroutine

	phases phaseStats
	stall  *stallWatch

	produceErr atomic.Pointer[error]
	// endUnconfirmed: franz-go said the commit End tried is unconfirmed
	// (see kgoLogger); reset before every End.
	endUnconfirmed atomic.Bool
	// optsLogger is the logger Config.ClientOpts sets, if any: the
	// session's logger passes it what it asks for (clientOptsLogger).
	optsLogger kgo.Logger
	// topicIDs are the input topics' ids as the fetches last gave them
	// (loop only), for keepOffsets.
	topicIDs map[string][16]byte
	// now is the timestamp of the records produced: read from the clock by
	// the loop after every poll and before the flush, read-only while
	// tasks run. franz-go would otherwise read the clock for every record
	// (1.8% of the engine's CPU in the bench profile).
	now      time.Time
	inflight sync.WaitGroup
	produced func(*kgo.Record, error) // e.onProduced

	fatal   atomic.Pointer[StorageError] // the first storage fault: Run stops with it
	running atomic.Bool                  // Run's processing loop is alive

	queries queries // interactive queries, run by the loop (query.go)
}

// StorageError is a storage fault of a partition's store (disk full, I/O
// error, Pebble failing): the engine commits nothing more, reports
// unhealthy and Run returns it. What Kafka committed may be ahead of the
// store, never the reverse: a restart reopens the store and replays its
// changelog from the store's checkpoint.
type StorageError struct {
	Store     string
	Partition int32
	Phase     string // what the engine was doing when it learnt of the fault
	Err       error
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("topology: storage fault in store %s partition %d (%s): %v; stopped without committing anything further: restart to restore the store from its changelog",
		e.Store, e.Partition, e.Phase, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// ErrNotRunning is what Healthy reports before Run's processing loop starts
// and after Run returns.
var ErrNotRunning = errors.New("topology: engine not running")

// Healthy returns nil while Run's processing loop is alive and no storage
// fault has happened; otherwise the *StorageError or ErrNotRunning. It is
// safe to call from any goroutine. A storage fault is reported as soon as
// it is known, even one found by a write Pebble does in the background,
// before Run returns.
func (e *Engine) Healthy() error {
	if f := e.fatal.Load(); f != nil {
		return f
	}
	if !e.running.Load() {
		return ErrNotRunning
	}
	return nil
}

// storageFault records a storage fault and returns the first one recorded,
// which is what Run returns. Any goroutine may call it.
func (e *Engine) storageFault(f *StorageError) error {
	if e.fatal.CompareAndSwap(nil, f) {
		e.m.healthy.Set(0)
		e.log.Error("storage fault: committing nothing more; the engine stops", "store", f.Store, "partition", f.Partition, "phase", f.Phase, "err", f.Err)
	}
	return e.fatal.Load()
}

// fatalErr returns the recorded storage fault, or nil.
func (e *Engine) fatalErr() error {
	if f := e.fatal.Load(); f != nil {
		return f
	}
	return nil
}

// storeErr turns an error of store i of ts into a storage fault if it is
// one (the store failed), else returns it as it is.
func (e *Engine) storeErr(ts *taskState, i int, phase string, err error) error {
	var fe *state.FailedError
	if errors.As(err, &fe) {
		return e.storageFault(&StorageError{Store: ts.names[i], Partition: ts.p, Phase: phase, Err: err})
	}
	return err
}

type assignEvent struct {
	assigned bool
	parts    []int32
	err      error // the assignment breaks co-partitioning
}

// errNotCoPartitioned stops the engine: a member given partition p of one
// input and not of another cannot run the task of p, and re-joining would
// make the group rebalance again and again (eager, range assignor).
var errNotCoPartitioned = errors.New("topology: inputs not co-partitioned")

// coPartitioned checks that an assignment gives every partition of set for
// every input: a task reads partition p of all inputs or none.
func coPartitioned(inputs []string, m map[string][]int32, set map[int32]bool) error {
	for _, in := range inputs {
		for p := range set {
			if !slices.Contains(m[in], p) {
				return fmt.Errorf("%w: the group assigned partition %d of some inputs but not of %s (%v): inputs must be co-partitioned (partitions added to one input only?) and members must not set a client rack", errNotCoPartitioned, p, in, m)
			}
		}
	}
	return nil
}

// taskState is a task with its stores and what the open transaction did.
type taskState struct {
	p       int32
	task    Task
	stores  []*state.Store
	names   []string
	touched bool
	inNext  map[string]int64 // input topic -> next offset, this transaction
	clLast  []*kgo.Record    // per store: the last changelog record of this transaction (nil: none)
	cp      []state.Checkpoint
	emitter emitter
	batch   [][]*kgo.Record // records of the current poll, in order
	rec     Record          // the record Process is handed (reused)
	arena   Arena           // changelog keys and values
	records []kgo.Record    // a chunk the records it produces are cut from
	seen    Positions       // global positions its committed state reflects; nil: take the current ones
	// seenUnstored: seen was taken from the reader for an empty store and
	// is not in the store yet; the first flush writes it.
	seenUnstored bool
	tooBig       error         // an output Emit refused as too large, since the last check
	poison       *poisonRecord // the input whose output was too large: a dead letter on the retry
}

// poisonRecord is an input record whose processing emitted an output too
// large to produce (see emitter.Emit).
type poisonRecord struct {
	topic  string
	offset int64
	err    error
}

// record returns a new, zero record for the task to produce, cut from a
// chunk of 256 (one allocation per chunk, not per record). Like Arena's, a
// chunk is never reused: the garbage collector frees it with its records.
func (ts *taskState) record() *kgo.Record {
	if len(ts.records) == cap(ts.records) {
		ts.records = make([]kgo.Record, 0, 256)
	}
	ts.records = ts.records[:len(ts.records)+1]
	return &ts.records[len(ts.records)-1]
}

// NewEngine checks cfg and topo and returns an engine ready to Run.
func NewEngine(cfg Config, topo *Topology) (*Engine, error) {
	cfg.EnsureDefaults()
	if err := errors.Join(cfg.Validate(), topo.Validate()); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:        cfg,
		topo:       topo,
		log:        cfg.Logger,
		m:          newMetrics(cfg.Registerer),
		changelogs: map[string]string{},
		outputs:    map[Topic]output{},
		tasks:      map[int32]*taskState{},
		dlq:        cfg.TopicPrefix + string(topo.DeadLetter),
	}
	e.sb = newStandbys(e)
	e.produced = e.onProduced
	e.phases = phaseStats{log: cfg.Logger, hist: e.m.phaseSeconds}
	e.stall = newStallWatch(stallLimit(cfg.SessionTimeout), func(gap time.Duration) {
		e.m.stalls.Inc()
		e.log.Warn("process stalled: the group has probably moved this instance's partitions; a transaction open across the stall aborts",
			"stalled", gap.Round(time.Millisecond), "session_timeout", cfg.SessionTimeout)
	})
	for _, in := range topo.Inputs {
		e.inputs = append(e.inputs, cfg.TopicPrefix+string(in.Topic))
	}
	for _, s := range topo.Stores {
		e.changelogs[s.Name] = cfg.TopicPrefix + string(s.Changelog)
	}
	for _, o := range topo.Outputs {
		e.outputs[o.Topic] = output{Output: o, name: cfg.TopicPrefix + string(o.Topic)}
	}
	e.optsLogger = e.clientOptsLogger()
	return e, nil
}

// clientOptsLogger returns the logger Config.ClientOpts sets, if any (read
// off a client that is built and closed, never used).
func (e *Engine) clientOptsLogger() kgo.Logger {
	if len(e.cfg.ClientOpts) == 0 {
		return nil
	}
	probe, err := kgo.NewClient(e.clientOpts()...)
	if err != nil {
		return nil
	}
	defer probe.Close()
	l, _ := probe.OptValue(kgo.WithLogger).(kgo.Logger)
	if _, ours := l.(kgoLogger); ours {
		return nil
	}
	return l
}

func (e *Engine) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(e.cfg.Brokers...), kgo.WithLogger(kgoLogger{l: e.log})}
	opts = append(opts, extra...)
	return append(opts, e.cfg.ClientOpts...)
}

// Run creates the topics, loads the global tables and processes until ctx is
// done; then it finishes the open transaction, applies it and closes. A
// commit whose outcome is unknown re-initialises the session and rebuilds
// state from Kafka; other errors stop Run.
func (e *Engine) Run(ctx context.Context) (err error) {
	defer func() {
		// Stopped while starting (topics, global tables, a restore): a
		// graceful stop, not a failure.
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			e.log.Info("engine stopped while starting", "err", err)
			err = nil
		}
	}()
	e.admCl, err = kgo.NewClient(e.clientOpts()...)
	if err != nil {
		return fmt.Errorf("topology: admin client: %w", err)
	}
	defer e.admCl.Close()
	e.adm = kadm.NewClient(e.admCl)
	e.partitions, e.counts, err = EnsureTopics(ctx, e.adm, e.topo.Topics(e.cfg.TopicPrefix), e.cfg.Partitions, e.cfg.Replication)
	if err != nil {
		return err
	}
	e.dlqLimit = deadLetterTopicLimit(ctx, e.adm, e.dlq, e.log)
	e.inputIDs(ctx)
	if err := e.cfg.FS.MkdirAll(e.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("topology: state dir: %w", err)
	}
	e.cache = pebble.NewCache(e.cfg.CacheBytes)
	defer e.cache.Unref()

	e.globals = newGlobalReader(e)
	if err := e.globals.load(ctx); err != nil {
		return err
	}
	defer e.globals.close()
	e.log.Info("engine starting", "group", e.topo.Group, "instance", e.cfg.InstanceID,
		"partitions", e.partitions, "state_dir", e.cfg.StateDir, "standbys", e.cfg.Standbys)
	stallDone := make(chan struct{})
	e.stall.start(stallDone)
	defer close(stallDone)
	sbCtx, sbStop := context.WithCancel(ctx)
	sbDone := make(chan struct{})
	go func() { defer close(sbDone); e.sb.run(sbCtx) }()
	defer func() { sbStop(); <-sbDone }()

	e.running.Store(true)
	if e.fatal.Load() == nil {
		e.m.healthy.Set(1)
	}
	defer func() {
		e.running.Store(false)
		e.m.healthy.Set(0)
	}()
	for attempt := 0; ; attempt++ {
		err := e.runSession(ctx)
		e.closeTasks()
		e.closeSession()
		switch {
		case e.fatal.Load() != nil:
			// A storage fault stops the engine for good, whatever else
			// happened: re-initialising would commit on top of a store
			// that is behind what Kafka committed.
			return e.fatalErr()
		case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
			e.log.Info("engine stopped")
			return nil
		case errors.Is(err, ErrUnknownCommit) || errors.Is(err, errSessionFailed):
			e.m.reinits.Inc()
			backoff := time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond
			e.log.Warn("re-initialising: rebuilding state from what Kafka committed", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		default:
			return err
		}
	}
}

var errSessionFailed = errors.New("topology: transactional session failed")

// SessionOpts are the Kafka options of the engine's transactional session
// (without seeds and rebalance callbacks): EOS v2 with read_committed,
// stable offset fetches, rebalances blocked while a transaction is open,
// cooperative-sticky assignment and explicit output partitions. The bench's
// passthrough uses them too, so that the comparison is fair.
func SessionOpts(group, txnID string, txnTimeout, sessionTimeout time.Duration, topics ...string) []kgo.Opt {
	return []kgo.Opt{
		kgo.MetadataMinAge(SessionMetadataMinAge),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(txnTimeout),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.SessionTimeout(sessionTimeout),
	}
}

// SessionMetadataMinAge is the session client's shortest time between two
// metadata requests (franz-go's default is 5 s). franz-go retries a
// produce that failed with a retriable error only after a metadata update,
// and a retry within that time of the last update waits for the rest of it.
// A common such error is CONCURRENT_TRANSACTIONS: with Kafka 4's
// transactions (KIP-890) the first produce of a transaction adds its
// partitions, and if the broker is still writing the markers of the
// transaction before, after its own short retries (the broker's
// add.partitions.to.txn.retry.backoff.max.ms, 100 ms), it answers that. With
// the default, that transaction then waited 5 s for its flush, and every
// partition with it: on the local broker in 4 of 22 bench rounds, mostly
// right after the first commit (TestConcurrentTransactionsRetriedPromptly).
// The Java client waits retry.backoff.ms (100 ms) before such a metadata
// refresh; 200 ms keeps a broker that is down from being asked much more
// often than that. A ClientOpts MetadataMinAge overrides it.
const SessionMetadataMinAge = 200 * time.Millisecond

// closeSession leaves the group (bounded: the broker may be down) and
// closes the session; revocations it triggers belong to the closed session
// and are dropped.
func (e *Engine) closeSession() {
	if e.sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.sess.AllowRebalance()
	if err := e.sess.Client().LeaveGroupContext(ctx); err != nil {
		e.log.Warn("leaving the group", "err", err)
	}
	cancel()
	e.sess.CloseAllowingRebalance()
	e.sess = nil
	e.mu.Lock()
	e.events, e.synced = nil, nil
	e.mu.Unlock()
}

func (e *Engine) newSession() error {
	opts := e.clientOpts(append(SessionOpts(e.topo.Group, e.topo.Group+"-"+e.cfg.InstanceID,
		e.cfg.TxnTimeout, e.cfg.SessionTimeout, e.inputs...),
		kgo.OnPartitionsAssigned(e.onAssigned),
		kgo.OnPartitionsRevoked(e.onRevoked),
		kgo.OnPartitionsLost(e.onRevoked),
		kgo.ProducerBatchMaxBytesFn(e.batchMaxBytes),
	)...)
	balancer := kgo.CooperativeStickyBalancer()
	if len(e.inputs) > 1 {
		// Partition p of every input must go to one member, the one that
		// owns the task (and the stores) of p. The range balancer does that
		// for topics with equal partition counts (checked at start-up) and
		// members without racks; cooperative-sticky balances topic
		// partitions independently. queue checks every assignment.
		balancer = kgo.RangeBalancer()
	}
	opts = append(opts, kgo.Balancers(syncBalancer{GroupBalancer: balancer, e: e}))
	if e.cfg.StaticMembership {
		opts = append(opts, kgo.InstanceID(e.cfg.InstanceID))
	}
	opts = append(opts, kgo.WithLogger(kgoLogger{l: e.log, unconfirmed: &e.endUnconfirmed, next: e.optsLogger}))
	opts = append(opts, kgo.WithHooks(lostHook{e}))
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("topology: session: %w", err)
	}
	e.sess = sess
	// Initialise the producer id now, before any restore: it fences this
	// instance's previous incarnation (same transactional id) and aborts its
	// open transaction, so changelogs reach a stable end without waiting for
	// the transaction timeout.
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.TxnTimeout)
	defer cancel()
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		return fmt.Errorf("%w: initialising the producer id: %v", errSessionFailed, err)
	}
	return nil
}

// onAssigned runs in the group's goroutine: it pauses the new partitions
// until the loop has restored their stores.
func (e *Engine) onAssigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	cl.PauseFetchPartitions(m)
	e.sb.member(cl)
	e.queue(true, m)
}

func (e *Engine) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	e.queue(false, m)
}

// syncBalancer is a group balancer that tells the engine this member's
// whole assignment of every generation, as the group's SyncGroup answer
// gives it. franz-go's GroupTransactSession calls the engine's revoke (and
// lost) callback only for the first revocation between two ends of a
// transaction: it drops the callback while its own flag of the first is
// set (franz-go v1.22.3, txn.go). Two rebalances that each take partitions
// from this member before the loop ends a transaction (two instances
// added while it restores, or waits on an idle poll) would otherwise
// leave it a task for a partition another member owns, which a global
// table's change or a re-emit would make it write to.
// TestSecondRevocationNotMissed. (It also keeps franz-go on the classic
// group protocol, whose SyncGroup it reads: franz-go takes KIP-848 only
// for its own balancer types.)
type syncBalancer struct {
	kgo.GroupBalancer
	e *Engine
}

func (b syncBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	m, err := b.GroupBalancer.ParseSyncAssignment(assignment)
	if err == nil {
		b.e.noteSynced(m)
	}
	return m, err
}

// lostHook hears of a group session that died (franz-go calls it right
// after the lost callback, which the session drops after the first until
// End): the member holds no partition until the next sync, so every task
// is closed before the next transaction (syncBalancer).
type lostHook struct{ e *Engine }

func (h lostHook) OnGroupManageError(error) {
	h.e.mu.Lock()
	h.e.synced = map[int32]bool{}
	h.e.mu.Unlock()
}

// noteSynced records the partitions m gives of every input (of all of
// them: the co-partitioned task of p needs p of each).
func (e *Engine) noteSynced(m map[string][]int32) {
	count := map[int32]int{}
	for _, in := range e.inputs {
		for _, p := range m[in] {
			count[p]++
		}
	}
	synced := map[int32]bool{}
	for p, n := range count {
		if n == len(e.inputs) {
			synced[p] = true
		}
	}
	e.mu.Lock()
	e.synced = synced
	e.mu.Unlock()
}

func (e *Engine) queue(assigned bool, m map[string][]int32) {
	set := map[int32]bool{}
	for _, ps := range m {
		for _, p := range ps {
			set[p] = true
		}
	}
	if len(set) == 0 {
		return
	}
	ev := assignEvent{assigned: assigned}
	if assigned {
		ev.err = coPartitioned(e.inputs, m, set)
	}
	for p := range set {
		ev.parts = append(ev.parts, p)
	}
	slices.Sort(ev.parts)
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// applyEvents closes revoked tasks and restores assigned ones, between
// transactions.
func (e *Engine) applyEvents(ctx context.Context) error {
	e.mu.Lock()
	evs := e.events
	e.events = nil
	e.applying = len(evs) > 0
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.applying = false
		e.mu.Unlock()
	}()
	for _, ev := range evs {
		if ev.err != nil {
			return ev.err
		}
		for _, p := range ev.parts {
			if ts := e.tasks[p]; ts != nil {
				e.closeTask(ts)
			}
			if !ev.assigned {
				e.log.Info("partition revoked", "partition", p)
				continue
			}
			start := time.Now()
			e.sb.take(p) // a standby of p closes its stores first
			ts, err := e.openTask(ctx, p)
			if err != nil {
				return err
			}
			e.tasks[p] = ts
			e.log.Info("partition assigned and restored", "partition", p, "took", time.Since(start).Round(time.Millisecond))
		}
		if ev.assigned {
			resume := map[string][]int32{}
			for _, in := range e.inputs {
				resume[in] = ev.parts
			}
			e.sess.Client().ResumeFetchPartitions(resume)
		}
	}
	// A task the newest generation does not give this member was revoked,
	// whether or not its callback came (syncBalancer). If that generation
	// is newer than the events applied, its own revocation may still come:
	// closing first is safe, as a record of a partition without a task
	// aborts the transaction.
	e.mu.Lock()
	synced := e.synced
	e.mu.Unlock()
	for _, ts := range e.sortedTasks() {
		if synced != nil && !synced[ts.p] {
			e.log.Info("partition revoked", "partition", ts.p, "by", "assignment")
			e.closeTask(ts)
		}
	}
	e.m.partitions.Set(float64(len(e.tasks)))
	e.owned.Store(int32(len(e.tasks)))
	return nil
}

func (e *Engine) openTask(ctx context.Context, p int32) (*taskState, error) {
	ts := &taskState{p: p, inNext: map[string]int64{}, clLast: make([]*kgo.Record, len(e.topo.Stores))}
	ts.emitter = emitter{e: e, ts: ts}
	stores := map[string]*state.Store{}
	for _, s := range e.topo.Stores {
		st, err := e.openRestored(ctx, s.Name, p, false)
		if err != nil {
			e.closeTask(ts)
			return nil, err
		}
		ts.stores = append(ts.stores, st)
		ts.names = append(ts.names, s.Name)
		stores[s.Name] = st
	}
	ts.cp = make([]state.Checkpoint, len(ts.stores))
	for i, st := range ts.stores {
		ts.cp[i] = st.Checkpoint()
	}
	task, err := e.topo.NewTask(TaskContext{Partition: p, Stores: stores, CacheEntries: e.cfg.StateCacheEntries})
	if err != nil {
		e.closeTask(ts)
		return nil, fmt.Errorf("topology: building task %d: %w", p, err)
	}
	ts.task = task
	if err := e.loadSeen(ts); err != nil {
		e.closeTask(ts)
		return nil, err
	}
	return ts, nil
}

// openRestored opens store name of partition p and restores it to the end
// of its changelog. A store whose checkpoint names changelog records that
// do not exist is not this changelog's store: it is moved aside and
// rebuilt. Owned tasks and standbys open their stores this way.
func (e *Engine) openRestored(ctx context.Context, name string, p int32, standby bool) (*state.Store, error) {
	dir := filepath.Join(e.cfg.StateDir, e.topo.Group, name+"-"+strconv.Itoa(int(p)))
	st, err := e.openStore(name, p, dir, standby)
	if err != nil {
		return nil, fmt.Errorf("topology: opening store %s partition %d: %w", name, p, err)
	}
	err = e.restore(ctx, st, e.changelogs[name], p, standby)
	var ut *untrustedError
	if errors.As(err, &ut) {
		if cerr := st.Close(); cerr != nil {
			e.log.Warn("closing store", "partition", p, "err", cerr)
		}
		if st, err = e.moveAside(name, p, dir, ut, standby); err == nil {
			err = e.restore(ctx, st, e.changelogs[name], p, standby)
		}
	}
	if err != nil {
		if st != nil {
			st.Abort()
			if cerr := st.Close(); cerr != nil {
				e.log.Warn("closing store", "partition", p, "err", cerr)
			}
		}
		var fe *state.FailedError
		if errors.As(err, &fe) {
			return nil, e.openFault(standby, &StorageError{Store: name, Partition: p, Phase: "restoring", Err: err})
		}
		return nil, err
	}
	return st, nil
}

// openStore opens a partition's store. A store that Pebble finds corrupt
// (damaged WAL, manifest or tables) or whose checkpoint does not decode is
// not trusted: it is moved aside to dir.corrupt-<time>, for an operator to
// inspect, and an empty store takes its place, restored from the
// changelog. A write the filesystem refuses (disk full, I/O error) is a
// storage fault: the engine stops. Any other error (the store is locked,
// too many open files) may pass and is returned: the store is left as it
// is.
func (e *Engine) openStore(name string, p int32, dir string, standby bool) (*state.Store, error) {
	st, err := state.Open(dir, e.storeOptions(name, p, standby))
	var cp *state.CorruptCheckpointError
	var fe *state.FailedError
	switch {
	case err == nil:
		return st, nil
	case pebble.IsCorruptionError(err) || errors.As(err, &cp):
		return e.moveAside(name, p, dir, err, standby)
	case errors.As(err, &fe):
		return nil, e.openFault(standby, &StorageError{Store: name, Partition: p, Phase: "opening", Err: err})
	default:
		return nil, err
	}
}

// storeOptions are the options of store name, partition p: a store that
// fails (see state.FailedError) records a storage fault at once, whatever
// the goroutine that found it. A standby's store that fails ends that
// standby only (the engine stops when a store it owns fails).
func (e *Engine) storeOptions(name string, p int32, standby bool) *state.Options {
	return &state.Options{FS: e.cfg.FS, Cache: e.cache, MemTableSize: e.cfg.MemTableBytes,
		OnFailure: func(err error) {
			if standby {
				e.log.Warn("standby store failed; the standby stops", "store", name, "partition", p, "err", err)
				return
			}
			e.storageFault(&StorageError{Store: name, Partition: p, Phase: "detected", Err: err})
		}}
}

// openFault is a storage fault found opening or restoring a store: the
// engine's, unless the store is a standby's.
func (e *Engine) openFault(standby bool, f *StorageError) error {
	if standby {
		return f
	}
	return e.storageFault(f)
}

// moveAside moves an untrusted store to dir.corrupt-<time>, for an
// operator to inspect, and opens an empty store in its place.
func (e *Engine) moveAside(name string, p int32, dir string, why error, standby bool) (*state.Store, error) {
	aside := fmt.Sprintf("%s.corrupt-%d", dir, time.Now().UnixNano())
	if rerr := e.cfg.FS.Rename(dir, aside); rerr != nil {
		return nil, errors.Join(why, fmt.Errorf("moving the store aside: %w", rerr))
	}
	e.log.Error("local store not trusted: moved aside, rebuilding from the changelog", "dir", dir, "moved_to", aside, "err", why)
	e.m.storesRebuilt.Inc()
	st, err := state.Open(dir, e.storeOptions(name, p, standby))
	var fe *state.FailedError
	if errors.As(err, &fe) {
		return nil, e.openFault(standby, &StorageError{Store: name, Partition: p, Phase: "opening", Err: err})
	}
	return st, err
}

func (e *Engine) closeTask(ts *taskState) {
	for i, st := range ts.stores {
		st.Abort()
		if err := st.Close(); err != nil {
			e.log.Warn("closing store", "partition", ts.p, "err", err)
		}
		e.untrustCorrupt(ts.names[i], ts.p, st)
	}
	delete(e.tasks, ts.p)
	e.sb.give(ts.p)
}

// untrustCorrupt moves aside a closed store that failed because Pebble
// found its data corrupt while running (a checksum that does not match):
// opened again it would fail at the same read, and it is not trusted; the
// next start rebuilds it from the changelog.
func (e *Engine) untrustCorrupt(name string, p int32, st *state.Store) {
	err := st.Err()
	if err == nil || !pebble.IsCorruptionError(err) {
		return
	}
	aside := fmt.Sprintf("%s.corrupt-%d", st.Dir(), time.Now().UnixNano())
	if rerr := e.cfg.FS.Rename(st.Dir(), aside); rerr != nil {
		e.log.Error("moving a corrupt store aside", "dir", st.Dir(), "err", rerr)
		return
	}
	e.log.Error("local store corrupt: moved aside, the next start rebuilds it from the changelog",
		"store", name, "partition", p, "moved_to", aside, "err", err)
	e.m.storesRebuilt.Inc()
}

// closeTasks closes every task; closeSession, which always follows, drops
// the assignment events of the closed session.
func (e *Engine) closeTasks() {
	for _, ts := range e.tasks {
		e.closeTask(ts)
	}
	e.m.partitions.Set(0)
	e.owned.Store(0)
}

// runSession runs transactions on one session until ctx is done or the
// session fails.
func (e *Engine) runSession(ctx context.Context) error {
	if err := e.newSession(); err != nil {
		return err
	}
	for {
		if err := e.applyEvents(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errNotCoPartitioned) {
				return err
			}
			// Restores read Kafka: a broker that is down or a changelog
			// that is still in a transaction must not stop the engine.
			return fmt.Errorf("%w: assigning partitions: %v", errSessionFailed, err)
		}
		e.serveQueries() // query.go: between transactions
		stop := ctx.Err() != nil
		if err := e.transaction(ctx); err != nil || stop {
			return err
		}
	}
}

// transaction runs one transaction. After ctx is done it still finishes the
// open transaction (with a bounded, fresh context) so that shutdown applies
// what was processed.
func (e *Engine) transaction(ctx context.Context) error {
	// Rebalances wait while a transaction is open (BlockRebalanceOnPoll);
	// every way out of here lets them go on.
	defer e.sess.AllowRebalance()
	if err := e.fatalErr(); err != nil {
		return err // found in the background since the last transaction
	}
	if err := e.sess.Begin(); err != nil {
		return fmt.Errorf("%w: begin: %v", errSessionFailed, err)
	}
	e.produceErr.Store(nil)
	start := time.Now()
	stalls := e.stall.mark()
	pollCtx, cancel := context.WithDeadline(ctx, start.Add(e.cfg.CommitInterval))
	n := 0
	var polled time.Duration // in PollRecords: waiting for input
	var procErr error
	for n < e.cfg.MaxTxnRecords && pollCtx.Err() == nil && procErr == nil {
		tp := time.Now()
		fs := e.sess.PollRecords(pollCtx, e.cfg.MaxTxnRecords-n)
		e.now = time.Now()
		polled += e.now.Sub(tp)
		if fs.IsClientClosed() {
			cancel()
			return errSessionFailed
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				e.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		e.noteTopicIDs(fs)
		var work []*taskState
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if procErr != nil || len(fp.Records) == 0 {
				return
			}
			ts := e.tasks[fp.Partition]
			if ts == nil {
				// Assigned but not restored yet (the pause raced a fetch):
				// abort; the records come again after the restore.
				procErr = errNotReady
				return
			}
			if len(ts.batch) == 0 {
				work = append(work, ts)
			}
			ts.batch = append(ts.batch, fp.Records)
			n += len(fp.Records)
		})
		if procErr == nil {
			procErr = e.parallel(work, e.processBatch)
		}
		for _, ts := range work {
			clear(ts.batch)
			ts.batch = ts.batch[:0]
		}
	}
	cancel()
	tPoll := time.Now()
	// A stall past about the session timeout (stallWatch): end without
	// producing, as an abort. Checked again after the flush, which may
	// have been stalled too.
	e.checkStall(stalls, n, &procErr)
	if procErr == nil {
		e.now = tPoll
		procErr = e.flushAll()
	}
	tFlush := time.Now()
	e.checkStall(stalls, n, &procErr)
	commit := kgo.TryCommit
	// An idle transaction (no input, no task touched, so nothing produced)
	// is ended as an abort: there is nothing to commit, and franz-go holds
	// its session lock for 500 ms after a committed transaction that sent
	// no offsets (it cannot tell whether the broker has KIP-447), which
	// would delay the next transaction's commit by that much.
	idle := n == 0 && procErr == nil && e.touched() == 0
	// A storage fault, even one found in the background while this
	// transaction ran, aborts it: nothing is committed that a store may
	// not be able to apply.
	fatal := e.fatal.Load() != nil
	if procErr != nil || e.produceErr.Load() != nil || idle || fatal {
		commit = kgo.TryAbort
	}
	committed, err := e.end(commit, stalls, n == 0)
	e.inflight.Wait()
	tEnd := time.Now()
	if err != nil {
		_ = e.abortAll() // every task is dropped and restored anyway
		return fmt.Errorf("%w: %v", ErrUnknownCommit, err)
	}
	if idle && !committed && !fatal {
		return nil
	}
	if committed {
		parts := e.touched() // applyAll clears it
		if err := e.applyAll(); err != nil {
			// Kafka committed this transaction and a store could not
			// apply it: never commit again from this state.
			return err
		}
		e.phases.observe(n, parts, polled, tPoll.Sub(start)-polled, tFlush.Sub(tPoll), tEnd.Sub(tFlush), time.Since(tEnd))
		e.m.txnPartitions.Observe(float64(parts))
		e.m.committed.Inc()
		e.m.records.Add(float64(n))
		e.m.commitSeconds.Observe(time.Since(start).Seconds())
	} else {
		aerr := e.abortAll()
		e.m.aborted.Inc()
		if pe := e.produceErr.Load(); pe != nil {
			e.log.Warn("transaction aborted: produce failed", "err", *pe)
		}
		if err := e.fatalErr(); err != nil {
			return err
		}
		if aerr != nil {
			return aerr
		}
	}
	if err := e.fatalErr(); err != nil {
		return err // the store failed while processing (a read, say)
	}
	if procErr != nil && !errors.Is(procErr, errNotReady) && !errors.Is(procErr, errStalled) && !errors.Is(procErr, errPoison) {
		return procErr
	}
	return nil
}

// checkStall makes *procErr errStalled when the process stalled since mark
// returned stalls and the transaction has work (an idle one ends as an
// abort anyway).
func (e *Engine) checkStall(stalls uint64, n int, procErr *error) {
	if *procErr == nil && (n > 0 || e.touched() > 0) && e.stall.since(stalls) {
		*procErr = errStalled
	}
}

// end ends the open transaction. The records produced are flushed first,
// within the transaction timeout; End itself (offset commit, a forced
// heartbeat, EndTxn) then gets the session timeout. End waits for that
// heartbeat, and when this member has lost its session (the process was
// paused, or starved of CPU, past the session timeout) franz-go's heartbeat
// loop first waits for the rebalance that End itself holds back, so only
// End's context ends the wait: the session timeout bounds that stall, after
// which the commit's outcome is unknown and the engine re-initialises, as
// it must anyway once fenced out of the group (TestChaos pauses an instance
// with SIGSTOP; with the transaction timeout here it stalled the group for
// 30 s).
//
// Meanwhile, on this goroutine, the stores write the transaction before
// this one to Pebble: applyTask committed it to the stores without writing
// it (CommitDeferred), and every read since has seen it. Flushing waits on
// the broker (the produce acknowledgements, about half of the end); the
// write is CPU and disk, which would otherwise follow the end and hold up
// the next transaction. The write is over before End begins, so that a
// storage fault it finds still aborts this transaction: nothing commits
// once a store has failed. Kafka committed the transaction written
// whatever this one's outcome, and a crash before the write leaves the
// previous checkpoint, from which the changelog is replayed. noInput says
// the transaction processed no input record (keepOffsets).
func (e *Engine) end(commit kgo.TransactionEndTry, stalls uint64, noInput bool) (bool, error) {
	var flushed chan error
	if commit == kgo.TryCommit {
		flushed = make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.TxnTimeout)
			defer cancel()
			flushed <- e.sess.Client().Flush(ctx)
		}()
	}
	e.applyPendingAll()
	if flushed != nil {
		if err := <-flushed; err != nil {
			// Records that could not be written in time would be retried
			// for ever, their callbacks never run and the loop would wait
			// on them (inflight) for good; the session is re-initialised
			// after this error, so they are dropped here.
			e.sess.Client().UnsafeAbortBufferedRecords()
			return false, err
		}
		// Flush returns once every record was written or failed: a
		// record the broker refused for good (INVALID_RECORD,
		// MESSAGE_TOO_LARGE, an authorisation error) fails only that
		// record, not the producer id, and EndTxn would commit the
		// transaction without it. Its promise has run once inflight is
		// done; it aborts, like one that failed before the end.
		e.inflight.Wait()
		if e.fatal.Load() != nil || e.produceErr.Load() != nil {
			commit = kgo.TryAbort
		}
	}
	// Stalled while the client flushed: abort (an abort needs no
	// heartbeat). A stall during End ends End's wait at once, as its
	// timeout would later: the commit's outcome is then unknown.
	if commit == kgo.TryCommit && e.stall.since(stalls) {
		commit = kgo.TryAbort
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(e.cfg.SessionTimeout, 5*time.Second))
	defer cancel()
	defer e.stall.cancelOnStall(cancel)()
	if commit == kgo.TryCommit && noInput {
		ctx = kgo.PreTxnCommitFnContext(ctx, e.keepOffsets(e.sess.Client().CommittedOffsets()))
	}
	e.endUnconfirmed.Store(false)
	committed, err := e.sess.End(ctx, commit)
	if err == nil && !committed && commit == kgo.TryCommit && e.endUnconfirmed.Load() {
		// franz-go ends a commit whose EndTxn was answered with
		// UNKNOWN_SERVER_ERROR as an abort and reports not committed,
		// though "the broker may or may not have completed it". Taking
		// that for an abort would replay inputs whose outputs may have
		// committed; rebuilding from what Kafka committed is right
		// whatever happened. (Its other aborts of a commit, after a
		// revocation or a refused offset commit, are aborts.)
		err = errCommitNotConfirmed
	}
	if err != nil {
		// As for a failed flush: records End could not abort in time
		// (a broker that does not answer) would be retried for ever and
		// inflight never done; the session is re-initialised anyway.
		e.sess.Client().UnsafeAbortBufferedRecords()
	}
	return committed, err
}

// keepOffsets returns the hook that completes the offset commit of a
// transaction without input (global changes, a task's PendingWork) with the
// offset one owned input partition has committed already, unchanged.
// franz-go learns from the offset commit's answer whether the broker has
// KIP-447; after a committed transaction that sent no offsets it cannot
// tell, holds its session lock for 500 ms to let the markers land before a
// rebalance, and End returns only then: the engine would stand still for
// half a second after every such transaction. The offset sent is the
// group's own, so the commit moves nothing; if the partition moved to
// another member meanwhile, the group refuses it (another generation) or
// the session aborts (revoked), as for any commit. With no committed offset
// yet (a partition that never had input), or no topic id known (a broker
// too old to give one), nothing is added: the offset commit of KIP-1319
// names topics by id (franz-go puts in the id it consumes the topic under
// when it has one, and falls back to a version that names them otherwise),
// and that cautious rule keeps the request to what franz-go itself would
// send on such a broker. Such a transaction now goes through the group like one
// with input: it waits for a join in progress, and a group error aborts it.
// An input topic deleted and recreated under a running engine is not
// supported: in the moment before the client's metadata sees the new id,
// this would commit the old topic's offset on the new one by name.
func (e *Engine) keepOffsets(committed map[string]map[int32]kgo.EpochOffset) func(*kmsg.TxnOffsetCommitRequest) error {
	return func(req *kmsg.TxnOffsetCommitRequest) error {
		if len(req.Topics) > 0 {
			return nil
		}
		for _, in := range e.inputs {
			for _, ts := range e.sortedTasks() {
				eo, ok := committed[in][ts.p]
				id, known := e.topicIDs[in]
				if !ok || eo.Offset <= 0 || !known {
					continue
				}
				p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
				p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = ts.p, eo.Offset, eo.Epoch, &req.MemberID
				t := kmsg.NewTxnOffsetCommitRequestTopic()
				t.Topic, t.TopicID, t.Partitions = in, id, []kmsg.TxnOffsetCommitRequestTopicPartition{p}
				req.Topics = append(req.Topics, t)
				return nil
			}
		}
		return nil
	}
}

// inputIDs notes the input topics' ids as the metadata gives them (Kafka
// 2.8 and later), for keepOffsets before the first fetch; best effort (the
// fetches give them too).
func (e *Engine) inputIDs(ctx context.Context) {
	ts, err := e.adm.ListTopics(ctx, e.inputs...)
	if err != nil {
		return
	}
	for name, d := range ts {
		if d.Err == nil && d.ID != (kadm.TopicID{}) {
			if e.topicIDs == nil {
				e.topicIDs = make(map[string][16]byte)
			}
			e.topicIDs[name] = [16]byte(d.ID)
		}
	}
}

// noteTopicIDs keeps the topic ids fs carries (Kafka 3.1 and later).
func (e *Engine) noteTopicIDs(fs kgo.Fetches) {
	for _, f := range fs {
		for _, t := range f.Topics {
			if t.TopicID != ([16]byte{}) && e.topicIDs[t.Topic] != t.TopicID {
				if e.topicIDs == nil {
					e.topicIDs = make(map[string][16]byte)
				}
				e.topicIDs[t.Topic] = t.TopicID
			}
		}
	}
}

func (e *Engine) anyPending() bool {
	for _, ts := range e.tasks {
		for _, st := range ts.stores {
			if st.Pending() {
				return true
			}
		}
	}
	return false
}

// applyPendingAll writes every store's pending transaction; tasks run in
// parallel. A failure is a storage fault, recorded in e.fatal (applyFault).
func (e *Engine) applyPendingAll() {
	if e.anyPending() {
		_ = e.parallel(e.sortedTasks(), e.applyPending)
	}
}

func (e *Engine) applyPending(ts *taskState) error {
	for i, st := range ts.stores {
		if err := st.ApplyPending(); err != nil {
			return e.applyFault(ts, i, err)
		}
	}
	return nil
}

// applyFault records that a store could not apply a transaction Kafka
// committed: the store is now behind Kafka, a storage fault, which stops
// the engine (never commit again from this state). This is the fault to
// report, even if the store's failure was recorded a moment earlier by the
// write that found it.
func (e *Engine) applyFault(ts *taskState, i int, err error) error {
	f := &StorageError{Store: ts.names[i], Partition: ts.p,
		Phase: "applying a transaction Kafka committed", Err: err}
	e.storageFault(f)
	e.fatal.Store(f)
	return f
}

// errCommitNotConfirmed: a commit franz-go ended as an abort because it
// could not confirm it (see end).
var errCommitNotConfirmed = errors.New("topology: the commit was not confirmed (ended as an abort by the client); its outcome is taken as unknown")

// errPoison aborts a transaction in which a record's output was too large
// to produce; the record is dead-lettered when processing comes back to it.
var errPoison = errors.New("topology: a record's output is too large to produce")

var errNotReady = errors.New("topology: record for a partition that is not restored yet")

var errStalled = errors.New("topology: the process stalled during the transaction")

// processBatch processes the records one poll fetched for ts, in order.
func (e *Engine) processBatch(ts *taskState) error {
	for _, recs := range ts.batch {
		ts.touched = true
		for _, r := range recs {
			if err := e.process(ts, r); err != nil {
				return err // the transaction aborts
			}
		}
		// One topic and partition per fetch: its last offset is the
		// position (one map write per fetch, not per record).
		last := recs[len(recs)-1]
		ts.inNext[last.Topic] = last.Offset + 1
	}
	return nil
}

// parallel runs fn for every task of tss, at most Config.Workers at a time,
// waits for all, and returns the first error in tss order. Tasks share
// nothing but the producer, the metrics, the global tables and the block
// cache, all safe for concurrent use; the records of one task stay in order
// on one goroutine, so each output partition keeps its order.
func (e *Engine) parallel(tss []*taskState, fn func(*taskState) error) error {
	if len(tss) == 1 || e.cfg.Workers == 1 {
		for _, ts := range tss {
			if err := fn(ts); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(tss))
	sem := make(chan struct{}, e.cfg.Workers)
	var wg sync.WaitGroup
	for i, ts := range tss {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(ts)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// touched counts the tasks with work in the open transaction.
func (e *Engine) touched() int {
	n := 0
	for _, ts := range e.tasks {
		if ts.touched {
			n++
		}
	}
	return n
}

// sortedTasks returns the owned tasks in partition order.
func (e *Engine) sortedTasks() []*taskState {
	tss := slices.Collect(maps.Values(e.tasks))
	slices.SortFunc(tss, func(a, b *taskState) int { return cmp.Compare(a.p, b.p) })
	return tss
}

// process handles one record: size check, task, dead letter.
func (e *Engine) process(ts *taskState, r *kgo.Record) error {
	// One Record per task, reused: Process must not keep it (Task).
	ts.rec = Record{
		Topic:     r.Topic[len(e.cfg.TopicPrefix):],
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: r.Timestamp.UnixMilli(),
		Polled:    e.now.UnixMilli(),
	}
	var err error
	if p := ts.poison; p != nil && p.offset == r.Offset && p.topic == r.Topic {
		ts.poison = nil
		err = BadInput("output", p.err)
	} else if size := len(r.Key) + len(r.Value); size > e.cfg.MaxRecordBytes {
		err = BadInput("size", fmt.Errorf("record of %d bytes exceeds MaxRecordBytes %d", size, e.cfg.MaxRecordBytes))
	} else {
		err = ts.task.Process(&ts.rec, &ts.emitter)
		if ts.tooBig != nil {
			// Producing it would fail at every retry and block the
			// partition. What the task did for this record cannot be
			// taken back alone: the transaction aborts, and on the retry
			// the record goes to the dead-letter topic unprocessed.
			ts.poison = &poisonRecord{topic: r.Topic, offset: r.Offset, err: ts.tooBig}
			ts.tooBig = nil
			e.log.Warn("an output of this record is too large to produce: the transaction aborts and the record goes to the dead-letter topic",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", ts.poison.err)
			return fmt.Errorf("%w: partition %d offset %d", errPoison, r.Partition, r.Offset)
		}
	}
	if err == nil {
		return nil
	}
	var bad *BadInputError
	if errors.As(err, &bad) {
		e.deadLetter(ts, r, bad)
		return nil
	}
	return err
}

func (e *Engine) deadLetter(ts *taskState, r *kgo.Record, bad *BadInputError) {
	e.m.deadLetters.WithLabelValues(bad.Stage).Inc()
	dl := &kgo.Record{
		Topic:     e.dlq,
		Partition: e.partitionFor(e.dlq, r.Partition),
		Key:       r.Key,
		Value:     r.Value,
		Headers: append(slices.Clone(r.Headers),
			kgo.RecordHeader{Key: "invroute.error", Value: []byte(bad.Err.Error())},
			kgo.RecordHeader{Key: "invroute.stage", Value: []byte(bad.Stage)},
			kgo.RecordHeader{Key: "invroute.source.topic", Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: "invroute.source.partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: "invroute.source.offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		),
	}
	fitDeadLetter(dl, e.dlqLimit)
	e.produce(dl)
}

// flushAll hands global changes to every task, flushes tasks and writes the
// changelog of every written key; tasks run in parallel.
func (e *Engine) flushAll() error {
	cur := e.globals.positions()
	return e.parallel(e.sortedTasks(), func(ts *taskState) error { return e.flushTask(ts, cur) })
}

func (e *Engine) flushTask(ts *taskState, cur Positions) error {
	if err := e.deliverGlobals(ts, cur); err != nil {
		return err
	}
	if pw, ok := ts.task.(PendingWork); ok && !ts.touched && pw.Pending() {
		ts.touched = true
	}
	if !ts.touched {
		return nil
	}
	if err := ts.task.Flush(&ts.emitter); err != nil {
		return err
	}
	if err := ts.tooBig; err != nil {
		// Not one input's doing (coalesced outputs, a global change): it
		// would fail again at every retry.
		ts.tooBig = nil
		return fmt.Errorf("topology: partition %d: flushing the task: %w", ts.p, err)
	}
	for i, st := range ts.stores {
		if err := st.Prepare(); err != nil {
			return e.storeErr(ts, i, "preparing a transaction, which is aborted", err)
		}
		topic := e.changelogs[ts.names[i]]
		ts.clLast[i] = nil
		limit := int(e.batchMaxBytes(topic)) - recordOverhead
		err := st.Txn().Writes(func(key, val []byte) error {
			if n := len(key) + len(val); n > limit {
				return fmt.Errorf("topology: store %s, key %q: a value of %d bytes is more than its changelog %s can take (%d)",
					ts.names[i], key, n, topic, limit)
			}
			r := ts.record()
			r.Topic, r.Partition, r.Key, r.Value = topic, ts.p, ts.arena.Copy(key), ts.arena.Copy(val)
			e.produce(r)
			// Records to one partition are written in order: the last one
			// has the highest offset, read once the transaction committed.
			ts.clLast[i] = r
			return nil
		})
		if err != nil {
			return e.storeErr(ts, i, "preparing a transaction, which is aborted", err)
		}
	}
	return nil
}

// produce writes r inside the open transaction, stamped with e.now. The
// first failure is kept and aborts the transaction.
func (e *Engine) produce(r *kgo.Record) {
	r.Timestamp = e.now
	e.inflight.Add(1)
	e.sess.Produce(context.Background(), r, e.produced)
}

// onProduced is the promise of every record (e.produced: one func value,
// not a closure per record).
func (e *Engine) onProduced(_ *kgo.Record, err error) {
	defer e.inflight.Done()
	if err != nil {
		e.produceErr.CompareAndSwap(nil, &err)
	}
}

// applyAll applies every touched task's stores with their new checkpoints;
// tasks run in parallel.
func (e *Engine) applyAll() error {
	return e.parallel(e.sortedTasks(), e.applyTask)
}

func (e *Engine) applyTask(ts *taskState) error {
	if !ts.touched {
		return nil
	}
	for i, st := range ts.stores {
		// SyncedAt: Kafka committed this transaction, so the store has seen
		// its changelog up to now (see tombstonesMayBeGone).
		cp := state.Checkpoint{ChangelogOffset: ts.cp[i].ChangelogOffset, InputOffsets: map[string]int64{}, SyncedAt: time.Now().UnixMilli()}
		for k, v := range ts.cp[i].InputOffsets {
			cp.InputOffsets[k] = v
		}
		for k, v := range ts.inNext {
			cp.InputOffsets[k] = v
		}
		if last := ts.clLast[i]; last != nil { // written: its promise ran (inflight)
			cp.ChangelogOffset = last.Offset + 1
		}
		// Written to Pebble while the next transaction's output is
		// flushed (end), or before anything needs it on disk.
		if err := st.CommitDeferred(cp); err != nil {
			return e.applyFault(ts, i, err)
		}
		ts.cp[i] = cp
		ts.clLast[i] = nil
	}
	ts.touched = false
	clear(ts.inNext)
	return nil
}

// abortAll discards the open transaction of every task. It fails if a
// task's committed global positions cannot be read back: the task would
// otherwise take the current positions and miss changes.
func (e *Engine) abortAll() error {
	var errs []error
	for _, ts := range e.tasks {
		if !ts.touched {
			continue
		}
		for i, st := range ts.stores {
			st.Abort()
			ts.clLast[i] = nil
		}
		ts.task.Aborted()
		ts.touched = false
		clear(ts.inNext)
		if err := e.loadSeen(ts); err != nil {
			errs = append(errs, fmt.Errorf("topology: partition %d: reloading global positions: %w", ts.p, e.storeErr(ts, 0, "aborting a transaction", err)))
		}
	}
	return errors.Join(errs...)
}

// deliverGlobals hands ts the global table changes between its positions
// and cur, and stores cur with the task's state (see globalReader).
func (e *Engine) deliverGlobals(ts *taskState, cur Positions) error {
	if ts.seen != nil && ts.seen.equal(cur) && !ts.seenUnstored {
		return nil
	}
	if ts.seen != nil {
		entries, all := e.globals.changes(ts.seen, cur)
		for _, a := range all {
			if err := ts.task.GlobalChanged(a.topic, nil, a.ts, &ts.emitter); err != nil {
				return err
			}
		}
		for _, h := range entries {
			if err := ts.task.GlobalChanged(h.topic, h.key, h.ts, &ts.emitter); err != nil {
				return err
			}
		}
	}
	ts.seen, ts.seenUnstored = cur, false
	ts.touched = true
	if len(ts.stores) == 0 {
		return nil
	}
	return ts.stores[0].Txn().Set(globalsKey, encodePositions(cur))
}

// loadSeen reads the task's committed global positions. A store with data
// but no positions (written before positions existed) gets an empty set:
// every global table is delivered as changed. An empty store gets the
// reader's positions now: it has no outputs to correct for the changes
// before, but its first transaction's records read the tables as they are
// now, so later changes are delivered; its first flush stores them.
func (e *Engine) loadSeen(ts *taskState) error {
	ts.seen, ts.seenUnstored = nil, false
	if len(ts.stores) == 0 || len(e.topo.Globals) == 0 {
		return nil
	}
	txn := ts.stores[0].Txn()
	v, ok, err := txn.Get(globalsKey)
	if err != nil {
		return err
	}
	if ok {
		ts.seen, err = decodePositions(v)
		return err
	}
	errStop := errors.New("stop")
	if err := txn.Iterate(nil, func(_, _ []byte) error { return errStop }); !errors.Is(err, errStop) {
		if err == nil {
			// Empty: no output to correct for the changes before now, but
			// the first transaction's records read the tables as they are
			// now, so the changes after now are delivered.
			ts.seen, ts.seenUnstored = e.globals.positions(), true
		}
		return err
	}
	ts.seen = Positions{}
	return nil
}

// output is an Output with its full topic name.
type output struct {
	Output
	name string
}

// emitter writes a task's outputs to its partition.
type emitter struct {
	e  *Engine
	ts *taskState
}

func (em *emitter) Emit(topic Topic, key, value []byte) {
	out, ok := em.e.outputs[topic]
	if !ok {
		panic(fmt.Sprintf("topology: task emitted to %q, which is not an output of the topology", topic))
	}
	name := out.name
	if n, limit := len(key)+len(value), int(em.e.batchMaxBytes(name))-recordOverhead; n > limit {
		if em.ts.tooBig == nil {
			em.ts.tooBig = fmt.Errorf("an output record of %d bytes to %s, more than it can take (%d)", n, name, limit)
		}
		return
	}
	r := em.ts.record()
	r.Topic, r.Key, r.Value = name, key, value
	if out.CoPartitioned {
		r.Partition = em.e.partitionFor(name, em.ts.p)
	} else {
		r.Partition = keyPartition(r, em.e.counts[name])
	}
	em.e.produce(r)
}

// recordOverhead is what a record adds to its key and value in a batch of
// its own (the batch header and the record's varints), rounded up.
const recordOverhead = 128

// keyHasher is Kafka's default partitioner (murmur2 of the key), so that a
// non-co-partitioned output lands where a consumer keyed like it (another
// topology's input) expects it.
var keyHasher = kgo.StickyKeyPartitioner(nil).ForTopic("")

func keyPartition(r *kgo.Record, n int32) int32 {
	if n <= 0 || r.Key == nil {
		return 0
	}
	return int32(keyHasher.Partition(r, int(n)))
}

// partitionFor maps a task partition onto topic: the same partition for
// co-partitioned topics, modulo the count for others.
func (e *Engine) partitionFor(topic string, p int32) int32 {
	if n := e.counts[topic]; n > 0 {
		return p % n
	}
	return p
}

package topology

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures an Engine. Zero fields mean the defaults named in each
// field's comment; Validate reports every problem at once.
type Config struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// TopicPrefix is put in front of every topic name. Default "".
	TopicPrefix string
	// InstanceID names this instance; the transactional id is Group + "-" +
	// InstanceID, so it must be unique in the group and stable across
	// restarts (a restarted instance fences its predecessor). Default: the
	// host name.
	InstanceID string
	// StateDir holds the Pebble stores. Default "./invroute-state".
	StateDir string
	// CommitInterval is the longest a transaction stays open. Default 100ms.
	CommitInterval time.Duration
	// MaxTxnRecords bounds the input records of one transaction. Default 5000.
	MaxTxnRecords int
	// Workers bounds how many partitions process, flush and apply in
	// parallel. Default GOMAXPROCS; 1 processes partitions one by one.
	Workers int
	// MaxRecordBytes bounds key+value of an input record; larger ones go to
	// the dead-letter topic. Default 1 MiB.
	MaxRecordBytes int
	// Partitions is the partition count of topics that do not exist yet.
	// Default 6.
	Partitions int32
	// Replication is the replication factor of new topics; -1 (default) is
	// the broker's default.
	Replication int16
	// TxnTimeout is the Kafka transaction timeout: an open transaction of
	// an instance that is gone for good holds up the readers of what it
	// wrote, and the restore of a new owner of its partitions, until the
	// broker aborts it, this long after it began (plus up to the broker's
	// transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by
	// default). It also bounds the flush of a transaction's output.
	// Default 10s, as Kafka Streams' with exactly-once.
	TxnTimeout time.Duration
	// SessionTimeout is the consumer group session timeout: how long a
	// crashed instance's partitions wait before they move. Default 10s.
	SessionTimeout time.Duration
	// StaticMembership joins the group with group.instance.id = InstanceID
	// (KIP-345): a restarted instance takes back its partitions without a
	// rebalance, but an instance that stops for good keeps its partitions
	// unowned until SessionTimeout passes. Default false.
	StaticMembership bool
	// CacheBytes is the Pebble block cache of this engine, shared by all its
	// stores (each Engine has its own). Default 64 MiB.
	CacheBytes int64
	// MemTableBytes is each store partition's memtable size. Default 4 MiB.
	MemTableBytes uint64
	// StateCacheEntries bounds each store partition's cache of decoded
	// values. Default 10000.
	StateCacheEntries int
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the engine's metrics. Default: none.
	Registerer prometheus.Registerer
	// Standbys is how many other instances keep a warm copy of each
	// partition's stores by tailing its changelogs, so that a partition
	// that moves to one of them restores only the last moments (like Kafka
	// Streams' num.standby.replicas). Default 0.
	Standbys int
	// ClientOpts are appended to every Kafka client's options (tests, TLS, SASL).
	ClientOpts []kgo.Opt

	// clock is the wall clock of the restore's tombstone check (tests move
	// it on); time.Now if nil.
	clock func() time.Time
	// FS is the filesystem of StateDir. Default: the operating system's
	// (vfs.Default). For tests, which inject storage faults through it.
	FS vfs.FS
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.InstanceID == "" {
		c.InstanceID, _ = os.Hostname()
	}
	if c.StateDir == "" {
		c.StateDir = "./invroute-state"
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 100 * time.Millisecond
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MaxTxnRecords == 0 {
		c.MaxTxnRecords = 5000
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.Replication == 0 {
		c.Replication = -1
	}
	if c.TxnTimeout == 0 {
		c.TxnTimeout = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 4 << 20
	}
	if c.StateCacheEntries == 0 {
		c.StateCacheEntries = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("topology: no brokers configured"))
	}
	if c.InstanceID == "" {
		errs = append(errs, errors.New("topology: InstanceID is empty and the host name is unknown"))
	}
	if c.CommitInterval < time.Millisecond || c.CommitInterval > c.TxnTimeout/2 {
		errs = append(errs, fmt.Errorf("topology: CommitInterval %v must be in [1ms, TxnTimeout/2]", c.CommitInterval))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("topology: Workers %d must be positive", c.Workers))
	}
	if c.MaxTxnRecords < 1 {
		errs = append(errs, fmt.Errorf("topology: MaxTxnRecords %d must be positive", c.MaxTxnRecords))
	}
	if c.Standbys < 0 {
		errs = append(errs, fmt.Errorf("topology: Standbys %d must not be negative", c.Standbys))
	}
	if c.MaxRecordBytes < 1 {
		errs = append(errs, fmt.Errorf("topology: MaxRecordBytes %d must be positive", c.MaxRecordBytes))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("topology: Partitions %d must be positive", c.Partitions))
	}
	return errors.Join(errs...)
}

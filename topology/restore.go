package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/invroute/invroute/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// changelogWait bounds the wait for an open transaction on a changelog
// before its restore. The transaction is the previous owner's, begun under
// its own txn_timeout, which may differ from this instance's (a rolling
// change of it, the default lowered from 30 s to 10 s): the broker aborts
// it at most its timeout plus the abort scan (transaction.abort.timed.out.
// transaction.cleanup.interval.ms, 10 s by default) after it began. So the
// wait covers any timeout up to a minute, and this instance's own (the
// instances of a deployment share theirs but during a rolling change of
// it). Past it the restore reads to the last stable offset and logs an
// error: what the transaction commits later is missed, which the group's
// committed offsets would then reflect. Failing instead would not help:
// the session's re-initialisation fences only this instance's own
// transactional id, and every partition of the instance would stop with
// that one, for as long as a stray transaction stays open (found by
// review).
func changelogWait(txnTimeout time.Duration) time.Duration {
	return max(txnTimeout, time.Minute) + 10*time.Second
}

// stableEnd returns the last stable offset of topic/p once no transaction is
// open on it (LSO == high watermark), waiting at most wait: a previous
// owner's last transaction may still be completing, and restoring before it
// resolves could miss state that its committed input offsets already
// reflect. It also returns the log start offset. Past wait it returns the
// last stable offset, and logs an error if missed is (a changelog's
// restore would miss what the transaction commits later; a global table's
// reader tails it).
func (e *Engine) stableEnd(ctx context.Context, topic string, p int32, wait time.Duration, missed bool) (start, end int64, err error) {
	deadline := time.Now().Add(wait)
	for {
		lso, err1 := e.adm.ListCommittedOffsets(ctx, topic)
		hwm, err2 := e.adm.ListEndOffsets(ctx, topic)
		first, err3 := e.adm.ListStartOffsets(ctx, topic)
		if err := firstErr(err1, err2, err3); err != nil {
			return 0, 0, fmt.Errorf("topology: listing offsets of %s: %w", topic, err)
		}
		l, ok1 := lso.Lookup(topic, p)
		h, ok2 := hwm.Lookup(topic, p)
		s, ok3 := first.Lookup(topic, p)
		if !ok1 || !ok2 || !ok3 || l.Err != nil || h.Err != nil || s.Err != nil {
			return 0, 0, fmt.Errorf("topology: no offsets for %s[%d]: %v", topic, p, firstErr(l.Err, h.Err, s.Err))
		}
		switch {
		case l.Offset == h.Offset:
			return s.Offset, l.Offset, nil
		case time.Now().After(deadline) && missed:
			e.m.restoreShort.Inc()
			e.log.Error("a transaction is still open on the changelog partition after waiting for it: restoring to its last stable offset; if it commits later, what it wrote is missed",
				"topic", topic, "partition", p, "lso", l.Offset, "hwm", h.Offset, "waited", wait)
			return s.Offset, l.Offset, nil
		case time.Now().After(deadline):
			e.log.Warn("a transaction is still open on the partition: reading to its last stable offset, and what it commits later when tailing",
				"topic", topic, "partition", p, "lso", l.Offset, "hwm", h.Offset, "waited", wait)
			return s.Offset, l.Offset, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// untrustedError: a store is not this changelog's (see restore).
type untrustedError struct {
	topic  string
	p      int32
	reason string
}

func (e *untrustedError) Error() string {
	return fmt.Sprintf("topology: the store is not %s[%d]'s: %s (topic recreated, or a directory from another cluster or group)",
		e.topic, e.p, e.reason)
}

// changelogID returns the topic id of topic, or nil if the broker does not
// tell.
func (e *Engine) changelogID(ctx context.Context, topic string) ([]byte, error) {
	ts, err := e.adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("topology: describing %s: %w", topic, err)
	}
	d, ok := ts[topic]
	if !ok || d.Err != nil {
		return nil, fmt.Errorf("topology: describing %s: %v", topic, d.Err)
	}
	if d.ID == (kadm.TopicID{}) {
		return nil, nil
	}
	return d.ID[:], nil
}

// restore brings st up to the changelog's last stable offset, from the local
// checkpoint (warm restart) or from the beginning (new machine, or a
// checkpoint the changelog no longer covers).
//
// A store is bound to the id of the changelog topic it was restored from
// (state.Store.SetIdentity); a store bound to another id was built from
// another topic of this name (recreated, or another cluster's). And a
// checkpoint beyond the changelog's end is impossible for a store of this
// changelog (Pebble applies a transaction only after Kafka committed its
// changelog records, and a crash only takes the checkpoint back), whatever
// the ids say. In both cases restore returns an *untrustedError, and the
// caller moves the store aside. A checkpoint below the log start is stale
// but this changelog's: the records it would replay from were deleted, so
// the store is wiped and restored from the beginning; so is one whose replay
// would start at records old enough for the cleaner to have removed
// tombstones among them (tombstonesMayBeGone).
func (e *Engine) restore(ctx context.Context, st *state.Store, topic string, p int32, standby bool) error {
	id, err := e.changelogID(ctx, topic)
	if err != nil {
		return err
	}
	bound, err := st.Identity()
	if err != nil {
		return err
	}
	if bound != nil && id != nil && !bytes.Equal(bound, id) {
		return &untrustedError{topic: topic, p: p,
			reason: fmt.Sprintf("it was restored from topic id %x, the topic's id is now %x", bound, id)}
	}
	// Once the store has read up to end, it has seen every record the
	// changelog held at synced (MarkSynced; see tombstonesMayBeGone).
	synced := e.wallClock().UnixMilli()
	// A standby tails the changelog from its end on: it misses nothing.
	start, end, err := e.stableEnd(ctx, topic, p, changelogWait(e.cfg.TxnTimeout), !standby)
	if err != nil {
		return err
	}
	from := st.Checkpoint().ChangelogOffset
	if from > end {
		return &untrustedError{topic: topic, p: p,
			reason: fmt.Sprintf("its checkpoint (changelog offset %d) is beyond the changelog's end (%d)", from, end)}
	}
	stale := from < start
	if !stale && from > 0 && from >= start && from < end { // from 0: an empty store, nothing to be stale
		if stale, err = e.tombstonesMayBeGone(ctx, topic, p, from, end, st.Checkpoint().SyncedAt); err != nil {
			return err
		}
	}
	if stale {
		e.log.Warn("the changelog may no longer hold every record after the local checkpoint; restoring from the beginning",
			"topic", topic, "partition", p, "checkpoint", from, "log_start", start, "log_end", end)
		if err := st.Wipe(); err != nil {
			return err
		}
		from, bound = start, nil
		// Whatever a replay from the start applies was in the changelog
		// from now on, so its deletions stay at least the retention: a
		// replay cut short resumes without being taken for stale.
		if err := st.MarkSynced(synced); err != nil {
			return err
		}
	}
	if bound == nil && id != nil {
		if err := st.SetIdentity(id); err != nil {
			return err
		}
	}
	if from >= end {
		return st.MarkSynced(synced)
	}
	t0 := time.Now()
	n, err := e.replay(ctx, topic, p, from, end, func(r *kgo.Record) error {
		return st.Restore(r.Key, r.Value, r.Offset)
	})
	if err != nil {
		return fmt.Errorf("topology: restoring %s[%d]: %w", topic, p, err)
	}
	if err := st.FinishRestore(); err != nil {
		return err
	}
	// Up to end, whatever follows the last record applied held nothing to
	// apply (markers, aborted transactions): the checkpoint moves past it,
	// so that a quiet partition is told by its offsets (tombstonesMayBeGone).
	if err := st.MarkSyncedThrough(synced, end); err != nil {
		return err
	}
	e.m.restored.Add(float64(n))
	e.log.Info("restored store", "topic", topic, "partition", p, "from", from, "to", end,
		"records", n, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// kafkaDefaultDeleteRetention is Kafka's default delete.retention.ms,
// assumed when a changelog's configuration cannot be read.
const kafkaDefaultDeleteRetention = 24 * time.Hour

// tombstonesMayBeGone reports whether replaying topic[p] from offset from
// may miss deletions. The log cleaner keeps a tombstone (a deleted key)
// delete.retention.ms after it cleans it, and no longer: a store that comes
// back to a partition after that long (it moved to another instance and
// back, days later; an instance down that long) would replay the values
// and miss their deletions, and deleted keys would come back. Every record
// after the checkpoint was written after the store last saw its changelog
// (the checkpoint's SyncedAt), so none of their tombstones can be gone if
// that was less than half the retention ago (half: for clocks that
// disagree). No record to replay (a quiet partition: at most the last
// commit marker follows the checkpoint) is never stale, however old the
// store. A checkpoint written before SyncedAt was kept is judged by the
// timestamp of the first record the replay would apply instead, which
// compaction can make look younger than the store's absence.
func (e *Engine) tombstonesMayBeGone(ctx context.Context, topic string, p int32, from, end, syncedAt int64) (bool, error) {
	retention := kafkaDefaultDeleteRetention
	if ms, ok, err := topicConfig(ctx, e.adm, topic, "delete.retention.ms"); err != nil {
		e.log.Warn("reading the changelog's delete.retention.ms; assuming Kafka's default", "topic", topic, "err", err)
	} else if ok {
		retention = time.Duration(ms) * time.Millisecond
	}
	cut := e.wallClock().Add(-retention / 2)
	switch {
	case syncedAt > 0 && !time.UnixMilli(syncedAt).Before(cut):
		return false, nil // seen recently: nothing after it can be gone
	case syncedAt > 0:
		// Seen long ago: stale if anything was written since, judged by
		// offsets (never reused) rather than by records the cleaner may
		// have removed. At most the commit marker of the checkpoint's own
		// transaction follows it in a quiet partition.
		return end > from+1, nil
	}
	var first *kgo.Record
	_, err := e.replay(ctx, topic, p, from, end, func(r *kgo.Record) error { first = r; return errFirstFound })
	if err != nil && !errors.Is(err, errFirstFound) {
		return false, fmt.Errorf("topology: reading %s[%d] at %d: %w", topic, p, from, err)
	}
	if first == nil {
		return false, nil // nothing to replay
	}
	return first.Timestamp.Before(cut), nil
}

// wallClock is the time now (Config.clock in tests).
func (e *Engine) wallClock() time.Time {
	if e.cfg.clock != nil {
		return e.cfg.clock()
	}
	return time.Now()
}

var errFirstFound = errors.New("first record found")

// replay reads topic[p] from offset from up to end (exclusive),
// read_committed, and calls fn for each data record. Control records are
// kept so that the end is always seen, even when it is a commit marker.
func (e *Engine) replay(ctx context.Context, topic string, p int32, from, end int64, fn func(*kgo.Record) error) (int, error) {
	cl, err := kgo.NewClient(e.clientOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	for next := from; next < end; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return n, ferr
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			// A record at or past end also says that nothing below it is
			// left to deliver: the record at end-1 may never come (an
			// aborted transaction's data whose marker lies past end).
			next = max(next, r.Offset+1)
			if r.Offset >= end {
				continue
			}
			if r.Attrs.IsControl() {
				continue
			}
			if err := fn(r); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

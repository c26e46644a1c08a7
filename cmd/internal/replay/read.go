package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxQueued is how many records of one partition wait in memory at most
// (about: a fetch already under way still lands); beyond it the partition
// is paused until the merge has taken half of them. A variable for tests.
var maxQueued = 5000

// PingTimeout bounds the wait for a first broker to answer.
var PingTimeout = 15 * time.Second

// probeAfter is how long a poll waits for records before Read asks the
// leaders whether the partitions it waits on hold anything more to
// deliver below their end (see probe). A variable for tests.
var probeAfter = time.Second

type part struct {
	topic string // without prefix
	rank  int    // tie-break: position in Topics
	p     int32
	end   int64 // last stable offset when the replay started
	next  int64 // the offset after the last record the consumer delivered
	queue []*kgo.Record
	done  bool
	pause bool
}

// Read calls fn for every committed record of the topics (names without
// prefix) from their start to their last stable offsets as the call
// starts, merged across topics and partitions by timestamp (ties: the
// order of topics, then partition, then offset). opts are the client's
// seed brokers and security options.
func Read(ctx context.Context, prefix string, topics []string, opts []kgo.Opt, fn func(topic string, r *kgo.Record)) error {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer adm.Close()
	pctx, cancel := context.WithTimeout(ctx, PingTimeout)
	err = adm.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("no broker answered within %v: %w", PingTimeout, err)
	}
	ka := kadm.NewClient(adm)
	full := make([]string, len(topics))
	for i, t := range topics {
		full[i] = prefix + t
	}
	starts, err := ka.ListStartOffsets(ctx, full...)
	if err != nil {
		return fmt.Errorf("listing the offsets of %s: %w", strings.Join(full, ", "), err)
	}
	ends, err := ka.ListCommittedOffsets(ctx, full...)
	if err != nil {
		return fmt.Errorf("listing the offsets of %s: %w", strings.Join(full, ", "), err)
	}
	for _, l := range []kadm.ListedOffsets{starts, ends} {
		if err := l.Error(); err != nil {
			var missing []string
			l.Each(func(o kadm.ListedOffset) {
				if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
					missing = append(missing, o.Topic)
				}
			})
			if len(missing) > 0 {
				slices.Sort(missing)
				return fmt.Errorf("topic %s does not exist (wrong brokers or topic_prefix?): %w", strings.Join(slices.Compact(missing), ", "), err)
			}
			return err
		}
	}
	consume := map[string]map[int32]kgo.Offset{}
	parts := map[string]map[int32]*part{}
	var all []*part
	for rank, t := range topics {
		ft := prefix + t
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic != ft {
				return
			}
			s, _ := starts.Lookup(ft, o.Partition)
			if o.Offset <= s.Offset {
				return // empty
			}
			if consume[ft] == nil {
				consume[ft], parts[ft] = map[int32]kgo.Offset{}, map[int32]*part{}
			}
			consume[ft][o.Partition] = kgo.NewOffset().At(s.Offset)
			p := &part{topic: t, rank: rank, p: o.Partition, end: o.Offset, next: s.Offset}
			parts[ft][o.Partition] = p
			all = append(all, p)
		})
	}
	if len(all) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts), kgo.ConsumePartitions(consume),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return err
	}
	defer cl.Close()
	dec := kgo.DefaultDecompressor()
	var probeErr error // the last failed probe, told if ctx runs out
	open := len(all)
	for open > 0 {
		// Take records while every open partition has one queued: the
		// smallest timestamp first.
		for {
			var best *part
			ready := true
			for _, p := range all {
				if p.done && len(p.queue) == 0 {
					continue
				}
				if len(p.queue) == 0 {
					ready = false
					break
				}
				if best == nil || less(p, best) {
					best = p
				}
			}
			if !ready || best == nil {
				break
			}
			r := best.queue[0]
			best.queue[0] = nil
			best.queue = best.queue[1:]
			fn(best.topic, r)
			if best.pause && len(best.queue) < maxQueued/2 {
				best.pause = false
				cl.ResumeFetchPartitions(map[string][]int32{prefix + best.topic: {best.p}})
			}
			if best.done && len(best.queue) == 0 {
				open--
			}
		}
		if open == 0 {
			break
		}
		pctx, pcancel := context.WithTimeout(ctx, probeAfter)
		fs := cl.PollFetches(pctx)
		pcancel()
		if err := ctx.Err(); err != nil {
			if probeErr != nil {
				return fmt.Errorf("reading the history: %w (last check of a partition's end: %v)", err, probeErr)
			}
			return fmt.Errorf("reading the history: %w", err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			// The poll's own deadline; ctx's errors are checked above.
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("reading %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if fs.NumRecords() == 0 {
			// Nothing for probeAfter: a partition whose records below
			// its end are all aborted (or compacted away) never
			// delivers the record at end-1, and the consumer hands
			// over no fetch without records; ask its leader.
			for _, p := range all {
				if p.done || len(p.queue) > 0 {
					continue
				}
				done, err := probe(ctx, adm, ka, dec, prefix+p.topic, p)
				if cerr := ctx.Err(); cerr != nil {
					return fmt.Errorf("reading the history: %w", cerr)
				}
				if err != nil {
					probeErr = fmt.Errorf("%s[%d]: %w", p.topic, p.p, err)
				}
				if err != nil || !done {
					continue // asked again after the next idle poll
				}
				p.done = true
				open--
				cl.PauseFetchPartitions(map[string][]int32{prefix + p.topic: {p.p}})
			}
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			p := parts[r.Topic][r.Partition]
			if p == nil || p.done {
				return
			}
			p.next = r.Offset + 1
			if r.Offset+1 >= p.end {
				p.done = true
				if len(p.queue) == 0 && (r.Attrs.IsControl() || r.Offset >= p.end) {
					open--
				}
				cl.PauseFetchPartitions(map[string][]int32{r.Topic: {r.Partition}})
			}
			if r.Attrs.IsControl() || r.Offset >= p.end {
				return
			}
			p.queue = append(p.queue, r)
			if !p.pause && !p.done && len(p.queue) >= maxQueued {
				p.pause = true
				cl.PauseFetchPartitions(map[string][]int32{r.Topic: {r.Partition}})
			}
		})
	}
	return nil
}

// probe reports whether read_committed delivers nothing more of p below
// its end: it fetches from the partition's leader from p.next (the
// offset after the last record the consumer delivered) and processes the
// answers as the consumer does (aborted transactions dropped, control
// records kept), until a record below the end shows (not done: the
// consumer delivers it in time) or the processed offset reaches the end
// (done). Offsets below the end are decided for good (the end is a last
// stable offset), so the answer is exact, not a guess from silence.
func probe(ctx context.Context, cl *kgo.Client, ka *kadm.Client, dec kgo.Decompressor, topic string, p *part) (bool, error) {
	md, err := ka.Metadata(ctx, topic)
	if err != nil {
		return false, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return false, fmt.Errorf("no metadata for %s: %v", topic, td.Err)
	}
	pd, ok := td.Partitions[p.p]
	if !ok || pd.Err != nil || pd.Leader < 0 {
		return false, fmt.Errorf("no leader for %s[%d]: %v", topic, p.p, pd.Err)
	}
	off := p.next
	for off < p.end {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 0
		req.MaxBytes = 1 << 20
		req.IsolationLevel = 1 // read_committed
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, td.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.p, off, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(pd.Leader)))
		if err != nil {
			return false, err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return false, err
		}
		var got *kmsg.FetchResponseTopicPartition
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].Partition == p.p {
					got = &resp.Topics[i].Partitions[j]
				}
			}
		}
		if got == nil {
			return false, fmt.Errorf("%s[%d] missing from the fetch response", topic, p.p)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			KeepControlRecords: true,
			Offset:             off,
			IsolationLevel:     kgo.ReadCommitted(),
			Topic:              topic,
			Partition:          p.p,
		}, got, dec, nil)
		if fp.Err != nil {
			return false, fp.Err
		}
		for _, r := range fp.Records {
			if r.Offset < p.end {
				return false, nil
			}
		}
		if next <= off {
			return false, nil // no progress: asked again later
		}
		off = next
	}
	return true, nil
}

// less orders queue heads: timestamp, then topic rank, partition, offset.
func less(a, b *part) bool {
	ra, rb := a.queue[0], b.queue[0]
	if ta, tb := ra.Timestamp.UnixMilli(), rb.Timestamp.UnixMilli(); ta != tb {
		return ta < tb
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	if a.p != b.p {
		return a.p < b.p
	}
	return ra.Offset < rb.Offset
}

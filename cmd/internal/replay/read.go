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
)

// maxQueued is how many records of one partition wait in memory at most
// (about: a fetch already under way still lands); beyond it the partition
// is paused until the merge has taken half of them. A variable for tests.
var maxQueued = 5000

// PingTimeout bounds the wait for a first broker to answer.
var PingTimeout = 15 * time.Second

type part struct {
	topic string // without prefix
	rank  int    // tie-break: position in Topics
	p     int32
	end   int64 // last stable offset when the replay started
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
			p := &part{topic: t, rank: rank, p: o.Partition, end: o.Offset}
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
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading the history: %w", err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("reading %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			p := parts[r.Topic][r.Partition]
			if p == nil || p.done {
				return
			}
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

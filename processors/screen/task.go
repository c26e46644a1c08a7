package screen

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/invroute/invroute/schemas"
	"github.com/invroute/invroute/state"
	"github.com/invroute/invroute/topology"
)

// Topic names of the screen topology, before the prefix.
const (
	TopicChecks    topology.Topic = "invroute-customer-checks"
	TopicVerdicts  topology.Topic = "invroute-customer-verdicts"
	TopicChangelog topology.Topic = "invroute-screen-changelog"
	StoreName                     = "screen"
)

// Stats counts what a partition's screen did: checks answered (a check
// seen again too), orders held, customers forgotten. Work of a transaction
// that aborts is counted, as the router's is.
type Stats struct {
	Checks, Held, Forgotten int64
	// Gen identifies the processor that counted: a new one for the same
	// partition (after a rebalance) starts its counts at 0.
	Gen uint64
}

// gens numbers the tasks (Stats.Gen).
var gens atomic.Uint64

// Topology returns the customer screen's topology: checks in (key
// customer_id), verdicts out (key order_id, for the router). onFlush, if
// set, is called with a partition's stats after every flush.
func Topology(group string, deadLetter topology.Topic, onFlush func(partition int32, s Stats)) *topology.Topology {
	return &topology.Topology{
		Group:      group,
		Inputs:     []topology.Input{{Topic: TopicChecks}},
		Stores:     []topology.Store{{Name: StoreName, Changelog: TopicChangelog}},
		Outputs:    []topology.Output{{Topic: TopicVerdicts}},
		DeadLetter: deadLetter,
		NewTask: func(tc topology.TaskContext) (topology.Task, error) {
			st := tc.Stores[StoreName]
			return &Task{st: st, hist: state.NewTable[schemas.CustomerHistory](st, prefixHistory, historyCodec{}, tc.CacheEntries),
				purgeBatch: purgeBatch, part: tc.Partition, onFlush: onFlush, Stats: Stats{Gen: gens.Add(1)}}, nil
		},
	}
}

// Keys of the screen's store besides the histories (c/<customer>): the
// partition's stream time (t), and the retention of idle customers: when
// each history expires (e/<customer>: 8 bytes), the index of those times
// (x/<expiry, 16 hex digits>/<customer>), and how far the indexing of the
// histories stored before retention existed got (m: the last customer
// indexed, or migrated when done).
const (
	prefixHistory = "c/"
	prefixExpiry  = "e/"
	prefixDue     = "x/"
	keyNow        = "t"
	keyMigrated   = "m"
	migrated      = "\xff"
)

// Retention of idle customers: a history expires two windows plus grace
// after the order checked (each placed_at counted as at most maxSkew past
// its record's timestamp), and never before grace after the
// partition's stream time (the newest such placed_at) at that check, so
// that orders checked late still count each other. From its expiry on, by
// stream time, a history counts as gone (Get), whether or not a purge has
// deleted it yet: verdicts do not depend on when purges run. purgeEvery of
// stream time apart, a flush deletes at most purgeBatch of them.
const (
	maxSkew    = time.Hour
	grace      = time.Hour
	purgeEvery = time.Minute
	purgeBatch = 1000
)

// Task runs the screen for one partition.
type Task struct {
	st   *state.Store
	hist *state.Table[schemas.CustomerHistory]
	c    schemas.CustomerCheck
	at   int64 // the placed_at of the check being processed, at most maxSkew past its record's timestamp
	// now is the stream time, read at first use after an abort (loaded),
	// written at the flush if it moved (dirty); nextPurge is the stream
	// time of the next purge (0: at the next flush).
	now, nextPurge int64
	loaded, dirty  bool
	purgeBatch     int
	storeErr       error // a write of Put's that failed, returned by Process
	// window is the window of the last check processed (0: none yet);
	// migrationDone says the histories from before retention are indexed.
	window        int64
	migrationDone bool
	part          int32
	onFlush       func(int32, Stats)
	Stats         Stats
}

// Get returns customer's history, nil if none or expired by the stream
// time.
func (t *Task) Get(customer string) (*schemas.CustomerHistory, error) {
	at, ok, err := t.expiry(customer)
	if err != nil {
		return nil, err
	}
	if ok && at <= t.now {
		return nil, nil // expired; a purge deletes it
	}
	h, err := t.hist.Get(customer)
	if err != nil || h == nil || ok {
		return h, err
	}
	// Stored before retention existed, not indexed yet: it expires as
	// migrate will say.
	if oldExpiry(h, t.c.WindowMs) <= t.now {
		return nil, nil
	}
	return h, nil
}

// oldExpiry is when a history stored before retention existed expires:
// two windows plus grace after its newest order.
func oldExpiry(h *schemas.CustomerHistory, window int64) int64 {
	var newest int64
	for _, o := range h.Orders {
		newest = max(newest, o.PlacedAt)
	}
	return schemas.SatAdd(schemas.SatAdd(newest, 2*window), grace.Milliseconds())
}

// Put stores h and when it expires: two windows of the check that wrote it
// plus grace after the order checked, at least grace after the stream time,
// or later if an order checked before made it so.
func (t *Task) Put(h *schemas.CustomerHistory) {
	at := schemas.SatAdd(max(schemas.SatAdd(t.at, 2*t.c.WindowMs), t.now), grace.Milliseconds())
	prev, has, err := t.expiry(h.CustomerID)
	if err == nil && !has {
		// A history from before retention, not indexed yet, keeps the
		// expiry migrate would have given it, as if it had come first.
		var old *schemas.CustomerHistory
		if old, err = t.hist.Get(h.CustomerID); old != nil {
			at = max(at, oldExpiry(old, t.c.WindowMs))
		}
	}
	t.hist.Put(h.CustomerID, h)
	if err == nil && t.storeErr == nil {
		err = t.setExpiry(h.CustomerID, at, prev, has)
	}
	t.storeErr = cmp.Or(t.storeErr, err) // Check's Store.Put cannot fail: Process returns it
}

// Process answers one check.
func (t *Task) Process(r *topology.Record, out topology.Emitter) error {
	t.c = schemas.CustomerCheck{}
	if err := schemas.CustomerChecks.Decode(r.Value, &t.c); err != nil {
		return topology.BadInput("decode", err)
	}
	t.at = t.c.PlacedAt
	if r.Timestamp > 0 { // the record's time, not the poll's: a replay must decide the same
		t.at = min(t.at, schemas.SatAdd(r.Timestamp, maxSkew.Milliseconds()))
	}
	if err := t.load(); err != nil {
		return err
	}
	v, err := Check(t, r.Key, &t.c)
	if IsInvalid(err) {
		return topology.BadInput("validate", err)
	}
	if err == nil {
		err = t.storeErr
	}
	if err != nil {
		return err
	}
	t.window = t.c.WindowMs
	t.Stats.Checks++
	if v.Hold {
		t.Stats.Held++
	}
	if t.at > t.now {
		t.now, t.dirty = t.at, true
	}
	b, err := schemas.CustomerVerdicts.Encode(v)
	if err != nil {
		return err
	}
	out.Emit(TopicVerdicts, []byte(v.OrderID), b)
	return nil
}

func (t *Task) GlobalChanged(topology.Topic, []byte, int64, topology.Emitter) error { return nil }

// Flush forgets the idle customers due, once per purgeEvery of stream
// time, and stores the stream time.
func (t *Task) Flush(topology.Emitter) error {
	if err := t.load(); err != nil {
		return err
	}
	if err := t.migrate(); err != nil {
		return err
	}
	if t.now > 0 && t.now >= t.nextPurge {
		n, err := t.purge()
		if err != nil {
			return err
		}
		if t.nextPurge = schemas.SatAdd(t.now, purgeEvery.Milliseconds()); n == t.purgeBatch {
			t.nextPurge = t.now // more due: go on at the next flush
		}
	}
	if t.dirty {
		if err := t.st.Txn().Set([]byte(keyNow), binary.BigEndian.AppendUint64(nil, uint64(t.now))); err != nil {
			return err
		}
		t.dirty = false
	}
	if t.onFlush != nil {
		t.onFlush(t.part, t.Stats)
	}
	return nil
}

func (t *Task) Aborted() {
	t.loaded, t.dirty, t.now, t.nextPurge, t.storeErr, t.migrationDone = false, false, 0, 0, nil, false
}

func (t *Task) load() error {
	if t.loaded {
		return nil
	}
	v, ok, err := t.st.Txn().Get([]byte(keyNow))
	if err != nil {
		return err
	}
	t.now = 0
	if ok {
		if len(v) != 8 {
			return fmt.Errorf("screen: corrupt stream time: %d bytes", len(v))
		}
		t.now = int64(binary.BigEndian.Uint64(v))
	}
	t.loaded = true
	return nil
}

func dueKey(at int64, customer string) []byte {
	return fmt.Appendf(nil, "%s%016x/%s", prefixDue, uint64(max(at, 0)), customer)
}

// expiry returns when customer's history expires, if it has an expiry.
func (t *Task) expiry(customer string) (int64, bool, error) {
	v, ok, err := t.st.Txn().Get([]byte(prefixExpiry + customer))
	if err != nil || !ok {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("screen: corrupt expiry of customer %q: %d bytes", customer, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// setExpiry records that customer's history expires at at, unless the
// expiry it has (prev, if has) is later, and moves its index entry.
func (t *Task) setExpiry(customer string, at, prev int64, has bool) error {
	tx := t.st.Txn()
	if has {
		if prev >= at {
			return nil
		}
		if err := tx.Delete(dueKey(prev, customer)); err != nil {
			return err
		}
	}
	if err := tx.Set([]byte(prefixExpiry+customer), binary.BigEndian.AppendUint64(nil, uint64(at))); err != nil {
		return err
	}
	return tx.Set(dueKey(at, customer), nil)
}

var errEnough = errors.New("enough")

// purge forgets, in expiry order, at most purgeBatch histories whose expiry
// the stream time reached (an index entry whose customer expires later
// now, written again since, only goes), and returns how many entries it
// took.
func (t *Task) purge() (int, error) {
	type due struct {
		at       int64
		customer string
	}
	var dues []due
	err := t.st.Txn().Iterate([]byte(prefixDue), func(k, _ []byte) error {
		if len(dues) == t.purgeBatch {
			return errEnough
		}
		rest := k[len(prefixDue):]
		if len(rest) < 17 || rest[16] != '/' {
			return fmt.Errorf("screen: corrupt key %q", k)
		}
		at, err := strconv.ParseUint(string(rest[:16]), 16, 64)
		if err != nil {
			return fmt.Errorf("screen: corrupt key %q: %w", k, err)
		}
		if int64(at) > t.now {
			return errEnough
		}
		dues = append(dues, due{int64(at), string(rest[17:])})
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return 0, err
	}
	tx := t.st.Txn()
	for _, d := range dues {
		if err := tx.Delete(dueKey(d.at, d.customer)); err != nil {
			return 0, err
		}
		cur, ok, err := t.expiry(d.customer)
		if err != nil {
			return 0, err
		}
		if ok && cur > d.at {
			continue // written again since: it expires later
		}
		if err := tx.Delete([]byte(prefixExpiry + d.customer)); err != nil {
			return 0, err
		}
		t.hist.Delete(d.customer)
		t.Stats.Forgotten++
	}
	return len(dues), nil
}

const historyFormat byte = 1

type historyCodec struct{}

func (historyCodec) Append(dst []byte, v *schemas.CustomerHistory) ([]byte, error) {
	return schemas.CustomerHistories.Append(append(dst, historyFormat), v)
}

func (historyCodec) Decode(b []byte, v *schemas.CustomerHistory) error {
	if len(b) == 0 || b[0] != historyFormat {
		return fmt.Errorf("screen: stored history has format %v, this version reads %d", b[:min(len(b), 1)], historyFormat)
	}
	return schemas.CustomerHistories.Decode(b[1:], v)
}

// migrate indexes the histories stored before retention existed (they have
// no expiry), at most purgeBatch keys per flush, from where it stopped
// (keyMigrated), until done: each expires as oldExpiry says, with the
// window of the last check, which Get applies to those not indexed yet.
func (t *Task) migrate() error {
	if t.migrationDone || t.window <= 0 {
		return nil
	}
	tx := t.st.Txn()
	cursor, ok, err := tx.Get([]byte(keyMigrated))
	if err != nil {
		return err
	}
	if ok && string(cursor) == migrated {
		t.migrationDone = true
		return nil
	}
	keys, more, err := tx.KeysAfter(prefixHistory, string(cursor), t.purgeBatch)
	if err != nil {
		return err
	}
	for _, customer := range keys {
		if _, has, err := t.expiry(customer); err != nil || has {
			if err != nil {
				return err
			}
			continue
		}
		h, err := t.hist.Get(customer)
		if err != nil {
			return err
		}
		if h == nil {
			continue // deleted in this transaction
		}
		if err := t.setExpiry(customer, oldExpiry(h, t.window), 0, false); err != nil {
			return err
		}
	}
	if !more {
		return tx.Set([]byte(keyMigrated), []byte(migrated))
	}
	return tx.Set([]byte(keyMigrated), []byte(keys[len(keys)-1]))
}

package inventory

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/datadriven"
	"github.com/invroute/invroute/schemas"
)

// memStore is an in-memory Store for tests.
type memStore struct {
	skus  map[string]*schemas.SKUState
	index map[string]map[string]bool

	seen map[uint64][]byte
	res  map[[4]string]*schemas.Reservation

	reemitAfter  string
	reemitTS     int64
	reemitActive bool
	nodeReemits  []NodeReemit
}

func newMemStore() *memStore {
	return &memStore{skus: map[string]*schemas.SKUState{}, index: map[string]map[string]bool{}, seen: map[uint64][]byte{}, res: map[[4]string]*schemas.Reservation{}}
}

func (m *memStore) Get(sku string) (*schemas.SKUState, error) { return m.skus[sku], nil }
func (m *memStore) Put(st *schemas.SKUState)                  { m.skus[st.SKU] = st }
func (m *memStore) Index(node, sku string) error {
	if m.index[node] == nil {
		m.index[node] = map[string]bool{}
	}
	m.index[node][sku] = true
	return nil
}
func (m *memStore) SKUsAt(node, after string, limit int, fn func(string) error) (bool, error) {
	return keysAfter(slices.Collect(maps.Keys(m.index[node])), after, limit, fn)
}
func (m *memStore) SKUsAfter(after string, limit int, fn func(string) error) (bool, error) {
	return keysAfter(slices.Collect(maps.Keys(m.skus)), after, limit, fn)
}
func (m *memStore) NodeReemits() ([]NodeReemit, error) { return m.nodeReemits, nil }
func (m *memStore) SetNodeReemits(c []NodeReemit)      { m.nodeReemits = c }

func keysAfter(all []string, after string, limit int, fn func(string) error) (bool, error) {
	var keys []string
	for _, k := range all {
		if k > after {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == limit {
			return true, nil
		}
		if err := fn(k); err != nil {
			return false, err
		}
	}
	return false, nil
}
func (m *memStore) SeenBlocks(fn func(uint64, []byte) error) error {
	seqs := slices.Sorted(maps.Keys(m.seen))
	for _, s := range seqs {
		if err := fn(s, m.seen[s]); err != nil {
			return err
		}
	}
	return nil
}
func (m *memStore) PutSeenBlock(seq uint64, b []byte) { m.seen[seq] = b }
func (m *memStore) DeleteSeenBlock(seq uint64)        { delete(m.seen, seq) }
func (m *memStore) Reservation(sku, order, line, node string) (*schemas.Reservation, error) {
	return m.res[[4]string{sku, order, line, node}], nil
}
func (m *memStore) PutReservation(r *schemas.Reservation) {
	k := [4]string{r.SKU, r.OrderID, r.LineID, r.NodeID}
	if r.Qty == 0 {
		delete(m.res, k)
		return
	}
	c := *r
	m.res[k] = &c
}
func (m *memStore) Reemit() (string, int64, bool, error) {
	return m.reemitAfter, m.reemitTS, m.reemitActive, nil
}
func (m *memStore) SetReemit(after string, ts int64, active bool) {
	m.reemitAfter, m.reemitTS, m.reemitActive = after, ts, active
}

// memTables is an in-memory Tables for tests.
type memTables struct {
	nodes    map[string]*schemas.Node
	channels map[string]*schemas.Channel
}

func (t *memTables) Node(id string) *schemas.Node { return t.nodes[id] }
func (t *memTables) Channels() []*schemas.Channel {
	out := make([]*schemas.Channel, 0, len(t.channels))
	for _, c := range t.channels {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChannelID < out[j].ChannelID })
	return out
}

func arg(d *datadriven.TestData, key, def string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return strings.Join(a.Vals, ",")
		}
	}
	return def
}

func argInt(t *testing.T, d *datadriven.TestData, key string, def int64) int64 {
	s := arg(d, key, "")
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: bad %s=%q", d.Pos, key, s)
	}
	return v
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func formatResult(r *schemas.ReservationResult) string {
	s := fmt.Sprintf("result %s %s/%s %s at %s qty=%d attempt=%d ok=%t available=%d", r.Type, r.OrderID, r.LineID,
		r.SKU, r.NodeID, r.Qty, r.Attempt, r.OK, r.Available)
	if r.Reason != "" {
		s += " reason=" + strconv.Quote(r.Reason)
	}
	return s
}

func formatATS(u *schemas.AtsUpdate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ats %s v%d ats=%d at=%d", u.SKU, u.Version, u.ATS, u.UpdatedAt)
	for _, c := range u.Channels {
		fmt.Fprintf(&b, " %s=%d", c.ChannelID, c.ATS)
	}
	b.WriteString("\n")
	for _, n := range u.Nodes {
		fmt.Fprintf(&b, "  %s on_hand=%d reserved=%d safety=%d available=%d active=%t\n",
			n.NodeID, n.OnHand, n.Reserved, n.SafetyStock, n.Available, n.Active)
	}
	return b.String()
}

// TestDataDriven runs the scripts in testdata/. Commands:
//
//	config dedupe-window=MS dedupe-max=N reemit-batch=N
//	pending                does a re-emit wait for the next Flush?
//	node id=.. [type=WAREHOUSE] [active=true] [safety=N] [sku-safety=SKU:N,...]  (re-emits its SKUs)
//	delete-node id=..
//	channel id=.. [nodes=a,b] [types=STORE,...] [buffer-units=N] [buffer-percent=N] (re-emits all SKUs)
//	movement id=.. sku=.. node=.. type=.. qty=N [at=MS] [key=..] [ts=MS] [order=.. line=..]
//	reserve|release order=.. line=.. sku=.. node=.. [qty=N] [attempt=N] [safety=true] [key=..] [type=..]
//	reservations           prints every stored reservation
//	flush                  prints the AtsUpdates of the transaction
//	state sku=..           prints the state as the open transaction sees it (its own copy, else the stored one)
//	legacy-seen sku=.. ids=ID@MS,...  stores per-SKU seen ids as versions before the partition window did
//	window                 prints the stored blocks of the idempotency window
//	stats
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if strings.Contains(filepath.ToSlash(path), "testdata/fuzz/") {
			t.Skip("a fuzz seed corpus, not a script")
		}
		st := newMemStore()
		tables := &memTables{nodes: map[string]*schemas.Node{}, channels: map[string]*schemas.Channel{}}
		p := New(Config{})
		idOf := map[int64]string{} // movement id hash -> id, to print states
		var ts int64
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			ts = argInt(t, d, "ts", ts+1)
			switch d.Cmd {
			case "config":
				p = New(Config{
					DedupeWindow: parseMillis(argInt(t, d, "dedupe-window", 0)),
					DedupeMax:    int(argInt(t, d, "dedupe-max", 0)),
					ReemitBatch:  int(argInt(t, d, "reemit-batch", 0)),
				})
				return "ok"
			case "node":
				n := &schemas.Node{
					NodeID:      arg(d, "id", ""),
					Type:        schemas.NodeType(arg(d, "type", "WAREHOUSE")),
					Active:      arg(d, "active", "true") == "true",
					SafetyStock: int32(argInt(t, d, "safety", 0)),
				}
				for _, kv := range list(arg(d, "sku-safety", "")) {
					sku, v, _ := strings.Cut(kv, ":")
					q, _ := strconv.Atoi(v)
					if n.SKUSafetyStock == nil {
						n.SKUSafetyStock = map[string]int32{}
					}
					n.SKUSafetyStock[sku] = int32(q)
				}
				tables.nodes[n.NodeID] = n
				return errString(p.NodeChanged(st, n.NodeID, ts))
			case "delete-node":
				id := arg(d, "id", "")
				delete(tables.nodes, id)
				return errString(p.NodeChanged(st, id, ts))
			case "channel":
				c := &schemas.Channel{
					ChannelID:     arg(d, "id", ""),
					Nodes:         list(arg(d, "nodes", "")),
					BufferUnits:   int32(argInt(t, d, "buffer-units", 0)),
					BufferPercent: int32(argInt(t, d, "buffer-percent", 0)),
				}
				for _, ty := range list(arg(d, "types", "")) {
					c.NodeTypes = append(c.NodeTypes, schemas.NodeType(ty))
				}
				tables.channels[c.ChannelID] = c
				return errString(p.ChannelsChanged(st, ts))
			case "movement":
				m := &schemas.StockMovement{
					MovementID: arg(d, "id", ""),
					SKU:        arg(d, "sku", ""),
					NodeID:     arg(d, "node", ""),
					Type:       schemas.MovementType(arg(d, "type", "")),
					Qty:        argInt(t, d, "qty", 0),
					OccurredAt: argInt(t, d, "at", ts),
				}
				if o := arg(d, "order", ""); o != "" {
					l := arg(d, "line", "")
					m.OrderID, m.LineID = &o, &l
				}
				before := p.Stats
				res, err := p.Movement(st, []byte(arg(d, "key", m.SKU)), m, ts)
				switch {
				case err != nil:
					return errString(err)
				case p.Stats.Duplicates > before.Duplicates:
					return "duplicate"
				case res != nil:
					return "ok\n" + formatResult(res)
				}
				return "ok"
			case "reserve", "release", "decrease":
				c := &schemas.ReservationCommand{
					OrderID:          arg(d, "order", ""),
					LineID:           arg(d, "line", ""),
					Type:             schemas.ReservationOp(strings.ToUpper(d.Cmd)),
					SKU:              arg(d, "sku", ""),
					NodeID:           arg(d, "node", ""),
					Qty:              argInt(t, d, "qty", 0),
					Attempt:          int32(argInt(t, d, "attempt", 1)),
					AllowSafetyStock: arg(d, "safety", "false") == "true",
					IssuedAt:         ts,
				}
				if ty := arg(d, "type", ""); ty != "" {
					c.Type = schemas.ReservationOp(ty)
				}
				res, err := p.Command(st, tables, []byte(arg(d, "key", c.SKU)), c, ts)
				if err != nil {
					return errString(err)
				}
				return formatResult(res)
			case "reservations":
				var lines []string
				for k, r := range st.res {
					lines = append(lines, fmt.Sprintf("%s %s/%s at %s: %d (attempt %d)", k[0], r.OrderID, r.LineID, r.NodeID, r.Qty, r.Attempt))
				}
				sort.Strings(lines)
				if len(lines) == 0 {
					return "none"
				}
				return strings.Join(lines, "\n")
			case "flush":
				var b strings.Builder
				err := p.Flush(st, tables, func(u *schemas.AtsUpdate) error {
					b.WriteString(formatATS(u))
					return nil
				})
				if err != nil {
					return errString(err)
				}
				if b.Len() == 0 {
					return "no updates"
				}
				return b.String()
			case "state": // as the open transaction sees it
				s := st.skus[arg(d, "sku", "")]
				if i, ok := p.skus[arg(d, "sku", "")]; ok && p.txn[i].st != nil {
					s = p.txn[i].st
				}
				if s == nil {
					return "absent"
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%s v%d\n", s.SKU, s.Version)
				for _, n := range s.Nodes {
					fmt.Fprintf(&b, "  %s on_hand=%d reserved=%d\n", n.NodeID, n.OnHand, n.Reserved)
				}
				if len(s.Seen) > 0 {
					var ids []string
					for _, s := range s.Seen {
						ids = append(ids, idOf[s.IDHash])
					}
					fmt.Fprintf(&b, "  legacy seen=%s\n", strings.Join(ids, ","))
				}
				return b.String()
			case "legacy-seen":
				sku := arg(d, "sku", "")
				s := st.skus[sku]
				if s == nil {
					s = &schemas.SKUState{SKU: sku}
				}
				s = clone(s, sku)
				s.Seen = nil
				for _, e := range list(arg(d, "ids", "")) {
					id, at, _ := strings.Cut(e, "@")
					ms, _ := strconv.ParseInt(at, 10, 64)
					h := int64(xxhash.Sum64String(id))
					idOf[h] = id
					s.Seen = append(s.Seen, schemas.SeenMovement{IDHash: h, OccurredAt: ms})
				}
				st.Put(s)
				return "ok"
			case "window":
				var b strings.Builder
				err := st.SeenBlocks(func(seq uint64, v []byte) error {
					blk, err := decodeBlock(seq, v)
					fmt.Fprintf(&b, "block %d: ids=%d newest=%d\n", seq, len(blk.ids), blk.maxAt)
					return err
				})
				if err != nil {
					return errString(err)
				}
				if b.Len() == 0 {
					return "empty"
				}
				return b.String()
			case "pending":
				ok, err := p.Pending(st)
				if err != nil {
					return errString(err)
				}
				return fmt.Sprint(ok)
			case "stats":
				s := p.Stats
				return fmt.Sprintf("applied=%d duplicates=%d negative=%d emitted=%d reserved=%d refused=%d released=%d",
					s.Applied, s.Duplicates, s.Negative, s.Emitted, s.Reserved, s.Refused, s.Released)
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}

func parseMillis(ms int64) (d time.Duration) { return time.Duration(ms) * 1e6 }

func errString(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

// TestFindNode: findNode agrees with slices.BinarySearchFunc, found or not,
// on sorted node lists of every length up to 6.
func TestFindNode(t *testing.T) {
	ids := []string{"A", "B", "C", "D", "E", "F"}
	for n := 0; n <= len(ids); n++ {
		var nodes []schemas.NodeStock
		for _, id := range ids[:n] {
			nodes = append(nodes, schemas.NodeStock{NodeID: id + "1"})
		}
		for _, id := range []string{"", "A", "A1", "B0", "C1", "D2", "F1", "G"} {
			wi, wf := slices.BinarySearchFunc(nodes, id, func(ns schemas.NodeStock, id string) int { return strings.Compare(ns.NodeID, id) })
			if i, f := findNode(nodes, id); i != wi || f != wf {
				t.Fatalf("%d nodes, %q: findNode = %d, %v; want %d, %v", n, id, i, f, wi, wf)
			}
		}
	}
}

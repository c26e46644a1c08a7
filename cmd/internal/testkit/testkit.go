// Package testkit is the integration tests' harness: a broker (the real one
// named by KAFKA_BROKERS, or an in-process kfake), a random stream of stock
// movements with duplicates and bad records, an independent model of what
// the engine must publish, and a reader of the ats and dead-letter topics
// that checks versions.
package testkit

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invroute/invroute/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Brokers returns the brokers of the real Kafka named by KAFKA_BROKERS, or
// starts an in-process kfake cluster. With INVROUTE_REQUIRE_KAFKA=1 a
// missing KAFKA_BROKERS fails the test instead, so that CI cannot silently
// fall back.
func Brokers(t testing.TB) (brokers string, real bool) {
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return b, true
	}
	if os.Getenv("INVROUTE_REQUIRE_KAFKA") == "1" {
		t.Fatal("INVROUTE_REQUIRE_KAFKA=1 but KAFKA_BROKERS is not set: start deploy/kafka/kafka.sh up")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], false
}

// Prefix returns a topic prefix unique to this test run.
func Prefix(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("t%d-%s.", time.Now().UnixNano()%1e9, name)
}

// Client returns a plain producer/admin client.
func Client(t testing.TB, brokers string, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.ProducerLinger(2 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Nodes of the test network: one inactive, safety stock per node and per SKU.
func Nodes() []schemas.Node {
	return []schemas.Node{
		{NodeID: "W1", Type: schemas.Warehouse, Country: "FR", Active: true, ShipEnabled: true, SafetyStock: 2,
			SKUSafetyStock: map[string]int32{"S00001": 7}},
		{NodeID: "W2", Type: schemas.Warehouse, Country: "DE", Active: true, ShipEnabled: true},
		{NodeID: "T1", Type: schemas.ThreePL, Country: "NL", Active: true, ShipEnabled: true, SafetyStock: 1},
		{NodeID: "S1", Type: schemas.Store, Country: "IT", Active: true, PickupEnabled: true, SafetyStock: 1},
		{NodeID: "S2", Type: schemas.Store, Country: "ES", Active: false, PickupEnabled: true},
		// "U1" gets stock but is never configured: kept, not sold.
	}
}

// Channels of the test network.
func Channels() []schemas.Channel {
	return []schemas.Channel{
		{ChannelID: "market", NodeTypes: []schemas.NodeType{schemas.Warehouse, schemas.ThreePL}, BufferUnits: 1, BufferPercent: 10},
		{ChannelID: "stores", Nodes: []string{"S1", "S2"}},
		{ChannelID: "web"},
	}
}

// SeedCatalog writes Nodes and Channels to the prefixed topics.
func SeedCatalog(t testing.TB, cl *kgo.Client, prefix string) {
	for _, n := range Nodes() {
		b, err := schemas.Nodes.Encode(&n)
		produceSync(t, cl, prefix+"nodes", n.NodeID, b, err)
	}
	for _, c := range Channels() {
		b, err := schemas.Channels.Encode(&c)
		produceSync(t, cl, prefix+"channels", c.ChannelID, b, err)
	}
}

// Model is the tests' own account of what the engine must publish. It is
// written from the rules in the README, not from the processor's code.
type Model struct {
	onHand map[string]map[string]int64 // sku -> node -> on_hand
	seen   map[string]bool             // sku + "\x00" + movement id
	// Nodes and Channels are the configuration the engine was given (tests
	// that change one change it here too, with SetNode and SetChannel).
	Nodes    []schemas.Node
	Channels []schemas.Channel
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{onHand: map[string]map[string]int64{}, seen: map[string]bool{}, Nodes: Nodes(), Channels: Channels()}
}

// produceSync writes one record and fails the test if it cannot.
func produceSync(t testing.TB, cl *kgo.Client, topic, key string, value []byte, err error) {
	t.Helper()
	if err == nil {
		err = cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// SetNode writes a node to the prefixed nodes topic and to the model.
func (m *Model) SetNode(t testing.TB, cl *kgo.Client, prefix string, n schemas.Node) {
	b, err := schemas.Nodes.Encode(&n)
	produceSync(t, cl, prefix+"nodes", n.NodeID, b, err)
	for i := range m.Nodes {
		if m.Nodes[i].NodeID == n.NodeID {
			m.Nodes[i] = n
			return
		}
	}
	m.Nodes = append(m.Nodes, n)
}

// SetChannel writes a channel to the prefixed channels topic and to the model.
func (m *Model) SetChannel(t testing.TB, cl *kgo.Client, prefix string, c schemas.Channel) {
	b, err := schemas.Channels.Encode(&c)
	produceSync(t, cl, prefix+"channels", c.ChannelID, b, err)
	for i := range m.Channels {
		if m.Channels[i].ChannelID == c.ChannelID {
			m.Channels[i] = c
			return
		}
	}
	m.Channels = append(m.Channels, c)
}

// Apply applies a valid movement (duplicates are ignored).
func (m *Model) Apply(mv *schemas.StockMovement) {
	k := mv.SKU + "\x00" + mv.MovementID
	if m.seen[k] {
		return
	}
	m.seen[k] = true
	if m.onHand[mv.SKU] == nil {
		m.onHand[mv.SKU] = map[string]int64{}
	}
	switch mv.Type {
	case schemas.Receipt, schemas.TransferIn, schemas.ReturnRestock, schemas.Adjustment:
		m.onHand[mv.SKU][mv.NodeID] += mv.Qty
	case schemas.Shipment, schemas.TransferOut, schemas.Damage:
		m.onHand[mv.SKU][mv.NodeID] -= mv.Qty
	case schemas.Count:
		m.onHand[mv.SKU][mv.NodeID] = mv.Qty
	}
}

// SKUs returns the SKUs the model knows.
func (m *Model) SKUs() []string {
	var out []string
	for s := range m.onHand {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Expected is what the last AtsUpdate of one SKU must say.
type Expected struct {
	ATS      int64
	Channels map[string]int64
	OnHand   map[string]int64
	Avail    map[string]int64
}

// Expect computes the expected ATS of sku under Nodes and Channels.
func (m *Model) Expect(sku string) Expected {
	e := Expected{Channels: map[string]int64{}, OnHand: map[string]int64{}, Avail: map[string]int64{}}
	nodes := map[string]schemas.Node{}
	for _, n := range m.Nodes {
		nodes[n.NodeID] = n
	}
	for node, oh := range m.onHand[sku] {
		e.OnHand[node] = oh
		n, ok := nodes[node]
		if !ok || !n.Active {
			e.Avail[node] = 0
			continue
		}
		safety := int64(n.SafetyStock)
		if v, ok := n.SKUSafetyStock[sku]; ok {
			safety = int64(v)
		}
		e.Avail[node] = max(0, oh-safety)
		e.ATS += e.Avail[node]
	}
	for _, c := range m.Channels {
		var sum int64
		for node, a := range e.Avail {
			n, ok := nodes[node]
			if !ok || !n.Active {
				continue
			}
			if (len(c.Nodes) == 0 && len(c.NodeTypes) == 0) || slices.Contains(c.Nodes, node) || slices.Contains(c.NodeTypes, n.Type) {
				sum += a
			}
		}
		e.Channels[c.ChannelID] = max(0, sum*int64(100-c.BufferPercent)/100-int64(c.BufferUnits))
	}
	return e
}

// OversizeBytes is the size of the oversized bad records Stream sends;
// engines under test must run with max_record_bytes = MaxRecordBytes.
const (
	MaxRecordBytes = 16 << 10
	OversizeBytes  = 20 << 10
)

// Stream generates movements and bad records.
type Stream struct {
	rnd    *rand.Rand
	skus   int
	seq    int
	sent   []*kgo.Record // valid movements sent, for duplicates
	Model  *Model
	Bad    map[string]bool // value bytes (as string) of bad records sent
	Prefix string
}

// NewStream returns a stream over skus SKUs.
func NewStream(seed int64, skus int, prefix string) *Stream {
	return &Stream{rnd: rand.New(rand.NewSource(seed)), skus: skus, Model: NewModel(), Bad: map[string]bool{}, Prefix: prefix}
}

var nodeIDs = []string{"W1", "W2", "T1", "S1", "S2", "U1"}

// Next returns the next record: a new movement (most), a duplicate of an
// earlier one (about 3%), or a bad record (about 2%).
func (s *Stream) Next() *kgo.Record {
	s.seq++
	topic := s.Prefix + "stock-movements"
	switch x := s.rnd.Intn(100); {
	case x < 3 && len(s.sent) > 0:
		r := s.sent[len(s.sent)-1-s.rnd.Intn(min(len(s.sent), 50))]
		return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}
	case x < 5:
		r := s.bad(topic)
		s.Bad[string(r.Value)] = true
		return r
	}
	sku := fmt.Sprintf("S%05d", int(s.rnd.ExpFloat64()*float64(s.skus)/4)%s.skus)
	mv := schemas.StockMovement{
		MovementID: fmt.Sprintf("m%d", s.seq),
		SKU:        sku,
		NodeID:     nodeIDs[s.rnd.Intn(len(nodeIDs))],
		OccurredAt: time.Now().UnixMilli(),
	}
	switch x := s.rnd.Intn(100); {
	case x < 35:
		mv.Type, mv.Qty = schemas.Receipt, 1+s.rnd.Int63n(20)
	case x < 65:
		mv.Type, mv.Qty = schemas.Shipment, 1+s.rnd.Int63n(5)
	case x < 70:
		mv.Type, mv.Qty = schemas.Count, s.rnd.Int63n(30)
	case x < 75:
		mv.Type, mv.Qty = schemas.TransferOut, 1+s.rnd.Int63n(3)
	case x < 80:
		mv.Type, mv.Qty = schemas.TransferIn, 1+s.rnd.Int63n(3)
	case x < 87:
		mv.Type, mv.Qty = schemas.ReturnRestock, 1
	case x < 92:
		mv.Type, mv.Qty = schemas.Damage, 1
	default:
		mv.Type, mv.Qty = schemas.Adjustment, s.rnd.Int63n(9)-4
		if mv.Qty == 0 {
			mv.Qty = 2
		}
	}
	if s.rnd.Intn(10) == 0 {
		order, line := "o1", "l1"
		mv.OrderID, mv.LineID = &order, &line
	}
	b, err := schemas.StockMovements.Encode(&mv)
	if err != nil {
		panic(err)
	}
	s.Model.Apply(&mv)
	r := &kgo.Record{Topic: topic, Key: []byte(sku), Value: b}
	s.sent = append(s.sent, r)
	if len(s.sent) > 1000 {
		s.sent = s.sent[500:]
	}
	return r
}

// bad returns one record the engine must dead-letter, of a random kind.
func (s *Stream) bad(topic string) *kgo.Record {
	valid := func(mv schemas.StockMovement) []byte {
		b, err := schemas.StockMovements.Encode(&mv)
		if err != nil {
			panic(err)
		}
		return b
	}
	id := fmt.Sprintf("bad%d", s.seq)
	good := schemas.StockMovement{MovementID: id, SKU: "S00000", NodeID: "W1", Type: schemas.Receipt, Qty: 1}
	key := []byte("S00000")
	var v []byte
	switch s.rnd.Intn(8) {
	case 7: // oversized (a valid movement, but larger than MaxRecordBytes)
		good.MovementID = id + strings.Repeat("x", OversizeBytes)
		v = valid(good)
	case 0: // garbage
		v = []byte(fmt.Sprintf("\x07garbage-%d\xff\xff\xff", s.seq))
	case 1: // trailing bytes after a complete record
		v = append(valid(good), 0x02, 0x02)
	case 2: // Confluent framing with an unknown schema id
		v = schemas.Frame(nil, 999, valid(good))
	case 3: // key disagrees with sku
		key = []byte("S00001")
		v = valid(good)
	case 4: // qty <= 0 where it must be positive
		good.Qty = 0
		v = valid(good)
	case 5: // unknown enum value: type index 42
		b := valid(good)
		v = tweakEnum(b, good)
	default: // truncated
		b := valid(good)
		v = b[:len(b)-1]
	}
	return &kgo.Record{Topic: topic, Key: key, Value: v}
}

// tweakEnum rewrites the movement type's enum index (it follows three
// strings) to 42, which no symbol has.
func tweakEnum(b []byte, mv schemas.StockMovement) []byte {
	off := 0
	for _, s := range []string{mv.MovementID, mv.SKU, mv.NodeID} {
		off += 1 + len(s) // one-byte zigzag length for short strings
	}
	out := slices.Clone(b)
	out[off] = 84 // zigzag(42)
	return out
}

// Produce sends n records of s and waits for them.
func (s *Stream) Produce(t testing.TB, cl *kgo.Client, n int) {
	produceAll(cl, n, s.Next, t.Fatal)
}

// Output reads the ats and dead-letter topics read_committed and keeps the
// last AtsUpdate per SKU; every version must be above the previous one.
type Output struct {
	mu          sync.Mutex
	Last        map[string]schemas.AtsUpdate
	Regressions []string
	DeadLetters map[string]int // value -> count
	Headers     map[string]map[string]string
	Updates     int
}

// ReadAll reads both topics from the start up to their current end.
func ReadAll(t testing.TB, brokers, prefix string) *Output {
	t.Helper()
	out := &Output{Last: map[string]schemas.AtsUpdate{}, DeadLetters: map[string]int{}, Headers: map[string]map[string]string{}}
	ReadToEnd(t, brokers, func(r *kgo.Record) { out.add(t, prefix, r) }, prefix+"ats", prefix+"dead-letter")
	return out
}

// ReadToEnd calls fn for every committed record of topics, from the start
// to their last stable offsets as of the call, in order per partition.
func ReadToEnd(t testing.TB, brokers string, fn func(*kgo.Record), topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := Client(t, brokers, kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	need := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if need[o.Topic] == nil {
				need[o.Topic] = map[int32]int64{}
			}
			need[o.Topic][o.Partition] = o.Offset
		}
	})
	pending := 0
	for _, m := range need {
		pending += len(m)
	}
	for pending > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading outputs: %v (still %d partitions to read)", ctx.Err(), pending)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := need[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(need[r.Topic], r.Partition)
				pending--
			}
			if r.Attrs.IsControl() {
				return
			}
			fn(r)
		})
	}
}

func (o *Output) add(t testing.TB, prefix string, r *kgo.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Topic == prefix+"dead-letter" {
		o.DeadLetters[string(r.Value)]++
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		o.Headers[string(r.Value)] = h
		return
	}
	var u schemas.AtsUpdate
	if err := schemas.AtsUpdates.Decode(r.Value, &u); err != nil {
		t.Errorf("undecodable ATS update at %s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err)
		return
	}
	o.Updates++
	if prev, ok := o.Last[u.SKU]; ok && u.Version <= prev.Version {
		o.Regressions = append(o.Regressions, fmt.Sprintf("%s: version %d after %d", u.SKU, u.Version, prev.Version))
	}
	o.Last[u.SKU] = u
}

// Check compares the output with the model and the bad records sent; it
// returns one line per difference (at most 20).
func (o *Output) Check(s *Stream) []string {
	var diffs []string
	add := func(format string, args ...any) {
		if len(diffs) < 20 {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	for _, sku := range s.Model.SKUs() {
		want := s.Model.Expect(sku)
		got, ok := o.Last[sku]
		if !ok {
			add("%s: no ATS update", sku)
			continue
		}
		if got.ATS != want.ATS {
			add("%s: ats %d, want %d", sku, got.ATS, want.ATS)
		}
		for _, c := range got.Channels {
			if c.ATS != want.Channels[c.ChannelID] {
				add("%s: channel %s ats %d, want %d", sku, c.ChannelID, c.ATS, want.Channels[c.ChannelID])
			}
		}
		if len(got.Channels) != len(want.Channels) {
			add("%s: %d channels, want %d", sku, len(got.Channels), len(want.Channels))
		}
		for _, n := range got.Nodes {
			if n.OnHand != want.OnHand[n.NodeID] || n.Available != want.Avail[n.NodeID] {
				add("%s@%s: on_hand %d available %d, want %d and %d", sku, n.NodeID, n.OnHand, n.Available,
					want.OnHand[n.NodeID], want.Avail[n.NodeID])
			}
		}
		if len(got.Nodes) != len(want.OnHand) {
			add("%s: %d nodes, want %d", sku, len(got.Nodes), len(want.OnHand))
		}
	}
	if len(o.Last) != len(s.Model.SKUs()) {
		add("ATS for %d SKUs, model has %d", len(o.Last), len(s.Model.SKUs()))
	}
	for _, r := range o.Regressions {
		add("version regression: %s", r)
	}
	for v := range s.Bad {
		if o.DeadLetters[v] == 0 {
			add("bad record %q not in dead-letter", v)
		}
	}
	for v, n := range o.DeadLetters {
		if !s.Bad[v] {
			add("unexpected dead letter %q", v)
		} else if n > 1 { // Stream never re-sends a bad record
			add("dead letter %q written %d times", v, n)
		}
	}
	return diffs
}

// WaitCaughtUp waits until group has committed the end of the movements
// topic.
func WaitCaughtUp(t testing.TB, cl *kgo.Client, group, prefix string, timeout time.Duration) {
	t.Helper()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	topic := prefix + "stock-movements"
	var lag int64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		committed, err2 := adm.FetchOffsets(ctx, group)
		cancel()
		if err1 == nil && err2 == nil {
			lag = 0
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := committed.Lookup(topic, o.Partition)
				switch {
				case !ok:
					lag += o.Offset
				default:
					lag += o.Offset - c.At
				}
			})
			if lag == 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s did not catch up in %v (lag %d)", group, timeout, lag)
}

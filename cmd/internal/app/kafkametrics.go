package app

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// kafkaMetrics is franz-go's kprom plugin for all the Kafka clients of one
// topology engine (its admin client, global table readers and
// transactional sessions): metrics invroute_kafka_* with the label
// topology, among them records and bytes fetched and produced per topic.
//
// A kprom.Metrics serves one client: it registers its collectors when the
// client is created and unregisters them when it closes. The engine's
// clients share their options, so this hook initialises kprom once, with
// the first client that is a group member (the transactional session; its
// buffered-records gauges follow that client), never unregisters, and
// passes every client's events on: counters and histograms add up all the
// engine's clients.
type kafkaMetrics struct {
	m     *kprom.Metrics
	once  sync.Once
	ready atomic.Bool
}

func newKafkaMetrics(reg prometheus.Registerer, topology string) *kafkaMetrics {
	return &kafkaMetrics{m: kprom.NewMetrics("invroute_kafka",
		kprom.Registerer(reg),
		kprom.WithStaticLabel(prometheus.Labels{"topology": topology}),
		kprom.FetchAndProduceDetail(kprom.ByTopic, kprom.Records, kprom.Batches, kprom.UncompressedBytes, kprom.ConsistentNaming),
	)}
}

func (k *kafkaMetrics) OnNewClient(cl *kgo.Client) {
	if g, _ := cl.OptValue(kgo.ConsumerGroup).(string); g == "" {
		return
	}
	k.once.Do(func() {
		k.m.OnNewClient(cl)
		k.ready.Store(true)
	})
}

func (k *kafkaMetrics) OnClientClosed(*kgo.Client) {}

func (k *kafkaMetrics) OnBrokerConnect(meta kgo.BrokerMetadata, d time.Duration, c net.Conn, err error) {
	if k.ready.Load() {
		k.m.OnBrokerConnect(meta, d, c, err)
	}
}

func (k *kafkaMetrics) OnBrokerDisconnect(meta kgo.BrokerMetadata, c net.Conn) {
	if k.ready.Load() {
		k.m.OnBrokerDisconnect(meta, c)
	}
}

func (k *kafkaMetrics) OnBrokerThrottle(meta kgo.BrokerMetadata, d time.Duration, before bool) {
	if k.ready.Load() {
		k.m.OnBrokerThrottle(meta, d, before)
	}
}

func (k *kafkaMetrics) OnProduceBatchWritten(meta kgo.BrokerMetadata, topic string, p int32, m kgo.ProduceBatchMetrics) {
	if k.ready.Load() {
		k.m.OnProduceBatchWritten(meta, topic, p, m)
	}
}

func (k *kafkaMetrics) OnFetchBatchRead(meta kgo.BrokerMetadata, topic string, p int32, m kgo.FetchBatchMetrics) {
	if k.ready.Load() {
		k.m.OnFetchBatchRead(meta, topic, p, m)
	}
}

func (k *kafkaMetrics) OnBrokerRead(meta kgo.BrokerMetadata, key int16, n int, wait, d time.Duration, err error) {
	if k.ready.Load() {
		k.m.OnBrokerRead(meta, key, n, wait, d, err)
	}
}

func (k *kafkaMetrics) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, n int, wait, d time.Duration, err error) {
	if k.ready.Load() {
		k.m.OnBrokerWrite(meta, key, n, wait, d, err)
	}
}

func (k *kafkaMetrics) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if k.ready.Load() {
		k.m.OnBrokerE2E(meta, key, e2e)
	}
}

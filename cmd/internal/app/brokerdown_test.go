package app

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/invroute/invroute/cmd/internal/testkit"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestBrokerDown takes the (embedded, persistent) broker away in the middle
// of the stream, for longer than a transaction, and brings it back on the
// same port and data: open transactions fail with an unknown outcome, the
// engine re-initialises and rebuilds its state from what Kafka committed,
// and the result equals the model.
func TestBrokerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for the broker to come back")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	start := func() *kfake.Cluster {
		t.Helper()
		var c *kfake.Cluster
		var err error
		for i := 0; i < 50; i++ { // the port may linger briefly
			if c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir)); err == nil {
				return c
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal(err)
		return nil
	}
	cluster := start()
	brokers := "127.0.0.1:" + strconv.Itoa(port)
	prefix := testkit.Prefix(t)
	o := testOptions(t, brokers, prefix)
	if _, err := CreateTopics(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, brokers)
	testkit.SeedCatalog(t, cl, prefix)
	s := testkit.NewStream(11, 1000, prefix)
	stop := startEngine(t, o)
	s.Produce(t, cl, 3000)
	time.Sleep(300 * time.Millisecond) // mid-stream
	cluster.Close()
	time.Sleep(3 * time.Second)
	cluster = start()
	defer cluster.Close()
	t.Logf("broker back on %v", cluster.ListenAddrs())
	s.Produce(t, cl, 3000)
	testkit.WaitCaughtUp(t, cl, o.Group, prefix, 180*time.Second)
	out := testkit.ReadAll(t, brokers, prefix)
	for _, d := range out.Check(s) {
		t.Error(d)
	}
	stop()
}

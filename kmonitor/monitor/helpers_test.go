package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// env is a Kafka (kfake) and a ZooKeeper for one test.
type env struct {
	kafka   *kfake.Cluster
	brokers []string
	zk      *testcluster.ZooKeeper
	conn    *zk.Conn
}

func newEnv(t *testing.T, opts ...kfake.Opt) *env {
	t.Helper()
	k := testcluster.Kafka(t, opts...)
	z := testcluster.StartZooKeeper(t)
	return &env{kafka: k, brokers: testcluster.Brokers(k), zk: z, conn: z.Conn(t)}
}

// clusterConfig returns a cluster section for e's ZooKeeper under chroot.
func (e *env) clusterConfig(name, chroot string) ClusterConfig {
	cc := ClusterDefaults()
	cc.Name, cc.Chroot = name, chroot
	cc.ZKHosts = []string{e.zk.Addr}
	cc.BrokerHosts = e.brokers
	cc.ZKSessionTimeoutMs = 4000
	return cc
}

// testConfig returns a configuration of clusters polling every poll.
func testConfig(poll time.Duration, window int, clusters ...ClusterConfig) Config {
	c := Defaults()
	c.Base.Clusters = nil
	for _, cc := range clusters {
		c.Base.Clusters = append(c.Base.Clusters, cc.Name)
	}
	c.Clusters = clusters
	c.Base.PollIntervalMs = int(poll / time.Millisecond)
	c.Base.StatusWindow = window
	c.Base.Shutdown = 5 * time.Second
	c.HTTP.ListenAddress = "127.0.0.1"
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("KMONITOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// running is a Monitor serving on a loopback port.
type running struct {
	m   *Monitor
	url string
}

// start serves cfg until the test ends.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	return startMonitor(t, cfg, testLogger(t))
}

// startMonitor serves cfg, logging to log, until the test ends.
func startMonitor(t *testing.T, cfg Config, log *slog.Logger) *running {
	t.Helper()
	m, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return &running{m: m, url: "http://" + ln.Addr().String()}
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// body returns the body of GET url, failing unless the status is 200.
func (r *running) body(t *testing.T, pathQuery string) string {
	t.Helper()
	code, b := get(t, r.url+pathQuery)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", pathQuery, code, b)
	}
	return b
}

// lag returns the /lag rows.
func (r *running) lag(t *testing.T, query string) []PartitionLag {
	t.Helper()
	var rows []PartitionLag
	if err := json.Unmarshal([]byte(r.body(t, "/lag"+query)), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// row returns the /lag row of module/topic/partition, or nil.
func (r *running) row(t *testing.T, cluster, module, topic string, p int32) *PartitionLag {
	t.Helper()
	for _, row := range r.lag(t, "") {
		if row.Cluster == cluster && row.Module == module && row.Topic == topic && row.Partition == p {
			return &row
		}
	}
	return nil
}

// client returns a producing client closed when the test ends.
func (e *env) client(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes n records to topic/partition stamped ts (now when zero).
func (e *env) produce(t *testing.T, topic string, p int32, n int, ts time.Time) {
	t.Helper()
	cl := e.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte("v"), Timestamp: ts}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, p, err)
	}
}

// ensure creates node and its parents.
func ensure(t *testing.T, conn *zk.Conn, node string, data []byte) {
	t.Helper()
	if node == "/" {
		return
	}
	ensure(t, conn, path.Dir(node), nil)
	_, err := conn.Create(node, data, 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("create %s: %v", node, err)
	}
}

// commit writes a module's committed offset.
func commit(t *testing.T, conn *zk.Conn, chroot, group, topic string, p int32, off int64) {
	t.Helper()
	node := zkconsumers.New(chroot).Offset(group, topic, p)
	ensure(t, conn, node, zkconsumers.EncodeOffset(off))
	if _, err := conn.Set(node, zkconsumers.EncodeOffset(off), -1); err != nil {
		t.Fatalf("set %s: %v", node, err)
	}
}

// own writes an owner node.
func own(t *testing.T, conn *zk.Conn, chroot, group, topic string, p int32, instance string) {
	t.Helper()
	ensure(t, conn, zkconsumers.New(chroot).Owner(group, topic, p), []byte(instance))
}

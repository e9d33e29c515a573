package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

const chroot = "/kt"

// delivery is one request the test backend received.
type delivery struct {
	path      string
	topic     string
	partition int32
	offset    int64
	key       string
	method    string
	seq       int
	host      string
	ctype     string
	trace     string // traceparent header
}

// backend is an HTTP backend that records every request and answers with what
// answer decides (200 when nil).
type backend struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []delivery
	answer  func(d delivery, n int) int // status; n counts the requests so far
	active  sync.Map                    // key -> *atomic.Int32, pushes of a key in progress
	overlap atomic.Int32
	delay   func(d delivery) time.Duration
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, _ := strconv.Atoi(q.Get("partition"))
	off, _ := strconv.ParseInt(q.Get("transid"), 10, 64)
	d := delivery{path: r.URL.Path, topic: q.Get("topic"), partition: int32(p), offset: off, key: q.Get("key"), method: q.Get("method"), host: r.Host, ctype: r.Header.Get("Content-Type"), trace: r.Header.Get("Traceparent")}
	var v struct {
		Seq int `msgpack:"seq"`
	}
	if err := msgpack.NewDecoder(r.Body).Decode(&v); err == nil {
		d.seq = v.Seq
	}
	if d.key != "" {
		c, _ := b.active.LoadOrStore(d.key, new(atomic.Int32))
		if c.(*atomic.Int32).Add(1) > 1 {
			b.overlap.Add(1)
		}
		defer c.(*atomic.Int32).Add(-1)
	}
	if b.delay != nil {
		time.Sleep(b.delay(d))
	}
	b.mu.Lock()
	n := len(b.got)
	b.got = append(b.got, d)
	answer := b.answer
	b.mu.Unlock()
	status := 200
	if answer != nil {
		status = answer(d, n)
	}
	w.WriteHeader(status)
}

func (b *backend) deliveries() []delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivery(nil), b.got...)
}

// env is Kafka, ZooKeeper (with offset_store zookeeper) and a backend for one
// test.
type env struct {
	store    string // offset_store
	protocol string // group_protocol, with offset_store kafka
	kafka    *kfake.Cluster
	brokers  []string
	zk       *testcluster.ZooKeeper // nil with offset_store kafka
	zkConn   *zk.Conn
	be       *backend
	topic    string
	cl       *kgo.Client
}

// newEnv is an env for offset_store zookeeper.
func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	return newEnvIn(t, StoreZooKeeper, partitions)
}

// Stores of the tests that run in each: the ZooKeeper layout, a Kafka group
// with the protocol kfake prefers (KIP-848's), and one with the classic
// protocol.
const (
	storeKafkaClassic = "kafka-classic"
)

// forStores runs fn once per store in stores (StoreZooKeeper, StoreKafka,
// storeKafkaClassic), as subtests named after them.
func forStores(t *testing.T, fn func(t *testing.T, store string), stores ...string) {
	for _, s := range stores {
		t.Run(s, func(t *testing.T) { fn(t, s) })
	}
}

// newEnvIn is an env for store: StoreZooKeeper, StoreKafka (group_protocol
// auto, which kfake answers with the consumer protocol) or storeKafkaClassic.
// No ZooKeeper runs for the Kafka stores.
func newEnvIn(t *testing.T, store string, partitions int32) *env {
	t.Helper()
	e := &env{topic: "events", store: store}
	if store == storeKafkaClassic {
		e.store, e.protocol = StoreKafka, "classic"
	}
	e.kafka = testcluster.Kafka(t, kfake.SeedTopics(partitions, e.topic, "dlq"),
		// Short sessions, and consumer-protocol heartbeats often enough for
		// them (kfake applies the broker's interval, not the group's).
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "250"}))
	e.brokers = testcluster.Brokers(e.kafka)
	if e.store == StoreZooKeeper {
		e.zk = testcluster.StartZooKeeper(t)
		e.zkConn = e.zk.Conn(t)
	}
	e.be = newBackend(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(e.topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.cl = cl
	return e
}

// module returns a module pushing to the env's backend with short intervals.
func (e *env) module(name string) Module {
	m := ModuleDefaults()
	m.Name = name
	m.Topic = e.topic
	m.Protocol.URI = "/push/{#METHOD}?topic={#TOPIC}&partition={#PARTITION}&transid={#TRANSID}&key={#KEY}&method={#METHOD}"
	m.BackendServers = []string{e.be.addr()}
	m.FailRetryIntervalMs = 10
	m.CommitIntervalMs = 100
	m.WorkerNum = 8
	m.WindowSize = 50
	return m
}

func (e *env) config(instance string, mods ...Module) Config {
	c := Defaults()
	c.OffsetStore = e.store
	if e.zk != nil {
		c.ZKHosts = []string{e.zk.Addr}
	}
	if e.protocol != "" {
		c.GroupProtocol = e.protocol
	}
	c.GroupSessionTimeoutMs = 3000
	c.ZKChroot = chroot
	c.ZKTimeoutMs = 2000
	c.ZKFailRetryIntervalMs = 100
	c.BrokerHosts = e.brokers
	c.OpsListen = ""
	c.InstanceID = instance
	c.Shutdown = 20 * time.Second
	c.Modules = mods
	return c
}

// produce writes n records per key to partition p(key); values carry seq.
func (e *env) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := e.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func value(t *testing.T, method string, seq int) []byte {
	t.Helper()
	b, err := msgpack.Marshal(map[string]any{"method": method, "seq": seq, "data": "x"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type runningTransfer struct {
	tr     *Transfer
	cancel context.CancelFunc
	done   chan error
}

func startTransfer(t *testing.T, cfg Config) *runningTransfer {
	t.Helper()
	return startTransferLog(t, cfg, logging.Discard())
}

// startTransferLog is startTransfer logging to log.
func startTransferLog(t *testing.T, cfg Config, log *slog.Logger) *runningTransfer {
	t.Helper()
	tr, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt := &runningTransfer{tr: tr, cancel: cancel, done: make(chan error, 1)}
	go func() { rt.done <- tr.Run(ctx) }()
	t.Cleanup(func() { rt.stop(t) })
	return rt
}

func (rt *runningTransfer) stop(t *testing.T) error {
	t.Helper()
	rt.cancel()
	select {
	case err, ok := <-rt.done:
		if ok {
			close(rt.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Error("Run did not return")
		return nil
	}
}

// committed reads the committed offset of a partition in the store (the
// offset node, the group's offset), -1 when missing.
func (e *env) committed(t *testing.T, module string, p int32) int64 {
	t.Helper()
	if e.store == StoreKafka {
		os, err := kadm.NewClient(e.cl).FetchOffsets(context.Background(), module)
		if errors.Is(err, kerr.GroupIDNotFound) {
			return -1
		}
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := os.Lookup(e.topic, p); ok && o.Err == nil {
			return o.At
		}
		return -1
	}
	data, _, err := e.zkConn.Get(zkconsumers.New(chroot).Offset(module, e.topic, p))
	if err == zk.ErrNoNode {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	off, err := zkconsumers.DecodeOffset(data)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// waitCommittedAtEnd waits until module's committed offset of every partition
// in the env's store is the log end, and returns the log ends.
func (e *env) waitCommittedAtEnd(t *testing.T, module string) map[int32]int64 {
	t.Helper()
	ends := e.endOffsets(t)
	testwait.Eventually(t, 10*time.Second, "offsets at the log end", func() bool {
		for p, end := range ends {
			if e.committed(t, module, p) != end {
				return false
			}
		}
		return true
	})
	return ends
}

func (e *env) endOffsets(t *testing.T) map[int32]int64 {
	t.Helper()
	ends, err := kadm.NewClient(e.cl).ListEndOffsets(context.Background(), e.topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// TestPushesInKeyOrderAndCommitsLogEnd: many keys over 4 partitions, 8 workers,
// a backend with random delays; every record arrives once, each key in offset
// order and one at a time, and the offsets end at the log end.
func TestPushesInKeyOrderAndCommitsLogEnd(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 4)
		e.be.delay = func(d delivery) time.Duration { return time.Duration(d.offset%3) * time.Millisecond }
		const keys, perKey = 20, 15
		var recs []*kgo.Record
		for s := 0; s < perKey; s++ {
			for k := 0; k < keys; k++ {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", k)), Partition: int32(k % 4), Value: value(t, "m", s)})
			}
		}
		e.produce(t, recs...)
		m := e.module("ordered")
		rt := startTransfer(t, e.config("a", m))

		testwait.Eventually(t, 30*time.Second, "all records delivered", func() bool { return len(e.be.deliveries()) >= keys*perKey })
		got := e.be.deliveries()
		if len(got) != keys*perKey {
			t.Errorf("got %d deliveries, want %d (no failures, so no duplicates)", len(got), keys*perKey)
		}
		last := map[string]int{}
		for _, d := range got {
			if prev, ok := last[d.key]; ok && d.seq != prev+1 {
				t.Fatalf("key %s: seq %d after %d", d.key, d.seq, prev)
			}
			last[d.key] = d.seq
			if d.path != "/push/m" || d.topic != e.topic || d.method != "m" || d.ctype != "application/x-msgpack" {
				t.Fatalf("placeholders or headers wrong: %+v", d)
			}
		}
		if n := e.be.overlap.Load(); n != 0 {
			t.Errorf("%d pushes overlapped another push of the same key", n)
		}
		ends := e.waitCommittedAtEnd(t, m.Name)

		// The operations endpoints tell the same story.
		ops := httptest.NewServer(rt.tr.Handler())
		defer ops.Close()
		resp, err := http.Get(ops.URL + "/status")
		if err != nil {
			t.Fatal(err)
		}
		var st Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		ms := st.Modules[m.Name]
		if st.Instance != "a" || ms.Topic != e.topic || len(ms.Partitions) != 4 {
			t.Fatalf("status: %+v", st)
		}
		for _, ps := range ms.Partitions {
			if ps.Committed != ends[ps.Partition] || ps.WindowFill != 0 {
				t.Errorf("status of partition %d: %+v, want committed %d and an empty window", ps.Partition, ps, ends[ps.Partition])
			}
		}
		resp, err = http.Get(ops.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			fmt.Sprintf(`ktransfer_pushed_total{module="ordered"} %d`, keys*perKey),
			`ktransfer_owned_partitions{module="ordered"} 4`,
			fmt.Sprintf(`ktransfer_committed_offset{module="ordered",partition="0",topic="events"} %d`, ends[0]),
			`ktransfer_push_duration_seconds_count{module="ordered"}`,
		} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		if resp, err := http.Get(ops.URL + "/readyz"); err != nil || resp.StatusCode != 200 {
			t.Errorf("readyz: %v %v", resp, err)
		}
	}, StoreZooKeeper, StoreKafka)
}

func zkWorldACL() []zk.ACL { return zk.WorldACL(zk.PermAll) }

// TestOpsListenTaken: with ops_listen unset, a taken default address moves to a
// free port of the same host, shown in /status and in the instance's
// registration; an ops_listen that was set and is taken stops New.
func TestOpsListenTaken(t *testing.T) {
	e := newEnv(t, 1)
	busy := testproc.TakenAddr(t)
	m := e.module("ops")

	cfg := e.config("a", m)
	cfg.OpsListen, cfg.OpsListenFixed = busy, true
	if tr, err := New(context.Background(), cfg, logging.Discard()); err == nil {
		tr.Close()
		t.Fatalf("New with ops_listen %s taken: got no error", cfg.OpsListen)
	} else if !strings.Contains(err.Error(), "ops_listen "+cfg.OpsListen) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("New: got %v, want ops_listen and the address in use named", err)
	}

	cfg.OpsListenFixed = false // the default, not set by the operator
	rt := startTransfer(t, cfg)
	addr := rt.tr.OpsAddr()
	if addr == busy || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("ops address %q, want another port of 127.0.0.1 than %s", addr, busy)
	}
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.OpsListen != addr || st.Instance != "a" {
		t.Errorf("/status: %+v (%v), want ops_listen %s", st, err, addr)
	}
	var reg zkconsumers.Registration
	testwait.Eventually(t, 10*time.Second, "registered", func() bool {
		data, _, err := e.zkConn.Get(zkconsumers.New(chroot).ID(m.Name, "a"))
		return err == nil && json.Unmarshal(data, &reg) == nil
	})
	if reg.OpsListen != addr || reg.PID != os.Getpid() || reg.Version != 1 || reg.Subscription[e.topic] != 1 {
		t.Errorf("registration %+v, want Kafka's fields and ops_listen %s", reg, addr)
	}
}

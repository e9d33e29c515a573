package devicehive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// replyTimeout guards reads against a hang; never a timing check.
const replyTimeout = 30 * time.Second

// gateway is a Handler on a loopback test server, over kproxy's core and an
// in-process Kafka.
type gateway struct {
	h       *Handler
	core    *proxy.Proxy
	kafka   *kfake.Cluster
	brokers []string
	client  *kgo.Client // the test's own client: produce, admin
	admin   *kadm.Client
	url     string // ws://127.0.0.1:PORT/ws
	srv     *httptest.Server
}

// setup holds what a test changes of the defaults of startGateway.
type setup struct {
	opts  Options
	cfg   func(*proxy.Config)
	kafka []kfake.Opt
}

// startGateway starts a one-broker kfake cluster (default partitions 3), the
// core over it and a Handler (Core and Registerer set here; short group
// heartbeats) on an httptest server, all closed when the test ends.
func startGateway(t testing.TB, s setup) *gateway {
	t.Helper()
	c := testcluster.Kafka(t, append([]kfake.Opt{kfake.DefaultNumPartitions(3)}, s.kafka...)...)
	brokers := testcluster.Brokers(c)
	cfg := proxy.Defaults()
	cfg.BrokerHosts = brokers
	cfg.ProduceTimeoutMs = 5000
	if s.cfg != nil {
		s.cfg(&cfg)
	}
	core, err := proxy.New(context.Background(), cfg, logging.Discard())
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	hctx, stopHealth := context.WithCancel(context.Background())
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		core.RunHealth(hctx)
	}()

	opts := s.opts
	opts.Core = core
	opts.Registerer = core.Registry()
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = 200 * time.Millisecond
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 6 * time.Second
	}
	if os.Getenv("DEVICEHIVE_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
		cl.Close()
		stopHealth()
		<-healthDone
		core.Close()
	})
	return &gateway{h: h, core: core, kafka: c, brokers: brokers, client: cl,
		admin: kadm.NewClient(cl), srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
}

// produce writes n records to topic, record i to partition i % partitions
// with key "k<i>" and value "<prefix><i>", and returns the values.
func (g *gateway) produce(t testing.TB, topic string, partitions int32, prefix string, n int) []string {
	t.Helper()
	recs := make([]*kgo.Record, n)
	values := make([]string, n)
	for i := range recs {
		values[i] = fmt.Sprintf("%s%d", prefix, i)
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(values[i])}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return values
}

// value reads a counter or gauge of the handler's metrics.
func value(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// testReply is a reply as a client decodes it.
type testReply struct {
	ID    json.RawMessage `json:"id"`
	RefID json.RawMessage `json:"refid"`
	T     string          `json:"t"`
	A     string          `json:"a"`
	S     int             `json:"s"`
	P     json.RawMessage `json:"p"`
	Code  string          `json:"code"`
}

// client is a WebSocket client of the gateway. A goroutine reads every frame:
// objects are replies, arrays notifications.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	replies chan testReply
	mu      sync.Mutex
	notifs  []notification
	closed  chan struct{} // closed when the reader stopped
	readErr error         // why, once closed is closed
}

// dial connects to url with header and starts reading.
func dial(t testing.TB, url string, header http.Header) *client {
	t.Helper()
	ws := wsgatetest.Dial(t, url, header)
	c := &client{t: t, ws: ws, replies: make(chan testReply, 1000), closed: make(chan struct{})}
	go c.read()
	return c
}

func (c *client) read() {
	defer close(c.closed)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.readErr = err
			return
		}
		b = bytes.TrimSpace(b)
		if len(b) > 0 && b[0] == '[' {
			var ns []notification
			if err := json.Unmarshal(b, &ns); err != nil {
				c.readErr = fmt.Errorf("notification frame %s: %w", b, err)
				return
			}
			c.mu.Lock()
			c.notifs = append(c.notifs, ns...)
			c.mu.Unlock()
			continue
		}
		var r testReply
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			c.readErr = fmt.Errorf("reply frame %s: %w", b, err)
			return
		}
		c.replies <- r
	}
}

// send writes v as one text frame (a string or []byte as it is, anything
// else as JSON).
func (c *client) send(v any) {
	c.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// reply returns the next reply.
func (c *client) reply() testReply {
	c.t.Helper()
	select {
	case r := <-c.replies:
		return r
	case <-c.closed:
		c.t.Fatalf("connection closed while waiting for a reply: %v", c.readErr)
	case <-time.After(replyTimeout):
		c.t.Fatalf("no reply within %s", replyTimeout)
	}
	return testReply{}
}

// call sends one message and returns its reply, checking its ids, type and
// action.
func (c *client) call(id any, typ, action string, p any) testReply {
	c.t.Helper()
	msg := map[string]any{"id": id, "t": typ}
	if action != "" {
		msg["a"] = action
	}
	if p != nil {
		msg["p"] = p
	}
	c.send(msg)
	r := c.reply()
	want, _ := json.Marshal(id)
	if string(r.ID) != string(want) || string(r.RefID) != string(want) || r.T != typ || r.A != action {
		c.t.Fatalf("got reply id %s refid %s t %q a %q, want id and refid %s, t %q, a %q", r.ID, r.RefID, r.T, r.A, want, typ, action)
	}
	return r
}

// ok calls and fails the test unless the reply has s 0; it returns p.
func (c *client) ok(id any, typ, action string, p any) json.RawMessage {
	c.t.Helper()
	r := c.call(id, typ, action, p)
	if r.S != 0 {
		c.t.Fatalf("%s %s %v: got s %d (%s: %s), want 0", typ, action, p, r.S, r.Code, r.P)
	}
	return r.P
}

// fails calls and checks the reply is an error with s and code whose reason
// holds every part of want.
func (c *client) fails(id any, typ, action string, p any, s int, code string, want ...string) testReply {
	c.t.Helper()
	return checkError(c.t, c.call(id, typ, action, p), s, code, want...)
}

func checkError(t testing.TB, r testReply, s int, code string, want ...string) testReply {
	t.Helper()
	var reason string
	if err := json.Unmarshal(r.P, &reason); err != nil {
		t.Fatalf("error reply p %s is not a string", r.P)
	}
	if r.S != s || r.Code != code {
		t.Errorf("got s %d code %q (%s), want s %d code %q", r.S, r.Code, reason, s, code)
	}
	for _, w := range want {
		if !strings.Contains(reason, w) {
			t.Errorf("reason %q lacks %q", reason, w)
		}
	}
	return r
}

// subscribe subscribes to topics in group.
func (c *client) subscribe(id any, group string, topics ...string) {
	c.t.Helper()
	c.ok(id, "topic", "subscribe", map[string]any{"t": topics, "consumer_group": group})
}

// received returns the notifications received so far.
func (c *client) received() []notification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]notification(nil), c.notifs...)
}

// waitNotifs waits until at least n notifications arrived and returns them.
func (c *client) waitNotifs(n int) []notification {
	c.t.Helper()
	testwait.Eventually(c.t, replyTimeout, fmt.Sprintf("%d notifications", n), func() bool { return len(c.received()) >= n })
	return c.received()
}

// fence sends a health message and waits for its reply: every frame the
// gateway sent before that reply has been read.
func (c *client) fence() {
	c.t.Helper()
	c.ok("fence", "health", "", nil)
}

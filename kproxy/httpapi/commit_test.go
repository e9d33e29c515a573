package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const testTopic = "orders"

// testConfig returns a configuration for brokers with short timeouts.
func testConfig(brokers []string) proxy.Config {
	c := proxy.Defaults()
	c.BrokerHosts = brokers
	c.ListenAddress = "127.0.0.1"
	c.ProduceTimeoutMs = 2000
	c.Shutdown = 10 * time.Second
	return c
}

type running struct {
	url    string
	core   *proxy.Proxy
	srv    *Server
	cancel context.CancelFunc
	done   chan struct{}
	err    error // what Serve returned, once done is closed
}

// stop cancels the proxy and returns what Serve returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Error("Serve did not return after cancel")
		return nil
	}
}

// start runs a Proxy with cfg on a free loopback port until the test ends; its url
// is https:// when cfg enables TLS.
func start(t *testing.T, cfg proxy.Config, extra ...kgo.Opt) *running {
	t.Helper()
	return startWith(t, cfg, nil, extra...)
}

// startWith is start with setup applied to the server before it serves.
func startWith(t *testing.T, cfg proxy.Config, setup func(*Server), extra ...kgo.Opt) *running {
	t.Helper()
	core, err := proxy.New(context.Background(), cfg, logging.Discard(), extra...)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	srv, err := New(core, logging.Discard())
	if err != nil {
		core.Close()
		t.Fatalf("New: %v", err)
	}
	if setup != nil {
		setup(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scheme := "http://"
	if cfg.TLS.Enabled() {
		scheme = "https://"
	}
	r := &running{url: scheme + ln.Addr().String(), core: core, srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = srv.Serve(ctx, ln)
		close(r.done)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// metric returns the value of the unlabelled counter or gauge name of r.
func metric(t *testing.T, r *running, name string) float64 {
	t.Helper()
	mfs, err := r.core.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func body(t testing.TB, method string, n int) []byte {
	t.Helper()
	b, err := msgpack.Marshal(map[string]any{"topic": testTopic, "method": method, "key": "k", "data": strings.Repeat("x", n)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type answer struct {
	status int
	header http.Header
	Topic  string `json:"topic"`
	Part   int32  `json:"partition"`
	Offset int64  `json:"offset"`
	Error  string `json:"error"`
	Code   string `json:"code"`
}

func post(t testing.TB, base, query string, b []byte) answer {
	t.Helper()
	return do(t, http.MethodPost, base+"/commit?"+query, b, nil)
}

func do(t testing.TB, method, u string, b []byte, hdr http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, u, raw)
	}
	a.status, a.header = resp.StatusCode, resp.Header
	return a
}

func TestCommitWritesOneRecordPerRequest(t *testing.T) {
	const parts = 8
	for _, pname := range partition.Names() {
		t.Run(pname, func(t *testing.T) {
			c := testcluster.Kafka(t, kfake.SeedTopics(parts, testTopic))
			brokers := testcluster.Brokers(c)
			cfg := testConfig(brokers)
			cfg.Partitioner = pname
			r := start(t, cfg)
			pf, _ := partition.Lookup(pname)

			type sent struct {
				key  string
				val  []byte
				part int32
				off  int64
			}
			var all []sent
			for i, acks := range []string{"1", "-1", "0", "1", "-1", "0"} {
				key := fmt.Sprintf("user-%d/%s", i, "ü&=")
				val := body(t, "Reply", 10+i)
				a := post(t, r.url, "topic="+testTopic+"&key="+url.QueryEscape(key)+"&acks="+acks, val)
				if a.status != http.StatusOK {
					t.Fatalf("acks=%s: got status %d (%s), want 200", acks, a.status, a.Error)
				}
				if a.Topic != testTopic {
					t.Errorf("got topic %q, want %q", a.Topic, testTopic)
				}
				if want := pf([]byte(key), parts); a.Part != want {
					t.Errorf("acks=%s key %q: got partition %d, want %d (%s)", acks, key, a.Part, want, pname)
				}
				if acks == "0" && a.Offset != -1 {
					t.Errorf("acks=0: got offset %d, want -1", a.Offset)
				}
				all = append(all, sent{key, val, a.Part, a.Offset})
			}
			recs := testcluster.ReadTopic(t, brokers, testTopic, len(all))
			byKey := map[string]*kgo.Record{}
			for _, rec := range recs {
				byKey[string(rec.Key)] = rec
			}
			for _, s := range all {
				rec := byKey[s.key]
				if rec == nil {
					t.Fatalf("record with key %q not in Kafka", s.key)
				}
				if !bytes.Equal(rec.Value, s.val) {
					t.Errorf("key %q: value differs from the body", s.key)
				}
				if rec.Partition != s.part {
					t.Errorf("key %q: in partition %d, answer said %d", s.key, rec.Partition, s.part)
				}
				if s.off >= 0 && rec.Offset != s.off {
					t.Errorf("key %q: at offset %d, answer said %d", s.key, rec.Offset, s.off)
				}
			}
		})
	}
}

func TestCommitWithoutKeyUsesAnyPartition(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(4, testTopic))
	r := start(t, testConfig(testcluster.Brokers(c)))
	a := post(t, r.url, "topic="+testTopic, body(t, "m", 1))
	if a.status != http.StatusOK || a.Part < 0 || a.Part >= 4 {
		t.Fatalf("got status %d partition %d, want 200 and a partition in 0..3", a.status, a.Part)
	}
	recs := testcluster.ReadTopic(t, testcluster.Brokers(c), testTopic, 1)
	if recs[0].Key != nil {
		t.Errorf("got key %q, want none", recs[0].Key)
	}
}

func TestCommitRejectsBadRequests(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic, "audit-log", "__consumer_offsets_x"))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.MaxRequestSizeBytes = 1000
	cfg.Topics.Deny = []string{"audit-.*"}
	r := start(t, cfg)
	good := body(t, "m", 5)
	tests := []struct {
		name   string
		method string
		query  string
		body   []byte
		status int
		code   string
	}{
		{"no topic", "POST", "key=k", good, 400, "missing_topic"},
		{"empty topic", "POST", "topic=&key=k", good, 400, "missing_topic"},
		{"illegal topic", "POST", "topic=a%2Fb", good, 400, "invalid_topic"},
		{"topic too long", "POST", "topic=" + strings.Repeat("t", 250), good, 400, "invalid_topic"},
		{"dot topic", "POST", "topic=..", good, 400, "invalid_topic"},
		{"bad escape", "POST", "topic=" + testTopic + "&key=%zz", good, 400, "invalid_key"},
		{"empty body", "POST", "topic=" + testTopic, nil, 400, "empty_body"},
		{"bad acks", "POST", "topic=" + testTopic + "&acks=2", good, 400, "invalid_acks"},
		{"acks all word", "POST", "topic=" + testTopic + "&acks=all", good, 400, "invalid_acks"},
		{"not msgpack", "POST", "topic=" + testTopic, []byte{0xc1}, 400, "invalid_msgpack"},
		{"truncated msgpack", "POST", "topic=" + testTopic, good[:len(good)-1], 400, "invalid_msgpack"},
		{"two msgpack values", "POST", "topic=" + testTopic, append(append([]byte{}, good...), good...), 400, "invalid_msgpack"},
		{"denied topic", "POST", "topic=audit-log", good, 403, "topic_not_allowed"},
		{"internal topic", "POST", "topic=__consumer_offsets_x", good, 403, "topic_not_allowed"},
		{"unknown topic", "POST", "topic=nope", good, 404, "unknown_topic"},
		{"GET", "GET", "topic=" + testTopic, nil, 405, "method_not_allowed"},
		{"PUT", "PUT", "topic=" + testTopic, good, 405, "method_not_allowed"},
		{"too large", "POST", "topic=" + testTopic, body(t, "m", 1000), 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, r.url+"/commit?"+tt.query, tt.body, nil)
			if a.status != tt.status || a.Code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.Code, a.Error, tt.status, tt.code)
			}
			if a.Error == "" {
				t.Error("got an empty error sentence")
			}
			if tt.status == 405 && a.header.Get("Allow") != "POST" {
				t.Errorf("got Allow %q, want POST", a.header.Get("Allow"))
			}
		})
	}
	// Nothing above may have reached Kafka.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(testcluster.Brokers(c)...))
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = testTopic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if end := resp.Topics[0].Partitions[0].Offset; end != 0 {
		t.Errorf("got log end offset %d after rejected requests, want 0", end)
	}
}

func TestChunkedBodyTooLarge(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.MaxRequestSizeBytes = 100
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	for _, tc := range []struct {
		size   int
		status int
	}{{100, 200}, {101, 413}} {
		// An io.Reader that is not a *bytes.Reader makes net/http send chunked.
		req, _ := http.NewRequest("POST", r.url+"/commit?topic="+testTopic, io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("a"), tc.size))))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("chunked body of %d bytes: got %d, want %d", tc.size, resp.StatusCode, tc.status)
		}
	}
}

func TestBearerAuth(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.Auth.Tokens = []string{"0123456789abcdef-one", "0123456789abcdef-two"}
	r := start(t, cfg)
	for _, tc := range []struct {
		header string
		status int
	}{
		{"", 401},
		{"Bearer wrong-token-wrong-token", 401},
		{"Basic MDEyMzQ1Njc4OWFiY2RlZi1vbmU=", 401},
		{"Bearer 0123456789abcdef-one", 200},
		{"Bearer 0123456789abcdef-two", 200},
		{"bearer 0123456789abcdef-two", 200}, // the scheme is case-insensitive
		{"Bearer0123456789abcdef-two", 401},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		a := do(t, "POST", r.url+"/commit?topic="+testTopic, body(t, "m", 1), h)
		if a.status != tc.status {
			t.Errorf("Authorization %q: got %d, want %d", tc.header, a.status, tc.status)
		}
		if a.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	}
}

// TestKafkaErrors injects broker answers and checks the status each one gives.
func TestKafkaErrors(t *testing.T) {
	tests := []struct {
		name   string
		code   int16
		status int
		want   string
	}{
		{"not enough replicas", kerr.NotEnoughReplicas.Code, 503, "kafka_unavailable"},
		{"message too large", kerr.MessageTooLarge.Code, 413, "body_too_large"},
		{"topic authorization", kerr.TopicAuthorizationFailed.Code, 403, "topic_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
			cfg := testConfig(testcluster.Brokers(c))
			r := start(t, cfg, kgo.RecordRetries(1))
			c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				req := kr.(*kmsg.ProduceRequest)
				resp := req.ResponseKind().(*kmsg.ProduceResponse)
				for _, rt := range req.Topics {
					st := kmsg.NewProduceResponseTopic()
					st.Topic, st.TopicID = rt.Topic, rt.TopicID
					for _, rp := range rt.Partitions {
						sp := kmsg.NewProduceResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.ErrorCode = tt.code
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				return resp, nil, true
			})
			a := post(t, r.url, "topic="+testTopic+"&acks=-1", body(t, "m", 1))
			if a.status != tt.status || a.Code != tt.want {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.Code, a.Error, tt.status, tt.want)
			}
			if a.status == 503 && a.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestProduceTimeoutGives504(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProduceTimeoutMs = 300
	r := start(t, cfg)
	// Warm up metadata and the produce connection first.
	if a := post(t, r.url, "topic="+testTopic, body(t, "m", 1)); a.status != 200 {
		t.Fatalf("warm-up: got %d", a.status)
	}
	_, release := testcluster.HoldProduces(t, c)
	began := time.Now()
	a := post(t, r.url, "topic="+testTopic, body(t, "m", 1))
	took := time.Since(began)
	release()
	if a.status != 504 || a.Code != "kafka_timeout" {
		t.Fatalf("got %d %q (%s), want 504 kafka_timeout", a.status, a.Code, a.Error)
	}
	if took > 3*time.Second {
		t.Errorf("504 took %s, want about produce_timeout_ms (300ms)", took)
	}
}

// TestBackpressureGives503: with Kafka holding the first record, a second request
// finds the buffer (max_buffered_records) or the request pool (req_pool_size) full
// and gets 503 with Retry-After; the first still gets its 200.
func TestBackpressureGives503(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit func(*proxy.Config)
	}{
		{"max_buffered_records", func(c *proxy.Config) { c.MaxBufferedRecords = 1 }},
		{"req_pool_size", func(c *proxy.Config) { c.ReqPoolSize = 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
			cfg := testConfig(testcluster.Brokers(c))
			tc.limit(&cfg)
			r := start(t, cfg)
			if a := post(t, r.url, "topic="+testTopic, body(t, "m", 1)); a.status != 200 {
				t.Fatalf("warm-up: got %d", a.status)
			}
			held, release := testcluster.HoldProduces(t, c)
			first := make(chan answer, 1)
			go func() { first <- post(t, r.url, "topic="+testTopic, body(t, "m", 1)) }()
			<-held // the first record now fills the limit
			a := post(t, r.url, "topic="+testTopic, body(t, "m", 1))
			if a.status != 503 || a.Code != "backpressure" {
				t.Fatalf("second request: got %d %q (%s), want 503 backpressure", a.status, a.Code, a.Error)
			}
			if a.header.Get("Retry-After") != "1" {
				t.Errorf("got Retry-After %q, want 1", a.header.Get("Retry-After"))
			}
			release()
			if f := <-first; f.status != 200 {
				t.Errorf("first request: got %d (%s), want 200 once Kafka answered", f.status, f.Error)
			}
		})
	}
}

// TestBrokerDownAndBack stops the broker: requests get a 5xx within the produce
// timeout, then 503 at once, and 200 again once the broker is back on its port.
func TestBrokerDownAndBack(t *testing.T) {
	before := runtime.NumGoroutine()
	// The broker keeps its data, as a restarted Kafka broker does (same topic IDs).
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SeedTopics(2, testTopic))
	if err != nil {
		t.Fatal(err)
	}
	addr := c.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	var port int
	fmt.Sscan(portStr, &port)

	cfg := testConfig([]string{addr})
	cfg.ProduceTimeoutMs = 1500
	r := start(t, cfg)
	if a := post(t, r.url, "topic="+testTopic+"&key=a", body(t, "m", 1)); a.status != 200 {
		t.Fatalf("before the outage: got %d (%s)", a.status, a.Error)
	}

	c.Close()
	for i := 0; i < 3; i++ {
		began := time.Now()
		a := post(t, r.url, "topic="+testTopic+"&key=a", body(t, "m", 1))
		took := time.Since(began)
		if a.status != 503 && a.status != 504 {
			t.Fatalf("broker down: got %d (%s), want 503 or 504", a.status, a.Code)
		}
		if took > 1500*time.Millisecond+time.Second {
			t.Errorf("broker down: answer took %s, want within the produce timeout", took)
		}
	}
	testwait.Eventually(t, 10*time.Second, "/readyz 503", func() bool {
		return do(t, "GET", r.url+"/readyz", nil, nil).status == 503
	})
	a := post(t, r.url, "topic="+testTopic+"&key=a", body(t, "m", 1))
	if a.status != 503 || a.Code != "kafka_unavailable" || a.header.Get("Retry-After") == "" {
		t.Errorf("known outage: got %d %q Retry-After %q, want 503 kafka_unavailable with Retry-After", a.status, a.Code, a.header.Get("Retry-After"))
	}

	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatalf("restart broker on port %d: %v", port, err)
	}
	defer c2.Close()
	testwait.Eventually(t, 20*time.Second, "a commit answered 200", func() bool {
		return post(t, r.url, "topic="+testTopic+"&key=a", body(t, "m", 1)).status == 200
	})
	if s := do(t, "GET", r.url+"/readyz", nil, nil).status; s != 200 {
		t.Errorf("readyz after recovery: got %d, want 200", s)
	}

	if err := r.stop(t); err != nil {
		t.Errorf("Serve after recovery: %v", err)
	}
	c2.Close()
	http.DefaultClient.CloseIdleConnections()
	// Every goroutine the proxy started must be gone.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after shutdown:\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShutdownDrainsInflight sends requests that Kafka holds, stops the proxy, and
// checks they still get their 200 and that Serve returns cleanly.
func TestShutdownDrainsInflight(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	r := start(t, testConfig(brokers))
	if a := post(t, r.url, "topic="+testTopic, body(t, "m", 1)); a.status != 200 {
		t.Fatalf("warm-up: got %d", a.status)
	}
	held, release := testcluster.HoldProduces(t, c)
	const n = 5
	answers := make(chan answer, n)
	for i := 0; i < n; i++ {
		go func() { answers <- post(t, r.url, "topic="+testTopic, body(t, "m", 1)) }()
	}
	<-held
	testwait.Eventually(t, 5*time.Second, fmt.Sprintf("kproxy_inflight_requests %v", n), func() bool { return metric(t, r, "kproxy_inflight_requests") == n })
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	// New connections are refused while the drain waits for Kafka.
	testwait.Eventually(t, 5*time.Second, "the listener closed", func() bool {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(r.url, "http://"), time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	release()
	for i := 0; i < n; i++ {
		if a := <-answers; a.status != 200 {
			t.Errorf("in-flight request %d: got %d (%s), want 200", i, a.status, a.Error)
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if got := len(testcluster.ReadTopic(t, brokers, testTopic, n+1)); got != n+1 {
		t.Errorf("got %d records, want %d", got, n+1)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	r := start(t, testConfig(testcluster.Brokers(c)))
	post(t, r.url, "topic="+testTopic, body(t, "m", 1))
	post(t, r.url, "topic=bad/topic", body(t, "m", 1))
	if a := do(t, "GET", r.url+"/healthz", nil, nil); a.status != 200 {
		t.Errorf("healthz: got %d", a.status)
	}
	testwait.Eventually(t, 5*time.Second, "/readyz 200", func() bool { return do(t, "GET", r.url+"/readyz", nil, nil).status == 200 })
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`kproxy_requests_total{code="ok",status="200"} 1`,
		`kproxy_requests_total{code="invalid_topic",status="400"} 1`,
		`kproxy_commit_duration_seconds_count{acks="1"} 1`,
		`kproxy_received_bytes_total`,
		`kproxy_buffered_records 0`,
		`kproxy_kafka_up 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestStatusCoversSentinels(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{proxy.ErrMissingTopic, 400}, {proxy.ErrInvalidTopic, 400}, {proxy.ErrInvalidKey, 400}, {proxy.ErrInvalidAcks, 400},
		{proxy.ErrEmptyBody, 400}, {proxy.ErrBodyRead, 400}, {proxy.ErrInvalidMsgpack, 400}, {proxy.ErrUnauthorized, 401},
		{proxy.ErrTopicNotAllowed, 403}, {ErrNotFound, 404}, {proxy.ErrUnknownTopic, 404}, {proxy.ErrUnknownPartition, 404},
		{ErrMethodNotAllowed, 405}, {proxy.ErrBodyTooLarge, 413}, {proxy.ErrBackpressure, 503}, {proxy.ErrKafkaUnavailable, 503},
		{proxy.ErrShuttingDown, 503}, {proxy.ErrTimeout, 504}, {proxy.ErrCanceled, 499}, {kgo.ErrMaxBuffered, 503},
		{context.DeadlineExceeded, 504}, {kerr.UnknownTopicOrPartition, 404}, {errors.New("connection refused"), 503},
		{fmt.Errorf("wrapped: %w", proxy.ErrInvalidTopic), 400},
	} {
		if got, code := Status(tc.err); got != tc.status || code == "" {
			t.Errorf("Status(%v): got %d %q, want %d", tc.err, got, code, tc.status)
		}
	}
}

// TestTopicRecreated deletes the topic and creates it again (new topic ID): kproxy
// answers 503 while its client forgets the old ID, then 200 again.
func TestTopicRecreated(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(2, testTopic))
	brokers := testcluster.Brokers(c)
	r := start(t, testConfig(brokers))
	if a := post(t, r.url, "topic="+testTopic+"&key=a", body(t, "m", 1)); a.status != 200 {
		t.Fatalf("before: got %d", a.status)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(context.Background(), testTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, testTopic); err != nil {
		t.Fatal(err)
	}
	var statuses []int
	testwait.Eventually(t, 20*time.Second, "a commit answered 200", func() bool {
		a := post(t, r.url, "topic="+testTopic+"&key=a", body(t, "m", 1))
		statuses = append(statuses, a.status)
		if a.status != 200 && a.status != 503 && a.status != 404 {
			t.Fatalf("got %d %q, want 200, 503 or 404 while the topic changes", a.status, a.Code)
		}
		return a.status == 200
	})
	t.Logf("statuses while the topic was recreated: %v", statuses)
}

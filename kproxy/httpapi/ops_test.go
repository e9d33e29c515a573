package httpapi

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy/testpki"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// get GETs url with cl and returns the status and body, or the transport error.
func get(cl *http.Client, url string) (int, []byte, error) {
	resp, err := cl.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// opsURL returns the http:// URL of r's ops_listen once it listens.
func opsURL(t *testing.T, r *running) string {
	t.Helper()
	testwait.Eventually(t, 5*time.Second, "the operations address", func() bool { return r.srv.OpsAddr() != "" })
	return "http://" + r.srv.OpsAddr()
}

// TestOpsListen serves port over mutual TLS and the operations endpoints on
// ops_listen: probes and Prometheus reach them over plain HTTP without a client
// certificate, pprof is there and no longer on port, and port keeps /metrics.
func TestOpsListen(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	clients := testpki.NewCA(t, "clients")
	server := ca.Server(t, "kproxy")
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.TLS = proxy.TLSConfig{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: clients.CertFile, MinVersion: "1.2"}
	cfg.OpsListen = "127.0.0.1:0"
	cfg.Pprof = true
	r := start(t, cfg)
	ops := opsURL(t, r)
	plain := &http.Client{Timeout: 10 * time.Second}
	testwait.Eventually(t, 5*time.Second, "/readyz 200 on ops_listen", func() bool { s, _, _ := get(plain, ops+"/readyz"); return s == 200 })
	for _, path := range []string{"/healthz", "/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if status, body, err := get(plain, ops+path); err != nil || status != 200 {
			t.Errorf("ops_listen %s without a client certificate: got %d %v %.80s, want 200", path, status, err, body)
		}
	}
	if _, body, _ := get(plain, ops+"/metrics"); !strings.Contains(string(body), "kproxy_connections_max") {
		t.Error("ops_listen /metrics lacks kproxy's series")
	}
	withCert := tlsClient(t, ca.Pool(), 0, clients.Client(t, "prometheus").TLS)
	if status, _, err := get(withCert, r.url+"/metrics"); err != nil || status != 200 {
		t.Errorf("port /metrics with a client certificate: got %d %v, want 200", status, err)
	}
	if status, _, err := get(withCert, r.url+"/debug/pprof/"); err != nil || status != 404 {
		t.Errorf("port /debug/pprof/ with ops_listen set: got %d %v, want 404", status, err)
	}
	if _, _, err := get(tlsClient(t, ca.Pool(), 0), r.url+"/healthz"); err == nil {
		t.Error("port /healthz without a client certificate: got an answer, want the handshake refused")
	}
}

// TestOpsListenTaken starts kproxy on an ops_listen address another listener
// holds: Serve fails at once, naming ops_listen.
func TestOpsListenTaken(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.OpsListen = testproc.TakenAddr(t)
	r := start(t, cfg)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still runs on a taken ops_listen address")
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "ops_listen "+cfg.OpsListen) || !strings.Contains(r.err.Error(), "address already in use") {
		t.Errorf("got %v, want an error naming ops_listen and the address in use", r.err)
	}
}

// TestProfileOutlastsTimeouts takes a 2 s CPU profile from listeners whose
// read and write timeouts are far shorter: port (read_timeout_ms 300) and
// ops_listen (limits lowered for the test). The profile must cover the whole
// 2 s, not end when a timeout passes.
func TestProfileOutlastsTimeouts(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	short := opshttp.Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}

	onPort := testConfig(brokers)
	onPort.Pprof = true
	onPort.ReadTimeoutMs, onPort.WriteTimeoutMs, onPort.ProduceTimeoutMs = 300, 100, 100
	p := start(t, onPort)

	onOps := testConfig(brokers)
	onOps.Pprof = true
	onOps.OpsListen = "127.0.0.1:0"
	o := startWith(t, onOps, func(s *Server) { s.opsLimits = short })

	for name, url := range map[string]string{"port": p.url, "ops_listen": opsURL(t, o)} {
		// One after the other: a process takes one CPU profile at a time.
		t.Run(name, func(t *testing.T) {
			status, body, err := get(&http.Client{Timeout: 30 * time.Second}, url+"/debug/pprof/profile?seconds=2")
			if err != nil || status != 200 {
				t.Fatalf("got %d %v %.100s, want 200", status, err, body)
			}
			d, err := profileDuration(body)
			if err != nil {
				t.Fatal(err)
			}
			if d < 1900*time.Millisecond {
				t.Errorf("got a profile of %s, want the 2s asked for", d)
			}
		})
	}
}

// profileDuration returns the duration_nanos field (10) of a gzipped pprof
// profile.proto.
func profileDuration(gz []byte) (time.Duration, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return 0, err
	}
	varint := func() (uint64, error) {
		var x uint64
		for shift := 0; shift < 64; shift += 7 {
			if len(b) == 0 {
				return 0, errors.New("profile: truncated varint")
			}
			c := b[0]
			b = b[1:]
			x |= uint64(c&0x7f) << shift
			if c < 0x80 {
				return x, nil
			}
		}
		return 0, errors.New("profile: varint too long")
	}
	for len(b) > 0 {
		tag, err := varint()
		if err != nil {
			return 0, err
		}
		field, wire := tag>>3, tag&7
		switch wire {
		case 0:
			v, err := varint()
			if err != nil {
				return 0, err
			}
			if field == 10 {
				return time.Duration(v), nil
			}
		case 1:
			b = b[min(8, len(b)):]
		case 2:
			n, err := varint()
			if err != nil || n > uint64(len(b)) {
				return 0, errors.New("profile: bad length")
			}
			b = b[n:]
		case 5:
			b = b[min(4, len(b)):]
		default:
			return 0, errors.New("profile: unknown wire type")
		}
	}
	return 0, errors.New("profile: no duration_nanos")
}

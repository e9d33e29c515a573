package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy/testpki"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// tlsClient returns a client that trusts roots, presents certs and speaks at most
// maxVersion (0 for the newest).
func tlsClient(t *testing.T, roots *x509.CertPool, maxVersion uint16, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MaxVersion: maxVersion}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// commitWith posts b to /commit?topic=orders with cl and returns the status and
// whether the answer came over TLS, or the transport error.
func commitWith(cl *http.Client, base string, b []byte) (status int, overTLS bool, err error) {
	resp, err := cl.Post(base+"/commit?topic="+testTopic, "application/x-msgpack", bytes.NewReader(b))
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.TLS != nil, nil
}

// endOffset returns the log end offset of partition 0 of topic.
func endOffset(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	o, ok := offs.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %s/0: found %v, err %v", topic, ok, o.Err)
	}
	return o.Offset
}

// tlsProxy starts a proxy serving HTTPS with a certificate of ca; clientCA, when
// not nil, makes it require client certificates of that CA.
func tlsProxy(t *testing.T, ca, clientCA *testpki.CA, minVersion string) (*running, []string) {
	t.Helper()
	server := ca.Server(t, "kproxy")
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ValidateMsgpack = false
	cfg.TLS = proxy.TLSConfig{CertFile: server.CertFile, KeyFile: server.KeyFile, MinVersion: minVersion}
	if clientCA != nil {
		cfg.TLS.ClientCAFile = clientCA.CertFile
	}
	r := start(t, cfg)
	if !strings.HasPrefix(r.url, "https://") {
		t.Fatalf("got url %s, want https://", r.url)
	}
	return r, brokers
}

func TestTLSCommit(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	r, brokers := tlsProxy(t, ca, nil, "1.2")

	val := []byte("record over TLS")
	status, overTLS, err := commitWith(tlsClient(t, ca.Pool(), 0), r.url, val)
	if err != nil || status != http.StatusOK || !overTLS {
		t.Fatalf("POST over HTTPS: got status %d, TLS %v, err %v; want 200 over TLS", status, overTLS, err)
	}
	if recs := testcluster.ReadTopic(t, brokers, testTopic, 1); !bytes.Equal(recs[0].Value, val) {
		t.Errorf("got record value %q, want %q", recs[0].Value, val)
	}

	t.Run("plain HTTP to the TLS port fails", func(t *testing.T) {
		plain := "http://" + strings.TrimPrefix(r.url, "https://")
		resp, err := http.Post(plain+"/commit?topic="+testTopic, "application/x-msgpack", strings.NewReader("plain"))
		if err != nil {
			t.Fatalf("got %v, want the bare 400 net/http gives a plain request on a TLS port", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("got status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("a client that does not trust the CA fails", func(t *testing.T) {
		other := testpki.NewCA(t, "other")
		if status, _, err := commitWith(tlsClient(t, other.Pool(), 0), r.url, []byte("x")); err == nil {
			t.Errorf("got status %d, want a certificate error", status)
		}
	})
	if end := endOffset(t, brokers, testTopic); end != 1 {
		t.Errorf("got end offset %d, want 1: only the HTTPS request may write", end)
	}

	// The expiry gauge follows the served certificate.
	mfs, err := r.core.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	for _, mf := range mfs {
		if mf.GetName() == "kproxy_tls_certificate_expiry_timestamp_seconds" {
			got = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	cert, _ := x509.ParseCertificate(mustServed(t, r, ca.Pool()).Raw)
	if want := float64(cert.NotAfter.Unix()); got != want {
		t.Errorf("got kproxy_tls_certificate_expiry_timestamp_seconds %v, want %v", got, want)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	clients := testpki.NewCA(t, "clients")
	r, brokers := tlsProxy(t, ca, clients, "1.2")
	other := testpki.NewCA(t, "other")

	tests := []struct {
		name  string
		certs []tls.Certificate
		max   uint16
		ok    bool
	}{
		{"certificate of the client CA", []tls.Certificate{clients.Client(t, "service-a").TLS}, 0, true},
		{"certificate of the client CA over TLS 1.2", []tls.Certificate{clients.Client(t, "service-b").TLS}, tls.VersionTLS12, true},
		{"no certificate", nil, 0, false},
		{"no certificate over TLS 1.2", nil, tls.VersionTLS12, false},
		{"certificate of another CA", []tls.Certificate{other.Client(t, "intruder").TLS}, 0, false},
		{"server certificate of the client CA", []tls.Certificate{clients.Server(t, "not-a-client").TLS}, 0, false},
	}
	wantEnd := int64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, err := commitWith(tlsClient(t, ca.Pool(), tt.max, tt.certs...), r.url, []byte(tt.name))
			switch {
			case tt.ok && (err != nil || status != http.StatusOK):
				t.Errorf("got status %d, err %v; want 200", status, err)
			case !tt.ok && err == nil:
				t.Errorf("got status %d, want the handshake refused", status)
			}
		})
		if tt.ok {
			wantEnd++
		}
	}
	if end := endOffset(t, brokers, testTopic); end != wantEnd {
		t.Errorf("got end offset %d, want %d: refused clients must not write", end, wantEnd)
	}
}

func TestTLSMinVersion(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	for _, tt := range []struct {
		min       string
		clientMax uint16
		ok        bool
	}{
		{"1.2", tls.VersionTLS12, true},
		{"1.2", tls.VersionTLS13, true},
		{"1.3", tls.VersionTLS12, false},
		{"1.3", tls.VersionTLS13, true},
	} {
		t.Run("min "+tt.min+" client max "+tls.VersionName(tt.clientMax), func(t *testing.T) {
			r, _ := tlsProxy(t, ca, nil, tt.min)
			status, _, err := commitWith(tlsClient(t, ca.Pool(), tt.clientMax), r.url, []byte("v"))
			if got := err == nil && status == http.StatusOK; got != tt.ok {
				t.Errorf("got status %d, err %v; want success %v", status, err, tt.ok)
			}
		})
	}
}

// mustServed returns the certificate a new TLS connection to r is given.
func mustServed(t *testing.T, r *running, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(r.url, "https://"), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestReloadTLS(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	first := ca.Server(t, "kproxy")
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.TLS = proxy.TLSConfig{CertFile: first.CertFile, KeyFile: first.KeyFile, MinVersion: "1.2"}
	r := start(t, cfg)
	serial := func() *big.Int { return mustServed(t, r, ca.Pool()).SerialNumber }

	if got := serial(); got.Cmp(first.Serial) != 0 {
		t.Fatalf("got serial %v, want %v", got, first.Serial)
	}
	renewed := ca.Server(t, "kproxy") // same files, new certificate
	if renewed.CertFile != first.CertFile {
		t.Fatalf("renewal wrote %s, want %s", renewed.CertFile, first.CertFile)
	}
	if got := serial(); got.Cmp(first.Serial) != 0 {
		t.Errorf("before ReloadTLS: got serial %v, want the first %v", got, first.Serial)
	}
	if err := r.srv.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := serial(); got.Cmp(renewed.Serial) != 0 {
		t.Errorf("after ReloadTLS: got serial %v, want the renewed %v", got, renewed.Serial)
	}

	// A broken key is reported and the renewed certificate stays in use.
	if err := os.WriteFile(first.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := r.srv.ReloadTLS()
	if err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Errorf("ReloadTLS with a broken key: got %v, want an error naming tls.cert_file", err)
	}
	if got := serial(); got.Cmp(renewed.Serial) != 0 {
		t.Errorf("after a failed reload: got serial %v, want the renewed %v", got, renewed.Serial)
	}
}

func TestReloadTLSWithoutTLSDoesNothing(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	r := start(t, testConfig(testcluster.Brokers(c)))
	if err := r.srv.ReloadTLS(); err != nil {
		t.Errorf("got %v, want nil on a plain HTTP proxy", err)
	}
	if a := post(t, r.url, "topic="+testTopic, body(t, "m", 1)); a.status != http.StatusOK {
		t.Errorf("got status %d, want 200 over plain HTTP", a.status)
	}
}

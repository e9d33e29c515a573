package kafkaconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// serverName is the only name in the test server certificate; it has no IP SAN, so
// a client must send it as SNI/verification name to pass.
const serverName = "kafka.test"

// pki is a throwaway CA with a server and a client certificate, written as PEM
// files to a temporary directory.
type pki struct {
	ca         *x509.Certificate
	caFile     string
	serverCert string
	serverKey  string
	clientCert string
	clientKey  string
	clientLeaf *x509.Certificate
	server     tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{}

	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	if p.ca, err = x509.ParseCertificate(caDER); err != nil {
		t.Fatal(err)
	}
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			DNSNames:     dns,
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("create %s certificate: %v", cn, err)
		}
		return der, key
	}

	srvDER, srvKey := leaf(2, serverName, x509.ExtKeyUsageServerAuth, []string{serverName})
	p.serverCert = writePEM(t, dir, "server.pem", "CERTIFICATE", srvDER)
	p.serverKey = writePEM(t, dir, "server-key.pem", "PRIVATE KEY", marshalKey(t, srvKey))
	if p.server, err = tls.LoadX509KeyPair(p.serverCert, p.serverKey); err != nil {
		t.Fatal(err)
	}

	cliDER, cliKey := leaf(3, "client", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	p.clientKey = writePEM(t, dir, "client-key.pem", "PRIVATE KEY", marshalKey(t, cliKey))
	if p.clientLeaf, err = x509.ParseCertificate(cliDER); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverTLS returns the brokers' TLS configuration; with mutual it requires a
// client certificate signed by the CA.
func (p *pki) serverTLS(mutual bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if mutual {
		pool := x509.NewCertPool()
		pool.AddCert(p.ca)
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func marshalKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOptionsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		brokers []string
		cfg     Config
		wantErr string
	}{
		{name: "no brokers", brokers: nil, wantErr: "no Kafka brokers"},
		{name: "empty broker list", brokers: []string{}, wantErr: "no Kafka brokers"},
		{name: "unknown mechanism", brokers: []string{"127.0.0.1:9092"},
			cfg: Config{SASL: SASLConfig{Mechanism: "GSSAPI", User: "u"}}, wantErr: `kafka sasl mechanism "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{name: "bad CA file", brokers: []string{"127.0.0.1:9092"},
			cfg: Config{TLS: TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}}, wantErr: "/nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts, err := Options(tt.brokers, tt.cfg, nil)
			if err == nil {
				t.Fatalf("got %d options and nil error, want error containing %q", len(opts), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestOptionsAccepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      Config
		logger   bool
		wantOpts int
	}{
		{name: "plain", wantOpts: 1},
		{name: "client id", cfg: Config{ClientID: "kproxy"}, wantOpts: 2},
		{name: "logger", logger: true, wantOpts: 2},
		{name: "tls", cfg: Config{TLS: TLSConfig{Enabled: true}}, wantOpts: 2},
		{name: "PLAIN", cfg: Config{SASL: SASLConfig{Mechanism: "PLAIN", User: "u"}}, wantOpts: 2},
		{name: "lower-case mechanism", cfg: Config{SASL: SASLConfig{Mechanism: "scram-sha-512", User: "u"}}, wantOpts: 2},
		{name: "everything", cfg: Config{ClientID: "k", TLS: TLSConfig{Enabled: true},
			SASL: SASLConfig{Mechanism: "SCRAM-SHA-256", User: "u"}}, logger: true, wantOpts: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var log = logging.Discard()
			if !tt.logger {
				log = nil
			}
			opts, err := Options([]string{"127.0.0.1:9092"}, tt.cfg, log)
			if err != nil {
				t.Fatalf("Options: %v", err)
			}
			if len(opts) != tt.wantOpts {
				t.Errorf("got %d options, want %d", len(opts), tt.wantOpts)
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				t.Fatalf("kgo.NewClient: %v", err)
			}
			cl.Close()
		})
	}
}

func TestTLSConfigDisabled(t *testing.T) {
	t.Parallel()
	// Files are ignored while TLS is off, even when they do not exist.
	tc, err := TLSConfig{CAFile: "/nonexistent", CertFile: "/nonexistent", KeyFile: "/nonexistent"}.Config()
	if err != nil || tc != nil {
		t.Errorf("got %v, %v, want nil, nil", tc, err)
	}
}

func TestTLSConfigEnabled(t *testing.T) {
	t.Parallel()
	p := newPKI(t)

	t.Run("system roots", func(t *testing.T) {
		tc, err := TLSConfig{Enabled: true, ServerName: serverName, InsecureSkipVerify: true}.Config()
		if err != nil {
			t.Fatalf("Config: %v", err)
		}
		if tc.MinVersion != tls.VersionTLS12 {
			t.Errorf("MinVersion: got %x, want %x", tc.MinVersion, tls.VersionTLS12)
		}
		if tc.ServerName != serverName || !tc.InsecureSkipVerify {
			t.Errorf("got ServerName %q InsecureSkipVerify %v, want %q true", tc.ServerName, tc.InsecureSkipVerify, serverName)
		}
		if tc.RootCAs != nil || len(tc.Certificates) != 0 {
			t.Errorf("got RootCAs %v and %d certificates, want system roots and none", tc.RootCAs, len(tc.Certificates))
		}
	})

	t.Run("CA file", func(t *testing.T) {
		tc, err := TLSConfig{Enabled: true, CAFile: p.caFile}.Config()
		if err != nil {
			t.Fatalf("Config: %v", err)
		}
		if tc.RootCAs == nil {
			t.Fatal("got nil RootCAs, want the CA")
		}
		leaf, err := x509.ParseCertificate(p.server.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: tc.RootCAs, DNSName: serverName}); err != nil {
			t.Errorf("server certificate does not verify against the loaded CA: %v", err)
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		tc, err := TLSConfig{Enabled: true, CertFile: p.clientCert, KeyFile: p.clientKey}.Config()
		if err != nil {
			t.Fatalf("Config: %v", err)
		}
		if len(tc.Certificates) != 1 {
			t.Fatalf("got %d certificates, want 1", len(tc.Certificates))
		}
		got, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(p.clientLeaf) {
			t.Errorf("got certificate %q, want the client certificate", got.Subject)
		}
	})

	errTests := []struct {
		name    string
		cfg     TLSConfig
		wantErr []string
	}{
		{name: "missing CA file", cfg: TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"},
			wantErr: []string{"kafka tls ca_file", "/nonexistent/ca.pem"}},
		{name: "CA file without PEM", cfg: TLSConfig{Enabled: true, CAFile: writeFile(t, "garbage.pem", "not a certificate\n")},
			wantErr: []string{"kafka tls ca_file", "garbage.pem", "no PEM certificate found"}},
		{name: "key only as CA", cfg: TLSConfig{Enabled: true, CAFile: p.clientKey},
			wantErr: []string{"client-key.pem", "no PEM certificate found"}},
		{name: "mismatched key", cfg: TLSConfig{Enabled: true, CertFile: p.clientCert, KeyFile: p.serverKey},
			wantErr: []string{"kafka tls client certificate"}},
		{name: "missing key file", cfg: TLSConfig{Enabled: true, CertFile: p.clientCert, KeyFile: "/nonexistent/key.pem"},
			wantErr: []string{"kafka tls client certificate", "/nonexistent/key.pem"}},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := tt.cfg.Config()
			if err == nil {
				t.Fatalf("got %v and nil error, want an error", tc)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
	t.Run("missing CA file wraps fs error", func(t *testing.T) {
		_, err := TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}.Config()
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v, want an error wrapping os.ErrNotExist", err)
		}
	})
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	tests := []struct {
		name  string
		cfg   Config
		wants []string // problem substrings; none means valid
	}{
		{name: "empty", cfg: Config{}},
		{name: "full", cfg: Config{
			TLS:  TLSConfig{Enabled: true, CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey},
			SASL: SASLConfig{Mechanism: "SCRAM-SHA-512", User: "u", Password: "p"},
		}},
		{name: "bad mechanism", cfg: Config{SASL: SASLConfig{Mechanism: "GSSAPI", User: "u"}},
			wants: []string{`kafka.sasl.mechanism: "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`}},
		{name: "no user", cfg: Config{SASL: SASLConfig{Mechanism: "PLAIN"}},
			wants: []string{"kafka.sasl.user: is required when sasl.mechanism is set"}},
		{name: "files without enabled", cfg: Config{TLS: TLSConfig{CAFile: p.caFile}},
			wants: []string{"kafka.tls.enabled: is false although TLS files are configured"}},
		{name: "cert without key", cfg: Config{TLS: TLSConfig{Enabled: true, CertFile: p.clientCert}},
			wants: []string{"kafka.tls.cert_file: cert_file and key_file must be given together"}},
		{name: "unreadable CA", cfg: Config{TLS: TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"}},
			wants: []string{`kafka.tls.ca_file: "/nonexistent/ca.pem" cannot be read`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := config.Open(writeFile(t, "k.yaml", "{}\n"), "")
			if err != nil {
				t.Fatalf("config.Open: %v", err)
			}
			tt.cfg.Check(f, "kafka")
			err = f.Err()
			if len(tt.wants) == 0 {
				if err != nil {
					t.Errorf("got %v, want no problem", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no problem, want %q", tt.wants)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// newClient builds a kgo client from Options plus extra and closes it at the end.
func newClient(t *testing.T, brokers []string, cfg Config, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := Options(brokers, cfg, nil)
	if err != nil {
		t.Fatalf("Options: %v", err)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// roundTrip produces one record to topic and consumes it back; it fails the test
// when the record is not seen within 15 s.
func roundTrip(t *testing.T, brokers []string, cfg Config, topic string) {
	t.Helper()
	cl := newClient(t, brokers, cfg, kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	want := "value-" + t.Name()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(want)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("record %q not consumed: %v", want, ctx.Err())
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		// Parallel tests share the topic, so look for this test's own record.
		for _, r := range fs.Records() {
			if string(r.Value) == want {
				return
			}
		}
	}
}

// pingErr pings through a client built from cfg with a short deadline.
func pingErr(t *testing.T, brokers []string, cfg Config) error {
	t.Helper()
	cl := newClient(t, brokers, cfg, kgo.RequestRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func TestKafkaTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	const topic = "tls"
	plainTLS := testcluster.Brokers(testcluster.Kafka(t, kfake.TLS(p.serverTLS(false)), kfake.SeedTopics(1, topic)))
	mutualTLS := testcluster.Brokers(testcluster.Kafka(t, kfake.TLS(p.serverTLS(true)), kfake.SeedTopics(1, topic)))

	t.Run("CA and server name", func(t *testing.T) {
		t.Parallel()
		roundTrip(t, plainTLS, Config{TLS: TLSConfig{Enabled: true, CAFile: p.caFile, ServerName: serverName}}, topic)
	})
	t.Run("insecure skip verify", func(t *testing.T) {
		t.Parallel()
		if err := pingErr(t, plainTLS, Config{TLS: TLSConfig{Enabled: true, InsecureSkipVerify: true}}); err != nil {
			t.Errorf("Ping: got %v, want nil", err)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		t.Parallel()
		roundTrip(t, mutualTLS, Config{TLS: TLSConfig{Enabled: true, CAFile: p.caFile, ServerName: serverName,
			CertFile: p.clientCert, KeyFile: p.clientKey}}, topic)
	})

	failures := []struct {
		name    string
		brokers []string
		cfg     Config
		wantErr string
	}{
		{name: "no CA", brokers: plainTLS, cfg: Config{TLS: TLSConfig{Enabled: true, ServerName: serverName}},
			wantErr: "certificate signed by unknown authority"},
		{name: "CA but wrong server name", brokers: plainTLS, cfg: Config{TLS: TLSConfig{Enabled: true, CAFile: p.caFile}},
			wantErr: "cannot validate certificate for 127.0.0.1"},
		{name: "TLS off", brokers: plainTLS, cfg: Config{}, wantErr: "TLS"},
		{name: "no client certificate", brokers: mutualTLS, cfg: Config{TLS: TLSConfig{Enabled: true, CAFile: p.caFile, ServerName: serverName}},
			wantErr: "certificate required"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := pingErr(t, tt.brokers, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Ping: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKafkaSASL(t *testing.T) {
	t.Parallel()
	const topic = "sasl"
	brokers := testcluster.Brokers(testcluster.Kafka(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "u", "p"),
		kfake.Superuser("SCRAM-SHA-256", "u256", "p256"),
		kfake.Superuser("SCRAM-SHA-512", "u512", "p512"),
		kfake.SeedTopics(1, topic),
	))
	tests := []struct {
		name     string
		sasl     SASLConfig
		wantFail bool
	}{
		{name: "PLAIN", sasl: SASLConfig{Mechanism: "PLAIN", User: "u", Password: "p"}},
		{name: "SCRAM-SHA-256", sasl: SASLConfig{Mechanism: "SCRAM-SHA-256", User: "u256", Password: "p256"}},
		{name: "SCRAM-SHA-512", sasl: SASLConfig{Mechanism: "SCRAM-SHA-512", User: "u512", Password: "p512"}},
		{name: "PLAIN wrong password", sasl: SASLConfig{Mechanism: "PLAIN", User: "u", Password: "x"}, wantFail: true},
		{name: "SCRAM-SHA-256 wrong password", sasl: SASLConfig{Mechanism: "SCRAM-SHA-256", User: "u256", Password: "x"}, wantFail: true},
		{name: "SCRAM-SHA-512 wrong password", sasl: SASLConfig{Mechanism: "SCRAM-SHA-512", User: "u512", Password: "x"}, wantFail: true},
		// The SCRAM-SHA-256 credential does not authenticate through SHA-512.
		{name: "wrong SCRAM variant", sasl: SASLConfig{Mechanism: "SCRAM-SHA-512", User: "u256", Password: "p256"}, wantFail: true},
		{name: "no SASL", sasl: SASLConfig{}, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{ClientID: "kafkaconn-test", SASL: tt.sasl}
			err := pingErr(t, brokers, cfg)
			if tt.wantFail {
				if err == nil {
					t.Error("Ping: got nil error, want an authentication failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("Ping: got %v, want nil", err)
			}
			roundTrip(t, brokers, cfg, topic)
		})
	}
}

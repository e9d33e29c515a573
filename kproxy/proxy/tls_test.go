package proxy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy/testpki"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

func TestTLSConfigProblems(t *testing.T) {
	ca := testpki.NewCA(t, "test")
	a, b := ca.Server(t, "a"), ca.Server(t, "b")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name string
		tls  string
		want []string // empty: the file is valid
	}{
		{"cert and key", "{cert_file: " + a.CertFile + ", key_file: " + a.KeyFile + "}", nil},
		{"mutual, unquoted 1.3", "{cert_file: " + a.CertFile + ", key_file: " + a.KeyFile + ", client_ca_file: " + ca.CertFile + ", min_version: 1.3}", nil},
		{"cert without key", "{cert_file: " + a.CertFile + "}", []string{
			"kproxy.yaml: tls.key_file: is required when tls.cert_file is set"}},
		{"key without cert", "{key_file: " + a.KeyFile + "}", []string{
			"kproxy.yaml: tls.cert_file: is required when tls.key_file is set"}},
		{"key of another certificate", "{cert_file: " + a.CertFile + ", key_file: " + b.KeyFile + "}", []string{
			`kproxy.yaml: tls.cert_file: "` + a.CertFile + `" with tls.key_file "` + b.KeyFile + `" is not a PEM certificate and its matching key`}},
		{"CA file without a certificate", "{cert_file: " + a.CertFile + ", key_file: " + a.KeyFile + ", client_ca_file: " + a.KeyFile + "}", []string{
			`kproxy.yaml: tls.client_ca_file: "` + a.KeyFile + `" holds no PEM certificate`}},
		{"every problem at once", "{cert_file: " + missing + ", key_file: " + missing + ", client_ca_file: " + missing + ", min_version: \"1.1\"}", []string{
			`kproxy.yaml: tls.cert_file: "` + missing + `" cannot be read`,
			`kproxy.yaml: tls.key_file: "` + missing + `" cannot be read`,
			`kproxy.yaml: tls.client_ca_file: "` + missing + `" cannot be read`,
			`kproxy.yaml: tls.min_version: "1.1" is not one of 1.2, 1.3`}},
		{"client CA without HTTPS", "{client_ca_file: " + ca.CertFile + "}", []string{
			`kproxy.yaml: tls.client_ca_file: "` + ca.CertFile + `" needs tls.cert_file and tls.key_file`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kproxy.yaml")
			if err := os.WriteFile(p, []byte("broker_hosts: [127.0.0.1:9092]\ntls: "+tt.tls+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(p)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want a valid file", err)
				}
				if !c.TLS.Enabled() {
					t.Errorf("got TLS off, want on")
				}
				if _, err := c.TLS.ServerConfig(); err != nil {
					t.Errorf("serverConfig: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
			if n, want := len(strings.Split(err.Error(), "\n")), len(tt.want); n != want {
				t.Errorf("got %d problems, want %d:\n%v", n, want, err)
			}
		})
	}
}

// TestNewRefusesBrokenTLS checks that New, not only the configuration check,
// refuses files that broke after the check.
func TestNewRefusesBrokenTLS(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	missing := filepath.Join(t.TempDir(), "gone.pem")
	cfg.TLS = TLSConfig{CertFile: missing, KeyFile: missing, MinVersion: "1.2"}
	px, err := New(context.Background(), cfg, logging.Discard())
	if err == nil {
		px.Close()
		t.Fatal("got no error, want one naming the certificate")
	}
	if msg := err.Error(); !strings.Contains(msg, "tls.cert_file") || !strings.Contains(msg, missing) {
		t.Errorf("got %v, want an error naming tls.cert_file and %s", err, missing)
	}
}

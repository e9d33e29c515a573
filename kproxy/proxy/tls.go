package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// TLSConfig is the tls section: HTTPS on port, optionally with client certificates
// (mutual TLS). The files are read at start and again by the server's ReloadTLS,
// which kproxy calls on SIGHUP; connections already open keep what they negotiated.
// kproxy speaks HTTP/1.1 over TLS, as over plain TCP.
type TLSConfig struct {
	// CertFile is the server certificate in PEM, followed by any intermediate
	// certificates clients need to reach their root.
	CertFile string `key:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `key:"key_file"`
	// ClientCAFile, when set, holds the PEM certificates of the authorities that
	// sign client certificates: every client must present a certificate signed by
	// one of them, on every path of the port (/commit, /healthz, /readyz,
	// /metrics), or the handshake fails.
	ClientCAFile string `key:"client_ca_file"`
	// MinVersion is the oldest TLS version accepted: "1.2" (default) or "1.3".
	MinVersion string `key:"min_version"`
}

// Enabled reports whether kproxy serves HTTPS: cert_file and key_file are both set.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// tlsVersions maps min_version values to crypto/tls versions.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// check records every problem of the section, reading the files as the listener
// will, so `kproxy -t` catches a key that does not match its certificate.
func (t TLSConfig) check(f *config.File) {
	t.load(func(key, msg string) { f.Problemf(key, "%s", msg) })
}

// ServerConfig reads the files and returns the listener's TLS configuration, or
// an error naming every problem. TLS must be enabled.
func (t TLSConfig) ServerConfig() (*tls.Config, error) {
	var errs []error
	tc := t.load(func(key, msg string) { errs = append(errs, fmt.Errorf("%s: %s", key, msg)) })
	if len(errs) > 0 {
		return nil, fmt.Errorf("tls: %w", errors.Join(errs...))
	}
	return tc, nil
}

// load builds the listener's TLS configuration, reporting each problem by key
// through problem. It returns nil when TLS is off or any problem was found.
func (t TLSConfig) load(problem func(key, msg string)) *tls.Config {
	bad := false
	report := func(key, format string, args ...any) {
		bad = true
		problem(key, fmt.Sprintf(format, args...))
	}
	version, ok := tlsVersions[t.MinVersion]
	if !ok {
		report("tls.min_version", "%q is not one of 1.2, 1.3", t.MinVersion)
	}
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		report("tls.cert_file", "is required when tls.key_file is set (HTTPS needs both)")
	case t.CertFile != "" && t.KeyFile == "":
		report("tls.key_file", "is required when tls.cert_file is set (HTTPS needs both)")
	}
	if t.ClientCAFile != "" && !t.Enabled() {
		report("tls.client_ca_file", "%q needs tls.cert_file and tls.key_file: client certificates are only asked for over HTTPS", t.ClientCAFile)
	}
	read := func(key, path string) []byte {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			report(key, "%q cannot be read: %v", path, err)
			return nil
		}
		return b
	}
	certPEM, keyPEM := read("tls.cert_file", t.CertFile), read("tls.key_file", t.KeyFile)
	caPEM := read("tls.client_ca_file", t.ClientCAFile)

	tc := &tls.Config{
		MinVersion: version,
		// HTTP/1.1 only: the limits of the listener apply as configured, and the
		// WebSocket upgrades planned for kproxy work the same with and without TLS.
		NextProtos: []string{"http/1.1"},
	}
	if certPEM != nil && keyPEM != nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			report("tls.cert_file", "%q with tls.key_file %q is not a PEM certificate and its matching key: %v", t.CertFile, t.KeyFile, err)
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			report("tls.client_ca_file", "%q holds no PEM certificate", t.ClientCAFile)
		} else {
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	if bad || !t.Enabled() {
		return nil
	}
	return tc
}

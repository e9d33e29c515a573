package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReloadTLS reads tls.cert_file, tls.key_file and tls.client_ca_file again: new
// connections use them, open ones keep theirs, and the served certificate is
// logged. When a file is missing or broken it returns the problems (the runner
// logs them) and the files read before stay in use. It does nothing when
// kproxy serves plain HTTP. It is safe for concurrent use; the "tls" component
// of Register runs it on SIGHUP.
func (s *Server) ReloadTLS() error {
	if s.tlsConf.Load() == nil {
		return nil
	}
	tc, err := s.cfg.TLS.ServerConfig()
	if err != nil {
		return fmt.Errorf("TLS files not reloaded: %w", err)
	}
	s.tlsConf.Store(tc)
	s.logCertificate("TLS files reloaded", tc)
	return nil
}

// currentTLS is the listener's GetConfigForClient: every handshake takes the
// configuration last loaded.
func (s *Server) currentTLS(*tls.ClientHelloInfo) (*tls.Config, error) {
	return s.tlsConf.Load(), nil
}

// logCertificate logs the served certificate's subject, names and expiry.
func (s *Server) logCertificate(msg string, tc *tls.Config) {
	leaf := tc.Certificates[0].Leaf
	if leaf == nil {
		s.log.Info(msg)
		return
	}
	names := append(append([]string(nil), leaf.DNSNames...), ipStrings(leaf)...)
	s.log.Info(msg, "subject", leaf.Subject.String(), "names", strings.Join(names, ","),
		"not_after", leaf.NotAfter.UTC(), "client_certificates", tc.ClientCAs != nil, "min_version", s.cfg.TLS.MinVersion)
	if time.Now().After(leaf.NotAfter) {
		s.log.Warn("the TLS certificate has expired: clients will refuse it", "not_after", leaf.NotAfter.UTC(), "cert_file", s.cfg.TLS.CertFile)
	}
}

func ipStrings(c *x509.Certificate) []string {
	out := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		out[i] = ip.String()
	}
	return out
}

// tlsExpiry is the kproxy_tls_certificate_expiry_timestamp_seconds gauge, so an
// alert can fire well before the served certificate runs out.
func (s *Server) tlsExpiry() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kproxy_tls_certificate_expiry_timestamp_seconds",
		Help: "Unix time at which the TLS certificate kproxy serves expires.",
	}, func() float64 {
		tc := s.tlsConf.Load()
		if tc == nil || tc.Certificates[0].Leaf == nil {
			return 0
		}
		return float64(tc.Certificates[0].Leaf.NotAfter.Unix())
	})
}

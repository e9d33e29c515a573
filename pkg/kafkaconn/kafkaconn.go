// Package kafkaconn turns the Kafka connection keys every daemon shares — broker
// list, client id, TLS and SASL — into franz-go client options, and discovers
// brokers from ZooKeeper ({chroot}/brokers/ids/*) when no broker list is given.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// Config is the "kafka" section of a daemon's configuration. The broker list itself
// is the original top-level key broker_hosts and is passed to Options separately.
type Config struct {
	// ClientID is sent to the brokers with every request; default the daemon name.
	ClientID string `key:"client_id"`
	// TLS configures an encrypted connection; off by default.
	TLS TLSConfig `key:"tls"`
	// SASL configures authentication; off when Mechanism is empty.
	SASL SASLConfig `key:"sasl"`
}

// TLSConfig is the kafka.tls section.
type TLSConfig struct {
	Enabled            bool   `key:"enabled"`
	CAFile             string `key:"ca_file"`
	CertFile           string `key:"cert_file"`
	KeyFile            string `key:"key_file"`
	ServerName         string `key:"server_name"`
	InsecureSkipVerify bool   `key:"insecure_skip_verify"`
}

// SASLConfig is the kafka.sasl section.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `key:"mechanism"`
	User      string `key:"user"`
	Password  string `key:"password"`
}

// Mechanisms lists the accepted SASL mechanisms.
var Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// Check records every problem of c under section (e.g. "kafka").
func (c Config) Check(f *config.File, section string) {
	if c.SASL.Mechanism != "" {
		f.OneOf(section+".sasl.mechanism", strings.ToUpper(c.SASL.Mechanism), Mechanisms...)
		if c.SASL.User == "" {
			f.Problemf(section+".sasl.user", "is required when sasl.mechanism is set")
		}
	}
	t := c.TLS
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "") {
		f.Problemf(section+".tls.enabled", "is false although TLS files are configured; set it to true")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		f.Problemf(section+".tls.cert_file", "cert_file and key_file must be given together")
	}
	f.Readable(section+".tls.ca_file", t.CAFile)
	f.Readable(section+".tls.cert_file", t.CertFile)
	f.Readable(section+".tls.key_file", t.KeyFile)
}

// Config builds the client TLS configuration, or nil when TLS is off.
func (t TLSConfig) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // operator's explicit choice
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka tls ca_file %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Options returns the franz-go options connecting to brokers with c, logging through
// logger. Options for producing or consuming are added by the caller.
func Options(brokers []string, c Config, logger *slog.Logger) ([]kgo.Opt, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no Kafka brokers: set broker_hosts or a ZooKeeper to discover them from")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if logger != nil {
		opts = append(opts, kgo.WithLogger(kslog.New(logger.With("component", "kafka"))))
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch strings.ToUpper(c.SASL.Mechanism) {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("kafka sasl mechanism %q is not one of %s", c.SASL.Mechanism, strings.Join(Mechanisms, ", "))
	}
	return opts, nil
}

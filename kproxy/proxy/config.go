package proxy

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// Config is kproxy's configuration file. The first block holds the original keys
// with their original meaning; the rest are new and default to the values of
// Defaults. conf/kproxy.yaml documents every key.
type Config struct {
	logging.Config

	// Port is the HTTP listening port (original key port).
	Port int `key:"port"`
	// ReadTimeoutMs bounds reading one whole request, headers and body.
	ReadTimeoutMs int `key:"read_timeout_ms"`
	// WriteTimeoutMs bounds writing the response once Kafka answered (the wait for
	// Kafka itself is bounded by ProduceTimeoutMs).
	WriteTimeoutMs int `key:"write_timeout_ms"`
	// ReqPoolSize bounds the /commit requests in progress at once; beyond it kproxy
	// answers 503 rather than queueing without limit.
	ReqPoolSize int `key:"req_pool_size"`
	// ProducerNum is the number of Kafka clients per acks level; records are spread
	// over them by key so a key always uses the same client (and stays ordered).
	ProducerNum int `key:"producer_num"`
	// MaxRequestSizeBytes is the largest accepted body; larger ones get 413.
	MaxRequestSizeBytes int `key:"max_request_size_bytes"`
	// BrokerHosts lists seed brokers as HOST:PORT.
	BrokerHosts []string `key:"broker_hosts"`

	// ListenAddress is the address to bind; "" means every interface, as the original.
	ListenAddress string `key:"listen_address"`
	// ReadHeaderTimeoutMs bounds reading request headers (slow clients).
	ReadHeaderTimeoutMs int `key:"read_header_timeout_ms"`
	// IdleTimeoutMs closes keep-alive connections idle for longer.
	IdleTimeoutMs int `key:"idle_timeout_ms"`
	// MaxHeaderBytes bounds the request line plus headers; larger requests get 431.
	MaxHeaderBytes int `key:"max_header_bytes"`
	// TLS serves port over HTTPS when tls.cert_file and tls.key_file are set, and
	// requires client certificates when tls.client_ca_file is set.
	TLS TLSConfig `key:"tls"`
	// ZKHosts, ZKChroot and ZKTimeoutMs locate brokers in ZooKeeper when BrokerHosts
	// is empty ({zk_chroot}/brokers/ids).
	ZKHosts     []string `key:"zk_hosts"`
	ZKChroot    string   `key:"zk_chroot"`
	ZKTimeoutMs int      `key:"zk_timeout_ms"`
	// Kafka holds client id, TLS and SASL.
	Kafka kafkaconn.Config `key:"kafka"`
	// Partitioner maps keys to partitions: sarama (default), murmur2 or crc32.
	Partitioner string `key:"partitioner"`
	// ValidateMsgpack requires each body to be exactly one msgpack value.
	ValidateMsgpack bool `key:"validate_msgpack"`
	// Topics restricts which topics may be written.
	Topics TopicsConfig `key:"topics"`
	// DefaultAcks is used when a request has no acks parameter: "0", "1" or "-1".
	DefaultAcks string `key:"default_acks"`
	// ProduceTimeoutMs bounds the wait for Kafka's acknowledgement; then 504.
	ProduceTimeoutMs int `key:"produce_timeout_ms"`
	// LingerMs lets a partition's batch wait for more records before it is
	// sent. Every request waits for its record, so the default is 0: batches
	// still form while a produce request is in flight.
	LingerMs int `key:"linger_ms"`
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd.
	Compression string `key:"compression"`
	// MaxBufferedRecords bounds the records waiting for Kafka per client; a request
	// that would exceed it gets 503.
	MaxBufferedRecords int `key:"max_buffered_records"`
	// RetryAfterSec is the Retry-After value sent with 503 answers.
	RetryAfterSec int `key:"retry_after_sec"`
	// Auth enables Bearer-token authentication of /commit.
	Auth AuthConfig `key:"auth"`
	// Shutdown bounds the drain of in-flight requests after SIGTERM.
	Shutdown time.Duration `key:"shutdown_timeout"`
	// Pprof serves net/http/pprof under /debug/pprof/ (on ops_listen when that is
	// set, else on port); off by default, as profiles reveal internals.
	Pprof bool `key:"pprof"`
	// MaxConnections bounds the connections open on port. At the bound a new
	// connection closes the longest idle keep-alive connection, or is closed at
	// once when none is idle. It is lowered to fit the open file limit.
	MaxConnections int `key:"max_connections"`
	// MaxBodyMemoryBytes bounds the memory of request bodies held at once: read
	// so far, or waiting for Kafka's answer. A body that would go beyond it gets
	// 503 (backpressure).
	MaxBodyMemoryBytes int64 `key:"max_body_memory_bytes"`
	// AllowAutoTopicCreation asks Kafka to create an unknown topic when a record
	// is written to it, as the original kproxy did; the broker creates it only
	// when its auto.create.topics.enable is on, else the record gets 404.
	AllowAutoTopicCreation bool `key:"allow_auto_topic_creation"`
	// MaxBatchRecords bounds the records of one POST /batch; more get 413.
	MaxBatchRecords int `key:"max_batch_records"`
	// OpsListen, when set, is the HOST:PORT of a separate plain-HTTP listener for
	// /healthz, /readyz, /metrics and pprof, so probes and Prometheus need no
	// client certificate when port requires one. /healthz, /readyz and /metrics
	// stay on port too; pprof then moves there.
	OpsListen string `key:"ops_listen"`
	// WebSocket configures the WebSocket gateways on port (both off by default).
	WebSocket WebSocketConfig `key:"websocket"`
}

// Addr returns the listening address of port, listen_address:port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.ListenAddress, strconv.Itoa(c.Port))
}

// TopicsConfig is the topics section.
type TopicsConfig struct {
	// Allow, when not empty, lists the regular expressions (whole-name match) a topic
	// must match.
	Allow []string `key:"allow"`
	// Deny lists the regular expressions of topics that are refused (403).
	Deny []string `key:"deny"`
	// AllowInternal permits topics whose names start with "__" (Kafka's own).
	AllowInternal bool `key:"allow_internal"`
}

// AuthConfig is the auth section.
type AuthConfig struct {
	// Tokens, when not empty, are the accepted Bearer tokens; requests without one
	// of them get 401.
	Tokens []string `key:"tokens"`
}

// Defaults returns the configuration every key defaults to.
func Defaults() Config {
	return Config{
		Config:              logging.Defaults(),
		Port:                5030,
		ReadTimeoutMs:       5000,
		WriteTimeoutMs:      5000,
		ReqPoolSize:         10240,
		ProducerNum:         1,
		MaxRequestSizeBytes: 1 << 20,
		ReadHeaderTimeoutMs: 5000,
		IdleTimeoutMs:       120000,
		MaxHeaderBytes:      64 << 10,
		TLS:                 TLSConfig{MinVersion: "1.2"},
		ZKChroot:            "/",
		ZKTimeoutMs:         6000,
		Kafka:               kafkaconn.Config{ClientID: "kproxy"},
		Partitioner:         "sarama",
		ValidateMsgpack:     true,
		DefaultAcks:         "1",
		ProduceTimeoutMs:    10000,
		LingerMs:            0,
		Compression:         "none",
		MaxBufferedRecords:  10000,
		RetryAfterSec:       1,
		Shutdown:            30 * time.Second,
		MaxConnections:      10000,
		MaxBodyMemoryBytes:  256 << 20,
		// The original kproxy (sarama) asked Kafka to create unknown topics.
		AllowAutoTopicCreation: true,
		MaxBatchRecords:        10000,
		WebSocket:              webSocketDefaults(),
	}
}

// What MemoryBound counts besides the configured sizes: the process without
// load (runtime, Kafka clients, metrics), and what one connection costs beside
// its request headers (the HTTP loop's read buffer, goroutine and answers in
// progress, or net/http's buffers and goroutine for a connection handed to
// it), plus crypto/tls's record buffers when port speaks TLS.
const (
	memBase       = 64 << 20
	memPerConn    = 32 << 10
	memPerTLSConn = 48 << 10
)

// MemoryBound returns the most memory, in bytes, kproxy uses with this
// configuration:
//
//	64 MiB + max_connections × (32 KiB [+ 48 KiB with tls] + 2 × max_header_bytes)
//	       + 2 × max_body_memory_bytes
//
// Connections are bounded by max_connections; the headers of a request being
// read by max_header_bytes (read, then parsed: twice); bodies, from their first
// byte until Kafka answered, by max_body_memory_bytes, counted twice for the
// copies the Kafka clients write into produce requests. The kproxy command sets
// it as Go's soft memory limit (unless GOMEMLIMIT is set), so that garbage does
// not lift the process above it.
func (c Config) MemoryBound() int64 {
	perConn := int64(memPerConn + 2*c.MaxHeaderBytes)
	if c.TLS.Enabled() {
		perConn += memPerTLSConn
	}
	return memBase + int64(c.MaxConnections)*perConn + 2*c.MaxBodyMemoryBytes
}

// Compressions lists the accepted compression names.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// maxRecordBytes is the largest record value Kafka brokers accept by default
// (message.max.bytes is about 1 MiB); larger limits need the broker raised too.
const maxRecordBytes = 1 << 30

// LoadConfig reads, decodes and checks the kproxy configuration at path.
func LoadConfig(path string) (Config, error) {
	f, err := config.Open(path, "KPROXY")
	if err != nil {
		return Config{}, err
	}
	c := Defaults()
	f.Decode("", &c)
	c.check(f)
	return c, f.Err()
}

func (c *Config) check(f *config.File) {
	f.Min("log_level", int64(c.Level), 0)
	f.OneOf("log_format", c.Format, "text", "json")
	f.Range("port", int64(c.Port), 1, 65535)
	f.Min("read_timeout_ms", int64(c.ReadTimeoutMs), 0)
	f.Min("write_timeout_ms", int64(c.WriteTimeoutMs), 0)
	f.Min("read_header_timeout_ms", int64(c.ReadHeaderTimeoutMs), 0)
	f.Min("idle_timeout_ms", int64(c.IdleTimeoutMs), 0)
	f.Range("max_header_bytes", int64(c.MaxHeaderBytes), 1024, 1<<24)
	c.TLS.check(f)
	f.Range("req_pool_size", int64(c.ReqPoolSize), 1, 1<<24)
	f.Range("producer_num", int64(c.ProducerNum), 1, 64)
	f.Range("max_request_size_bytes", int64(c.MaxRequestSizeBytes), 1, maxRecordBytes)
	f.HostPort("broker_hosts", c.BrokerHosts)
	zkconn.Settings{HostsKey: "zk_hosts", Hosts: c.ZKHosts, ChrootKey: "zk_chroot", Chroot: c.ZKChroot,
		SessionTimeoutKey: "zk_timeout_ms", SessionTimeoutMs: c.ZKTimeoutMs}.Check(f)
	if len(c.BrokerHosts) == 0 && len(c.ZKHosts) == 0 {
		f.Problemf("broker_hosts", "is required (or zk_hosts, to discover the brokers from ZooKeeper)")
	}
	c.Kafka.Check(f, "kafka")
	if _, err := partition.Lookup(c.Partitioner); err != nil {
		f.OneOf("partitioner", c.Partitioner, partition.Names()...)
	}
	f.Regexps("topics.allow", c.Topics.Allow)
	f.Regexps("topics.deny", c.Topics.Deny)
	if _, err := ParseAcks(c.DefaultAcks); err != nil {
		f.Problem("default_acks", c.DefaultAcks, "is not one of 0, 1, -1")
	}
	f.Range("produce_timeout_ms", int64(c.ProduceTimeoutMs), 1, 3600000)
	f.Range("linger_ms", int64(c.LingerMs), 0, 60000)
	f.OneOf("compression", c.Compression, Compressions...)
	f.Range("max_buffered_records", int64(c.MaxBufferedRecords), 1, 1<<24)
	f.Range("retry_after_sec", int64(c.RetryAfterSec), 1, 3600)
	for i, tok := range c.Auth.Tokens {
		if len(tok) < 16 {
			f.Problemf("auth.tokens", "token %d is shorter than 16 characters; use a long random string", i+1)
		}
	}
	if c.Shutdown <= 0 {
		f.Problem("shutdown_timeout", c.Shutdown.String(), "must be positive")
	}
	f.Range("max_connections", int64(c.MaxConnections), 1, 1<<20)
	f.Range("max_body_memory_bytes", c.MaxBodyMemoryBytes, 1<<20, 1<<40)
	if c.MaxBodyMemoryBytes < int64(c.MaxRequestSizeBytes) {
		f.Problem("max_body_memory_bytes", c.MaxBodyMemoryBytes,
			fmt.Sprintf("is below max_request_size_bytes %d: a body of the largest size could never be held", c.MaxRequestSizeBytes))
	}
	f.Range("max_batch_records", int64(c.MaxBatchRecords), 1, 1<<20)
	if c.OpsListen != "" {
		if _, port, err := net.SplitHostPort(c.OpsListen); err != nil {
			f.Problem("ops_listen", c.OpsListen, "is not HOST:PORT")
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			f.Problem("ops_listen", c.OpsListen, "has no port in 0..65535")
		}
	}
	c.WebSocket.check(f)
}

// topicRules decides which topics may be written.
type topicRules struct {
	allow, deny   []*regexp.Regexp
	allowInternal bool
}

func newTopicRules(t TopicsConfig) (*topicRules, error) {
	r := &topicRules{allowInternal: t.AllowInternal}
	for _, l := range []struct {
		dst *[]*regexp.Regexp
		src []string
	}{{&r.allow, t.Allow}, {&r.deny, t.Deny}} {
		for _, p := range l.src {
			re, err := config.Pattern(p)
			if err != nil {
				return nil, fmt.Errorf("topic pattern %q: %w", p, err)
			}
			*l.dst = append(*l.dst, re)
		}
	}
	return r, nil
}

// allowed reports whether topic may be written.
func (r *topicRules) allowed(topic string) bool {
	if !r.allowInternal && len(topic) >= 2 && topic[0] == '_' && topic[1] == '_' {
		return false
	}
	for _, re := range r.deny {
		if re.MatchString(topic) {
			return false
		}
	}
	if len(r.allow) == 0 {
		return true
	}
	for _, re := range r.allow {
		if re.MatchString(topic) {
			return true
		}
	}
	return false
}

// topicAllowed applies the topic rules, caching answers for a bounded number of
// names so the regular expressions run once per topic, not per record.
func (p *Proxy) topicAllowed(topic string) bool {
	if v, ok := p.topicCache.Load(topic); ok {
		return v.(bool)
	}
	ok := p.topics.allowed(topic)
	if p.topicCacheSize.Add(1) <= maxTopicCache {
		p.topicCache.Store(topic, ok)
	} else {
		p.topicCacheSize.Add(-1)
	}
	return ok
}

// maxTopicCache bounds the topic decision cache: names come from callers.
const maxTopicCache = 10000

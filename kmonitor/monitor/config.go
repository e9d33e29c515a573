package monitor

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// Config is kmonitor's configuration file (conf/kmonitor.yaml): the sections base
// and http_server, and one section per cluster named in base.clusters. Every key
// of the original file keeps its meaning; new keys default to the values of
// Defaults and ClusterDefaults.
type Config struct {
	// Base is the base section.
	Base BaseConfig `key:"base"`
	// HTTP is the http_server section.
	HTTP HTTPConfig `key:"http_server"`
	// Clusters are the cluster sections, in base.clusters order.
	Clusters []ClusterConfig `key:"-"`
}

// BaseConfig is the base section.
type BaseConfig struct {
	// Config holds log_dir, log_level (original) and log_format (new).
	logging.Config
	// Clusters names the cluster sections to monitor (original key clusters).
	Clusters []string `key:"clusters"`

	// PollIntervalMs is how often log-start and log-end offsets are read from
	// Kafka and a status sample is taken, default 5000; a cluster section's own
	// poll_interval_ms overrides it.
	PollIntervalMs int `key:"poll_interval_ms"`
	// StatusWindow is the number of samples (polls) a partition's status is judged
	// over, default 10: at the default poll interval the last 50 seconds.
	StatusWindow int `key:"status_window"`
	// Shutdown bounds the drain of HTTP requests after SIGTERM, default 30s.
	Shutdown time.Duration `key:"shutdown_timeout"`
	// MetricsPerPartition adds the per-partition series (kmonitor_lag_records
	// and the rest, eight per module partition) to /metrics, default false:
	// /lag serves the same detail, and per module and per status series are
	// always there.
	MetricsPerPartition bool `key:"metrics_per_partition"`
}

// HTTPConfig is the http_server section.
type HTTPConfig struct {
	// Port is the port of /delay, /lag, /metrics, /healthz and /readyz (original).
	Port int `key:"port"`
	// ReadTimeoutMs bounds reading a request (original); 0 = no limit.
	ReadTimeoutMs int `key:"read_timeout_ms"`
	// WriteTimeoutMs bounds writing an answer (original); 0 = no limit.
	WriteTimeoutMs int `key:"write_timeout_ms"`
	// ListenAddress is the address to bind; "" means every interface, as the
	// original.
	ListenAddress string `key:"listen_address"`
}

// ClusterConfig is one cluster section.
type ClusterConfig struct {
	// Name is the section's name as listed in base.clusters; it is the CLUSTER of
	// /delay.
	Name string `key:"-"`

	// Chroot is the ZooKeeper prefix of consumers/ and brokers/ (original); its
	// parts must be ZooKeeper node names (zkconn.CheckChroot), "mq/x" means
	// "/mq/x".
	Chroot string `key:"chroot"`
	// ZKConnectTimeoutMs bounds one TCP connection attempt to a ZooKeeper server
	// (original).
	ZKConnectTimeoutMs int `key:"zk_connect_timeout_ms"`
	// ZKSessionTimeoutMs is the ZooKeeper session timeout (original).
	ZKSessionTimeoutMs int `key:"zk_session_timeout_ms"`
	// ZKHosts is the ZooKeeper ensemble holding the committed offsets (original).
	ZKHosts []string `key:"zk_hosts"`

	// BrokerHosts lists Kafka seed brokers; empty = read {chroot}/brokers/ids.
	BrokerHosts []string `key:"broker_hosts"`
	// Kafka holds client id, TLS and SASL.
	Kafka kafkaconn.Config `key:"kafka"`
	// PollIntervalMs overrides base.poll_interval_ms for this cluster; 0 = use base.
	PollIntervalMs int `key:"poll_interval_ms"`
	// Groups selects the consumer groups to monitor by name.
	Groups GroupsConfig `key:"groups"`
	// MaxGroups bounds the consumer groups monitored, default 10000. Beyond it
	// further groups are not monitored, with a warning and the metric
	// kmonitor_groups{state="over_cap"}.
	MaxGroups int `key:"max_groups"`
}

// GroupsConfig is a cluster section's groups subsection. A group is monitored
// when it matches no Deny pattern and, if Allow is not empty, an Allow pattern.
// Patterns are regular expressions matching the whole group name (as kproxy's
// topics.allow and topics.deny).
type GroupsConfig struct {
	// Allow, when not empty, lists the patterns a group must match.
	Allow []string `key:"allow"`
	// Deny lists the patterns of groups not monitored.
	Deny []string `key:"deny"`
}

// Defaults returns the base and http_server defaults; Clusters is empty.
func Defaults() Config {
	return Config{
		Base: BaseConfig{
			Config:         logging.Defaults(),
			Clusters:       []string{},
			PollIntervalMs: 5000,
			StatusWindow:   10,
			Shutdown:       30 * time.Second,
		},
		HTTP: HTTPConfig{
			Port:           55325,
			ReadTimeoutMs:  5000,
			WriteTimeoutMs: 5000,
		},
	}
}

// ClusterDefaults returns a cluster section's defaults.
func ClusterDefaults() ClusterConfig {
	return ClusterConfig{
		Chroot:             "/",
		ZKConnectTimeoutMs: 1000,
		ZKSessionTimeoutMs: 6000,
		ZKHosts:            []string{},
		BrokerHosts:        []string{},
		Kafka:              kafkaconn.Config{ClientID: "kmonitor"},
		Groups:             GroupsConfig{Allow: []string{}, Deny: []string{}},
		MaxGroups:          10000,
	}
}

// PollInterval is the cluster's poll interval: its own poll_interval_ms, else
// base.poll_interval_ms.
func (c Config) PollInterval(cc ClusterConfig) time.Duration {
	ms := cc.PollIntervalMs
	if ms <= 0 {
		ms = c.Base.PollIntervalMs
	}
	return time.Duration(ms) * time.Millisecond
}

// Addr is the HTTP listening address, listen_address:port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.HTTP.ListenAddress, strconv.Itoa(c.HTTP.Port))
}

// reservedSections are the top-level sections that cannot name a cluster.
var reservedSections = map[string]bool{"base": true, "http_server": true}

// LoadConfig reads, decodes and checks the kmonitor configuration at path,
// reporting every problem at once. Sections not named in base.clusters are
// reported as unknown keys.
func LoadConfig(path string) (Config, error) {
	f, err := config.Open(path, "KMONITOR")
	if err != nil {
		return Config{}, err
	}
	c := Defaults()
	f.Decode("base", &c.Base)
	f.Decode("http_server", &c.HTTP)
	present := map[string]bool{}
	for _, s := range f.Sections() {
		present[s] = true
	}
	seen := map[string]bool{}
	for _, name := range c.Base.Clusters {
		// viper folds keys to lower case, so sections are looked up that way.
		key := strings.ToLower(name)
		switch {
		case name == "" || strings.ContainsAny(name, ". \t/"):
			f.Problem("base.clusters", name, "is not a valid section name (no dots, slashes or spaces)")
			continue
		case reservedSections[key]:
			f.Problem("base.clusters", name, "is a reserved section name")
			continue
		case seen[key]:
			f.Problem("base.clusters", name, "is listed twice")
			continue
		}
		seen[key] = true
		cc := ClusterDefaults()
		f.Decode(key, &cc)
		cc.Name = name
		if !present[key] {
			f.Problemf(key, "cluster %q is listed in base.clusters but has no section", name)
		}
		cc.check(f, key)
		c.Clusters = append(c.Clusters, cc)
	}
	c.check(f)
	return c, f.Err()
}

func (c *Config) check(f *config.File) {
	f.Min("base.log_level", int64(c.Base.Level), 0)
	f.OneOf("base.log_format", c.Base.Format, "text", "json")
	f.NotEmpty("base.clusters", len(c.Base.Clusters))
	f.Range("base.poll_interval_ms", int64(c.Base.PollIntervalMs), 10, 3600000)
	f.Range("base.status_window", int64(c.Base.StatusWindow), 2, 1000)
	if c.Base.Shutdown <= 0 {
		f.Problem("base.shutdown_timeout", c.Base.Shutdown.String(), "must be positive")
	}
	f.Range("http_server.port", int64(c.HTTP.Port), 1, 65535)
	f.Min("http_server.read_timeout_ms", int64(c.HTTP.ReadTimeoutMs), 0)
	f.Min("http_server.write_timeout_ms", int64(c.HTTP.WriteTimeoutMs), 0)
}

func (cc *ClusterConfig) check(f *config.File, key string) {
	f.NotEmpty(key+".zk_hosts", len(cc.ZKHosts))
	zkconn.Settings{HostsKey: key + ".zk_hosts", Hosts: cc.ZKHosts, ChrootKey: key + ".chroot", Chroot: cc.Chroot,
		SessionTimeoutKey: key + ".zk_session_timeout_ms", SessionTimeoutMs: cc.ZKSessionTimeoutMs,
		ConnectTimeoutKey: key + ".zk_connect_timeout_ms", ConnectTimeoutMs: cc.ZKConnectTimeoutMs}.Check(f)
	f.HostPort(key+".broker_hosts", cc.BrokerHosts)
	cc.Kafka.Check(f, key+".kafka")
	if cc.PollIntervalMs != 0 {
		f.Range(key+".poll_interval_ms", int64(cc.PollIntervalMs), 10, 3600000)
	}
	f.Regexps(key+".groups.allow", cc.Groups.Allow)
	f.Regexps(key+".groups.deny", cc.Groups.Deny)
	f.Range(key+".max_groups", int64(cc.MaxGroups), 1, 1000000)
}

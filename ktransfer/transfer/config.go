package transfer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// Config is ktransfer's main file (conf/ktransfer.yaml). The first block holds the
// original keys with their original meaning; the rest are new.
type Config struct {
	logging.Config

	// ZKHosts is the ZooKeeper ensemble holding offsets, owners and instances.
	ZKHosts []string `key:"zk_hosts"`
	// ZKChroot prefixes every ZooKeeper path, e.g. /mq/test_cluster.
	ZKChroot string `key:"zk_chroot"`
	// ZKTimeoutMs is the ZooKeeper session timeout: a dead process's partitions move
	// to the others about this long after it died.
	ZKTimeoutMs int `key:"zk_timeout_ms"`
	// ZKFailRetryIntervalMs is the pause between attempts when ZooKeeper fails.
	ZKFailRetryIntervalMs int `key:"zk_fail_retry_interval_ms"`
	// ModuleConfDir holds one NAME.yaml per module; relative to the main file's
	// directory's parent when relative (the original's ./conf/modules layout).
	ModuleConfDir string `key:"module_conf_dir"`
	// ModuleEnabled names the modules this process runs.
	ModuleEnabled []string `key:"module_enabled"`

	// BrokerHosts lists Kafka seed brokers; empty = discover in {zk_chroot}/brokers/ids.
	BrokerHosts []string `key:"broker_hosts"`
	// Kafka holds client id, TLS and SASL.
	Kafka kafkaconn.Config `key:"kafka"`
	// OpsListen is the address of /status, /metrics, /healthz and /readyz;
	// empty serves none. See OpsListenFixed.
	OpsListen string `key:"ops_listen"`
	// OpsListenFixed is true when ops_listen was set in the file or the
	// environment: a taken address then stops the start. Otherwise (the default
	// address) a taken address is replaced by a free port of the same host, so
	// several processes run from one unchanged file on one host.
	OpsListenFixed bool `key:"-"`
	// Warnings are settings that work but deserve a look (see backendWarnings):
	// ktransfer -t prints them, a run logs them at warning level.
	Warnings []string `key:"-"`
	// InstanceID names this process in ZooKeeper; empty = HOST-PID-RANDOM.
	InstanceID string `key:"instance_id"`
	// Shutdown bounds the drain after SIGTERM.
	Shutdown time.Duration `key:"shutdown_timeout"`
	// ZKAuth is a ZooKeeper digest credential protecting every module's nodes
	// ({zk_chroot}/consumers/{module} and below: digest ALL, world READ); a
	// module file's zk_auth overrides it. Default: none, open nodes.
	ZKAuth fleet.Auth `key:"zk_auth"`
	// OffsetStore is where the modules keep their offsets and share their
	// partitions: zookeeper (default; the original layout under
	// {zk_chroot}/consumers) or kafka (each module is a Kafka consumer group
	// named after it; no ZooKeeper needed, broker_hosts required; with
	// zk_hosts set, a partition without an offset in its group starts from
	// its ZooKeeper offset).
	OffsetStore string `key:"offset_store"`
	// GroupSessionTimeoutMs is, with offset_store kafka, how long the group
	// coordinator waits for a silent process before its partitions move to
	// the others (default 10000).
	GroupSessionTimeoutMs int `key:"group_session_timeout_ms"`
	// GroupProtocol is, with offset_store kafka, the group protocol: auto
	// (default: KIP-848's consumer protocol when every broker offers it, else
	// classic), consumer or classic (cooperative-sticky assignor).
	GroupProtocol string `key:"group_protocol"`

	// Modules are the loaded module files, by name, in module_enabled order.
	Modules []Module `key:"-"`
}

// Module is one module file, {module_conf_dir}/{name}.yaml.
type Module struct {
	// Name is the file's base name: the consumer group in ZooKeeper.
	Name string `key:"-"`

	// Topic is the Kafka topic the module pushes.
	Topic string `key:"topic"`
	// Methods, when not empty, restricts pushes to records whose msgpack map value
	// has a string "method" in this list.
	Methods []string `key:"methods"`
	// Protocol describes the HTTP requests.
	Protocol Protocol `key:"protocol"`
	// WorkerNum is the number of concurrent pushers.
	WorkerNum int `key:"worker_num"`
	// WindowSize bounds the records per partition dispatched and not yet done.
	WindowSize int `key:"window_size"`
	// MaxRetryTimes bounds retries of one record; -1 retries forever.
	MaxRetryTimes int `key:"max_retry_times"`
	// FailRetryIntervalMs is the pause before a retry.
	FailRetryIntervalMs int `key:"fail_retry_interval_ms"`
	// BackendServers are HOST:PORT or http(s):// base URLs, used round-robin.
	BackendServers []string `key:"backend_servers"`
	// SerializeByKey pushes records of one key one at a time, in offset order.
	SerializeByKey bool `key:"serialize_by_key"`
	// ZKOffsetUpdateIntervalSec is the original commit interval in seconds; used
	// when commit_interval_ms is not set.
	ZKOffsetUpdateIntervalSec int `key:"zk_offset_update_interval_sec"`
	// ExpectedProcessingTimeMs: a push slower than this is logged at warning level.
	ExpectedProcessingTimeMs int `key:"expected_processing_time_ms"`
	// WaitingQueueSize is the queue length of each worker.
	WaitingQueueSize int `key:"waiting_queue_size"`

	// FailRetryBackoffMaxMs, when above fail_retry_interval_ms, makes retries back
	// off exponentially with jitter up to this pause.
	FailRetryBackoffMaxMs int `key:"fail_retry_backoff_max_ms"`
	// RetryOnStatus lists the HTTP statuses (e.g. 429, "500-599") worth a retry;
	// other failures are permanent. Empty: every failure is retried.
	RetryOnStatus []string `key:"retry_on_status"`
	// DeadLetterTopic receives records whose retries ran out; empty = log and skip.
	DeadLetterTopic string `key:"dead_letter_topic"`
	// OnMalformed decides what happens to a value that is not a msgpack map with a
	// string method while methods is set: skip, push or dead_letter.
	OnMalformed string `key:"on_malformed"`
	// CommitIntervalMs is how often a changed offset is written to ZooKeeper.
	CommitIntervalMs int `key:"commit_interval_ms"`
	// InitialOffset is where a partition without a committed offset starts:
	// oldest or newest.
	InitialOffset string `key:"initial_offset"`
	// OffsetReset is where a partition continues when its committed offset is
	// out of range — below the log start (retention deleted the records) or
	// above the log end (the topic was deleted and recreated, or the log
	// truncated) — or the topic was recreated under the running module: oldest
	// (the log start: nothing still in the log is skipped) or newest (the log
	// end: whatever the log holds then is skipped).
	OffsetReset string `key:"offset_reset"`
	// ForwardHeaders are the record headers sent as HTTP headers of the same name
	// with every push of the record, so a W3C trace started by the producing
	// service (kproxy copies traceparent and tracestate into record headers)
	// reaches the backend. Default: traceparent, tracestate.
	ForwardHeaders []string `key:"forward_headers"`
	// ReleaseTimeoutMs bounds how long a partition being handed over waits for its
	// pushes in progress before abandoning them (they are pushed again by the next
	// owner).
	ReleaseTimeoutMs int `key:"release_timeout_ms"`
	// ServerFailThreshold consecutive failures take a backend server out of the
	// rotation for ServerCooldownMs, after which one probe request is let through.
	ServerFailThreshold int `key:"server_fail_threshold"`
	ServerCooldownMs    int `key:"server_cooldown_ms"`
	// ZKAuth, when set, replaces the main file's zk_auth for this module, so
	// tenants sharing one ZooKeeper each protect their own module.
	ZKAuth fleet.Auth `key:"zk_auth"`
}

// Protocol is a module's protocol section.
type Protocol struct {
	// Name must be "http".
	Name string `key:"name"`
	// URI is the request path with placeholders {#TOPIC} {#PARTITION} {#TRANSID}
	// {#KEY} {#METHOD}.
	URI string `key:"uri"`
	// Headers are one-entry maps; Host sets the request's host.
	Headers []map[string]string `key:"headers"`
	// Timeouts in milliseconds; 0 means none.
	ReadTimeoutMs  int `key:"read_timeout_ms"`
	WriteTimeoutMs int `key:"write_timeout_ms"`
	ConnTimeoutMs  int `key:"conn_timeout_ms"`
}

// Defaults returns the main file's defaults.
func Defaults() Config {
	return Config{
		Config:                logging.Defaults(),
		ZKChroot:              "/",
		ZKTimeoutMs:           6000,
		ZKFailRetryIntervalMs: 1000,
		ModuleConfDir:         "./conf/modules",
		Kafka:                 kafkaconn.Config{ClientID: "ktransfer"},
		OpsListen:             "127.0.0.1:5040",
		Shutdown:              30 * time.Second,
		OffsetStore:           StoreZooKeeper,
		GroupSessionTimeoutMs: 10000,
		GroupProtocol:         "auto",
	}
}

// The offset stores, values of offset_store.
const (
	// StoreZooKeeper keeps offsets, owners and instances in ZooKeeper, in the
	// original layout (package fleet).
	StoreZooKeeper = "zookeeper"
	// StoreKafka makes each module a Kafka consumer group (package kgroup).
	StoreKafka = "kafka"
)

// ModuleDefaults returns a module file's defaults.
func ModuleDefaults() Module {
	return Module{
		Protocol:                 Protocol{Name: "http", URI: "/"},
		WorkerNum:                16,
		WindowSize:               200,
		MaxRetryTimes:            -1,
		FailRetryIntervalMs:      1000,
		SerializeByKey:           true,
		ExpectedProcessingTimeMs: 1000,
		WaitingQueueSize:         64,
		OnMalformed:              "skip",
		InitialOffset:            "oldest",
		OffsetReset:              "oldest",
		ForwardHeaders:           []string{"traceparent", "tracestate"},
		ReleaseTimeoutMs:         10000,
		ServerFailThreshold:      5,
		ServerCooldownMs:         5000,
	}
}

// ZKAuthFor returns the ZooKeeper credential protecting module m's nodes: the
// module file's zk_auth when set, else the main file's (possibly none).
func (c Config) ZKAuthFor(m Module) fleet.Auth {
	if m.ZKAuth.Enabled() {
		return m.ZKAuth
	}
	return c.ZKAuth
}

// CommitInterval is commit_interval_ms, else zk_offset_update_interval_sec, else 1 s.
func (m Module) CommitInterval() time.Duration {
	switch {
	case m.CommitIntervalMs > 0:
		return time.Duration(m.CommitIntervalMs) * time.Millisecond
	case m.ZKOffsetUpdateIntervalSec > 0:
		return time.Duration(m.ZKOffsetUpdateIntervalSec) * time.Second
	}
	return time.Second
}

// ParseStatusRanges parses retry_on_status entries: "429" or "500-599".
func ParseStatusRanges(list []string) ([]push.StatusRange, error) {
	var out []push.StatusRange
	var errs []error
	for _, s := range list {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(strings.TrimSpace(lo))
		h, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
			errs = append(errs, fmt.Errorf("%q is not a status (100..599) or a range such as 500-599", s))
			continue
		}
		out = append(out, push.StatusRange{Lo: l, Hi: h})
	}
	return out, errors.Join(errs...)
}

// LoadConfig reads the main file at path and every enabled module file, and checks
// them all, reporting every problem at once.
func LoadConfig(path string) (Config, error) {
	f, err := config.Open(path, "KTRANSFER")
	if err != nil {
		return Config{}, err
	}
	c := Defaults()
	f.Decode("", &c)
	c.OpsListenFixed = f.IsSet("ops_listen")
	c.check(f)
	errs := []error{f.Err()}
	if c.InstanceID == "" {
		c.InstanceID = fleet.DefaultInstanceID()
	}
	dir := c.ModuleDir(path)
	seen := map[string]bool{}
	for _, name := range c.ModuleEnabled {
		if seen[name] {
			errs = append(errs, fmt.Errorf("%s: module_enabled: %q is listed twice", f.Name(), name))
			continue
		}
		if err := zkconn.CheckNodeName(name); err != nil {
			// The module's name is its consumer group's ZooKeeper node.
			errs = append(errs, fmt.Errorf("%s: module_enabled: %q %v", f.Name(), name, err))
			continue
		}
		seen[name] = true
		file := filepath.Join(dir, name+".yaml")
		if _, err := os.Stat(file); err != nil {
			errs = append(errs, fmt.Errorf("%s: module_enabled: %q has no module file %s (misspelt name?)", f.Name(), name, file))
			continue
		}
		m, err := LoadModule(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Modules = append(c.Modules, m)
	}
	c.Warnings = backendWarnings(c.Modules)
	return c, errors.Join(errs...)
}

// backendWarnings returns a warning for each module that lists several backend
// servers and has no read timeout. Such a module works (a server that stops
// answering gets no new pushes, and the pushes waiting on it are retried on
// another once it has been silent for expected_processing_time_ms, at least
// 1 s, while another answers: see the push package), but a read timeout bounds
// every push.
func backendWarnings(mods []Module) []string {
	var out []string
	for _, m := range mods {
		if len(m.BackendServers) > 1 && m.Protocol.ReadTimeoutMs == 0 {
			out = append(out, fmt.Sprintf("%s.yaml: protocol.read_timeout_ms: 0 (no timeout) with %d backend_servers: "+
				"pushes to a backend that stops answering wait until it has been silent for expected_processing_time_ms "+
				"(%d ms, at least 1000) while another backend answers, then go to another; set read_timeout_ms to bound every push",
				m.Name, len(m.BackendServers), m.ExpectedProcessingTimeMs))
		}
	}
	return out
}

// ModuleDir resolves module_conf_dir. A relative directory is taken relative to
// the working directory when it exists there (the original ran from its install
// directory: ./conf/modules), else relative to the main file's directory.
func (c Config) ModuleDir(mainFile string) string {
	d := c.ModuleConfDir
	if filepath.IsAbs(d) {
		return d
	}
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return filepath.Join(filepath.Dir(mainFile), d)
}

func (c *Config) check(f *config.File) {
	f.Min("log_level", int64(c.Level), 0)
	f.OneOf("log_format", c.Format, "text", "json")
	f.OneOf("offset_store", c.OffsetStore, StoreZooKeeper, StoreKafka)
	if c.OffsetStore != StoreKafka {
		f.NotEmpty("zk_hosts", len(c.ZKHosts))
	}
	// ZooKeeper's rules, which the fleet applies too (fleet.Join), so that a
	// file -t accepts also starts.
	zkconn.Settings{HostsKey: "zk_hosts", Hosts: c.ZKHosts, ChrootKey: "zk_chroot", Chroot: c.ZKChroot,
		SessionTimeoutKey: "zk_timeout_ms", SessionTimeoutMs: c.ZKTimeoutMs}.Check(f)
	if c.InstanceID != "" {
		if err := zkconn.CheckNodeName(c.InstanceID); err != nil {
			f.Problem("instance_id", c.InstanceID, err.Error()+"; it names this process's node in ids/")
		}
	}
	f.Range("zk_fail_retry_interval_ms", int64(c.ZKFailRetryIntervalMs), 10, 600000)
	f.NotEmpty("module_enabled", len(c.ModuleEnabled))
	f.HostPort("broker_hosts", c.BrokerHosts)
	if c.OffsetStore == StoreKafka && len(c.BrokerHosts) == 0 {
		f.Problemf("broker_hosts", "is required with offset_store: kafka (brokers are not discovered through ZooKeeper then)")
	}
	f.Range("group_session_timeout_ms", int64(c.GroupSessionTimeoutMs), 1000, 1800000)
	f.OneOf("group_protocol", c.GroupProtocol, "auto", "consumer", "classic")
	c.Kafka.Check(f, "kafka")
	if c.OpsListen != "" {
		if err := opshttp.CheckListenAddress(c.OpsListen); err != nil {
			f.Problem("ops_listen", c.OpsListen, err.Error())
		}
	}
	if c.Shutdown <= 0 {
		f.Problem("shutdown_timeout", c.Shutdown.String(), "must be positive")
	}
	checkZKAuth(f, c.ZKAuth)
}

// checkZKAuth checks a zk_auth section; no message shows the password.
func checkZKAuth(f *config.File, a fleet.Auth) {
	switch {
	case a.User == "" && a.Password != "":
		f.Problemf("zk_auth.user", "is required when zk_auth.password is set")
	case a.User != "" && a.Password == "":
		f.Problemf("zk_auth.password", "is required when zk_auth.user is set")
	}
	if strings.Contains(a.User, ":") {
		f.Problem("zk_auth.user", a.User, "must not contain ':' (the digest scheme splits USER:PASSWORD at the first ':')")
	}
}

// LoadModule reads and checks one module file; the module's name is the file's
// base name without .yaml.
func LoadModule(path string) (Module, error) {
	f, err := config.Open(path, "")
	if err != nil {
		return Module{}, err
	}
	m := ModuleDefaults()
	f.Decode("", &m)
	m.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	m.check(f)
	return m, f.Err()
}

// pushConfig is the push client's configuration of the module.
func (m Module) pushConfig() (push.Config, error) {
	retryOn, err := ParseStatusRanges(m.RetryOnStatus)
	if err != nil {
		return push.Config{}, err
	}
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	return push.Config{
		Servers:        m.BackendServers,
		URI:            m.Protocol.URI,
		Headers:        m.Protocol.Headers,
		ForwardHeaders: m.ForwardHeaders,
		ConnTimeout:    ms(m.Protocol.ConnTimeoutMs),
		WriteTimeout:   ms(m.Protocol.WriteTimeoutMs),
		ReadTimeout:    ms(m.Protocol.ReadTimeoutMs),
		MaxRetries:     m.MaxRetryTimes,
		RetryInterval:  ms(m.FailRetryIntervalMs),
		BackoffMax:     ms(m.FailRetryBackoffMaxMs),
		RetryOn:        retryOn,
		FailThreshold:  m.ServerFailThreshold,
		Cooldown:       ms(m.ServerCooldownMs),
		Slow:           ms(m.ExpectedProcessingTimeMs),
	}, nil
}

// maxMs bounds the module's millisecond keys: one day.
const maxMs = 24 * 3600 * 1000

func (m *Module) check(f *config.File) {
	if m.Topic == "" {
		f.Problemf("topic", "is required")
	} else if err := checkTopic(m.Topic); err != nil {
		f.Problem("topic", m.Topic, err.Error())
	}
	f.OneOf("protocol.name", m.Protocol.Name, "http")
	// The push client's own rules, so that a file -t accepts also starts.
	if err := push.CheckURI(m.Protocol.URI); err != nil {
		f.Problem("protocol.uri", m.Protocol.URI, err.Error())
	}
	for i, h := range m.Protocol.Headers {
		if len(h) != 1 {
			f.Problemf("protocol.headers", "entry %d must be one \"Name: value\" pair, has %d", i+1, len(h))
		}
	}
	for _, err := range push.CheckHeaders(m.Protocol.Headers) {
		f.Problemf("protocol.headers", "%v", err)
	}
	for _, err := range push.CheckForwardHeaders(m.ForwardHeaders, m.Protocol.Headers) {
		f.Problemf("forward_headers", "%v", err)
	}
	// Upper bounds keep every duration far from overflowing time.Duration.
	f.Range("protocol.read_timeout_ms", int64(m.Protocol.ReadTimeoutMs), 0, maxMs)
	f.Range("protocol.write_timeout_ms", int64(m.Protocol.WriteTimeoutMs), 0, maxMs)
	f.Range("protocol.conn_timeout_ms", int64(m.Protocol.ConnTimeoutMs), 0, maxMs)
	f.Range("worker_num", int64(m.WorkerNum), 1, 10000)
	f.Range("window_size", int64(m.WindowSize), 1, 1000000)
	f.Min("max_retry_times", int64(m.MaxRetryTimes), -1)
	f.Range("fail_retry_interval_ms", int64(m.FailRetryIntervalMs), 0, 3600000)
	f.NotEmpty("backend_servers", len(m.BackendServers))
	for _, s := range m.BackendServers {
		if err := push.CheckServer(s); err != nil {
			f.Problem("backend_servers", s, "is not HOST:PORT or an http(s):// base URL: "+err.Error())
		}
	}
	f.Range("zk_offset_update_interval_sec", int64(m.ZKOffsetUpdateIntervalSec), 0, maxMs/1000)
	f.Range("expected_processing_time_ms", int64(m.ExpectedProcessingTimeMs), 0, maxMs)
	f.Range("waiting_queue_size", int64(m.WaitingQueueSize), 1, 1000000)
	f.Range("fail_retry_backoff_max_ms", int64(m.FailRetryBackoffMaxMs), 0, maxMs)
	if _, err := ParseStatusRanges(m.RetryOnStatus); err != nil {
		f.Problemf("retry_on_status", "%v", err)
	}
	f.OneOf("on_malformed", m.OnMalformed, "skip", "push", "dead_letter")
	if m.OnMalformed == "dead_letter" && m.DeadLetterTopic == "" {
		f.Problemf("on_malformed", "is dead_letter but dead_letter_topic is not set")
	}
	if m.DeadLetterTopic != "" {
		if err := checkTopic(m.DeadLetterTopic); err != nil {
			f.Problem("dead_letter_topic", m.DeadLetterTopic, err.Error())
		}
	}
	f.Range("commit_interval_ms", int64(m.CommitIntervalMs), 0, maxMs)
	f.OneOf("initial_offset", m.InitialOffset, "oldest", "newest")
	f.OneOf("offset_reset", m.OffsetReset, "oldest", "newest")
	f.Range("release_timeout_ms", int64(m.ReleaseTimeoutMs), 0, 600000)
	f.Range("server_fail_threshold", int64(m.ServerFailThreshold), 1, 1000000)
	f.Range("server_cooldown_ms", int64(m.ServerCooldownMs), 0, 3600000)
	checkZKAuth(f, m.ZKAuth)
}

// checkTopic applies Kafka's rule for topic names: 1..249 characters of
// [a-zA-Z0-9._-], not "." or ".." (the topic is also a ZooKeeper node name in
// owners/ and offsets/).
func checkTopic(t string) error {
	if len(t) > 249 || t == "." || t == ".." || strings.IndexFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return errors.New(`is not a Kafka topic name (1..249 characters of a-z A-Z 0-9 . _ -, not "." or "..")`)
	}
	return nil
}

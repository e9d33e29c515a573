// Package monitor is kmonitor's core. Per cluster it reads the modules'
// committed offsets from a source (a committed.Source chosen by the section's
// offset_source in cluster.openSource: the ZooKeeper watcher of package
// zkwatch, the Kafka group reader of package kafkagroups, which each poll
// reads first, or both merged), polls the
// partitions' log-start and log-end offsets from Kafka (one ListOffsets request
// per broker) and the timestamp of the first record not yet pushed for an exact
// time lag, judges each module partition's status over a sliding window of
// samples, and serves the original /delay (JSON and Zabbix), /lag, /metrics,
// /healthz and /readyz.
//
// Files: cluster.go (a cluster: its source, its poll loop, its clients),
// poll.go (one poll, in named phases), kafka.go (the Kafka reads), rows.go (the
// rows computed from the source's view and the last poll), lag.go and
// status.go (the rules, pure), history.go (an hour of module lag), http.go,
// lagjson.go and exposition.go (the answers), view.go (what readers outside the
// core see: View, which the dashboard in package web reads; the core does not
// know the dashboard).
//
// The source or Kafka being unreachable never stops it: the last values are
// served marked stale, and both clients reconnect by themselves.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

// Monitor is a running kmonitor. Create it with New and run it with Run or Serve.
// Its methods are safe for concurrent use.
type Monitor struct {
	cfg      Config
	log      *slog.Logger
	clusters []*cluster // sorted by name
	byName   map[string]*cluster
	names    []string
	reg      *prometheus.Registry
	ready    *opshttp.Ready
	mux      *http.ServeMux
	metrics  *metrics
	now      func() time.Time

	answers   answerCache
	closeOnce sync.Once
	// metricsSize is the length of the last rendered lag series, so the next
	// rendering allocates once; guarded by the cache entry's lock.
	metricsSize int
}

// New creates a Monitor from a checked configuration. It starts connecting to
// every cluster's ZooKeeper in the background; nothing is read before Run or
// Serve. extra options are added to every Kafka client (tests use them).
func New(cfg Config, log *slog.Logger, extra ...kgo.Opt) (*Monitor, error) {
	if len(cfg.Clusters) == 0 {
		return nil, errors.New("no cluster configured (base.clusters)")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		cfg:    cfg,
		log:    log,
		byName: map[string]*cluster{},
		reg:    opshttp.NewRegistry(),
		ready:  &opshttp.Ready{},
		mux:    http.NewServeMux(),
		now:    time.Now,
	}
	m.metrics = newMetrics(m.reg, m)
	window := max(cfg.Base.StatusWindow, 2)
	for _, cc := range cfg.Clusters {
		c, err := newCluster(cc, cfg.PollInterval(cc), window, log, m.metrics, extra)
		if err != nil {
			m.Close()
			return nil, err
		}
		c.polledHook = func() { m.answers.drop(c.name) }
		m.clusters = append(m.clusters, c)
		m.byName[cc.Name] = c
		m.names = append(m.names, cc.Name)
		m.ready.Add("cluster "+cc.Name, c.ready)
	}
	sort.Strings(m.names)
	sort.Slice(m.clusters, func(i, j int) bool { return m.clusters[i].name < m.clusters[j].name })
	m.mount()
	return m, nil
}

// Partitions returns every cluster's current rows, as /lag shows them, ordered
// by cluster, module, topic and partition number. The rows are shared with the
// answers rendered from the same state: callers must not modify them.
func (m *Monitor) Partitions() []PartitionLag { return m.rowsOf(m.names) }

// History returns, per "cluster/module", the module's total lag samples (one per
// poll, kept for one hour) of the last d, oldest first. At most historyPoints
// are returned in all: with many modules, each gets every k-th poll's sample
// and its last (at least two).
func (m *Monitor) History(d time.Duration) map[string][]Point {
	now := m.now()
	modules := 0
	for _, c := range m.clusters {
		modules += c.historyModules()
	}
	limit := max(historyPoints/max(modules, 1), 2)
	out := map[string][]Point{}
	for _, c := range m.clusters {
		for k, v := range c.historySince(d, now, limit) {
			out[k] = v
		}
	}
	return out
}

// Run listens on listen_address:port (see Listen) and serves until ctx ends
// (see Serve).
func (m *Monitor) Run(ctx context.Context) error {
	ln, err := m.Listen()
	if err != nil {
		return err
	}
	return m.Serve(ctx, ln)
}

// Listen listens on listen_address:port. A port that cannot be bound is an
// error, and the Monitor is closed: Zabbix and Prometheus poll that port, so
// kmonitor never moves to another one.
func (m *Monitor) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", m.cfg.Addr())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("http_server.port %d: cannot listen on %s (another kmonitor running? free the port or set another): %w",
			m.cfg.HTTP.Port, m.cfg.Addr(), err)
	}
	return ln, nil
}

// Serve runs the collectors and serves HTTP on ln until ctx ends; then it stops
// accepting, lets requests in progress finish within shutdown_timeout, stops the
// collectors and closes every client, through a daemon.Runner of its own with
// the components of Register. It returns nil after a clean shutdown; a
// ZooKeeper or Kafka failure is never an error.
func (m *Monitor) Serve(ctx context.Context, ln net.Listener) error {
	r := daemon.NewRunner(m.log, m.cfg.Base.Shutdown)
	m.Register(r, ln)
	return r.Run(ctx)
}

// Register adds the Monitor's components to r, in the order they stop:
//
//   - "http": the endpoints on ln stop accepting and the requests in
//     progress finish;
//   - "clusters": the collectors (ZooKeeper watchers, group readers, Kafka
//     polls) stop; its Close is Close.
func (m *Monitor) Register(r *daemon.Runner, ln net.Listener) {
	// read_timeout_ms and write_timeout_ms are the original keys (0 = no limit);
	// headers, idle connections and header size keep the bounds of every listener.
	lim := opshttp.DefaultLimits()
	lim.ReadTimeout = time.Duration(m.cfg.HTTP.ReadTimeoutMs) * time.Millisecond
	lim.WriteTimeout = time.Duration(m.cfg.HTTP.WriteTimeoutMs) * time.Millisecond
	srv := opshttp.NewServer(ln.Addr().String(), m.mux, lim)
	srv.ErrorLog = slog.NewLogLogger(m.log.Handler(), slog.LevelDebug)
	m.log.Info("serving", "addr", ln.Addr().String(), "clusters", m.names)
	r.Add(daemon.HTTPServer("http", srv, ln))

	work := make([]func(context.Context), 0, len(m.clusters))
	for _, c := range m.clusters {
		work = append(work, c.run)
	}
	// The collectors stop at once at their turn: a poll or a watch in
	// progress gives up with its context.
	r.Add(daemon.Workers("clusters", m.Close, work...))
}

// Close closes the ZooKeeper and Kafka clients of a Monitor that is not serving.
// Serve closes them itself. Close is safe to call twice.
func (m *Monitor) Close() {
	m.closeOnce.Do(func() {
		for _, c := range m.clusters {
			c.close()
		}
	})
}

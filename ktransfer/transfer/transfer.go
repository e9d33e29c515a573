// Package transfer is ktransfer's core: for every enabled module it consumes the
// partitions the fleet assigns to this process, pushes each record to the module's
// HTTP backends through the workers, and commits the lowest offset not yet done to
// the offset store: ZooKeeper's layout (package fleet) or the module's Kafka
// consumer group (package kgroup), as offset_store says. The engine sees a
// store only through fleet.Membership and fleet.Claim. The ktransfer command is
// a thin wrapper around Transfer.
package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/dispatch"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet/kgroup"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// Transfer is one ktransfer process. Create it with New and run it with Run.
type Transfer struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	ready   *opshttp.Ready
	met     *metrics
	sess    *fleet.Session
	modules []*moduleRunner
	admin   *kgo.Client
	ln      net.Listener // operations endpoints; nil without ops_listen
	opsAddr string       // ln's address
}

// New binds the operations endpoints, connects to the offset store and
// prepares every module. With offset_store zookeeper, brokers come from
// broker_hosts or, when that is empty, from {zk_chroot}/brokers/ids, and New
// waits for the ZooKeeper session. With offset_store kafka, brokers come from
// broker_hosts only, and ZooKeeper, when zk_hosts is set, is only read for the
// offsets of partitions that have none in their group yet (New does not wait
// for it). When ops_listen was not set and its default address is taken, the
// endpoints listen on a free port of the same host (logged, shown in /status
// and in the instance's registration); an address that was set must be free,
// or New fails.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Transfer, error) {
	t := &Transfer{cfg: cfg, log: log, reg: opshttp.NewRegistry(), ready: &opshttp.Ready{}}
	t.met = newMetrics(t.reg)
	if cfg.OpsListen != "" {
		// First, so that a taken address fails at once, and the address is known
		// before the instance registers.
		ln, moved, err := opshttp.Listen(cfg.OpsListen, !cfg.OpsListenFixed)
		if err != nil {
			if cfg.OpsListenFixed {
				return nil, fmt.Errorf("ops_listen %s: %w (give each process on a host its own ops_listen, or leave it unset: a taken default address then moves to a free port)", cfg.OpsListen, err)
			}
			return nil, fmt.Errorf("ops_listen %s: %w", cfg.OpsListen, err)
		}
		t.ln, t.opsAddr = ln, ln.Addr().String()
		if moved {
			log.Info("ops_listen is not set and its default address is taken (another process on this host?): operations endpoints on a free port instead", "default", cfg.OpsListen, "addr", t.opsAddr)
		}
	}
	inKafka := cfg.OffsetStore == StoreKafka
	layout := zkconsumers.New(cfg.ZKChroot)
	if !inKafka || len(cfg.ZKHosts) > 0 {
		sess, err := fleet.Connect(cfg.ZKHosts, time.Duration(cfg.ZKTimeoutMs)*time.Millisecond, time.Duration(cfg.ZKFailRetryIntervalMs)*time.Millisecond, log)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.sess = sess
	}
	if !inKafka {
		if err := t.startZooKeeper(ctx, layout); err != nil {
			t.Close()
			return nil, err
		}
	}
	brokers := cfg.BrokerHosts
	if len(brokers) == 0 && !inKafka {
		var err error
		brokers, err = kafkaconn.ReadBrokers(t.sess.Conn(), cfg.ZKChroot)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("discover brokers: %w", err)
		}
		log.Info("brokers discovered in ZooKeeper", "brokers", brokers)
	}
	base, err := kafkaconn.Options(brokers, cfg.Kafka, log)
	if err != nil {
		t.Close()
		return nil, err
	}
	if t.admin, err = kgo.NewClient(base...); err != nil {
		t.Close()
		return nil, err
	}
	for _, m := range cfg.Modules {
		mr, err := t.newModule(m, base, layout)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("module %s: %w", m.Name, err)
		}
		t.modules = append(t.modules, mr)
	}
	if !inKafka {
		sess := t.sess
		t.ready.Add("zookeeper", func(context.Context) error { return sess.Err() })
	}
	t.ready.Add("kafka", func(ctx context.Context) error { return t.admin.Ping(ctx) })
	return t, nil
}

// startZooKeeper waits for the ZooKeeper session and brings every module's
// nodes under its zk_auth (offset_store zookeeper).
func (t *Transfer) startZooKeeper(ctx context.Context, layout zkconsumers.Layout) error {
	cfg := t.cfg
	wctx, cancel := context.WithTimeout(ctx, 2*time.Duration(cfg.ZKTimeoutMs)*time.Millisecond+5*time.Second)
	err := t.sess.WaitConnected(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to ZooKeeper %v: %w", cfg.ZKHosts, err)
	}
	for _, m := range cfg.Modules {
		// Before any module runs: a module whose nodes another tenant protected
		// stops the start with an error naming the node.
		if err := fleet.SecureGroup(t.sess, layout, m.Name, cfg.ZKAuthFor(m), t.log.With("module", m.Name)); err != nil {
			return fmt.Errorf("module %s: zk_auth: %w", m.Name, err)
		}
	}
	return nil
}

func (t *Transfer) newModule(m Module, base []kgo.Opt, layout zkconsumers.Layout) (*moduleRunner, error) {
	log := t.log.With("module", m.Name, "topic", m.Topic)
	pc, err := m.pushConfig()
	if err != nil {
		return nil, err
	}
	mm := t.met.module(m.Name)
	mr := &moduleRunner{
		m:              m,
		log:            log,
		met:            t.met,
		mm:             mm,
		adm:            kadm.NewClient(t.admin),
		methods:        map[string]bool{},
		releaseTimeout: time.Duration(m.ReleaseTimeoutMs) * time.Millisecond,
		parts:          map[int32]*partRunner{},
		resume:         map[int32]resumeState{},
		resets:         map[int32]OffsetReset{},
	}
	for _, name := range m.Methods {
		mr.methods[name] = true
	}
	mr.pusher, err = push.New(pc, log, push.Events{
		Attempt: func(_ string, status int, err error, _ time.Duration) {
			if err != nil || status < 200 || status > 299 {
				mm.failed.Inc()
			}
		},
		Retry:         func(int, time.Duration) { mm.retried.Inc() },
		Unsolicited:   func(server string) { t.met.unsolicited.WithLabelValues(m.Name, server).Inc() },
		HeaderDropped: func(name string) { t.met.headersDropped.WithLabelValues(m.Name, name).Inc() },
	})
	if err != nil {
		return nil, err
	}
	// The runner decides what an out-of-range offset means (offset_reset), so the
	// client must report it rather than move the fetch by itself: records between
	// the fetch's new position and the runner's would be dropped unpushed. The
	// client reports retryable fetch errors too, so that a topic recreated
	// under the module is noticed at its first UNKNOWN_TOPIC_ID (see
	// confirmRecreated), not after the client's own five retries (about 12 s).
	mr.consumer, err = kgo.NewClient(append(append([]kgo.Opt(nil), base...),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.KeepRetryableFetchErrors(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		mr.close()
		return nil, err
	}
	if m.DeadLetterTopic != "" {
		mr.dlq, err = kgo.NewClient(append(append([]kgo.Opt(nil), base...), kgo.RequiredAcks(kgo.AllISRAcks()))...)
		if err != nil {
			mr.close()
			return nil, err
		}
	}
	mr.pool = dispatch.New(m.WorkerNum, m.WaitingQueueSize, m.SerializeByKey)
	if mr.member, err = t.join(m, base, layout, log); err != nil {
		mr.close()
		return nil, err
	}
	return mr, nil
}

// join makes this process a member of module m's fleet, in the offset store.
func (t *Transfer) join(m Module, base []kgo.Opt, layout zkconsumers.Layout, log *slog.Logger) (fleet.Membership, error) {
	if t.cfg.OffsetStore != StoreKafka {
		member, err := fleet.NewMember(t.sess, layout, m.Name, m.Topic, t.cfg.InstanceID, log, fleet.WithAuth(t.cfg.ZKAuthFor(m)), fleet.WithOpsListen(t.opsAddr))
		if err != nil {
			return nil, err
		}
		return fleet.Claims(member), nil
	}
	kc := kgroup.Config{
		Group:          m.Name,
		Topic:          m.Topic,
		Instance:       t.cfg.InstanceID,
		Protocol:       t.cfg.GroupProtocol,
		SessionTimeout: time.Duration(t.cfg.GroupSessionTimeoutMs) * time.Millisecond,
		// The drain, then the final commit and its retries.
		ReleaseWait: time.Duration(m.ReleaseTimeoutMs)*time.Millisecond + 20*time.Second,
		Log:         log,
	}
	if t.sess != nil {
		kc.Import = importZooKeeperOffset(t.sess, layout, m, log)
	}
	return kgroup.Join(base, kc)
}

// importZooKeeperOffset reads partition p's offset node of module m
// ({zk_chroot}/consumers/{module}/offsets/{topic}/{p}), for a partition that
// has no offset in the module's Kafka group yet: a module moving from
// offset_store zookeeper to kafka continues where it stopped.
func importZooKeeperOffset(sess *fleet.Session, layout zkconsumers.Layout, m Module, log *slog.Logger) func(context.Context, int32) (int64, bool, error) {
	return func(_ context.Context, p int32) (int64, bool, error) {
		path := layout.Offset(m.Name, m.Topic, p)
		if err := sess.Err(); err != nil {
			return 0, false, fmt.Errorf("read %s: %w", path, err)
		}
		data, _, err := sess.Conn().Get(path)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			log.Info("no offset in the Kafka group, none in ZooKeeper either", "partition", p, "path", path)
			return 0, false, nil
		case err != nil:
			return 0, false, fmt.Errorf("read %s: %w", path, err)
		}
		off, err := zkconsumers.DecodeOffset(data)
		if err != nil {
			log.Warn("the ZooKeeper offset node is unreadable: not imported", "partition", p, "path", path, "err", err)
			return 0, false, nil
		}
		log.Info("importing the partition's ZooKeeper offset into the Kafka group", "partition", p, "path", path, "offset", off)
		return off, true, nil
	}
}

// Run serves until ctx ends, then drains every module (commit, release) within
// shutdown_timeout and leaves ZooKeeper, through a daemon.Runner of its own
// with the components of Register.
func (t *Transfer) Run(ctx context.Context) error {
	r := daemon.NewRunner(t.log, t.cfg.Shutdown)
	t.Register(r)
	return r.Run(ctx)
}

// Register adds the Transfer's components to r, in the order they stop:
//
//   - "modules": every module fetches and pushes until its Serve's context
//     ends; then the fetches stop, the pushes in progress finish, the offsets
//     are committed and the partitions released; its Close is Close;
//   - "ops_listen", when the operations endpoints listen: they answer
//     (/readyz: 503) until the modules are drained.
func (t *Transfer) Register(r *daemon.Runner) {
	work := make([]func(context.Context), 0, len(t.modules))
	for _, mr := range t.modules {
		work = append(work, mr.run)
	}
	r.Add(daemon.Workers("modules", t.Close, work...))
	if t.ln != nil {
		ln := t.ln
		t.ln = nil // the component closes it
		t.log.Info("operations endpoints", "addr", t.opsAddr)
		r.Add(daemon.HTTPServer("ops_listen", opshttp.NewServer(t.opsAddr, t.Handler(), opshttp.DefaultLimits()), ln))
	}
}

// Close releases every client and the operations listener when Run did not take
// it. It is safe to call more than once.
func (t *Transfer) Close() {
	for _, mr := range t.modules {
		mr.close()
	}
	t.modules = nil
	if t.admin != nil {
		t.admin.Close()
		t.admin = nil
	}
	if t.sess != nil {
		t.sess.Close()
		t.sess = nil
	}
	if t.ln != nil {
		t.ln.Close()
		t.ln = nil
	}
}

// OpsAddr returns the address the operations endpoints listen on: ops_listen,
// or the free port taken instead of a busy default. Empty without ops_listen.
func (t *Transfer) OpsAddr() string { return t.opsAddr }

// Status is the /status document.
type Status struct {
	Instance string `json:"instance"`
	// OpsListen is the address of these endpoints (a free port when the
	// default of an unset ops_listen was taken).
	OpsListen string `json:"ops_listen,omitempty"`
	PID       int    `json:"pid"`
	// OffsetStore is offset_store: zookeeper or kafka.
	OffsetStore string `json:"offset_store"`
	// Session is the ZooKeeper session's state; empty with offset_store kafka
	// and no zk_hosts.
	Session string                  `json:"zookeeper_session"`
	Modules map[string]ModuleStatus `json:"modules"`
}

// Status returns the state of every module.
func (t *Transfer) Status() Status {
	s := Status{Instance: t.cfg.InstanceID, OpsListen: t.opsAddr, PID: os.Getpid(), OffsetStore: t.cfg.OffsetStore, Modules: map[string]ModuleStatus{}}
	if t.sess != nil {
		s.Session = t.sess.State()
	}
	for _, mr := range t.modules {
		s.Modules[mr.m.Name] = mr.status()
	}
	return s
}

// Handler serves /status and the operations endpoints.
func (t *Transfer) Handler() http.Handler {
	mux := http.NewServeMux()
	opshttp.Mount(mux, t.ready, t.reg)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(t.Status())
	})
	return mux
}

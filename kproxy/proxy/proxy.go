// Package proxy is kproxy's core: the HTTP handler that turns POST /commit into one
// Kafka record and answers only after Kafka acknowledged it at the requested acks
// level, the Kafka clients behind it, and the server's lifecycle (serve, drain,
// flush). The kproxy command is a thin wrapper around Proxy.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

// Proxy is a running kproxy. Create it with New, serve with Run or Serve. Its
// handler is safe for concurrent use.
type Proxy struct {
	cfg            Config
	log            *slog.Logger
	prod           *producers
	health         *health
	metrics        *metrics
	reg            *prometheus.Registry
	ready          *opshttp.Ready
	topics         *topicRules
	topicCache     sync.Map // topic -> bool
	topicCacheSize atomic.Int64
	tokens         [][]byte
	defaultAcks    Acks
	produceTimeout time.Duration
	inflight       atomic.Int64
	draining       atomic.Bool
	tlsConf        atomic.Pointer[tls.Config] // nil when serving plain HTTP
	purging        sync.Map                   // topic -> true while its purge runs
	bg             sync.WaitGroup             // background purges
	closeOnce      sync.Once
}

// New creates a Proxy from a checked configuration. Brokers come from broker_hosts
// or, when that is empty, from ZooKeeper. extra options are appended to every Kafka
// client's options (tests use them for hooks).
func New(ctx context.Context, cfg Config, log *slog.Logger, extra ...kgo.Opt) (*Proxy, error) {
	topics, err := newTopicRules(cfg.Topics)
	if err != nil {
		return nil, err
	}
	acks, err := ParseAcks(cfg.DefaultAcks)
	if err != nil {
		return nil, fmt.Errorf("default_acks: %w", err)
	}
	var tc *tls.Config
	if cfg.TLS.Enabled() {
		if tc, err = cfg.TLS.serverConfig(); err != nil {
			return nil, err
		}
	}
	brokers := cfg.BrokerHosts
	if len(brokers) == 0 {
		brokers, err = kafkaconn.DiscoverBrokers(ctx, cfg.ZKHosts, cfg.ZKChroot, time.Duration(cfg.ZKTimeoutMs)*time.Millisecond)
		if err != nil {
			return nil, fmt.Errorf("discover brokers: %w", err)
		}
		log.Info("brokers discovered in ZooKeeper", "brokers", brokers, "chroot", cfg.ZKChroot)
	}
	prod, err := newProducers(cfg, brokers, log, extra...)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:            cfg,
		log:            log,
		prod:           prod,
		reg:            opshttp.NewRegistry(),
		ready:          &opshttp.Ready{},
		topics:         topics,
		defaultAcks:    acks,
		produceTimeout: time.Duration(cfg.ProduceTimeoutMs) * time.Millisecond,
	}
	for _, t := range cfg.Auth.Tokens {
		p.tokens = append(p.tokens, []byte(t))
	}
	probe := prod.byAcks[AcksLeader.index()][0]
	p.health = newHealth(probe.Ping, log)
	p.metrics = newMetrics(p.reg, p)
	if tc != nil {
		p.tlsConf.Store(tc)
		p.reg.MustRegister(p.tlsExpiry())
		p.logCertificate("TLS certificate loaded", tc)
	}
	p.ready.Add("kafka", func(context.Context) error { return p.health.err() })
	p.ready.Add("serving", func(context.Context) error {
		if p.draining.Load() {
			return ErrShuttingDown
		}
		return nil
	})
	return p, nil
}

// Handler returns kproxy's HTTP handler: /commit and the operations endpoints.
func (p *Proxy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/commit", p.commit)
	opshttp.Mount(mux, p.ready, p.reg)
	if p.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.fail(w, fmt.Errorf("%w: %s (use POST /commit?topic=T&key=K&acks=A)", ErrNotFound, r.URL.Path))
	})
	return mux
}

// Addr returns the configured listening address.
func (p *Proxy) Addr() string { return p.cfg.Addr() }

// Addr returns the listening address, listen_address:port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.ListenAddress, strconv.Itoa(c.Port))
}

// Run listens on the configured address and serves until ctx ends, then drains.
func (p *Proxy) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.Addr())
	if err != nil {
		p.Close()
		return fmt.Errorf("listen on %s: %w", p.Addr(), err)
	}
	return p.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, over TLS when the tls section enables it. Then
// it stops accepting, lets requests in progress finish (each is bounded by
// produce_timeout_ms), flushes what the Kafka clients still hold and closes them,
// all within shutdown_timeout. It returns nil after a clean drain.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := p.cfg.HTTPServer(p.Handler())
	srv.ErrorLog = slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)
	tc := p.tlsConf.Load()
	if tc != nil {
		// The handshake takes whatever ReloadTLS stored last.
		ln = tls.NewListener(ln, &tls.Config{GetConfigForClient: p.currentTLS})
	}

	hctx, stopHealth := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.health.run(hctx)
	}()
	defer func() {
		stopHealth()
		wg.Wait()
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	p.log.Info("serving", "addr", ln.Addr().String(), "tls", tc != nil, "client_certificates", tc != nil && tc.ClientCAs != nil,
		"partitioner", p.cfg.Partitioner, "validate_msgpack", p.cfg.ValidateMsgpack)

	select {
	case err := <-errc:
		p.Close()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	start := time.Now()
	p.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), p.cfg.Shutdown)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http requests: %w", err))
	}
	<-errc
	if err := p.prod.flush(sctx); err != nil {
		errs = append(errs, fmt.Errorf("flush Kafka clients (%d records buffered): %w", p.prod.buffered(), err))
	}
	p.Close()
	p.log.Info("drained", "took", time.Since(start).Round(time.Millisecond), "ok", len(errs) == 0)
	return errors.Join(errs...)
}

// HTTPServer returns the http.Server kproxy serves h with: the configured read,
// header, idle and write timeouts and header size bound (opshttp.NewServer; the
// TLS handshake is bounded by the shortest of the timeouts). The body size bound
// is the handler's: it counts bytes as they arrive, chunked or not.
func (c Config) HTTPServer(h http.Handler) *http.Server {
	read := time.Duration(c.ReadTimeoutMs) * time.Millisecond
	write := time.Duration(c.WriteTimeoutMs) * time.Millisecond
	lim := opshttp.Limits{
		ReadTimeout:       read,
		ReadHeaderTimeout: time.Duration(c.ReadHeaderTimeoutMs) * time.Millisecond,
		IdleTimeout:       time.Duration(c.IdleTimeoutMs) * time.Millisecond,
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
	// net/http's write timeout runs from the end of the request headers to the end
	// of the response, which includes reading the body and waiting for Kafka:
	// write_timeout_ms is what is left for writing the answer.
	if write > 0 {
		lim.WriteTimeout = read + time.Duration(c.ProduceTimeoutMs)*time.Millisecond + 200*time.Millisecond + write
	}
	return opshttp.NewServer(c.Addr(), h, lim)
}

// Close closes the Kafka clients. It is safe to call more than once.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.bg.Wait()
		p.prod.close()
	})
}

// Registry returns the Prometheus registry behind /metrics.
func (p *Proxy) Registry() *prometheus.Registry { return p.reg }

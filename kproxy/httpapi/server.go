// Package httpapi is kproxy's HTTP front: the listener on port (plain or TLS, with
// its size and time limits and max_connections), the HTTP doors to the core
// (POST /commit), the one map from the core's errors to HTTP statuses (Status),
// the operations endpoints (on port, and on ops_listen when set), and the
// lifecycle of serving: stop accepting, drain, flush the Kafka clients. Other
// doors (the WebSocket gateways) are http.Handlers mounted on it with Handle.
package httpapi

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

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

// Server serves kproxy's doors over HTTP. Create it with New, mount further doors
// with Handle, then Run or Serve. It is safe for concurrent use once serving.
type Server struct {
	core       *proxy.Proxy
	cfg        proxy.Config
	log        *slog.Logger
	mux        *http.ServeMux
	metrics    *metrics
	retryAfter string
	tlsConf    atomic.Pointer[tls.Config] // nil when serving plain HTTP
	conns      *connLimiter
	opsMux     *http.ServeMux // nil without ops_listen
	opsLimits  opshttp.Limits
	opsAddr    atomic.Pointer[string]

	mu     sync.Mutex
	drains []func(context.Context) error
}

// New creates the HTTP front of core: /commit, /healthz, /readyz, /metrics on
// port, the same on ops_listen when it is set, and /debug/pprof/ with pprof on
// (on ops_listen when set, else on port). It reads the TLS files when the tls
// section enables HTTPS.
func New(core *proxy.Proxy, log *slog.Logger) (*Server, error) {
	cfg := core.Config()
	s := &Server{
		core:       core,
		cfg:        cfg,
		log:        log,
		mux:        http.NewServeMux(),
		metrics:    newMetrics(core.Registry()),
		retryAfter: strconv.Itoa(cfg.RetryAfterSec),
	}
	if cfg.TLS.Enabled() {
		tc, err := cfg.TLS.ServerConfig()
		if err != nil {
			return nil, err
		}
		s.tlsConf.Store(tc)
		core.Registry().MustRegister(s.tlsExpiry())
		s.logCertificate("TLS certificate loaded", tc)
	}
	maxConns, lowered := effectiveMaxConns(cfg.MaxConnections)
	if lowered {
		log.Warn("max_connections lowered to fit the open file limit", "max_connections", cfg.MaxConnections, "effective", maxConns, "reserve", fdReserve)
	}
	s.conns = newConnLimiter(maxConns, log, core.Registry())
	s.mux.HandleFunc("/commit", s.commit)
	s.mux.HandleFunc("/batch", s.batch)
	// /healthz, /readyz and /metrics stay on port with ops_listen set, so load
	// balancers probing port keep working; pprof moves to ops_listen.
	opshttp.Mount(s.mux, core.Ready(), core.Registry())
	if cfg.OpsListen != "" {
		s.opsMux = http.NewServeMux()
		s.opsLimits = opshttp.DefaultLimits()
		opshttp.Mount(s.opsMux, core.Ready(), core.Registry())
		if cfg.Pprof {
			mountPprof(s.opsMux)
		}
	} else if cfg.Pprof {
		mountPprof(s.mux)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, fmt.Errorf("%w: %s (use POST /commit?topic=T&key=K&acks=A or POST /batch?topic=T&acks=A)", ErrNotFound, r.URL.Path))
	})
	return s, nil
}

// mountPprof serves net/http/pprof under /debug/pprof/.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// Profile and Trace move the connection's write deadline by the seconds
	// they run for, so the listener's write timeout does not cut them off.
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
}

// Handle mounts another door on port at pattern (http.ServeMux syntax). Call it
// before serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// OnDrain registers f to run when the server stops: after it stopped accepting
// connections and its HTTP requests are answered, before the Kafka clients are
// flushed. Doors that keep connections of their own (hijacked WebSockets) close
// them there; f gets the shutdown_timeout's context. Call it before serving.
func (s *Server) OnDrain(f func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drains = append(s.drains, f)
}

// Handler returns the handler of port.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP serves a request on port. A chunked request has its connection
// closed after the answer: net/http drops a Content-Length sent beside
// Transfer-Encoding: chunked and keeps no trace of it, so kproxy cannot tell
// such a request (RFC 9112, 6.1: the connection must be closed) from any other
// chunked one.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TransferEncoding != nil {
		w.Header().Set("Connection", "close")
	}
	s.mux.ServeHTTP(w, r)
}

// OpsAddr returns the address the ops_listen listener is bound to once Serve
// runs, or "".
func (s *Server) OpsAddr() string {
	if a := s.opsAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Run listens on listen_address:port and serves until ctx ends, then drains.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr())
	if err != nil {
		s.core.Close()
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr(), err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, over TLS when the tls section enables it.
// Then it stops accepting, lets requests in progress finish (each is bounded by
// produce_timeout_ms), runs the OnDrain functions, flushes what the Kafka
// clients still hold and closes them, all within shutdown_timeout. It returns nil
// after a clean drain.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var ops *http.Server
	var opsLn net.Listener
	if s.opsMux != nil {
		var err error
		if opsLn, err = net.Listen("tcp", s.cfg.OpsListen); err != nil {
			ln.Close()
			s.core.Close()
			return fmt.Errorf("ops_listen %s: %w", s.cfg.OpsListen, err)
		}
		addr := opsLn.Addr().String()
		s.opsAddr.Store(&addr)
		ops = opshttp.NewServer(s.cfg.OpsListen, s.opsMux, s.opsLimits)
		ops.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	}
	srv := HTTPServer(s.cfg, s.Handler())
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	srv.ConnState = s.conns.connState
	// Connections are counted below TLS: one refused costs no handshake.
	ln = s.conns.listener(ln)
	tc := s.tlsConf.Load()
	if tc != nil {
		// The handshake takes whatever ReloadTLS stored last.
		ln = tls.NewListener(ln, &tls.Config{GetConfigForClient: s.currentTLS})
	}

	hctx, stopHealth := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.core.RunHealth(hctx)
	}()
	defer func() {
		stopHealth()
		wg.Wait()
	}()

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if ops != nil {
		go func() { errc <- ops.Serve(opsLn) }()
		s.log.Info("serving operations endpoints", "addr", opsLn.Addr().String(), "pprof", s.cfg.Pprof)
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", tc != nil, "client_certificates", tc != nil && tc.ClientCAs != nil,
		"partitioner", s.cfg.Partitioner, "validate_msgpack", s.cfg.ValidateMsgpack, "max_connections", s.conns.max)

	select {
	case err := <-errc:
		srv.Close()
		if ops != nil {
			ops.Close()
		}
		s.core.Close()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	start := time.Now()
	s.core.StartDrain()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http requests: %w", err))
	}
	<-errc
	s.mu.Lock()
	drains := s.drains
	s.mu.Unlock()
	for _, f := range drains {
		if err := f(sctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.core.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	if ops != nil {
		// The operations endpoints answered (/readyz: 503) until here.
		if err := ops.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop ops_listen: %w", err))
		}
		<-errc
	}
	s.log.Info("drained", "took", time.Since(start).Round(time.Millisecond), "ok", len(errs) == 0)
	return errors.Join(errs...)
}

// HTTPServer returns the http.Server kproxy serves h with on port: the
// configured read, header, idle and write timeouts and header size bound
// (opshttp.NewServer; the TLS handshake is bounded by the shortest of the
// timeouts). The body size bound is the handler's: it counts bytes as they
// arrive, chunked or not.
func HTTPServer(c proxy.Config, h http.Handler) *http.Server {
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

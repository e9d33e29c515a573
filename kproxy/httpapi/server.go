// Package httpapi is kproxy's HTTP front: the listener on port (plain or TLS, with
// its size and time limits and max_connections), the HTTP doors to the core
// (POST /commit, POST /batch), the one map from the core's errors to HTTP
// statuses (Status), the operations endpoints (on port, and on ops_listen when
// set), and the lifecycle of serving: stop accepting, drain, flush the Kafka
// clients. Port is served by kproxy's own HTTP/1.1 loop (fastconn.go), which
// hands every connection that asks for anything but a commit or a batch to a
// net/http server; so other doors (the WebSocket gateways) are http.Handlers
// mounted with Handle, and may hijack their connections.
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
	"syscall"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
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
	lim        opshttp.Limits // of port's own loop
	clock      http1.Clock    // Date fields
	handoff    *handoff       // connections handed to net/http
	wg         sync.WaitGroup // the loop's connections and their writers

	mu       sync.Mutex
	drains   []func(context.Context) error
	fast     map[*fastConn]struct{} // the loop's connections
	stopping bool                   // no further connection is tracked
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
		lim:        loopLimits(cfg),
		fast:       map[*fastConn]struct{}{},
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

// Handler returns the http.Handler of port: what net/http serves on the
// connections the loop hands it, the whole API as the loop serves it.
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
	ops, opsLn, err := s.listenOps()
	if err != nil {
		ln.Close()
		s.core.Close()
		return err
	}
	// Connections are counted below TLS: one refused costs no handshake.
	ln = s.conns.listener(ln)
	// The loop hands connections that ask for other paths to srv.
	s.handoff = newHandoff(ln.Addr())
	srv := HTTPServer(s.cfg, s.Handler())
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	srv.ConnState = s.conns.connState
	tc := s.tlsConf.Load()

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

	errc := make(chan error, 3)
	accepted := make(chan error, 1)
	go func() { errc <- srv.Serve(s.handoff) }()
	go func() { accepted <- s.accept(ln) }()
	if ops != nil {
		go func() { errc <- ops.Serve(opsLn) }()
		s.log.Info("serving operations endpoints", "addr", opsLn.Addr().String(), "pprof", s.cfg.Pprof)
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", tc != nil, "client_certificates", tc != nil && tc.ClientCAs != nil,
		"partitioner", s.cfg.Partitioner, "validate_msgpack", s.cfg.ValidateMsgpack, "max_connections", s.conns.max)

	var failed error
	select {
	case err := <-errc:
		failed = fmt.Errorf("http server: %w", err)
	case err := <-accepted:
		failed = fmt.Errorf("accept connections on %s: %w", ln.Addr(), err)
		accepted <- nil
	case <-ctx.Done():
	}
	if failed != nil {
		ln.Close()
		<-accepted
		srv.Close()
		s.closeFast()
		s.wg.Wait()
		if ops != nil {
			ops.Close()
		}
		s.core.Close()
		return failed
	}
	return s.drain(ln, accepted, errc, srv, ops)
}

// listenOps listens on ops_listen, when the operations endpoints have a
// listener of their own, and returns their server; nil without one.
func (s *Server) listenOps() (*http.Server, net.Listener, error) {
	if s.opsMux == nil {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.OpsListen)
	if err != nil {
		return nil, nil, fmt.Errorf("ops_listen %s: %w", s.cfg.OpsListen, err)
	}
	addr := ln.Addr().String()
	s.opsAddr.Store(&addr)
	ops := opshttp.NewServer(s.cfg.OpsListen, s.opsMux, s.opsLimits)
	ops.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	return ops, ln, nil
}

// drain is Serve's end after ctx ended: it stops accepting on ln (whose
// accept loop reports on accepted), lets the requests in progress on the loop
// and on srv finish, runs the OnDrain functions, flushes what the Kafka
// clients hold and closes them, and last stops ops (errc has the end of srv's
// and ops' Serve), all within shutdown_timeout.
func (s *Server) drain(ln net.Listener, accepted, errc <-chan error, srv, ops *http.Server) error {
	start := time.Now()
	s.core.StartDrain()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown)
	defer cancel()
	var errs []error
	ln.Close()
	<-accepted
	s.drainFast()
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http requests: %w", err))
	}
	<-errc
	if err := s.waitFast(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http requests: %w", err))
	}
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

// accept accepts connections on ln and serves each with the loop until ln is
// closed (nil) or fails otherwise. Errors that may pass (such as running out
// of file descriptors, counted and logged by the limiter's listener) are
// retried after a pause that grows from 5 ms to 1 s, as net/http does.
func (s *Server) accept(ln net.Listener) error {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		s.wg.Add(1)
		go s.serveFast(c)
	}
}

// track registers a connection of the loop, for the drain; false once the
// server stops.
func (s *Server) track(c *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.fast[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *fastConn) {
	s.mu.Lock()
	delete(s.fast, c)
	s.mu.Unlock()
}

// drainFast has every connection of the loop stop after the requests it
// serves.
func (s *Server) drainFast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for c := range s.fast {
		c.drain()
	}
}

// waitFast waits for the loop's connections to end; when ctx ends first, it
// closes them and returns ctx's error.
func (s *Server) waitFast(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeFast()
		<-done
		return ctx.Err()
	}
}

// closeFast closes every connection of the loop at once.
func (s *Server) closeFast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for c := range s.fast {
		c.mu.Lock()
		c.breakLocked()
		c.mu.Unlock()
		_ = c.nc.Close()
	}
}

// handshakeTimeout bounds the TLS handshake: the shortest of the header, read
// and write bounds that are set, as net/http bounds it.
func (s *Server) handshakeTimeout() time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{s.lim.ReadHeaderTimeout, s.lim.ReadTimeout, s.lim.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

// loopLimits returns the limits of port's own loop: those net/http applies
// (opshttp.NewServer: read_header_timeout_ms no longer than
// read_timeout_ms, idle_timeout_ms, or read_timeout_ms when that is 0,
// max_header_bytes), with write_timeout_ms bounding the writing of an answer
// alone, as the configuration says.
func loopLimits(c proxy.Config) opshttp.Limits {
	srv := HTTPServer(c, nil)
	idle := srv.IdleTimeout
	if idle == 0 {
		idle = srv.ReadTimeout
	}
	return opshttp.Limits{
		ReadHeaderTimeout: srv.ReadHeaderTimeout,
		ReadTimeout:       srv.ReadTimeout,
		WriteTimeout:      time.Duration(c.WriteTimeoutMs) * time.Millisecond,
		IdleTimeout:       idle,
		MaxHeaderBytes:    srv.MaxHeaderBytes,
	}
}

// HTTPServer returns the http.Server kproxy serves h with on port, for the
// connections its loop hands to net/http: the configured read, header, idle
// and write timeouts and header size bound (opshttp.NewServer; the TLS
// handshake is bounded by the shortest of the timeouts), which the loop
// applies as well (loopLimits). The body size bound is the handler's: it
// counts bytes as they arrive, chunked or not.
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

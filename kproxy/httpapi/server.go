// Package httpapi is kproxy's HTTP front: the listener on port (plain or TLS, with
// its size and time limits and max_connections), the HTTP doors to the core
// (POST /commit, POST /batch), the one map from the core's errors to HTTP
// statuses (Status), the operations endpoints (on port, and on ops_listen when
// set), and the components a daemon.Runner takes through the stop (Register:
// stop accepting, drain, flush the Kafka clients, stop the operations
// endpoints; TLS files read again on SIGHUP). Port is served by kproxy's own HTTP/1.1 loop (fastconn.go), which
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
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

// Server serves kproxy's doors over HTTP. Create it with New, mount further doors
// with Handle, then add its components to a daemon.Runner with Register (or
// Run or Serve, which do both). It is safe for concurrent use once serving.
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

// Run listens on listen_address:port and serves until ctx ends, then drains
// (see Serve).
func (s *Server) Run(ctx context.Context) error { return s.Serve(ctx, nil) }

// Serve serves on ln (nil: listen on listen_address:port) until ctx ends, over
// TLS when the tls section enables it, through a daemon.Runner of its own
// with the components of Register. It returns nil after a clean drain.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	r := daemon.NewRunner(s.log, s.cfg.Shutdown)
	if err := s.Register(r, ln); err != nil {
		return err
	}
	return r.Run(ctx)
}

// Register listens on ln (nil: on listen_address:port) and ops_listen, and
// adds the server's components to r, in the order they stop, all within
// shutdown_timeout:
//
//   - "http", port: it stops accepting (the core refuses new records, 503
//     shutting_down, /readyz 503), lets the requests in progress finish (each
//     is bounded by produce_timeout_ms), closes the connections it handed to
//     net/http, and runs the OnDrain functions (the WebSocket gateways);
//   - "kafka": flushes what the Kafka clients still hold and closes them;
//   - "tls", with HTTPS: its Reload reads the TLS files again (ReloadTLS);
//   - "ops_listen", when set: the operations endpoints answer until here;
//   - "health": the prober of Kafka's health.
//
// When it fails it closes ln and the core.
func (s *Server) Register(r *daemon.Runner, ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr()); err != nil {
			s.core.Close()
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr(), err)
		}
	}
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
	f := &front{s: s, ln: ln, srv: srv, served: make(chan struct{}), accepted: make(chan struct{})}
	r.Add(daemon.Component{Name: "http", Serve: f.serve, Drain: f.drain, Close: f.close})
	r.Add(daemon.Component{Name: "kafka", Drain: s.core.Shutdown, Close: s.core.Close})
	if s.tlsConf.Load() != nil {
		r.Add(daemon.Component{Name: "tls", Reload: s.ReloadTLS})
	}
	if ops != nil {
		s.log.Info("serving operations endpoints", "addr", opsLn.Addr().String(), "pprof", s.cfg.Pprof)
		r.Add(daemon.HTTPServer("ops_listen", ops, opsLn))
	}
	r.Add(daemon.Component{Name: "health", Serve: func(ctx context.Context) error {
		s.core.RunHealth(ctx)
		return nil
	}})
	return nil
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

// front is the "http" component: port's accept loop, the loop's connections
// and the net/http server it hands connections to.
type front struct {
	s   *Server
	ln  net.Listener
	srv *http.Server

	served    chan struct{} // closed when srv.Serve returned
	serveErr  error         // what srv.Serve returned, once served is closed
	accepted  chan struct{} // closed when the accept loop returned
	acceptErr error         // what the accept loop returned, once accepted is closed
}

// serve accepts connections until ctx ends or accepting fails, then stops
// accepting work: the core refuses new records and ln is closed.
func (f *front) serve(ctx context.Context) error {
	go func() {
		defer close(f.served)
		f.serveErr = f.srv.Serve(f.s.handoff)
	}()
	go func() {
		defer close(f.accepted)
		f.acceptErr = f.s.accept(ctx, f.ln)
	}()
	tc := f.s.tlsConf.Load()
	f.s.log.Info("serving", "addr", f.ln.Addr().String(), "tls", tc != nil, "client_certificates", tc != nil && tc.ClientCAs != nil,
		"partitioner", f.s.cfg.Partitioner, "validate_msgpack", f.s.cfg.ValidateMsgpack, "max_connections", f.s.conns.max)
	var failed error
	select {
	case <-f.served:
		failed = fmt.Errorf("http server: %w", f.serveErr)
	case <-f.accepted:
		if f.acceptErr != nil {
			failed = fmt.Errorf("accept connections on %s: %w", f.ln.Addr(), f.acceptErr)
		}
	case <-ctx.Done():
	}
	f.s.core.StartDrain()
	f.ln.Close()
	<-f.accepted
	return failed
}

// drain lets the requests in progress on the loop and on srv finish, then
// runs the OnDrain functions.
func (f *front) drain(ctx context.Context) error {
	var errs []error
	f.s.drainFast()
	if err := f.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http requests: %w", err))
	}
	<-f.served
	if err := f.s.waitFast(ctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http requests: %w", err))
	}
	f.s.mu.Lock()
	drains := f.s.drains
	f.s.mu.Unlock()
	for _, d := range drains {
		if err := d(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// close closes what drain left open: after a drain past shutdown_timeout,
// the connections of both servers.
func (f *front) close() {
	f.ln.Close()
	f.srv.Close()
	f.s.closeFast()
}

// accept accepts connections on ln and serves each with the loop until ln is
// closed (nil) or fails otherwise. Errors that may pass (such as running out
// of file descriptors, counted and logged by the limiter's listener) are
// retried after a pause that grows from 5 ms to 1 s, as net/http does (with
// jitter), and ends with ctx.
func (s *Server) accept(ctx context.Context, ln net.Listener) error {
	failures := 0
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				failures++
				backoff.Sleep(ctx, acceptRetry.Delay(failures))
				continue
			}
			return err
		}
		failures = 0
		s.wg.Add(1)
		go s.serveFast(c)
	}
}

// acceptRetry is the pause after an accept error that may pass.
var acceptRetry = backoff.Policy{Initial: 5 * time.Millisecond, Max: time.Second}

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

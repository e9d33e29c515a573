// Package wsgate is what kproxy's WebSocket gateways share around their
// protocols: the gate before the upgrade (405 to other methods than GET, 426
// without the handshake, 401 when the token is refused, 503 at the connection
// limit or while shutting down, each with the JSON body {"error","code"} of
// kproxy's other answers), the registry of open connections and the graceful
// Shutdown (stop reading, let the requests read get their answers, close with
// 1001, wait), the reasons a connection ends with their close frames, and the
// Prometheus series of all that under the gateway's prefix.
//
// A gateway (kproxy/devicehive, kproxy/pubsub) keeps only its protocol: it
// gives the Gate an Open function that wraps each upgraded connection's Socket
// in its own connection type, whose Serve reads and answers frames.
package wsgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Conn is what a Gate needs of a gateway's connection type: a pointer type
// that Options.Open makes around a Socket, which it embeds (and so provides
// StopReading).
type Conn interface {
	comparable
	// Serve serves the connection until the client closes it, a read or
	// write fails, or reading stops; then it closes the connection. The
	// Gate calls it once, on the handler goroutine of the upgrade request.
	Serve()
	// StopReading makes the connection read no further request: the ones
	// read still get their answers, then Serve closes the connection with
	// 1001 (going away). Shutdown's first step; safe to call more than once.
	StopReading()
	// Abort closes the connection at once, for reason ClosedShutdown, so
	// that Serve returns soon: Shutdown's ctx ended before it did.
	Abort()
}

// Options configure a Gate. Name, MetricPrefix, Open, MaxConnections and
// MaxFrameBytes are required.
type Options[C Conn] struct {
	// Name names the gateway in refusals, log messages and metric help
	// ("devicehive": "the devicehive gateway takes a WebSocket upgrade ...").
	Name string

	// MetricPrefix starts the names of the series in Metrics
	// ("kproxy_devicehive").
	MetricPrefix string

	// Open makes the gateway's connection around an upgraded one. The Gate
	// calls Serve on it unless Shutdown began during the handshake; then
	// the socket is closed with 1001 and the connection is dropped unserved.
	Open func(*Socket) C

	// Authorize decides whether an upgrade request may connect; false
	// answers 401 before the upgrade. Nil lets everyone in.
	Authorize func(*http.Request) bool

	// CheckOrigin decides whether a browser page of the request's Origin may
	// connect (403 otherwise). Nil allows every origin: authentication is by
	// token, never by cookie.
	CheckOrigin func(*http.Request) bool

	// MaxConnections bounds the connections open or in their handshake;
	// more upgrades get 503.
	MaxConnections int

	// MaxFrameBytes bounds one received frame; a larger one closes the
	// connection with 1009 (message too big), counted as ClosedTooLarge.
	MaxFrameBytes int64

	// HandshakeTimeout bounds the WebSocket handshake; 0 leaves it unbounded.
	HandshakeTimeout time.Duration

	// AbortWait bounds how long Shutdown, once its ctx ended and it aborted
	// the connections left, still waits for them to end; 0 waits until they
	// have.
	AbortWait time.Duration

	// IDKey is the log attribute holding a connection's number (Socket.ID);
	// default "conn".
	IDKey string

	// ClosedHelp, FramesHelp and SentBytesHelp are the help texts of
	// PREFIX_closed_total, PREFIX_frames_received_total and
	// PREFIX_sent_bytes_total, whose meaning the protocol gives. ClosedHelp
	// defaults to "Closed NAME connections by reason.".
	ClosedHelp, FramesHelp, SentBytesHelp string

	// FrameTypes and CloseReasons are the series of
	// PREFIX_frames_received_total{type} and PREFIX_closed_total{reason}
	// that exist from the start, so that rates and alerts see 0 before the
	// first event.
	FrameTypes, CloseReasons []string

	// Logger receives the gate's and the sockets' logs; nil discards them.
	Logger *slog.Logger

	// Registerer receives the series of Metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// validate reports every missing or out-of-range value of o.
func (o *Options[C]) validate() error {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("wsgate: Options.Name is empty"))
	}
	if o.MetricPrefix == "" {
		errs = append(errs, errors.New("wsgate: Options.MetricPrefix is empty"))
	}
	if o.Open == nil {
		errs = append(errs, errors.New("wsgate: Options.Open is nil"))
	}
	for _, v := range []struct {
		name string
		v    int64
		min  int64
	}{
		{"MaxConnections", int64(o.MaxConnections), 1}, {"MaxFrameBytes", o.MaxFrameBytes, 1},
		{"HandshakeTimeout", int64(o.HandshakeTimeout), 0}, {"AbortWait", int64(o.AbortWait), 0},
	} {
		if v.v < v.min {
			errs = append(errs, fmt.Errorf("wsgate: Options.%s: %d is below %d", v.name, v.v, v.min))
		}
	}
	return errors.Join(errs...)
}

// Gate upgrades the requests of one gateway's path to WebSocket connections
// and keeps the open ones until they end. Create it with New; it is safe for
// concurrent use. Shutdown ends its connections.
type Gate[C Conn] struct {
	open      func(*Socket) C
	authorize func(*http.Request) bool
	upgrader  websocket.Upgrader
	maxConns  int64
	abortWait time.Duration
	sockets   *sockets // what every Socket of the gate shares
	metrics   *Metrics

	pending atomic.Int64 // connections open or in their handshake, against MaxConnections
	nextID  atomic.Uint64

	mu       sync.Mutex
	conns    map[C]struct{}
	draining bool
	wg       sync.WaitGroup // one per request past the gate, until its connection ended
}

// New returns a Gate, or an error naming every missing or out-of-range
// option, or why the metrics could not be registered.
func New[C Conn](opts Options[C]) (*Gate[C], error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.CheckOrigin == nil {
		opts.CheckOrigin = func(*http.Request) bool { return true }
	}
	if opts.IDKey == "" {
		opts.IDKey = "conn"
	}
	m, err := newMetrics(opts)
	if err != nil {
		return nil, err
	}
	g := &Gate[C]{
		open:      opts.Open,
		authorize: opts.Authorize,
		maxConns:  int64(opts.MaxConnections),
		abortWait: opts.AbortWait,
		sockets:   &sockets{name: opts.Name, idKey: opts.IDKey, log: opts.Logger, maxFrame: opts.MaxFrameBytes, closed: m.Closed},
		metrics:   m,
		conns:     map[C]struct{}{},
	}
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout: opts.HandshakeTimeout,
		CheckOrigin:      opts.CheckOrigin,
		// The gateways write each frame from one buffer of their own; the
		// library's write buffer then holds only frame headers and small
		// frames, shared between connections while they are idle.
		WriteBufferPool: &sync.Pool{},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			g.metrics.Upgrades.WithLabelValues(UpgradeHandshake).Inc()
			writeRefusal(w, status, "bad_handshake", reason.Error())
		},
	}
	return g, nil
}

// Metrics returns the gate's series, for the gateway to count frames and
// bytes in.
func (g *Gate[C]) Metrics() *Metrics { return g.metrics }

// ServeHTTP upgrades a GET with the WebSocket handshake and serves the
// connection until it ends. Before the upgrade it answers 405 to other
// methods, 426 to a request without the handshake, 401 when Authorize
// refuses, and 503 at MaxConnections or while shutting down; each with a
// JSON body {"error","code"} and counted in PREFIX_upgrades_total.
func (g *Gate[C]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := g.sockets.name
	switch {
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		g.refuse(w, UpgradeMethod, http.StatusMethodNotAllowed, "method_not_allowed",
			"the "+name+" gateway takes a WebSocket upgrade (GET), not "+r.Method)
		return
	case !websocket.IsWebSocketUpgrade(r):
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		g.refuse(w, UpgradeNotWebSocket, http.StatusUpgradeRequired, "upgrade_required",
			"the "+name+" gateway speaks WebSocket: send Connection: Upgrade and Upgrade: websocket")
		return
	case g.authorize != nil && !g.authorize(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="kproxy"`)
		g.refuse(w, UpgradeUnauthorized, http.StatusUnauthorized, codeUnauthorized,
			"a valid token is required (Authorization: Bearer or ?access_token=)")
		return
	}
	if n := g.pending.Add(1); n > g.maxConns {
		g.pending.Add(-1)
		w.Header().Set("Retry-After", "1")
		g.refuse(w, UpgradeLimit, http.StatusServiceUnavailable, "too_many_connections",
			fmt.Sprintf("%d %s connections are open, the limit", g.maxConns, name))
		return
	}
	defer g.pending.Add(-1)
	if !g.reserve() {
		w.Header().Set("Retry-After", "1")
		g.refuse(w, UpgradeShutdown, http.StatusServiceUnavailable, codeShuttingDown, "kproxy is shutting down")
		return
	}
	defer g.wg.Done()
	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered (its Error in New).
		g.sockets.log.Debug(name+": upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	g.metrics.Upgrades.WithLabelValues(UpgradeOK).Inc()
	s := g.sockets.newSocket(ws, g.nextID.Add(1), r.RemoteAddr)
	c := g.open(s)
	if !g.track(c) {
		s.End(ClosedShutdown) // Shutdown began during the handshake
		return
	}
	defer g.untrack(c)
	g.metrics.Connections.Inc()
	defer g.metrics.Connections.Dec()
	c.Serve()
}

// refuse counts and writes an answer refused before the upgrade.
func (g *Gate[C]) refuse(w http.ResponseWriter, result string, status int, code, msg string) {
	g.metrics.Upgrades.WithLabelValues(result).Inc()
	writeRefusal(w, status, code, msg)
}

// reserve holds Shutdown until the request it admits has ended; it reports
// false while shutting down.
func (g *Gate[C]) reserve() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.wg.Add(1)
	return true
}

// track registers a connection that is about to be served; it reports false
// while shutting down.
func (g *Gate[C]) track(c C) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *Gate[C]) untrack(c C) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// Conns returns the connections being served, in no order.
func (g *Gate[C]) Conns() []C {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]C, 0, len(g.conns))
	for c := range g.conns {
		out = append(out, c)
	}
	return out
}

// Connections returns the number of connections being served.
func (g *Gate[C]) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Shutdown refuses new upgrades (503), stops reading on every connection
// (StopReading: the requests read get their answers, then each connection
// closes with 1001) and waits until every connection has ended. When ctx ends
// first, it aborts the connections left, waits for them at most AbortWait
// (0: until they have ended) and returns ctx's error. Calling it again is
// safe.
func (g *Gate[C]) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	for _, c := range g.Conns() {
		c.StopReading()
	}
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range g.Conns() {
		c.Abort()
	}
	if g.abortWait > 0 {
		t := time.NewTimer(g.abortWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	} else {
		<-done
	}
	return ctx.Err()
}

// The codes of refusals that kproxy's core has too (proxy.CodeUnauthorized,
// proxy.CodeShuttingDown); the gate does not depend on the core.
const (
	codeUnauthorized = "unauthorized"
	codeShuttingDown = "shutting_down"
)

// refusal is the JSON of an answer refused before the upgrade, the shape of
// kproxy's /commit errors.
type refusal struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeRefusal(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(refusal{Error: msg, Code: code})
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

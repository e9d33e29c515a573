package wsgate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// waitTimeout guards waits against a hang; never a timing check.
const waitTimeout = 20 * time.Second

// echo is a protocol for the tests: each frame is written back. Unless
// reading stops, it ends the connection with the reason ReadFailed gives.
type echo struct {
	*Socket
	idle    time.Duration // ExtendRead before each frame, when not 0
	linger  bool          // once reading stopped, Serve waits for Abort
	stuck   chan struct{} // when not nil, Serve returns only once it is closed
	aborted chan struct{} // closed by Abort
	abort   sync.Once
	served  chan struct{} // closed when Serve starts
}

func (c *echo) Serve() {
	close(c.served)
	reason := c.read()
	if reason == ClosedShutdown && c.linger {
		<-c.aborted
	}
	if c.stuck != nil {
		<-c.stuck
	}
	c.End(reason)
}

func (c *echo) read() string {
	for {
		if c.idle > 0 {
			c.ExtendRead(c.idle)
		}
		select {
		case <-c.Stopping():
			return ClosedShutdown
		default:
		}
		typ, b, err := c.WS().ReadMessage()
		if err != nil {
			return c.ReadFailed(err)
		}
		if err := c.WS().WriteMessage(typ, b); err != nil {
			c.Drop(ClosedWriteErr)
			return ClosedWriteErr
		}
	}
}

func (c *echo) Abort() {
	c.abort.Do(func() { close(c.aborted) })
	c.Drop(ClosedShutdown)
}

// rig is a Gate of the echo protocol on a loopback test server.
type rig struct {
	g      *Gate[*echo]
	reg    *prometheus.Registry
	srv    *httptest.Server
	url    string // ws://127.0.0.1:PORT/echo
	opened chan *echo
}

// setup holds what a test changes: the echo's behaviour and the options.
type setup struct {
	idle   time.Duration
	linger bool
	stuck  chan struct{}
	opts   func(*Options[*echo])
	open   func(*echo) // called in Open, before the gate registers the connection
}

func startRig(t *testing.T, s setup) *rig {
	t.Helper()
	r := &rig{reg: prometheus.NewRegistry(), opened: make(chan *echo, 100)}
	opts := Options[*echo]{
		Name:           "echo",
		MetricPrefix:   "kproxy_echo",
		MaxConnections: 10,
		MaxFrameBytes:  1024,
		FramesHelp:     "Frames received by type.",
		SentBytesHelp:  "Bytes written.",
		Registerer:     r.reg,
		Open: func(sock *Socket) *echo {
			c := &echo{Socket: sock, idle: s.idle, linger: s.linger, stuck: s.stuck,
				aborted: make(chan struct{}), served: make(chan struct{})}
			r.opened <- c
			if s.open != nil {
				s.open(c)
			}
			return c
		},
	}
	if s.opts != nil {
		s.opts(&opts)
	}
	g, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.g = g
	mux := http.NewServeMux()
	mux.Handle("/echo", g)
	r.srv = httptest.NewServer(mux)
	r.url = "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/echo"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = g.Shutdown(ctx)
		r.srv.Close()
	})
	return r
}

// dialEcho dials the rig and checks one frame comes back.
func (r *rig) dialEcho(t *testing.T) *websocket.Conn {
	t.Helper()
	ws := wsgatetest.Dial(t, r.url, nil)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != "hello" {
		t.Fatalf("echo: got %q %v, want hello", b, err)
	}
	return ws
}

// closeErr reads until the connection ends and returns the close error.
func closeErr(t *testing.T, ws *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("got %v, want a close frame", err)
		}
		return ce
	}
}

func (r *rig) closed(reason string) float64 {
	return testutil.ToFloat64(r.g.Metrics().Closed.WithLabelValues(reason))
}

func (r *rig) upgrades(result string) float64 {
	return testutil.ToFloat64(r.g.Metrics().Upgrades.WithLabelValues(result))
}

// TestRefusals checks every answer before the upgrade: status, headers, the
// JSON body and the upgrades_total result it counts.
func TestRefusals(t *testing.T) {
	const token = "Bearer good-token-0123456789"
	r := startRig(t, setup{opts: func(o *Options[*echo]) {
		o.MaxConnections = 1
		o.Authorize = func(r *http.Request) bool { return r.Header.Get("Authorization") == token }
		o.CheckOrigin = func(r *http.Request) bool { return r.Header.Get("Origin") != "http://evil.example" }
	}})
	authed := func(h http.Header) http.Header { h.Set("Authorization", token); return h }
	noVersion := authed(wsgatetest.HandshakeHeader())
	noVersion.Del("Sec-Websocket-Version")
	badOrigin := authed(wsgatetest.HandshakeHeader())
	badOrigin.Set("Origin", "http://evil.example")
	type want struct {
		status int
		header map[string]string
		body   string // the JSON, exactly
		result string
	}
	refusals := []struct {
		name   string
		method string
		header http.Header
		want   want
	}{
		{"POST", http.MethodPost, nil, want{405, map[string]string{"Allow": "GET"},
			`{"error":"the echo gateway takes a WebSocket upgrade (GET), not POST","code":"method_not_allowed"}`, UpgradeMethod}},
		{"plain GET", http.MethodGet, nil, want{426, map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"},
			`{"error":"the echo gateway speaks WebSocket: send Connection: Upgrade and Upgrade: websocket","code":"upgrade_required"}`, UpgradeNotWebSocket}},
		{"no token", http.MethodGet, wsgatetest.HandshakeHeader(), want{401, map[string]string{"WWW-Authenticate": `Bearer realm="kproxy"`},
			`{"error":"a valid token is required (Authorization: Bearer or ?access_token=)","code":"unauthorized"}`, UpgradeUnauthorized}},
		{"bad handshake", http.MethodGet, noVersion, want{400, nil,
			`{"error":"websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header","code":"bad_handshake"}`, UpgradeHandshake}},
		{"origin refused", http.MethodGet, badOrigin, want{403, nil,
			`{"error":"websocket: request origin not allowed by Upgrader.CheckOrigin","code":"bad_handshake"}`, UpgradeHandshake}},
	}
	do := func(t *testing.T, method string, header http.Header, w want) {
		t.Helper()
		resp, body := wsgatetest.Do(t, method, r.srv.URL+"/echo", header)
		if resp.StatusCode != w.status || string(body) != w.body+"\n" {
			t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, w.status, w.body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type: got %q, want application/json", ct)
		}
		for k, v := range w.header {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: got %q, want %q", k, got, v)
			}
		}
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) { do(t, tc.method, tc.header, tc.want) })
	}

	// One connection open: the next upgrade is refused until it closes.
	ws, _, err := websocket.DefaultDialer.Dial(r.url, http.Header{"Authorization": {token}})
	if err != nil {
		t.Fatal(err)
	}
	do(t, http.MethodGet, authed(wsgatetest.HandshakeHeader()), want{503, map[string]string{"Retry-After": "1"},
		`{"error":"1 echo connections are open, the limit","code":"too_many_connections"}`, UpgradeLimit})
	ws.Close()
	testwait.Eventually(t, waitTimeout, "the slot freed", func() bool { return r.g.Connections() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := r.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	do(t, http.MethodGet, authed(wsgatetest.HandshakeHeader()), want{503, map[string]string{"Retry-After": "1"},
		`{"error":"kproxy is shutting down","code":"shutting_down"}`, UpgradeShutdown})

	for result, n := range map[string]float64{UpgradeOK: 1, UpgradeMethod: 1, UpgradeNotWebSocket: 1, UpgradeUnauthorized: 1,
		UpgradeHandshake: 2, UpgradeLimit: 1, UpgradeShutdown: 1} {
		if got := r.upgrades(result); got != n {
			t.Errorf("upgrades_total{result=%q}: got %v, want %v", result, got, n)
		}
	}
}

// TestCodesAreTheCores: the refusals' codes are those of kproxy's core.
func TestCodesAreTheCores(t *testing.T) {
	if codeUnauthorized != proxy.CodeUnauthorized || codeShuttingDown != proxy.CodeShuttingDown {
		t.Errorf("got codes %q, %q, want the core's %q, %q", codeUnauthorized, codeShuttingDown, proxy.CodeUnauthorized, proxy.CodeShuttingDown)
	}
}

// TestMetrics checks the names, help texts and first series of the gate's
// metrics, and that they count a connection's life.
func TestMetrics(t *testing.T) {
	r := startRig(t, setup{opts: func(o *Options[*echo]) {
		o.FrameTypes = []string{"text", "binary"}
		o.CloseReasons = []string{ClosedByClient, ClosedShutdown}
	}})
	ws := r.dialEcho(t)
	if got := testutil.ToFloat64(r.g.Metrics().Connections); got != 1 {
		t.Errorf("connections: got %v, want 1", got)
	}
	ws.Close()
	testwait.Eventually(t, waitTimeout, "connection gone", func() bool { return testutil.ToFloat64(r.g.Metrics().Connections) == 0 })

	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	series := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetHelp()
		series[mf.GetName()] = len(mf.GetMetric())
	}
	want := map[string]string{
		"kproxy_echo_connections":           "Open echo WebSocket connections.",
		"kproxy_echo_upgrades_total":        "Requests to the echo path by result: ok (upgraded) or why not.",
		"kproxy_echo_closed_total":          "Closed echo connections by reason.",
		"kproxy_echo_frames_received_total": "Frames received by type.",
		"kproxy_echo_sent_bytes_total":      "Bytes written.",
	}
	for name, help := range want {
		if got[name] != help {
			t.Errorf("%s: got help %q, want %q", name, got[name], help)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got series %v, want %v", got, want)
	}
	if series["kproxy_echo_frames_received_total"] != 2 || series["kproxy_echo_closed_total"] != 2 {
		t.Errorf("got %v series, want the 2 frame types and 2 close reasons from the start", series)
	}
	if got := r.closed(ClosedByClient); got != 1 {
		t.Errorf("closed_total{client}: got %v, want 1", got)
	}
	if _, err := New(Options[*echo]{Name: "echo", MetricPrefix: "kproxy_echo", MaxConnections: 1, MaxFrameBytes: 1,
		Open: func(*Socket) *echo { return nil }, Registerer: r.reg}); err == nil || !strings.HasPrefix(err.Error(), "echo: register metrics: ") {
		t.Errorf("second gate on one registry: got %v, want a registration error", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	_, err := New(Options[*echo]{MaxFrameBytes: -1, AbortWait: -time.Second})
	if err == nil {
		t.Fatal("New accepted empty options")
	}
	for _, want := range []string{"Options.Name is empty", "Options.MetricPrefix is empty", "Options.Open is nil",
		"Options.MaxConnections: 0 is below 1", "Options.MaxFrameBytes: -1 is below 1", "Options.AbortWait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestCloseReasons ends connections every way the socket tells apart and
// checks the close frame the client gets and the reason counted.
func TestCloseReasons(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		r := startRig(t, setup{})
		ws := r.dialEcho(t)
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		testwait.Eventually(t, waitTimeout, "closed_total{client}", func() bool { return r.closed(ClosedByClient) == 1 })
	})
	t.Run("client gone", func(t *testing.T) {
		r := startRig(t, setup{})
		r.dialEcho(t).Close()
		testwait.Eventually(t, waitTimeout, "closed_total{client}", func() bool { return r.closed(ClosedByClient) == 1 })
	})
	for _, tc := range []struct {
		name   string
		s      setup
		send   func(*websocket.Conn) error
		code   int
		text   string
		reason string
	}{
		{"frame too large", setup{}, func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, make([]byte, 2000))
		}, websocket.CloseMessageTooBig, "", ClosedTooLarge},
		{"idle", setup{idle: 50 * time.Millisecond}, func(*websocket.Conn) error { return nil },
			websocket.ClosePolicyViolation, "no frame or pong for two ping intervals", ClosedIdle},
		{"protocol error", setup{}, func(ws *websocket.Conn) error {
			// A masked frame of opcode 3, which RFC 6455 reserves.
			_, err := ws.UnderlyingConn().Write([]byte{0x83, 0x80, 1, 2, 3, 4})
			return err
		}, websocket.CloseProtocolError, "", ClosedReadErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, tc.s)
			ws := r.dialEcho(t)
			if err := tc.send(ws); err != nil {
				t.Fatal(err)
			}
			ce := closeErr(t, ws)
			if ce.Code != tc.code || (tc.text != "" && ce.Text != tc.text) {
				t.Errorf("got close %d %q, want %d %q", ce.Code, ce.Text, tc.code, tc.text)
			}
			testwait.Eventually(t, waitTimeout, "closed_total{"+tc.reason+"}", func() bool { return r.closed(tc.reason) == 1 })
		})
	}
}

// TestShutdown stops reading on every connection, which then closes with
// 1001, waits for them, and refuses upgrades afterwards.
func TestShutdown(t *testing.T) {
	r := startRig(t, setup{})
	a, b := r.dialEcho(t), r.dialEcho(t)
	if got := r.g.Connections(); got != 2 {
		t.Fatalf("got %d connections, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := r.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := r.g.Connections(); got != 0 {
		t.Errorf("got %d connections after Shutdown, want 0", got)
	}
	for _, ws := range []*websocket.Conn{a, b} {
		if ce := closeErr(t, ws); ce.Code != websocket.CloseGoingAway || ce.Text != "kproxy is shutting down" {
			t.Errorf("got close %d %q, want 1001 kproxy is shutting down", ce.Code, ce.Text)
		}
	}
	if got := r.closed(ClosedShutdown); got != 2 {
		t.Errorf("closed_total{shutdown}: got %v, want 2", got)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(r.url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after Shutdown: got %v, want 503", err)
	}
	if err := r.g.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestShutdownDeadline aborts the connections left when ctx ends, and waits
// for them to end (AbortWait 0).
func TestShutdownDeadline(t *testing.T) {
	r := startRig(t, setup{linger: true})
	r.dialEcho(t)
	c := <-r.opened
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.g.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: got %v, want context.Canceled", err)
	}
	select {
	case <-c.aborted:
	default:
		t.Error("the connection was not aborted")
	}
	if got := r.g.Connections(); got != 0 {
		t.Errorf("got %d connections after Shutdown, want 0: it waits for aborted ones", got)
	}
	if got := r.closed(ClosedShutdown); got != 1 {
		t.Errorf("closed_total{shutdown}: got %v, want 1", got)
	}
}

// TestShutdownAbortWait returns after AbortWait while a connection still has
// not ended after its abort.
func TestShutdownAbortWait(t *testing.T) {
	stuck := make(chan struct{})
	r := startRig(t, setup{stuck: stuck, opts: func(o *Options[*echo]) { o.AbortWait = 10 * time.Millisecond }})
	r.dialEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.g.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: got %v, want context.Canceled", err)
	}
	if got := r.g.Connections(); got != 1 {
		t.Errorf("got %d connections, want the stuck one still served", got)
	}
	close(stuck)
	testwait.Eventually(t, waitTimeout, "the stuck connection ended", func() bool { return r.g.Connections() == 0 })
}

// TestShutdownDuringHandshake: a connection whose handshake completes after
// Shutdown began is closed with 1001 and never served.
func TestShutdownDuringHandshake(t *testing.T) {
	var r *rig
	shut := make(chan error, 1)
	r = startRig(t, setup{open: func(*echo) {
		go func() { shut <- r.g.Shutdown(context.Background()) }()
		testwait.Eventually(t, waitTimeout, "draining", func() bool {
			_, resp, _ := websocket.DefaultDialer.Dial(r.url, nil)
			return resp != nil && resp.StatusCode == http.StatusServiceUnavailable
		})
	}})
	ws := wsgatetest.Dial(t, r.url, nil)
	if ce := closeErr(t, ws); ce.Code != websocket.CloseGoingAway || ce.Text != "kproxy is shutting down" {
		t.Errorf("got close %d %q, want 1001 kproxy is shutting down", ce.Code, ce.Text)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	c := <-r.opened
	select {
	case <-c.served:
		t.Error("the connection was served")
	default:
	}
	if err := c.Context().Err(); err == nil {
		t.Error("the connection's context did not end")
	}
	if got := r.closed(ClosedShutdown); got != 1 {
		t.Errorf("closed_total{shutdown}: got %v, want 1", got)
	}
}

// TestSocket numbers connections in order and ends their context with them.
func TestSocket(t *testing.T) {
	r := startRig(t, setup{})
	r.dialEcho(t)
	ws := r.dialEcho(t)
	first, second := <-r.opened, <-r.opened
	if first.ID() != 1 || second.ID() != 2 {
		t.Errorf("got ids %d, %d, want 1, 2", first.ID(), second.ID())
	}
	if err := second.Context().Err(); err != nil {
		t.Fatalf("context of an open connection: %v", err)
	}
	ws.Close()
	select {
	case <-second.Context().Done():
	case <-time.After(waitTimeout):
		t.Fatal("the context did not end with the connection")
	}
}

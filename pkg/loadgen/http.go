package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// RunHTTP speaks HTTP/1.1 itself over a net.Conn instead of going through
// net/http.Client, because that is much cheaper. Measured on the 2-core
// bench machine against a canned-response server (bench_test.go), a POST of
// a 200-byte body costs:
//
//	                             raw client      net/http.Client
//	allocations per request      0               60 (4.9 KB)
//	one connection, round trip   21-25 µs        64-66 µs
//	64 connections, CPU/request  26 µs           51-72 µs (client and server)
//	64 connections, throughput   72-73,000 req/s 26-37,000 req/s
//
// net/http also runs a reader and a writer goroutine per connection. On a
// machine that runs the daemon under test as well, every cycle the
// generator spends is taken from the daemon, so the raw client is used. It
// writes one pre-built request per round trip (a single write for bodies up
// to 64 KiB), reads the response head's framing with pkg/http1 and discards
// the body. The per-request deadline (SetDeadline) costs about 150 ns.

// DefaultTimeout is the per-request timeout of an HTTPTarget that sets none.
const DefaultTimeout = 10 * time.Second

// readBufSize is the read buffer of a connection: a response's status line
// must fit in it (longer field lines are skipped).
const readBufSize = 16 << 10

// maxHead bounds a response head.
const maxHead = 256 << 10

// inlineBody is the largest body copied behind the request head so that the
// request goes out in one write; larger bodies are written from the caller's
// slice with writev.
const inlineBody = 64 << 10

// HTTPTarget describes the requests RunHTTP sends.
type HTTPTarget struct {
	// URL is the base of every request, for example
	// "http://127.0.0.1:8080/commit". Only http:// is supported.
	URL string
	// Method is the request method; default POST when Body is set, GET
	// otherwise.
	Method string
	// Header is sent with every request. Host in it replaces the URL's host
	// in the Host header; Content-Length and Transfer-Encoding are set by
	// RunHTTP and must not be given.
	Header http.Header
	// Body returns, for request seq (counting from 0) of worker (0..conns-1),
	// a query appended verbatim to URL's path and query (for example
	// "?topic=t&key=k17&acks=1"; it must be escaped already) and the request
	// body. It is called from the worker goroutines concurrently, once per
	// request, outside the timed section; the returned slice must not change
	// while the request is being written. Pre-build bodies to keep it cheap.
	// Nil sends no query and an empty body.
	Body func(worker int, seq uint64) (query string, body []byte)
	// Timeout bounds each request, a reconnect included; a request that
	// exceeds it is an error and its connection is closed. Default
	// DefaultTimeout; negative means no timeout.
	Timeout time.Duration
}

// errAborted is returned by a round trip that saw the run being cancelled;
// such a request is never counted.
var errAborted = errors.New("loadgen: run cancelled")

// request is the parsed, pre-rendered form of an HTTPTarget.
type request struct {
	addr    string
	method  string
	target  string // "/path?query" up to where the per-request query goes
	fields  []byte // "Host: h\r\n" and the fixed header fields
	length  bool   // send Content-Length even for an empty body
	timeout time.Duration
}

func parseTarget(t HTTPTarget) (*request, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q: %w", ErrBadTarget, t.URL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%w: URL %q: scheme %q is not http", ErrBadTarget, t.URL, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: URL %q has no host", ErrBadTarget, t.URL)
	}
	method := t.Method
	if method == "" {
		method = http.MethodGet
		if t.Body != nil {
			method = http.MethodPost
		}
	}
	if !http1.IsToken(method) {
		return nil, fmt.Errorf("%w: method %q is not a token", ErrBadTarget, method)
	}
	r := &request{
		addr:    u.Host,
		method:  method,
		length:  method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch,
		timeout: t.Timeout,
	}
	if u.Port() == "" {
		r.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	r.target = u.EscapedPath()
	if r.target == "" {
		r.target = "/"
	}
	if u.RawQuery != "" {
		r.target += "?" + u.RawQuery
	}

	host := u.Host
	names := make([]string, 0, len(t.Header))
	for name, values := range t.Header {
		if !http1.IsToken(name) {
			return nil, fmt.Errorf("%w: header name %q is not a token", ErrBadTarget, name)
		}
		for _, v := range values {
			if !http1.ValidFieldValue(v) {
				return nil, fmt.Errorf("%w: header %s: value %q contains control characters", ErrBadTarget, name, v)
			}
		}
		switch http.CanonicalHeaderKey(name) {
		case "Content-Length", "Transfer-Encoding":
			return nil, fmt.Errorf("%w: header %s is set by loadgen", ErrBadTarget, name)
		case "Host":
			if len(values) > 0 {
				host = values[0]
			}
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	r.fields = http1.AppendField(nil, "Host", host)
	for _, name := range names {
		for _, v := range t.Header[name] {
			r.fields = http1.AppendField(r.fields, name, v)
		}
	}
	return r, nil
}

// client is one worker's keep-alive connection. Only its worker uses it,
// except that abortAll may set the deadline of conn under mu.
type client struct {
	req    *request
	ctx    context.Context
	abort  *atomic.Bool
	dialer net.Dialer

	mu   sync.Mutex // guards conn against abortAll; the worker alone replaces it
	conn net.Conn

	br     *bufio.Reader
	wbuf   []byte // the request head, and a small body
	target []byte // the request target
	reused bool   // conn has carried a complete exchange
}

func newClient(ctx context.Context, req *request, abort *atomic.Bool) *client {
	c := &client{
		req:   req,
		ctx:   ctx,
		abort: abort,
		br:    bufio.NewReaderSize(nil, readBufSize),
		wbuf:  make([]byte, 0, 1024),
	}
	if req.timeout > 0 {
		c.dialer.Timeout = req.timeout
	}
	return c
}

func (c *client) dial() error {
	conn, err := c.dialer.DialContext(c.ctx, "tcp", c.req.addr)
	if err != nil {
		if c.abort.Load() || c.ctx.Err() != nil {
			return errAborted
		}
		return fmt.Errorf("loadgen: dial %s: %w", c.req.addr, err)
	}
	c.mu.Lock()
	c.conn = conn
	// abortAll stores abort before taking mu, so either it saw this conn or
	// this load sees the flag.
	aborted := c.abort.Load()
	c.mu.Unlock()
	if aborted {
		c.close()
		return errAborted
	}
	c.br.Reset(conn)
	c.reused = false
	return nil
}

func (c *client) close() {
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.mu.Unlock()
}

// abortAll makes every blocked read, write or dial of clients return at once.
func abortAll(abort *atomic.Bool, clients []*client) {
	abort.Store(true)
	for _, c := range clients {
		c.mu.Lock()
		if c.conn != nil {
			c.conn.SetDeadline(time.Unix(1, 0))
		}
		c.mu.Unlock()
	}
}

// roundTrip sends one request and reads its response, dialling first when
// the connection is closed. A reused connection that the server closed
// without answering (a keep-alive close racing the request, as net/http's
// Transport also retries) is replaced and the request resent once.
func (c *client) roundTrip(now time.Time, query string, body []byte) (int, error) {
	for attempt := 0; ; attempt++ {
		if c.conn == nil {
			if err := c.dial(); err != nil {
				return 0, err
			}
		}
		if c.req.timeout > 0 {
			c.conn.SetDeadline(now.Add(c.req.timeout))
			// abortAll may have set a past deadline just before ours.
			if c.abort.Load() {
				return 0, errAborted
			}
		}
		reused := c.reused
		status, retry, err := c.exchange(query, body)
		if err == nil {
			return status, nil
		}
		c.close()
		if c.abort.Load() {
			return 0, errAborted
		}
		if !reused || !retry || attempt > 0 {
			return 0, err
		}
	}
}

// exchange writes the request and reads the response. retry reports that the
// error came before any byte of a response and was not a timeout.
func (c *client) exchange(query string, body []byte) (status int, retry bool, err error) {
	r := c.req
	c.target = append(append(c.target[:0], r.target...), query...)
	w := http1.AppendRequestLine(c.wbuf[:0], r.method, c.target)
	w = append(w, r.fields...)
	if len(body) > 0 || r.length {
		w = http1.AppendContentLength(w, len(body))
	}
	w = append(w, "\r\n"...)
	if len(body) <= inlineBody {
		w = append(w, body...)
		_, err = c.conn.Write(w)
	} else {
		bufs := net.Buffers{w, body}
		_, err = bufs.WriteTo(c.conn)
	}
	c.wbuf = w[:0]
	if err != nil {
		return 0, !isTimeout(err), fmt.Errorf("loadgen: write request to %s: %w", r.addr, err)
	}

	var h http1.Response
	if err := http1.ReadResponse(c.br, r.method, maxHead, &h, nil); err != nil {
		return 0, h.HeadBytes == 0 && !isTimeout(err), fmt.Errorf("loadgen: read response from %s: %w", r.addr, err)
	}
	var b http1.BodyReader
	b.ResetResponse(c.br, &h)
	if _, err := b.Discard(math.MaxInt64); err != nil {
		return 0, false, fmt.Errorf("loadgen: read body of %d response from %s: %w", h.Status, r.addr, err)
	}
	if h.KeepAlive {
		c.reused = true
	} else {
		c.close()
	}
	return h.Status, false, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// RunHTTP drives conns workers for d (after the warm-up, see Warmup), each
// with its own keep-alive connection to t.URL, in a closed loop: a worker
// sends its next request as soon as it has read the previous response. All
// connections are opened before the clock starts; if one cannot be opened,
// RunHTTP returns that error and no Result.
//
// A response with "Connection: close", an HTTP/1.0 response without
// keep-alive, a body delimited by the end of the connection, other framing
// the connection cannot be trusted after (http1.Response.KeepAlive), or an
// error closes the worker's connection; its next request dials a new one (the dial
// is part of that request's latency, and a failed dial is an error). A reused
// connection the server closed before answering is replaced and the request
// resent once, not counted as an error.
//
// When ctx is cancelled, RunHTTP aborts the requests in flight at once
// (without counting them) and returns what it measured so far together with
// an error wrapping ctx.Err().
func RunHTTP(ctx context.Context, t HTTPTarget, conns int, d time.Duration, opts ...Option) (Result, error) {
	o := applyOptions(opts)
	if err := validateLoad(conns, d, &o); err != nil {
		return Result{}, err
	}
	req, err := parseTarget(t)
	if err != nil {
		return Result{}, err
	}
	body := t.Body
	if body == nil {
		body = func(int, uint64) (string, []byte) { return "", nil }
	}

	c := &clock{}
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = newClient(ctx, req, &c.abort)
	}
	stop := context.AfterFunc(ctx, func() { abortAll(&c.abort, clients) })
	defer stop()
	defer func() {
		for _, cl := range clients {
			cl.close()
		}
	}()
	for _, cl := range clients {
		if err := cl.dial(); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return Result{}, fmt.Errorf("loadgen: run cancelled: %w", ctxErr)
			}
			return Result{}, err
		}
	}

	start := time.Now()
	c.measure = start.Add(o.warmup)
	c.end = c.measure.Add(d)
	all := make([]*stats, conns)
	var wg sync.WaitGroup
	for w, cl := range clients {
		s := new(stats)
		all[w] = s
		wg.Go(func() {
			now := time.Now()
			for seq := uint64(0); now.Before(c.end) && !c.abort.Load(); seq++ {
				query, b := body(w, seq)
				t0 := time.Now()
				status, err := cl.roundTrip(t0, query, b)
				now = time.Now()
				// A dial can fail on ctx before abortAll has set the flag.
				if c.abort.Load() || (err != nil && ctx.Err() != nil) {
					break
				}
				c.count(s, t0, now, err == nil && status >= 200 && status < 300, status, err)
			}
		})
	}
	wg.Wait()
	r := merge(c, all, true)
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("loadgen: run cancelled: %w", err)
	}
	return r, nil
}

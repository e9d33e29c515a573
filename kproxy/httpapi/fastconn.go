package httpapi

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// kproxy serves port with its own HTTP/1.1 loop (pkg/http1 for the framing)
// rather than net/http: a /commit waits for Kafka, and net/http makes a
// request that waits cost much more than one answered at once — the
// handler's goroutine parks and wakes, a background read watches the
// connection meanwhile and the deadlines are reset around it. A no-op
// net/http server that only waits 1 ms before answering costs 1.44-1.48
// times the CPU per request of the same server answering at once. Here a
// connection has one goroutine that reads requests; a /commit or /batch is
// admitted, its body read, its records handed to Kafka with a callback
// (proxy.CommitAsync), and the goroutine goes straight back to reading. The
// callback writes the answer, in request order, with a write that never
// blocks (the rest, if the socket is full, goes to a goroutine that may
// block); nothing parks per request beyond the read every HTTP server waits
// in.
//
// Only well-formed POST /commit and /batch requests are served here. A
// connection whose next request is anything else — another path, a
// WebSocket upgrade, a head too large for the read buffer, a head
// pkg/http1 does not accept — is handed, from that request on and with the
// bytes already read, to a net/http server with the same handler and
// limits, which answers it as it always has.

// Bounds of one connection of the loop.
const (
	// readBufSize is the read buffer of a connection, pooled. A head that
	// does not fit goes to net/http.
	readBufSize = 4 << 10
	// maxPipelined bounds the requests of one connection read and not yet
	// answered; the loop waits before reading another.
	maxPipelined = 16
	// lingerTime and lingerBytes bound the wait for the client's end after
	// kproxy closes a connection whose request it did not read to the end
	// (see closeLingering).
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// aLongTimeAgo is a deadline in the past: setting it ends a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// fastConn is one connection of port served by the loop.
type fastConn struct {
	s      *Server
	nc     net.Conn        // the limitedConn, or a *tls.Conn over it
	lc     *limitedConn    //
	raw    syscall.RawConn // the socket, for writes that never block; nil under TLS
	br     *bufio.Reader
	ctx    context.Context // ends with the connection: Kafka's clients drop its records not sent yet
	cancel context.CancelFunc
	req    http1.Request
	body   http1.BodyReader
	// headStart is when the first bytes of the request being read arrived.
	headStart time.Time
	done      func(*proxy.Record, proxy.Ack, error) // committed, bound once
	bdone     func(*proxy.Batch)                    // batched, bound once
	rawWrite  func(fd uintptr) bool                 // writeFd, bound once
	topic     func([]byte) string                   // internTopic, bound once
	lastTopic string                                // the topic of the last request
	// writeFd's arguments and results, owned by the write under way.
	wb   []byte
	wn   int
	werr error

	// Guarded by mu; cond is signalled when the queue shrinks or a write ends.
	mu       sync.Mutex
	cond     sync.Cond
	queue    []*slot // answers in request order, the next to write first
	wbuf     []byte  // the bytes of the write under way
	writing  bool    // a write is under way
	broken   bool    // a write failed: nothing more is written
	waiting  bool    // the loop waits for the first byte of a request
	between  bool    // ... of a request after the first
	idle     bool    // on the limiter's idle list
	draining bool    // the server stops: no further request is read
}

// serveFast runs the loop on nc, an accepted connection of port, until it
// ends; it does the TLS handshake first when port speaks TLS.
func (s *Server) serveFast(nc net.Conn) {
	defer s.wg.Done()
	lc, _ := nc.(*limitedConn)
	c := &fastConn{s: s, nc: nc, lc: lc}
	if tc := s.tlsConf.Load(); tc != nil {
		t := tls.Server(nc, &tls.Config{GetConfigForClient: s.currentTLS})
		if d := s.handshakeTimeout(); d > 0 {
			_ = nc.SetDeadline(time.Now().Add(d))
		}
		if err := t.HandshakeContext(context.Background()); err != nil {
			var re tls.RecordHeaderError
			if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
				// As net/http: tell a plain HTTP client where it is.
				_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			}
			s.log.Debug("TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			_ = nc.Close()
			return
		}
		_ = nc.SetDeadline(time.Time{})
		c.nc = t
	} else if lc != nil {
		if sc, ok := lc.Conn.(syscall.Conn); ok {
			c.raw, _ = sc.SyscallConn()
		}
	}
	c.cond.L = &c.mu
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.done, c.bdone, c.rawWrite, c.topic = c.committed, c.batched, c.writeFd, c.internTopic
	c.br = readBufs.Get().(*bufio.Reader)
	c.br.Reset(c.nc)
	if !s.track(c) {
		c.end(false)
		return
	}
	c.serve()
}

// looksLikeHTTP reports whether the first bytes a client sent to the TLS port
// are those of a plain HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// serve reads and serves requests until the connection ends or is handed
// to net/http.
func (c *fastConn) serve() {
	first := true
	for {
		if !c.awaitRoom() {
			c.end(false)
			return
		}
		n, err := c.readHead(first)
		first = false
		switch {
		case err == nil:
		case errors.Is(err, errStop):
			c.end(false)
			return
		case isEOFOrNet(err):
			if !isTimeout(err) {
				// The client went away: as under net/http, its records
				// not sent yet are dropped (and counted as 499).
				c.cancel()
			}
			c.end(false)
			return
		default:
			// A head pkg/http1 does not take, or one too large for the
			// buffer: net/http reads it and answers as it always has.
			c.handOver()
			return
		}
		if !c.fastPath() {
			c.handOver()
			return
		}
		if c.serveRequest(n) == stopReading {
			// kproxy ends the connection: the client may still be sending.
			c.end(true)
			return
		}
	}
}

// fastPath reports whether the parsed request is one the loop serves.
func (c *fastConn) fastPath() bool {
	r := &c.req
	if r.Upgrade || string(r.Method) != "POST" {
		return false
	}
	t := r.Target
	for i, ch := range t {
		if ch == '?' {
			t = t[:i]
			break
		}
	}
	return string(t) == "/commit" || string(t) == "/batch"
}

// errStop ends the loop without handing the connection over: the server is
// draining, or a write failed.
var errStop = errors.New("stop reading")

// readHead waits for the next complete request head in the read buffer and
// parses it into c.req; it returns the head's length. The wait for the first
// byte is bounded by idle_timeout_ms (read_header_timeout_ms for the first
// request of a connection, from when it was accepted), the head by
// read_header_timeout_ms from its first byte.
func (c *fastConn) readHead(first bool) (int, error) {
	lim := &c.s.lim
	var start time.Time
	if first {
		start = time.Now()
	}
	for {
		buffered := c.br.Buffered()
		if buffered > 0 {
			if start.IsZero() {
				start = time.Now()
			}
			b, _ := c.br.Peek(buffered)
			n, err := http1.ParseRequest(b, lim.MaxHeaderBytes, &c.req)
			switch {
			case err == nil:
				c.headStart = start
				return n, nil
			case !errors.Is(err, http1.ErrIncomplete):
				return 0, err
			case buffered == c.br.Size():
				return 0, http1.ErrHeadTooLarge
			}
		}
		var deadline time.Time
		switch {
		case !start.IsZero() && lim.ReadHeaderTimeout > 0:
			deadline = start.Add(lim.ReadHeaderTimeout)
		case start.IsZero() && lim.IdleTimeout > 0:
			deadline = time.Now().Add(lim.IdleTimeout)
		}
		if !c.beginWait(buffered == 0, !first && buffered == 0, deadline) {
			return 0, errStop
		}
		_, err := c.br.Peek(buffered + 1)
		if stop := c.endWait(); stop {
			return 0, errStop
		}
		if err != nil {
			if isTimeout(err) && buffered == 0 && !first && c.pending() {
				// Idle only counts once every answer is written.
				continue
			}
			return 0, err
		}
	}
}

// beginWait marks the loop as waiting to read, until deadline; empty says
// nothing of the next request was read. Between requests (between, not
// before the first: a new connection is not idle, as under net/http) and
// with every answer written, the connection is idle, a candidate for
// eviction at max_connections. It reports false when a write broke the
// connection or the server drains and the connection has nothing to finish.
// The deadline is set under c.mu, as breakLocked and drain set theirs, so
// that neither is lost.
func (c *fastConn) beginWait(empty, between bool, deadline time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken || c.draining && empty {
		return false
	}
	_ = c.nc.SetReadDeadline(deadline)
	c.waiting, c.between = empty, between
	c.setIdleLocked(between && len(c.queue) == 0)
	return true
}

// setReadDeadline sets the deadline of the reads to come, unless a write
// broke the connection (whose reads must fail at once).
func (c *fastConn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.broken {
		_ = c.nc.SetReadDeadline(t)
	}
}

// endWait ends the wait of beginWait; it reports whether the server began to
// drain meanwhile with the connection idle.
func (c *fastConn) endWait() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := c.draining && c.waiting && c.br.Buffered() == 0
	c.waiting, c.between = false, false
	c.setIdleLocked(false)
	return stop
}

// setIdleLocked puts the connection on the limiter's idle list or takes it
// off; c.mu is held.
func (c *fastConn) setIdleLocked(idle bool) {
	if c.idle == idle || c.lc == nil {
		return
	}
	c.idle = idle
	c.s.conns.setIdle(c.lc, idle)
}

// pending reports whether answers wait to be written.
func (c *fastConn) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) > 0 && !c.broken
}

// awaitRoom waits while maxPipelined answers are pending; false when the
// connection broke or the server drains.
func (c *fastConn) awaitRoom() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) >= maxPipelined && !c.broken {
		c.cond.Wait()
	}
	// Between requests: a draining server reads no further one, even one
	// the client already sent (its last answer said Connection: close).
	return !c.broken && !c.draining
}

// drain stops the connection reading further requests: at once when it waits
// for one with nothing pending, else once what it is serving is answered.
func (c *fastConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if c.waiting && len(c.queue) == 0 {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// internTopic returns the topic of b as a string, the one of the last
// request when it is the same: a connection's requests usually name one.
func (c *fastConn) internTopic(b []byte) string {
	if string(b) != c.lastTopic {
		c.lastTopic = string(b)
	}
	return c.lastTopic
}

// handOver passes the connection, with the bytes already read, to the
// net/http server once every answer is written.
func (c *fastConn) handOver() {
	if !c.awaitWritten() {
		c.end(false)
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.setIdleLocked(false)
	c.mu.Unlock()
	c.s.untrack(c)
	c.cancel()
	hc := &handedConn{Conn: c.nc, r: c.br}
	if !c.s.handoff.give(hc) {
		_ = c.nc.Close()
		c.releaseBuffer()
	}
}

// awaitWritten waits until every answer is written; false when a write
// failed.
func (c *fastConn) awaitWritten() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && !c.broken {
		c.cond.Wait()
	}
	return !c.broken
}

// end finishes the connection once its answers are written: closed at once,
// or, when linger is set (kproxy stops reading a request it did not read to
// the end), after telling the client and waiting a little for its end.
func (c *fastConn) end(linger bool) {
	written := c.awaitWritten()
	c.mu.Lock()
	c.setIdleLocked(false)
	c.mu.Unlock()
	c.s.untrack(c)
	c.cancel()
	if linger && written {
		c.closeLingering()
	} else {
		_ = c.nc.Close()
	}
	c.releaseBuffer()
}

// closeLingering closes the connection after a request kproxy did not read to
// the end: closing with unread bytes would make the kernel reset the
// connection, and the client could lose the answer written just before. So
// the write side is shut first and the client's remaining bytes are read
// and dropped until it closes, for at most lingerTime and lingerBytes.
func (c *fastConn) closeLingering() {
	if t, ok := c.nc.(*tls.Conn); ok {
		_ = t.CloseWrite()
	}
	if c.lc != nil {
		if cw, ok := c.lc.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.nc, lingerBytes)
	_ = c.nc.Close()
}

func (c *fastConn) releaseBuffer() {
	if c.br != nil {
		c.br.Reset(nil)
		readBufs.Put(c.br)
		c.br = nil
	}
}

// isEOFOrNet reports a read error that ends the connection rather than a
// head to hand over: end of input, a timeout, a network error.
func isEOFOrNet(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET)
}

// isTimeout reports a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handedConn is a connection handed to net/http with the bytes the loop read
// and did not serve: they are read first.
type handedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read implements net.Conn.
func (h *handedConn) Read(p []byte) (int, error) { return h.r.Read(p) }

// handoff is the listener of the net/http server that serves handed-over
// connections; its Accept returns them.
type handoff struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// give passes c to the net/http server; false once it stopped.
func (h *handoff) give(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

// Accept implements net.Listener.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr implements net.Listener.
func (h *handoff) Addr() net.Addr { return h.addr }

package push

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// The exchange speaks HTTP/1.1 itself over a net.Conn, with pkg/http1's
// framing, rather than through net/http: one POST and one response per round
// trip, with no goroutines per connection and no allocations per request
// beyond registering for the context's cancellation (net/http's Transport
// makes 44; BenchmarkPush64 measures both, and the README's "Why not
// net/http" gives the figures). The deadlines of a net.Conn give the timeouts
// their exact meaning, and the connection can be checked for stray bytes right
// before each request (idleState), which a Transport does not let a caller do.

const (
	// readBufSize holds a typical response head and small body in one read.
	readBufSize = 4096
	// inlineBody is the largest body copied behind the request head so the
	// request goes out in one write.
	inlineBody = 32 << 10
	// maxHeaderBytes bounds a response head.
	maxHeaderBytes = 256 << 10
	// snippetLen bounds the body start kept in a StatusError.
	snippetLen = 256
	// peekWait bounds the read of bytes known to be waiting on a connection
	// that is not carrying a request, to tell data from the end of the
	// connection (over TLS, records must be decrypted first).
	peekWait = 10 * time.Millisecond
)

// aLongTimeAgo is a deadline that has passed: setting it aborts a blocked read
// or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one connection to a server, used by one goroutine at a time.
type conn struct {
	nc        net.Conn
	peek      *peeker // the TCP socket under nc, looked into while idle; nil if unavailable
	tls       bool
	br        *bufio.Reader
	wbuf      []byte      // the request head, and a small body
	target    []byte      // the request target
	abort     func()      // cuts the connection's deadlines short; built once
	cut       atomic.Bool // abort was called: the connection is spoilt
	idleSince time.Time
	reused    bool // served a request before: the server may have closed it since
	// The record whose answer the connection read last, named when
	// unsolicited bytes follow: that answer may have been one too.
	lastTopic     string
	lastPartition int32
	lastOffset    int64

	flight // the request in progress, among its server's
}

func (c *conn) close() { c.nc.Close() }

// response is what a push needs of an answer.
type response struct {
	status     int
	retryAfter time.Duration // -1 when absent
	body       string        // start of the body of a non-2xx answer
}

// dial opens a connection to s within the connect timeout (TCP and TLS).
func (p *Pusher) dial(ctx context.Context, s *server, start time.Time) (*conn, error) {
	nc, err := p.dialer.DialContext(ctx, "tcp", s.addr)
	tcp := nc
	if err != nil {
		if isTimeout(err) {
			return nil, p.wrap("connect", p.cfg.ConnTimeout, err)
		}
		return nil, err // "dial tcp ADDR: connect: connection refused" says it all
	}
	if s.tlsConf != nil {
		if p.cfg.ConnTimeout > 0 {
			nc.SetDeadline(start.Add(p.cfg.ConnTimeout))
		}
		tc := tls.Client(nc, s.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, p.wrap("tls handshake", p.cfg.ConnTimeout, err)
		}
		nc.SetDeadline(time.Time{})
		nc = tc
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, readBufSize), tls: s.tlsConf != nil}
	if tc, ok := tcp.(syscall.Conn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			c.peek = newPeeker(rc)
		}
	}
	c.abort = func() {
		// Marked before the deadline moves, so that an exchange setting a
		// deadline of its own afterwards sees it (it checks cut after).
		c.cut.Store(true)
		nc.SetDeadline(aLongTimeAgo)
	}
	c.flight.abort = c.abort
	return c, nil
}

// wrap names the phase of a failed attempt and marks timeouts with ErrTimeout.
func (p *Pusher) wrap(phase string, limit time.Duration, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s %w after %v: %w", phase, ErrTimeout, limit, err)
	}
	return fmt.Errorf("%s: %w", phase, err)
}

// attempt sends r to s once, on an idle connection when there is one. When a
// reused connection fails before any answer arrived (the server closed it while
// idle, or it holds bytes nobody asked for), the server has not taken the
// request: it goes out on the next idle connection or a new one, within the same
// attempt. patience is how long the attempt may wait on a stalled server before
// it is abandoned (see stall.go).
func (p *Pusher) attempt(ctx context.Context, s *server, r *Record, start time.Time, patience time.Duration) (response, error) {
	for {
		c := s.get(time.Now())
		if c == nil {
			var err error
			if c, err = p.dialWatched(ctx, s, start, patience); err != nil {
				return response{retryAfter: -1}, err
			}
		}
		if p.beforeExchange != nil {
			p.beforeExchange(c)
		}
		watched := p.stallAfter > 0
		if watched {
			s.enter(&c.flight, p.since(start), patience)
		}
		resp, keep, unanswered, err := p.exchange(ctx, c, s, r)
		abandoned := false
		if watched {
			s.leave(&c.flight)
			if abandoned = c.flight.abandoned.Load(); abandoned {
				keep = false
				if err != nil {
					err = p.abandonedErr(s, start)
				}
			}
		}
		if err != nil && unanswered && c.reused && !abandoned && ctx.Err() == nil {
			c.close()
			continue
		}
		if keep {
			s.put(c, time.Now())
		} else {
			c.close()
		}
		return resp, err
	}
}

// errIdleClosed and errUnsolicited are why a reused connection is not used: the
// server closed it while idle, or sent bytes no request asked for.
var (
	errIdleClosed  = errors.New("connection closed by the server while idle")
	errUnsolicited = errors.New("unsolicited response on an idle connection")
)

// Idle states of a connection that carries no request.
const (
	idleSilent = iota // nothing arrived: it may carry a request
	idleClosed        // the server closed or reset it
	idleData          // bytes arrived that no request asked for
)

// sockState is what a socket holds, seen without reading it (peeker).
type sockState uint8

const (
	sockUnknown sockState = iota // cannot tell on this system
	sockEmpty
	sockData
	sockClosed
)

// idleState tells what arrived on c since its last answer, without waiting:
// bytes already read, bytes waiting in the socket (over TLS: decrypted and not
// yet read, or records waiting), or the end of the connection. It must be
// called right before c carries a request: whatever arrives after it is read
// as that request's answer.
func (c *conn) idleState() int {
	if c.br.Buffered() > 0 {
		return c.dataState()
	}
	// A read deadline of the previous exchange may have passed, which would
	// refuse the peek.
	c.nc.SetReadDeadline(time.Time{})
	switch c.peek.state() {
	case sockClosed:
		return idleClosed
	case sockData:
		// Read what is there (no more than peekWait) to tell an answer
		// from the end of the connection; over TLS, records that carry no
		// data (a close_notify, a session ticket) are decrypted on the way.
		c.nc.SetReadDeadline(time.Now().Add(peekWait))
		_, err := c.br.Peek(1)
		if err == nil {
			return c.dataState()
		}
		// The end of the connection, or TLS records without data, or part
		// of a record: not trusted to frame the next answer.
		return idleClosed
	}
	if c.tls {
		// Plaintext decrypted with the previous answer and not yet read
		// stays inside the TLS connection; a deadline that has passed reads
		// it without touching the socket (a timeout does not spoil a TLS
		// connection for reading).
		c.nc.SetReadDeadline(aLongTimeAgo)
		_, err := c.br.Peek(1)
		c.nc.SetReadDeadline(time.Time{})
		switch {
		case err == nil:
			return c.dataState()
		case !isTimeout(err):
			return idleClosed
		}
	}
	return idleSilent
}

// dataState classifies the bytes buffered on an idle connection: a 408 Request
// Timeout is how some servers announce that they close an idle connection (as
// net/http's Transport, which also closes quietly); anything else is an answer
// no request asked for.
func (c *conn) dataState() int {
	b, _ := c.br.Peek(min(c.br.Buffered(), len("HTTP/1.x 408")))
	if len(b) == len("HTTP/1.x 408") && string(b[:7]) == "HTTP/1." && string(b[8:]) == " 408" {
		return idleClosed
	}
	return idleData
}

// arrived reports whether bytes of an answer are already there, without
// waiting for them: data buffered or waiting in the socket (over TLS, data
// the waiting records decrypt to within peekWait).
func (c *conn) arrived() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	c.nc.SetReadDeadline(time.Time{})
	if c.peek.state() != sockData {
		return false
	}
	if !c.tls {
		return true
	}
	c.nc.SetReadDeadline(time.Now().Add(peekWait))
	_, err := c.br.Peek(1)
	c.nc.SetReadDeadline(time.Time{})
	return err == nil
}

// unsolicited reports bytes no request asked for, found on a connection of s
// (idle, or after an answer); the caller closes the connection.
func (p *Pusher) unsolicited(ctx context.Context, c *conn, s *server, where string) {
	b, _ := c.br.Peek(c.br.Buffered())
	p.log.LogAttrs(ctx, slog.LevelWarn, "unsolicited response from push server: connection closed",
		slog.String("server", s.name), slog.String("seen", where),
		slog.String("start", clip(b)),
		slog.String("last_answered_topic", c.lastTopic), slog.Int("last_answered_partition", int(c.lastPartition)),
		slog.Int64("last_answered_offset", c.lastOffset))
	if p.ev.Unsolicited != nil {
		p.ev.Unsolicited(s.name)
	}
}

// errCut is the error of an exchange whose connection was aborted (the context
// ended or the attempt was abandoned) before a blocking step began.
var errCut = errors.New("request cut short")

// errEarlyAnswer is wrapped by the error of an exchange answered with a 2xx
// before the whole request was written: the server cannot have had the record.
var errEarlyAnswer = errors.New("answered before the request was sent completely")

// exchange writes the request for r on c and reads the answer. keep reports
// whether c can carry another request; unanswered whether it failed before any
// byte of an answer arrived, without a timeout.
//
// A response belongs to the request only if none of it had arrived when the
// request was about to go out: a reused connection is checked right before its
// first write (idleState), and a request written in several parts right before
// its last part (arrived). Bytes found by the first check were sent before the
// request was: they are logged and the request goes out on another connection.
// An answer found by the second check came before the server could have the
// whole record, so a 2xx there is no delivery. What arrives while the last part
// is written cannot be told apart from the answer: HTTP/1.1 pairs answers
// with requests by order alone.
func (p *Pusher) exchange(ctx context.Context, c *conn, s *server, r *Record) (resp response, keep, unanswered bool, err error) {
	resp.retryAfter = -1
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, c.abort)
		defer func() {
			if !stop() {
				// The deadlines were cut short: the connection is spoilt.
				keep = false
			}
		}()
	}
	early, unanswered, err := p.send(ctx, c, s, r)
	if err != nil {
		return resp, false, unanswered, err
	}

	if p.cfg.ReadTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
	}
	if c.cut.Load() {
		return resp, false, false, errCut
	}
	var h http1.Response
	err = http1.ReadResponse(c.br, http.MethodPost, maxHeaderBytes, &h, func(name, value []byte) {
		if h.Status/100 != 2 && http1.EqualFold(name, "retry-after") {
			if d, ok := parseRetryAfter(string(value), time.Now()); ok {
				resp.retryAfter = d
			}
		}
	})
	if err != nil {
		unanswered = h.HeadBytes == 0 && !isTimeout(err)
		return resp, false, unanswered, p.wrap("read response", p.cfg.ReadTimeout, err)
	}
	resp.status = h.Status
	if p.stallAfter > 0 {
		s.answered(p.since(time.Now()))
	}
	if early {
		// The request is incomplete: the connection cannot carry another.
		if resp.status/100 == 2 {
			err = fmt.Errorf("%w: status %d", errEarlyAnswer, resp.status)
			resp.status = 0
		}
		return resp, false, false, err
	}
	c.lastTopic, c.lastPartition, c.lastOffset = r.Topic, r.Partition, r.Offset
	return resp, p.readBody(ctx, c, s, &h, &resp), false, nil
}

// send writes the request for r on c: in one write when the body is small,
// else the head and all of the body but its last byte, then, unless an answer
// has arrived by then (early), the last byte. unanswered reports a failure
// that leaves the request untaken by the server: c was found closed or holding
// bytes nobody asked for, or a write failed without a timeout.
func (p *Pusher) send(ctx context.Context, c *conn, s *server, r *Record) (early, unanswered bool, err error) {
	host := s.host
	if p.host != "" {
		host = p.host
	}
	c.target = p.uri.appendTo(append(c.target[:0], s.base...), r)
	b := http1.AppendRequestLine(c.wbuf[:0], http.MethodPost, c.target)
	b = http1.AppendField(b, "Host", host)
	b = append(b, p.head...)
	b = p.appendForwarded(b, r.Headers)
	b = http1.AppendContentLength(b, len(r.Value))
	b = append(b, "\r\n"...)
	inline := len(r.Value) <= inlineBody
	if inline {
		b = append(b, r.Value...)
	}
	c.wbuf = b

	if c.reused {
		switch c.idleState() {
		case idleClosed:
			return false, true, errIdleClosed
		case idleData:
			p.unsolicited(ctx, c, s, "idle connection")
			return false, true, errUnsolicited
		}
	}
	if p.cfg.WriteTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	}
	if c.cut.Load() {
		return false, false, errCut
	}
	_, err = c.nc.Write(b)
	if err == nil && !inline {
		last := len(r.Value) - 1
		if _, err = c.nc.Write(r.Value[:last]); err == nil {
			early = c.arrived()
			if c.cut.Load() {
				return early, false, errCut
			}
			if !early {
				_, err = c.nc.Write(r.Value[last:])
			}
		}
	}
	if err != nil {
		err = p.wrap("write request", p.cfg.WriteTimeout, err)
		return early, !errors.Is(err, ErrTimeout), err
	}
	return early, false, nil
}

// readBody keeps the start of a failure's body in resp, from what has arrived
// (it never waits for it), and reads the body of the answer h to its end when
// c can carry another request, which it reports. A body longer than
// Config.MaxResponseBytes, or one running to the end of the connection, is
// not waited for: the status is all a push needs.
func (p *Pusher) readBody(ctx context.Context, c *conn, s *server, h *http1.Response, resp *response) bool {
	var body http1.BodyReader
	body.ResetResponse(c.br, h)
	if resp.status/100 != 2 {
		b := body.Buffered()
		resp.body = printable(b[:min(len(b), snippetLen)])
	}
	if !h.KeepAlive {
		return false
	}
	if _, err := body.Discard(p.maxBody); err != nil {
		return false
	}
	if c.br.Buffered() > 0 {
		// More than one answer to one request: the connection is not
		// trusted, and the log names the record whose answer may have been
		// the wrong one (unless the server announced its close).
		if c.dataState() == idleData {
			p.unsolicited(ctx, c, s, "after an answer")
		}
		return false
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// clip shortens b for an error message.
func clip(b []byte) string {
	return printable(b[:min(len(b), 64)])
}

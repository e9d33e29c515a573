package push

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// The exchange speaks HTTP/1.1 itself over a net.Conn rather than through
// net/http: one POST and one response per round trip, with no goroutines per
// connection and no allocations per request beyond registering for the
// context's cancellation. Against a canned local server net/http's Transport
// reaches about half the rate with 64 workers, at 44 allocations per request
// (BenchmarkPush64 measures both). The deadlines of a net.Conn give the timeouts
// their exact meaning.

const (
	// readBufSize holds a typical response head and small body in one read.
	readBufSize = 4096
	// inlineBody is the largest body copied behind the request head so the
	// request goes out in one write.
	inlineBody = 32 << 10
	// maxHeaderBytes bounds a response head.
	maxHeaderBytes = 256 << 10
	// maxInterim bounds the 1xx responses skipped before the final one.
	maxInterim = 8
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
	wbuf      []byte
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

	b := append(c.wbuf[:0], "POST "...)
	b = append(b, s.base...)
	b = p.uri.appendTo(b, r)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if p.host != "" {
		b = append(b, p.host...)
	} else {
		b = append(b, s.host...)
	}
	b = append(b, "\r\n"...)
	b = append(b, p.head...)
	b = p.appendForwarded(b, r.Headers)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.Value)), 10)
	b = append(b, "\r\n\r\n"...)
	inline := len(r.Value) <= inlineBody
	if inline {
		b = append(b, r.Value...)
	}
	c.wbuf = b

	if c.reused {
		switch c.idleState() {
		case idleClosed:
			return resp, false, true, errIdleClosed
		case idleData:
			p.unsolicited(ctx, c, s, "idle connection")
			return resp, false, true, errUnsolicited
		}
	}
	if p.cfg.WriteTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	}
	if c.cut.Load() {
		return resp, false, false, errCut
	}
	_, err = c.nc.Write(b)
	early := false
	if err == nil && !inline {
		last := len(r.Value) - 1
		if _, err = c.nc.Write(r.Value[:last]); err == nil {
			early = c.arrived()
			if c.cut.Load() {
				return resp, false, false, errCut
			}
			if !early {
				_, err = c.nc.Write(r.Value[last:])
			}
		}
	}
	if err != nil {
		err = p.wrap("write request", p.cfg.WriteTimeout, err)
		return resp, false, !errors.Is(err, ErrTimeout), err
	}

	if p.cfg.ReadTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
	}
	if c.cut.Load() {
		return resp, false, false, errCut
	}
	h, err := readHead(c.br, &resp)
	if err != nil {
		unanswered = h.nothingRead && !isTimeout(err)
		return resp, false, unanswered, p.wrap("read response", p.cfg.ReadTimeout, err)
	}
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
	keep = h.keepAlive
	switch {
	case resp.status == 204 || resp.status == 304:
	case h.chunked:
		if resp.status/100 != 2 {
			resp.body = snippetChunked(c.br)
		}
		if discardChunked(c.br, p.maxBody) != nil {
			keep = false
		}
	case h.length >= 0:
		if resp.status/100 != 2 {
			resp.body = snippet(c.br, h.length)
		}
		if h.length > p.maxBody {
			keep = false
		} else if _, err := c.br.Discard(int(h.length)); err != nil {
			keep = false
		}
	default:
		// The body runs to the end of the connection: the status is all that
		// is needed, so it is not waited for.
		if resp.status/100 != 2 {
			resp.body = snippet(c.br, snippetLen)
		}
		keep = false
	}
	if keep && c.br.Buffered() > 0 {
		// More than one answer to one request: the connection is not
		// trusted, and the log names the record whose answer may have been
		// the wrong one (unless the server announced its close).
		if c.dataState() == idleData {
			p.unsolicited(ctx, c, s, "after an answer")
		}
		keep = false
	}
	return resp, keep, false, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// head is what framing needs of a response head.
type head struct {
	length      int64 // Content-Length, -1 when absent
	chunked     bool
	keepAlive   bool
	nothingRead bool // the connection failed before the first byte
}

// readHead reads the status line and headers of the final answer, skipping 1xx
// interim answers, into resp and the returned head.
func readHead(br *bufio.Reader, resp *response) (head, error) {
	total := 0
	for interim := 0; ; interim++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			h := head{nothingRead: len(line) == 0 && interim == 0}
			if err == bufio.ErrBufferFull {
				err = fmt.Errorf("%w: status line longer than %d bytes", errBadResponse, readBufSize)
			} else if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		total += len(line)
		minor, status, ok := parseStatusLine(trimEOL(line))
		if !ok {
			return head{}, fmt.Errorf("%w: status line %q", errBadResponse, clip(line))
		}
		h := head{length: -1}
		connection, err := readHeaders(br, resp, &h, status, &total)
		if err != nil {
			return head{}, err
		}
		if status >= 100 && status < 200 {
			if status == 101 || interim == maxInterim {
				return head{}, fmt.Errorf("%w: unexpected status %d", errBadResponse, status)
			}
			resp.retryAfter = -1
			continue
		}
		resp.status = status
		// HTTP/1.1 keeps the connection unless told otherwise, 1.0 only when
		// told; either way the body must be framed.
		h.keepAlive = connection != connClose && (minor >= 1 || connection == connKeepAlive)
		switch {
		case h.chunked:
			if h.length >= 0 {
				// Both framings: chunked wins, and the connection is not
				// trusted again.
				h.keepAlive = false
			}
			h.length = -1
		case h.length < 0 && status != 204 && status != 304:
			h.keepAlive = false
		}
		return h, nil
	}
}

// Values of the Connection header that matter here.
const (
	connNone = iota
	connKeepAlive
	connClose
)

// Kinds of header a folded line may continue.
const (
	prevOther = iota
	prevFraming
	prevConnection
)

// readHeaders reads header lines up to the empty line, noting the framing ones
// and, on failures, Retry-After. It returns what Connection asked for.
func readHeaders(br *bufio.Reader, resp *response, h *head, status int, total *int) (connection int, err error) {
	conflicting, otherCoding := false, false
	prev := prevOther // the header a folded line continues
	for {
		line, err := br.ReadSlice('\n')
		*total += len(line)
		if *total > maxHeaderBytes {
			return 0, fmt.Errorf("%w: response head longer than %d bytes", errBadResponse, maxHeaderBytes)
		}
		if err == bufio.ErrBufferFull {
			// An overlong header none of the ones read here: skip the rest of it.
			if headerIs(line, "content-length") || headerIs(line, "transfer-encoding") || headerIs(line, "connection") ||
				(prev == prevFraming && (line[0] == ' ' || line[0] == '\t')) {
				return 0, fmt.Errorf("%w: overlong header %q", errBadResponse, clip(line))
			}
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				*total += len(line)
				if *total > maxHeaderBytes {
					return 0, fmt.Errorf("%w: response head longer than %d bytes", errBadResponse, maxHeaderBytes)
				}
			}
			if err != nil {
				return 0, unexpected(err)
			}
			prev = prevOther
			continue
		}
		if err != nil {
			return 0, unexpected(err)
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Obsolete line folding continues the previous header's value:
			// the body's framing is then unknown, and a folded Connection
			// is not trusted to keep the connection.
			switch prev {
			case prevFraming:
				return 0, fmt.Errorf("%w: folded Content-Length or Transfer-Encoding", errBadResponse)
			case prevConnection:
				connection = connClose
			}
			continue
		}
		i := indexByte(line, ':')
		if i <= 0 {
			return 0, fmt.Errorf("%w: header line %q", errBadResponse, clip(line))
		}
		name, value := line[:i], trimSpace(line[i+1:])
		prev = prevOther
		switch {
		case equalFold(name, "content-length"):
			prev = prevFraming
			n, ok := parseDecimal(value)
			if !ok || (h.length >= 0 && h.length != n) {
				conflicting = true
			}
			h.length = n
		case equalFold(name, "transfer-encoding"):
			prev = prevFraming
			// Only chunked as the last coding frames the body; anything
			// else runs to the end of the connection.
			h.chunked = hasSuffixFold(value, "chunked")
			otherCoding = !h.chunked
		case equalFold(name, "connection"):
			prev = prevConnection
			if hasToken(value, "close") {
				connection = connClose
			} else if connection == connNone && hasToken(value, "keep-alive") {
				connection = connKeepAlive
			}
		case equalFold(name, "retry-after") && status/100 != 2:
			if d, ok := parseRetryAfter(string(value), time.Now()); ok {
				resp.retryAfter = d
			}
		}
	}
	if otherCoding {
		h.length = -1
	} else if conflicting && !h.chunked {
		return 0, fmt.Errorf("%w: invalid or conflicting Content-Length", errBadResponse)
	}
	return connection, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// discardChunked reads a chunked body to its end, giving up past max bytes.
func discardChunked(br *bufio.Reader, max int64) error {
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return unexpected(err)
		}
		line = trimEOL(line)
		if i := indexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, ok := parseHex(trimSpace(line))
		if !ok {
			return fmt.Errorf("%w: chunk size %q", errBadResponse, clip(line))
		}
		if size == 0 {
			break
		}
		total += size
		if total > max {
			return fmt.Errorf("response body longer than %d bytes", max)
		}
		if _, err := br.Discard(int(size)); err != nil {
			return unexpected(err)
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return unexpected(err)
		}
		if len(trimEOL(line)) != 0 {
			return fmt.Errorf("%w: chunk not followed by CRLF", errBadResponse)
		}
	}
	// Trailers, up to the empty line.
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return unexpected(err)
		}
		if len(trimEOL(line)) == 0 {
			return nil
		}
		if n > 100 {
			return fmt.Errorf("%w: too many trailers", errBadResponse)
		}
	}
}

// snippet returns the start of a body of n bytes from what has already arrived;
// it never waits for more.
func snippet(br *bufio.Reader, n int64) string {
	n = min(n, snippetLen, int64(br.Buffered()))
	b, _ := br.Peek(int(n))
	return printable(b)
}

// snippetChunked returns the start of the first chunk of a chunked body from
// what has already arrived.
func snippetChunked(br *bufio.Reader) string {
	b, _ := br.Peek(br.Buffered())
	i := indexByte(b, '\n')
	if i < 0 {
		return ""
	}
	size, ok := parseHex(trimSpace(cutByte(trimEOL(b[:i+1]), ';')))
	if !ok {
		return ""
	}
	rest := b[i+1:]
	return printable(rest[:min(int64(len(rest)), size, snippetLen)])
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

// parseStatusLine parses "HTTP/1.x SSS[ reason]".
func parseStatusLine(line []byte) (minor, status int, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return 0, 0, false
	}
	if line[7] < '0' || line[7] > '9' {
		return 0, 0, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		status = status*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' {
		return 0, 0, false
	}
	return int(line[7] - '0'), status, status >= 100
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return -1, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(c)
	}
	return n, true
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func cutByte(b []byte, c byte) []byte {
	if i := indexByte(b, c); i >= 0 {
		return b[:i]
	}
	return b
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[len(b)-len(s):], s)
}

// headerIs reports whether line starts with the header name (lower case) s.
func headerIs(line []byte, s string) bool {
	return len(line) > len(s) && equalFold(line[:len(s)], s) && (line[len(s)] == ':' || line[len(s)] == ' ')
}

// hasToken reports whether the comma-separated list v holds the lower-case token.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		i := indexByte(v, ',')
		var t []byte
		if i < 0 {
			t, v = v, nil
		} else {
			t, v = v[:i], v[i+1:]
		}
		if equalFold(trimSpace(t), token) {
			return true
		}
	}
	return false
}

// clip shortens b for an error message.
func clip(b []byte) string {
	return printable(b[:min(len(b), 64)])
}

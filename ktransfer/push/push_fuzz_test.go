package push

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// memConn is a net.Conn that reads a fixed answer and records what is written,
// so an exchange can be driven byte for byte without a socket.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *memConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// exchangeWith runs one exchange of p's first server over a memConn answering
// answer, and returns the connection with what was written and read.
func exchangeWith(t *testing.T, p *Pusher, r *Record, answer []byte) (mc *memConn, c *conn, resp response, keep bool, err error) {
	t.Helper()
	mc = &memConn{in: bytes.NewReader(answer)}
	c = &conn{nc: mc, br: bufio.NewReaderSize(mc, readBufSize), abort: func() {}}
	resp, keep, _, err = p.exchange(context.Background(), c, p.servers[0], r)
	return mc, c, resp, keep, err
}

// FuzzResponse feeds arbitrary backend answers to a real exchange. The
// exchange frames them with pkg/http1, whose FuzzReadResponse compares that
// framing with net/http's; checked here is what a push makes of it. The
// status is the one http1 reads; a connection is kept for the next request
// exactly when http1 keeps it and the answer, its body within
// MaxResponseBytes, ends where the bytes end (then the whole answer was
// read, and nothing beyond it, or the next push would read it as its own).
// A success has no body snippet; a failure's is short printable text, the
// start of the body; Retry-After is within its bounds.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\noops\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\nconnection: keep-alive\r\nRetry-After: 3\r\n\r\nbusy",
		"HTTP/1.1 100 Continue\r\nRetry-After: 9\r\n\r\nHTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\n\r\nwhatever",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 429 Slow\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 Busy\r\nRetry-After: 99999999999\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("x", 2000),
		"HTTP/1.1 500 \x00\r\nContent-Length: 6\r\n\r\n\x01\x02oops",
		"HTTP/1.1 101 Switching\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 408 Request Timeout\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.0 408",
	} {
		f.Add([]byte(s))
	}
	p, err := New(Config{Servers: []string{"127.0.0.1:8080"}, URI: "/x", MaxResponseBytes: 1 << 10}, nil, Events{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		r := Record{Topic: "t", Key: []byte("k"), Value: []byte{0x80}}
		mc, c, resp, keep, err := exchangeWith(t, p, &r, answer)
		if resp.retryAfter < -1 || resp.retryAfter > maxRetryAfter {
			t.Fatalf("answer %q: Retry-After %v, want -1 or 0..%v", answer, resp.retryAfter, maxRetryAfter)
		}
		if len(resp.body) > snippetLen || strings.ContainsFunc(resp.body, func(r rune) bool { return r < 0x20 || r >= 0x7f }) {
			t.Fatalf("answer %q: body snippet %q is not short printable text", answer, resp.body)
		}
		if err != nil {
			if keep {
				t.Fatalf("answer %q: error %v but the connection is kept", answer, err)
			}
			return
		}

		// The same bytes through http1 alone, the body read to its end.
		in := bytes.NewReader(answer)
		br := bufio.NewReader(in)
		var h http1.Response
		if err := http1.ReadResponse(br, http.MethodPost, maxHeaderBytes, &h, nil); err != nil {
			t.Fatalf("answer %q: status %d, but http1 cannot read the head: %v", answer, resp.status, err)
		}
		var body http1.BodyReader
		body.ResetResponse(br, &h)
		content, bodyErr := io.ReadAll(io.LimitReader(&body, p.maxBody+1))
		complete := bodyErr == nil && int64(len(content)) <= p.maxBody && br.Buffered() == 0 && in.Len() == 0
		if resp.status != h.Status {
			t.Fatalf("answer %q: status %d, http1 reads %d", answer, resp.status, h.Status)
		}
		if resp.status/100 == 2 && resp.body != "" {
			t.Fatalf("answer %q: success with body snippet %q", answer, resp.body)
		}
		if n := len(resp.body); resp.status/100 != 2 && (n > len(content) || resp.body != printable(content[:n])) {
			t.Fatalf("answer %q: body snippet %q is not the start of the body %q", answer, resp.body, content)
		}
		used := len(answer) - mc.in.Len() - c.br.Buffered()
		switch {
		case keep && (!h.KeepAlive || !complete):
			t.Fatalf("answer %q: connection kept, but http1 keeps it %v, and the body ends within the bytes and the limit %v (%v)", answer, h.KeepAlive, complete, bodyErr)
		case keep && used != len(answer):
			t.Fatalf("answer %q: connection kept after %d of %d bytes", answer, used, len(answer))
		case !keep && h.KeepAlive && complete:
			t.Fatalf("answer %q: connection closed, but it carries an answer framed exactly", answer)
		}
	})
}

// FuzzRequest pushes records with arbitrary keys, topics and methods through
// arbitrary configured URIs and headers. Whatever New accepts must produce one
// well-formed request that net/http reads back exactly: the request target is
// the expanded URI, each configured header arrives as configured and alone (no
// value can start a header or a request of its own), and the body is the
// record's value.
func FuzzRequest(f *testing.F) {
	tp := []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("/XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&format=msgpack", "orders", []byte("user 42&x=1/é"), "TestReply", "X-Module", "orders-push", []byte{0x81, 0xa1, 'a', 0x01}, tp)
	f.Add("/{#METHOD}/{#PARTITION}", "t", []byte("a\r\nX-Injected: 1"), "m\r\n\r\nGET / HTTP/1.1", "Host", "backend.example:8080", []byte("v"), []byte("x\r\nX-Injected: 1"))
	f.Add("/k={#KEY}", "", []byte{0, 0xff, ' ', '\n'}, "", "content-type", "application/json", []byte{}, []byte{})
	f.Add("/a b", "t", []byte("k"), "m", "X-A", "b\r\nX-B: c", []byte("v"), []byte(" \t"))
	f.Add("/x", "t", []byte("k"), "m", "Bad Name", "v", []byte("v"), tp)
	f.Add("/x", "t", []byte("k"), "m", "Transfer-Encoding", "chunked", []byte("v"), tp)
	f.Add("/x", "t", []byte("k"), "m", "traceparent", "fixed", []byte("v"), tp)
	f.Fuzz(func(t *testing.T, uri, topic string, key []byte, method, hname, hvalue string, value, traceparent []byte) {
		cfg := Config{Servers: []string{"127.0.0.1:8080"}, URI: uri, Headers: []map[string]string{{hname: hvalue}}, ForwardHeaders: []string{"traceparent"}}
		p, err := New(cfg, nil, Events{})
		if err != nil {
			return
		}
		r := Record{Topic: topic, Partition: 3, Offset: 1234567, Key: key, Value: value, Method: method,
			Headers: []kgo.RecordHeader{{Key: "TraceParent", Value: traceparent}}}
		mc, _, resp, _, err := exchangeWith(t, p, &r, []byte("HTTP/1.1 204 No Content\r\n\r\n"))
		if err != nil || resp.status != 204 {
			t.Fatalf("exchange: %d, %v; want 204", resp.status, err)
		}
		wire := mc.out.Bytes()
		br := bufio.NewReader(bytes.NewReader(wire))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("config %+v, record %+v: net/http cannot read the request %q: %v", cfg, r, wire, err)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil || !bytes.Equal(body, value) {
			t.Fatalf("request %q: body %q, %v; want %q", wire, body, err, value)
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Fatalf("request %q: %d bytes after the request: %q", wire, len(rest), rest)
		}
		if want := ExpandURI(uri, r); req.Method != http.MethodPost || req.RequestURI != want {
			t.Fatalf("request %q: %s %s, want POST %s", wire, req.Method, req.RequestURI, want)
		}
		if _, err := url.ParseRequestURI(req.RequestURI); err != nil {
			t.Fatalf("request target %q is not a URI: %v", req.RequestURI, err)
		}

		name := http.CanonicalHeaderKey(strings.TrimSpace(hname))
		want := strings.TrimSpace(hvalue)
		wantHeaders := map[string]string{"Content-Length": strconv.Itoa(len(value)), "Content-Type": "application/x-msgpack", "User-Agent": userAgent}
		if name == "Host" {
			if req.Host != want {
				t.Fatalf("request %q: Host %q, want %q", wire, req.Host, want)
			}
		} else {
			if req.Host != "127.0.0.1:8080" {
				t.Fatalf("request %q: Host %q, want the server's", wire, req.Host)
			}
			wantHeaders[name] = want
		}
		// The record's header goes along unless it could break the request.
		if len(traceparent) <= MaxForwardedValue && http1.ValidFieldValue(traceparent) {
			wantHeaders["Traceparent"] = string(traceparent)
		}
		if len(req.Header) != len(wantHeaders) {
			t.Fatalf("request %q: headers %q, want %q", wire, req.Header, wantHeaders)
		}
		for k, v := range wantHeaders {
			// net/http trims the spaces and tabs around a value, no more.
			if got := req.Header.Values(k); len(got) != 1 || got[0] != strings.Trim(v, " \t") {
				t.Fatalf("request %q: %s %q, want %q", wire, k, got, v)
			}
		}
	})
}

// FuzzExpandURI expands arbitrary templates for arbitrary records and compares
// the result with a direct transcription of the placeholder rules: values
// before the template's first "?" are path-escaped (url.PathEscape), values
// after it query-escaped (url.QueryEscape). Whatever the record holds, no
// space, control byte or delimiter it contains reaches the request line: a
// value adds no path segment, no query and no fragment, and a value taken back
// out of its path segment or its query parameter is the value put in.
func FuzzExpandURI(f *testing.F) {
	f.Add("/XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&format=msgpack", "orders", []byte("user 42&x=1/é"), "TestReply", int32(7), int64(123456789012))
	f.Add("/{#{#TOPIC}}{#FOO}{#", "a.b-c_d", []byte{}, "", int32(-1), int64(-5))
	f.Add("/m/{#METHOD}?k={#KEY}", "t", []byte("\r\n\x00 #?&=%+"), "a b?c\r\n", int32(0), int64(0))
	f.Add("{#KEY}{#KEY}}{#PARTITION}{#TRANSID}", "", []byte{0xff, 0xfe}, "\xff", int32(2147483647), int64(9223372036854775807))
	f.Add("/k/{#KEY}/{#METHOD}/{#TOPIC}", "a b", []byte("a b/c?d#e;f,g+h"), "x/y", int32(1), int64(2))
	f.Add("/p{#KEY}?q={#KEY}?r={#KEY}#{#KEY}", "t", []byte("sp ace"), "", int32(1), int64(2))
	f.Fuzz(func(t *testing.T, tmpl, topic string, key []byte, method string, partition int32, offset int64) {
		r := Record{Topic: topic, Partition: partition, Offset: offset, Key: key, Method: method}
		got := ExpandURI(tmpl, r)

		q := strings.IndexByte(tmpl, '?')
		if q < 0 {
			q = len(tmpl)
		}
		values := func(escape func(string) string) map[string]string {
			m := "*"
			if method != "" {
				m = escape(method)
			}
			return map[string]string{
				"{#TOPIC}":     escape(topic),
				"{#PARTITION}": strconv.Itoa(int(partition)),
				"{#TRANSID}":   strconv.FormatInt(offset, 10),
				"{#KEY}":       escape(string(key)),
				"{#METHOD}":    m,
			}
		}
		inPath, inQuery := values(url.PathEscape), values(url.QueryEscape)
		var want strings.Builder
		for i := 0; i < len(tmpl); {
			vals := inPath
			if i > q {
				vals = inQuery
			}
			matched := false
			for ph, v := range vals {
				if strings.HasPrefix(tmpl[i:], ph) {
					want.WriteString(v)
					i += len(ph)
					matched = true
					break
				}
			}
			if !matched {
				want.WriteByte(tmpl[i])
				i++
			}
		}
		if got != want.String() {
			t.Fatalf("ExpandURI(%q, %+v) = %q, want %q", tmpl, r, got, want.String())
		}
		if buf := compileURI(tmpl).appendTo([]byte("pre"), &r); string(buf) != "pre"+got {
			t.Fatalf("compiled template appends %q, want %q", buf, "pre"+got)
		}

		// Only the template itself can put a space or a control byte into
		// the result.
		clean := func(s string) bool {
			return !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
		}
		if clean(tmpl) && !clean(got) {
			t.Fatalf("ExpandURI(%q, %+v) = %q, which holds a space or control byte", tmpl, r, got)
		}
		// The path ends where the template's does: values add no "/", "?"
		// or "#" to it.
		path := ExpandURI(tmpl[:q], r)
		if !strings.HasPrefix(got, path) || (q < len(tmpl) && got[len(path)] != '?') {
			t.Fatalf("ExpandURI(%q, %+v) = %q: the path does not end at the template's \"?\" (path part %q)", tmpl, r, got, path)
		}
		plain := ExpandURI(tmpl[:q], Record{Topic: "t", Key: []byte("k"), Method: "m"})
		for _, d := range []string{"/", "?", "#"} {
			if strings.Count(path, d) != strings.Count(plain, d) {
				t.Fatalf("ExpandURI(%q, %+v): path %q has %d %q, with plain values %q has %d", tmpl, r, path, strings.Count(path, d), d, plain, strings.Count(plain, d))
			}
		}

		wantM := method
		if wantM == "" {
			wantM = "*"
		}
		// Each value reads back from its path segment ...
		for ph, v := range map[string]string{"{#KEY}": string(key), "{#METHOD}": wantM, "{#TOPIC}": topic} {
			seg := ExpandURI("/"+ph, r)[1:]
			if back, err := url.PathUnescape(seg); err != nil || back != v || strings.ContainsAny(seg, "/?#") {
				t.Fatalf("%s of %q is the path segment %q, which reads back as %q, %v", ph, v, seg, back, err)
			}
		}
		// ... and from its query parameter.
		qv := ExpandURI("/?k={#KEY}&m={#METHOD}&t={#TOPIC}", r)
		query, err := url.ParseQuery(qv[2:])
		if err != nil {
			t.Fatalf("expanded values %q do not parse as a query: %v", qv, err)
		}
		if query.Get("k") != string(key) || query.Get("m") != wantM || query.Get("t") != topic || len(query) > 3 {
			t.Fatalf("query of key %q, method %q, topic %q reads back as %q", key, method, topic, query)
		}
	})
}

// FuzzParseServer feeds arbitrary backend_servers entries to parseServer.
// Whatever it accepts gives an address to dial with a port in 1..65535, and a
// Host header value and path prefix without spaces or control bytes, which
// would otherwise split the request line or start a header of their own.
func FuzzParseServer(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:8080", "backend.example:80", "[::1]:9000", "http://b.example", "https://b.example:8443/api/v1/",
		"http://b.example/a%20b", "http://user@b:80", "http://b:80/?q", "http://b:80/#f", "ftp://b:21",
		"b:0", "b:65536", "b:http", ":80", "a b:80", "a\r\nX-Injected: 1\r\nY:80", "a\tb:80", "http://b\x7f:80",
		"http://[::1%25eth0]:80/p", "https://b.example:/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sv, err := parseServer(s, nil)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(sv.addr)
		if err != nil || host == "" {
			t.Fatalf("parseServer(%q): address %q is not HOST:PORT: %v", s, sv.addr, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			t.Fatalf("parseServer(%q): address %q has port %q outside 1..65535", s, sv.addr, port)
		}
		for what, v := range map[string]string{"Host": sv.host, "path prefix": sv.base} {
			if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				t.Fatalf("parseServer(%q): %s %q holds a space or control byte", s, what, v)
			}
		}
		if sv.base != "" && (sv.base[0] != '/' || strings.ContainsAny(sv.base, "?#")) {
			t.Fatalf("parseServer(%q): path prefix %q is not a path", s, sv.base)
		}
		if sv.name != s {
			t.Fatalf("parseServer(%q): name %q, want the entry as configured", s, sv.name)
		}
	})
}

// FuzzParseRetryAfter checks Retry-After values: delay-seconds (up to 18
// digits) and the three HTTP date formats are read, anything else is ignored,
// and a wait is never negative nor longer than maxRetryAfter.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"120", " 7 ", "0", "100000", "99999999999999999999", "-1", "+5", "1.5", "", "soon", "0x10", "1_0",
		now.Add(30 * time.Second).Format(http.TimeFormat), now.Add(-time.Hour).Format(http.TimeFormat),
		"Wednesday, 01-May-24 12:00:10 GMT", "Wed May  1 12:00:10 2024",
	} {
		f.Add(s, int64(30))
	}
	capSecs := int64(maxRetryAfter / time.Second)
	f.Fuzz(func(t *testing.T, v string, secs int64) {
		d, ok := parseRetryAfter(v, now)
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false; want 0 when ignored", v, d)
		}
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, want 0..%v", v, d, maxRetryAfter)
		}
		trimmed := strings.TrimSpace(v)
		digits := trimmed != "" && strings.Trim(trimmed, "0123456789") == ""
		if n, isInt := new(big.Int).SetString(trimmed, 10); digits && isInt {
			// Delay-seconds are read up to the largest int64; beyond that
			// the value is ignored.
			want, wantOK := time.Duration(0), false
			if n.IsInt64() {
				want, wantOK = time.Duration(min(n.Int64(), capSecs))*time.Second, true
			}
			if ok != wantOK || d != want {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v, %v", v, d, ok, want, wantOK)
			}
		}
		if _, err := http.ParseTime(trimmed); !digits && (err == nil) != ok {
			t.Fatalf("parseRetryAfter(%q) = %v, %v; net/http reads the date with error %v", v, d, ok, err)
		}

		// Every form of a moment secs from now gives the same wait.
		secs %= 2 * capSecs
		want := time.Duration(min(max(secs, 0), capSecs)) * time.Second
		at := now.Add(time.Duration(secs) * time.Second)
		for _, s := range []string{at.Format(http.TimeFormat), at.Format(time.RFC850), at.Format(time.ANSIC)} {
			if got, ok := parseRetryAfter(s, now); !ok || got != want {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v, true", s, got, ok, want)
			}
		}
		if secs >= 0 {
			if got, ok := parseRetryAfter(strconv.FormatInt(secs, 10), now); !ok || got != want {
				t.Fatalf("parseRetryAfter(%d) = %v, %v; want %v, true", secs, got, ok, want)
			}
		}
	})
}

package http1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseStatusLine(t *testing.T) {
	tests := []struct {
		in            string
		minor, status int
		ok            bool
	}{
		{"HTTP/1.1 200 OK", 1, 200, true},
		{"HTTP/1.0 404 Not Found", 0, 404, true},
		{"HTTP/1.1 204", 1, 204, true},
		{"HTTP/1.1 503 ", 1, 503, true},
		{"HTTP/1.1 200OK", 0, 0, false},
		{"HTTP/1.1 20", 0, 0, false},
		{"HTTP/1.1 2000 OK", 0, 0, false},
		{"HTTP/1.x 200 OK", 0, 0, false},
		{"HTTP/1.1 099 Low", 0, 0, false},
		{"HTTP/1.1 2x0 OK", 0, 0, false},
		{"http/1.1 200 OK", 0, 0, false},
		{"HTTP/2 200 OK", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			minor, status, ok := parseStatusLine([]byte(tt.in))
			if ok != tt.ok || (ok && (minor != tt.minor || status != tt.status)) {
				t.Errorf("parseStatusLine(%q) = %d, %d, %v; want %d, %d, %v", tt.in, minor, status, ok, tt.minor, tt.status, tt.ok)
			}
		})
	}
}

// TestReadResponse reads answers of every framing, each followed by a second
// answer, through a reader that returns one byte at a time, and checks the
// head, the body and that the second answer is where the first one ends when
// the connection is kept.
func TestReadResponse(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
	long := "X-Long: " + strings.Repeat("a", 100) + "\r\n"
	tests := []struct {
		name, answer string
		method       string
		status       int
		body         string
		keep         bool
		retryAfter   string // the Retry-After passed to field
	}{
		{name: "content-length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello", keep: true},
		{name: "no reason phrase", answer: "HTTP/1.1 204\r\n\r\n", status: 204, keep: true},
		{name: "chunked with trailer", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", status: 200, body: "hello world", keep: true},
		{name: "codings ending with chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n", status: 200, body: "zz", keep: true},
		{name: "interim 100 and 103", answer: "HTTP/1.1 100 Continue\r\nRetry-After: 9\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 503 Busy\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n", status: 503, keep: true, retryAfter: "3"},
		{name: "overlong field skipped", answer: "HTTP/1.1 200 OK\r\n" + long + "Content-Length: 2\r\n\r\nok", status: 200, body: "ok", keep: true},
		{name: "lower-case framing fields", answer: "HTTP/1.1 503 Busy\r\ncontent-length: 4\r\nconnection: keep-alive\r\n\r\nbusy", status: 503, body: "busy", keep: true},
		{name: "bare LF", answer: "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", status: 200, body: "x", keep: true},
		{name: "same Content-Length twice", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", keep: true},
		{name: "304 with a length", answer: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", status: 304, keep: true},
		{name: "HEAD with a length", method: "HEAD", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", status: 200, keep: true},
		{name: "HTTP/1.0 keep-alive", answer: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", keep: true},
		{name: "HTTP/1.0 without keep-alive", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "connection close", answer: "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "folded connection", answer: "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n close\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "body to the end of the connection", answer: "HTTP/1.0 200 OK\r\n\r\nwhatever", status: 200, body: "whatever" + next},
		{name: "other coding", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", status: 200, body: "xx" + next},
		{name: "length beside chunked", answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200, body: "abc"},
		{name: "chunked repeated", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", status: 200, body: "a"},
		{name: "chunked in HTTP/1.0", answer: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x"},
		{name: "not quite chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\nyy", status: 200, body: "yy" + next},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tt.answer+next)), 64)
			method := tt.method
			if method == "" {
				method = "POST"
			}
			var r Response
			var retryAfter string
			err := ReadResponse(br, method, 1<<10, &r, func(name, value []byte) {
				if EqualFold(name, "retry-after") {
					retryAfter = string(value)
				}
			})
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			var b BodyReader
			b.ResetResponse(br, &r)
			body, err := io.ReadAll(&b)
			if err != nil || r.Status != tt.status || string(body) != tt.body || r.KeepAlive != tt.keep || retryAfter != tt.retryAfter {
				t.Fatalf("got status %d, body %q (%v), keep-alive %v, Retry-After %q; want %d, %q, %v, %q",
					r.Status, body, err, r.KeepAlive, retryAfter, tt.status, tt.body, tt.keep, tt.retryAfter)
			}
			if !r.KeepAlive {
				return
			}
			if err := ReadResponse(br, "POST", 1<<10, &r, nil); err != nil || r.Status != 200 || r.ContentLength != 4 {
				t.Fatalf("next answer: got status %d, length %d, %v; want 200, 4", r.Status, r.ContentLength, err)
			}
		})
	}
}

func TestReadResponseErrors(t *testing.T) {
	tests := []struct {
		name, answer string
		want         error
		what         string // in the message
		nothing      bool   // no byte arrived
	}{
		{name: "not HTTP", answer: "SSH-2.0-OpenSSH\r\n\r\n", want: ErrMalformed, what: "SSH-2.0"},
		{name: "HTTP/2", answer: "HTTP/2 200\r\n\r\n", want: ErrMalformed},
		{name: "bad status", answer: "HTTP/1.1 2x0 OK\r\n\r\n", want: ErrMalformed},
		{name: "field without colon", answer: "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", want: ErrMalformed, what: "no colon"},
		{name: "conflicting lengths", answer: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", want: ErrMalformed, what: "Content-Length"},
		{name: "lengths spelt differently", answer: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 01\r\n\r\na", want: ErrMalformed, what: "Content-Length"},
		{name: "signed length", answer: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\na", want: ErrMalformed, what: "Content-Length"},
		{name: "folded length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 5\r\n\r\nok", want: ErrMalformed, what: "folded"},
		{name: "overlong length", answer: "HTTP/1.1 200 OK\r\nContent-Length: " + strings.Repeat("0", 100) + "1\r\n\r\nx", want: ErrMalformed, what: "overlong"},
		{name: "overlong status line", answer: "HTTP/1.1 200 " + strings.Repeat("O", 100) + "\r\n\r\n", want: ErrMalformed, what: "status line"},
		{name: "switching protocols", answer: "HTTP/1.1 101 Switching Protocols\r\n\r\n", want: ErrUnsupported, what: "101"},
		{name: "too many interim answers", answer: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", MaxInterim+1) + "HTTP/1.1 200 OK\r\n\r\n", want: ErrMalformed, what: "interim"},
		{name: "head too large", answer: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 200) + "\r\n", want: ErrHeadTooLarge},
		{name: "cut in the head", answer: "HTTP/1.1 200 OK\r\nContent-Len", want: io.ErrUnexpectedEOF},
		{name: "nothing", answer: "", want: io.ErrUnexpectedEOF, nothing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.answer), 64)
			var r Response
			err := ReadResponse(br, "POST", 1<<10, &r, nil)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.what) {
				t.Fatalf("got %v, want %v mentioning %q", err, tt.want, tt.what)
			}
			if (r.HeadBytes == 0) != tt.nothing {
				t.Errorf("got HeadBytes %d, want nothing read: %v", r.HeadBytes, tt.nothing)
			}
		})
	}
}

// TestBodyReaderDiscard drops bodies within and beyond a bound.
func TestBodyReaderDiscard(t *testing.T) {
	tests := []struct {
		name, answer string
		max          int64
		n            int64 // -1: any up to max
		want         error
	}{
		{name: "length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", max: 10, n: 10},
		{name: "length over the bound", answer: "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a", max: 10, want: ErrBodyTooLarge},
		{name: "chunked", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", max: 10, n: 10},
		{name: "chunked over the bound", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", max: 10, n: 5, want: ErrBodyTooLarge},
		{name: "chunked cut", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", max: 10, n: 3, want: io.ErrUnexpectedEOF},
		{name: "length cut", answer: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", max: 10, n: 3, want: io.ErrUnexpectedEOF},
		{name: "to the end", answer: "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", 300), max: 300, n: 300},
		{name: "to the end over the bound", answer: "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", 301), max: 300, n: -1, want: ErrBodyTooLarge},
		{name: "no body", answer: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", max: 0, n: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.answer), 64)
			var r Response
			if err := ReadResponse(br, "GET", 1<<10, &r, nil); err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			var b BodyReader
			b.ResetResponse(br, &r)
			n, err := b.Discard(tt.max)
			if (n != tt.n && (tt.n >= 0 || n > tt.max)) || !errors.Is(err, tt.want) {
				t.Fatalf("got %d, %v; want %d, %v", n, err, tt.n, tt.want)
			}
		})
	}
}

// BenchmarkReadResponse reads a typical answer's head and body, the work of
// a client per request.
func BenchmarkReadResponse(b *testing.B) {
	answer := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 41\r\n\r\n{\"topic\":\"t\",\"partition\":0,\"offset\":123}\n"
	rd := strings.NewReader(answer)
	br := bufio.NewReader(rd)
	b.ReportAllocs()
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		rd.Reset(answer)
		br.Reset(rd)
		var r Response
		if err := ReadResponse(br, "POST", 1<<16, &r, nil); err != nil {
			b.Fatal(err)
		}
		var body BodyReader
		body.ResetResponse(br, &r)
		if _, err := body.Discard(1 << 16); err != nil {
			b.Fatal(err)
		}
	}
}

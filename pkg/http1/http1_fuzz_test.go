package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// requestSeeds are heads of every kind ParseRequest meets.
var requestSeeds = []string{
	"POST /commit?topic=t&key=k HTTP/1.1\r\nHost: kproxy\r\nContent-Length: 5\r\n\r\nhello",
	"POST /batch?topic=t HTTP/1.1\r\nHost: a:1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST /commit HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
	"POST /commit HTTP/1.1\nHost: h\nExpect: 100-continue\nContent-Length: 3\n\nabc",
	"GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close, Upgrade\r\nUpgrade: websocket\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
}

// FuzzParseRequest checks ParseRequest against net/http's http.ReadRequest:
// whatever ParseRequest accepts, ReadRequest accepts too and reads the same
// way — method, target, version, every field, the body's framing, whether
// the connection stays, where the head ends — and it never accepts a field
// net/http's server refuses (names that are not tokens, values with control
// characters, a missing or malformed Host).
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		n, err := ParseRequest(b, 1<<16, &r)
		if err != nil {
			if !errors.Is(err, ErrIncomplete) && !errors.Is(err, ErrHeadTooLarge) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("ParseRequest(%q) = %v, want one of the package's errors", b, err)
			}
			return
		}
		br := bufio.NewReaderSize(bytes.NewReader(b), len(b)+16)
		req, rerr := http.ReadRequest(br)
		if rerr != nil {
			t.Fatalf("ParseRequest(%q) accepted it, http.ReadRequest: %v", b, rerr)
		}
		if got := len(b) - br.Buffered(); got != n {
			t.Fatalf("ParseRequest(%q) = head of %d bytes, net/http read %d", b, n, got)
		}
		if req.Method != string(r.Method) || req.RequestURI != string(r.Target) || req.ProtoMajor != 1 || req.ProtoMinor != r.Minor {
			t.Fatalf("%q: got %s %s 1.%d, net/http %s %s %d.%d", b, r.Method, r.Target, r.Minor, req.Method, req.RequestURI, req.ProtoMajor, req.ProtoMinor)
		}
		wantLen := max(r.ContentLength, 0)
		if r.Chunked {
			wantLen = -1
		}
		if req.ContentLength != wantLen || slices.Equal(req.TransferEncoding, []string{"chunked"}) != r.Chunked {
			t.Fatalf("%q: got length %d chunked %v, net/http %d %v", b, r.ContentLength, r.Chunked, req.ContentLength, req.TransferEncoding)
		}
		if req.Close == r.KeepAlive {
			t.Fatalf("%q: got keep-alive %v, net/http close %v", b, r.KeepAlive, req.Close)
		}
		if req.Host != string(r.Host) {
			t.Fatalf("%q: got host %q, net/http %q", b, r.Host, req.Host)
		}
		got := http.Header{}
		for _, fl := range r.Fields {
			name := textproto.CanonicalMIMEHeaderKey(string(fl.Name))
			if name != "Host" && name != "Transfer-Encoding" { // net/http keeps them elsewhere
				got[name] = append(got[name], string(fl.Value))
			}
			for _, c := range fl.Value {
				if c < ' ' && c != '\t' || c == 0x7f {
					t.Fatalf("%q: accepted a value with a control character", b)
				}
			}
		}
		for name, vs := range req.Header {
			if !slices.Equal(vs, got[name]) {
				t.Fatalf("%q: field %s: got %q, net/http %q", b, name, got[name], vs)
			}
		}
		if len(got) != len(req.Header) {
			t.Fatalf("%q: got fields %v, net/http %v", b, got, req.Header)
		}
		if r.Minor == 1 && len(r.Host) == 0 && r.Host == nil {
			t.Fatalf("%q: HTTP/1.1 accepted without Host", b)
		}
	})
}

// FuzzBodyReader checks BodyReader on chunked bodies arriving in pieces of
// any size against net/http's chunked reader (httputil.NewChunkedReader):
// whatever it reads to the end, net/http reads to the same bytes; it never
// reads past the body (the bytes after it are still there); and a body cut
// anywhere gives io.ErrUnexpectedEOF or ErrBadChunk, never a clean end.
func FuzzBodyReader(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;ext=1\r\nabc\r\n2 \r\nde\r\n0\r\nTrailer: x\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\nNEXT",
		"5\r\nhello\n0\r\n\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"fffffffffffffffff\r\n",
		"1\r\nx\r\n0\r\nbad trailer\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, b []byte, piece uint8) {
		const after = "\x00NEXT"
		input := append(bytes.Clone(b), after...)
		var src io.Reader = bytes.NewReader(input)
		if piece%2 == 1 {
			src = iotest.OneByteReader(src)
		} else {
			src = iotest.HalfReader(src)
		}
		br := bufio.NewReaderSize(src, 4096)
		var r BodyReader
		r.Reset(br, 0, true)
		got, err := io.ReadAll(&r)
		if err != nil {
			if !errors.Is(err, ErrBadChunk) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%q: got %v, want ErrBadChunk or io.ErrUnexpectedEOF", b, err)
			}
			return
		}
		ref, rerr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(b)))
		if rerr != nil || !bytes.Equal(got, ref) {
			t.Fatalf("%q: got %q, net/http %q (%v)", b, got, ref, rerr)
		}
		rest, _ := io.ReadAll(br)
		if !bytes.HasSuffix(rest, []byte(after)) {
			t.Fatalf("%q: read past the body: %q left", b, rest)
		}
		// The same body cut short never ends cleanly.
		cut := bytes.TrimSuffix(input[:len(input)-len(rest)], nil)
		if len(cut) > 0 {
			var c BodyReader
			c.Reset(bufio.NewReader(bytes.NewReader(cut[:len(cut)-1])), 0, true)
			if _, err := io.ReadAll(&c); err == nil {
				t.Fatalf("%q without its last byte: read to a clean end", cut)
			}
		}
	})
}

// responseSeeds are answers of every kind ReadResponse meets, from backends
// that frame them well and from ones that do not.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 204\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
	"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\noops\r\n0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 X\r\nRetry-After: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\nconnection: keep-alive\r\nRetry-After: 3\r\n\r\nbusy",
	"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\n\r\nwhatever",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 5\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n close\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("a", 200) + "\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 429 Slow\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
	"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	"HTTP/1.1 101 Switching\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	"SSH-2.0-OpenSSH\r\n\r\n",
	"HTTP/2 200\r\n\r\n",
	"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
}

// refResponse reads answer as net/http's client does: 1xx interim answers
// other than 101 are skipped, then the body of the final one is read to its
// end (at most max bytes, else io.ErrShortBuffer). It returns the final
// answer, its body, the offset where that answer ends, and the first error.
func refResponse(answer []byte, method string, max int64) (res *http.Response, body []byte, end int, err error) {
	rd := bytes.NewReader(answer)
	br := bufio.NewReader(rd)
	req, _ := http.NewRequest(method, "http://127.0.0.1:8080/x", nil)
	for {
		res, err = http.ReadResponse(br, req)
		if err != nil {
			return nil, nil, 0, err
		}
		if res.StatusCode < 100 || res.StatusCode > 199 || res.StatusCode == 101 {
			break
		}
	}
	body, err = io.ReadAll(io.LimitReader(res.Body, max+1))
	if err == nil && int64(len(body)) > max {
		err = io.ErrShortBuffer
	}
	return res, body, len(answer) - rd.Len() - br.Buffered(), err
}

// unsupportedCoding is net/http's refusal of a Transfer-Encoding it does not read.
var unsupportedCoding = regexp.MustCompile(`unsupported transfer encoding: (".*")`)

// lenientHead reports whether net/http's refusal of a response head is one
// ReadResponse may differ in: where RFC 9112 lets a recipient choose, or
// where net/http reads less than the RFC defines.
func lenientHead(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	if m := unsupportedCoding.FindStringSubmatch(msg); m != nil {
		// net/http reads "chunked" only alone; a list of codings whose
		// last (non-empty) element is chunked is framed by it (RFC 9112,
		// 6.3; RFC 9110, 5.6.1: empty list elements do not count).
		v, err := strconv.Unquote(m[1])
		var last string
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.Trim(c, " \t"); c != "" {
				last = c
			}
		}
		return err == nil && strings.EqualFold(last, "chunked")
	}
	// White space lines right after the status line may be rejected
	// (net/http) or skipped (ReadResponse), RFC 9112, 2.2; field lines
	// whose name is not a token are skipped, as no framing field is among
	// them.
	return strings.Contains(msg, "malformed MIME header initial line") || strings.Contains(msg, "malformed MIME header line")
}

// FuzzReadResponse reads arbitrary answers with ReadResponse and BodyReader,
// through a small or a usual read buffer, to a POST or a HEAD request, and
// compares the outcome with net/http's reading of the same bytes. Whenever
// both read a status it is the same, and whenever both read a body it is the
// same bytes. A connection ReadResponse keeps, with its body read to the end,
// must have been framed exactly as net/http frames the answer (the same end,
// and net/http does not close either), or the next request would read the
// rest of this answer as its own. Discard drops what Read reads, and
// Buffered's bytes are the body's next ones.
func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false, false)
	}
	f.Add([]byte(responseSeeds[0]), true, true)
	f.Add([]byte(responseSeeds[2]), false, true)
	// net/http refuses any coding but chunked, also where no body follows.
	f.Add([]byte("HTTP/1.1 204 \nTransfer-Encoding: 0\n\n"), true, false)
	// A line longer than the buffer needs a colon as much as any other.
	f.Add([]byte("HTTP/1.1 200 \n"+strings.Repeat("0", 64)+"\n\n"), false, true)
	const maxBody = 1 << 10
	f.Fuzz(func(t *testing.T, answer []byte, head, small bool) {
		method, size := http.MethodPost, 4096
		if head {
			method = http.MethodHead
		}
		if small {
			size = 64
		}
		// read reads the answer with a body read by Read or Discard.
		read := func(discard bool) (r Response, headErr error, buffered, body []byte, used int, err error) {
			in := bytes.NewReader(answer)
			br := bufio.NewReaderSize(iotest.HalfReader(in), size)
			headErr = ReadResponse(br, method, 1<<12, &r, func(name, value []byte) {
				framing := EqualFold(name, "content-length") || EqualFold(name, "transfer-encoding") || EqualFold(name, "connection")
				if len(name) == 0 || bytes.IndexByte(name, ':') >= 0 || !bytes.Equal(value, trimOWS(value)) || framing {
					t.Fatalf("%q: field %q: %q passed on", answer, name, value)
				}
			})
			if headErr != nil {
				return r, headErr, nil, nil, 0, nil
			}
			var b BodyReader
			b.ResetResponse(br, &r)
			buffered = bytes.Clone(b.Buffered())
			if discard {
				var n int64
				n, err = b.Discard(maxBody)
				body = make([]byte, n)
			} else {
				body, err = io.ReadAll(io.LimitReader(&b, maxBody+1))
				if err == nil && len(body) > maxBody {
					err = ErrBodyTooLarge
				}
			}
			return r, nil, buffered, body, len(answer) - in.Len() - br.Buffered(), err
		}
		r, headErr, buffered, body, used, err := read(false)
		if r.HeadBytes > len(answer) {
			t.Fatalf("%q: HeadBytes %d of %d", answer, r.HeadBytes, len(answer))
		}
		if headErr != nil {
			if !errors.Is(headErr, ErrMalformed) && !errors.Is(headErr, ErrUnsupported) && !errors.Is(headErr, ErrHeadTooLarge) && !errors.Is(headErr, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadResponse(%q) = %v, want one of the package's errors or io.ErrUnexpectedEOF", answer, headErr)
			}
			return
		}
		if r.Status < 200 || r.Status > 999 {
			t.Fatalf("%q: final status %d", answer, r.Status)
		}
		if n := min(len(body), len(buffered)); !bytes.Equal(body[:n], buffered[:n]) {
			t.Fatalf("%q: Buffered %q is not the start of the body %q", answer, buffered, body)
		}
		_, _, _, dropped, dused, derr := read(true)
		if (err == nil) != (derr == nil) || err == nil && (len(dropped) != len(body) || dused != used) {
			t.Fatalf("%q: Read: %d bytes, %d used, %v; Discard: %d bytes, %d used, %v", answer, len(body), used, err, len(dropped), dused, derr)
		}

		ref, refBody, end, refErr := refResponse(answer, method, maxBody)
		if ref == nil && lenientHead(refErr) {
			return
		}
		if ref != nil && ref.StatusCode != r.Status {
			t.Fatalf("%q: status %d, net/http reads %d", answer, r.Status, ref.StatusCode)
		}
		if ref != nil && refErr == nil && err == nil && !bytes.Equal(body, refBody) {
			t.Fatalf("%q: body %q, net/http reads %q", answer, body, refBody)
		}
		if !r.KeepAlive || err != nil {
			return
		}
		switch {
		case ref == nil:
			t.Fatalf("%q: connection kept after %d bytes, but net/http cannot read the answer: %v", answer, used, refErr)
		case refErr != nil:
			t.Fatalf("%q: connection kept after %d bytes, but net/http fails reading the body: %v", answer, used, refErr)
		case ref.Close:
			t.Fatalf("%q: connection kept, but net/http closes it", answer)
		case end != used:
			t.Fatalf("%q: connection kept after %d bytes, net/http ends the answer after %d", answer, used, end)
		}
	})
}

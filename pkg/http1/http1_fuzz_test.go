package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"slices"
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

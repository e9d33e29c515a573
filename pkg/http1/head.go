package http1

import (
	"bytes"
	"errors"
)

// Errors of ParseRequest. A head that is not complete yet gives ErrIncomplete
// (read more and call again); one longer than its limit ErrHeadTooLarge; every
// other problem an error wrapping ErrMalformed, or ErrUnsupported for a
// well-formed head this package does not frame (another HTTP version, a
// transfer coding other than chunked alone, an expectation other than
// 100-continue, obsolete line folding).
var (
	ErrIncomplete   = errors.New("http1: incomplete message head")
	ErrHeadTooLarge = errors.New("http1: message head too large")
	ErrMalformed    = errors.New("http1: malformed message head")
	ErrUnsupported  = errors.New("http1: unsupported message head")
)

// Field is one header field line: its name and its value without surrounding
// white space, as they stand in the head.
type Field struct {
	Name, Value []byte
}

// Request is a parsed request head. Its slices point into the bytes given to
// ParseRequest.
type Request struct {
	// Method and Target are the request line's first two words.
	Method, Target []byte
	// Minor is the protocol's minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
	Minor int
	// Fields are every header field in order; the slice is reused by the next
	// ParseRequest with the same Request.
	Fields []Field
	// ContentLength is the Content-Length, or -1 without one.
	ContentLength int64
	// Chunked reports Transfer-Encoding: chunked.
	Chunked bool
	// KeepAlive reports whether the client keeps the connection after this
	// request: HTTP/1.1 without Connection: close, or HTTP/1.0 with
	// Connection: keep-alive (whose answer then says keep-alive too).
	KeepAlive bool
	// Expect100 reports Expect: 100-continue.
	Expect100 bool
	// Upgrade reports an Upgrade field or Connection: upgrade: the client asks
	// for another protocol.
	Upgrade bool
	// Host is the Host field's value; HTTP/1.1 requests have exactly one.
	Host []byte
}

// HasBody reports whether a body follows the head.
func (r *Request) HasBody() bool { return r.Chunked || r.ContentLength > 0 }

// Field returns the value of the first field named name (ASCII case
// insensitive; name in lower case) and whether there is one.
func (r *Request) Field(name string) ([]byte, bool) {
	for i := range r.Fields {
		if EqualFold(r.Fields[i].Name, name) {
			return r.Fields[i].Value, true
		}
	}
	return nil, false
}

// ParseRequest parses the request head at the start of b into r and returns its
// length, the empty line included; the body, if any, starts there. The head may
// end lines with CRLF or a bare LF. It must be at most max bytes long.
//
// It accepts HTTP/1.0 and HTTP/1.1 heads whose request line is a token method,
// a target in origin form (a path of visible ASCII with whole escapes, and an
// optional query) and the version; whose fields have token names and
// values without control characters other than tab; with at most one
// Content-Length of digits, or Transfer-Encoding: chunked alone (never both,
// never in HTTP/1.0), at most one Expect (100-continue) and, for HTTP/1.1,
// exactly one Host of valid host characters. What it accepts, net/http reads
// the same way (FuzzParseRequest checks that).
func ParseRequest(b []byte, max int, r *Request) (int, error) {
	end := headEnd(b, max)
	switch {
	case end == -1 && len(b) >= max:
		return 0, ErrHeadTooLarge
	case end == -1:
		return 0, ErrIncomplete
	case end == -2:
		return 0, ErrHeadTooLarge
	}
	*r = Request{Fields: r.Fields[:0], ContentLength: -1}
	line, off := nextLine(b, 0)
	if err := r.parseRequestLine(line); err != nil {
		return 0, err
	}
	if err := r.parseFields(b, off, end); err != nil {
		return 0, err
	}
	return end, nil
}

// headEnd returns the offset after the empty line that ends the head in b, -1
// when it is not in b yet, or -2 when it is past max.
func headEnd(b []byte, max int) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		j += i
		if j+1 > max {
			return -2
		}
		// An empty line: "\n" right after the previous one, or "\r\n".
		if j > 0 && (b[j-1] == '\n' || (b[j-1] == '\r' && j > 1 && b[j-2] == '\n')) {
			return j + 1
		}
		i = j + 1
	}
}

// nextLine returns the line at b[off:] without its end, and the offset after
// it. The caller knows a '\n' follows.
func nextLine(b []byte, off int) (line []byte, next int) {
	j := off + bytes.IndexByte(b[off:], '\n')
	line = b[off:j]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, j + 1
}

func (r *Request) parseRequestLine(line []byte) error {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !IsToken(line[:sp]) {
		return malformed("request line")
	}
	r.Method = line[:sp]
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return malformed("request line")
	}
	r.Target = rest[:sp]
	if r.Target[0] != '/' {
		return unsupported("request target not in origin form")
	}
	path := true
	for i, c := range r.Target {
		switch {
		case c <= ' ' || c >= 0x7f:
			return malformed("request target")
		case c == '?':
			path = false
		case c == '%' && path:
			// net/http decodes the path: its escapes must be whole.
			if _, ok := parseHex(r.Target[i+1 : min(i+3, len(r.Target))]); !ok || i+3 > len(r.Target) {
				return malformed("escape in the request path")
			}
		}
	}
	switch string(rest[sp+1:]) {
	case "HTTP/1.1":
		r.Minor = 1
	case "HTTP/1.0":
		r.Minor = 0
	default:
		return unsupported("protocol version")
	}
	return nil
}

// parseFields reads the field lines of b[off:end] (end after the empty line).
func (r *Request) parseFields(b []byte, off, end int) error {
	var (
		hosts, expects, codings int
		connClose, connKeep     bool
	)
	for off < end {
		var line []byte
		line, off = nextLine(b, off)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return unsupported("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !IsToken(line[:colon]) {
			return malformed("field name")
		}
		f := Field{Name: line[:colon], Value: trimOWS(line[colon+1:])}
		if !ValidFieldValue(f.Value) {
			return malformed("field value")
		}
		r.Fields = append(r.Fields, f)
		switch {
		case EqualFold(f.Name, "content-length"):
			n, ok := ParseDecimal(f.Value)
			if !ok || r.ContentLength >= 0 {
				return malformed("Content-Length")
			}
			r.ContentLength = n
		case EqualFold(f.Name, "transfer-encoding"):
			codings++
			if !EqualFold(f.Value, "chunked") {
				return unsupported("transfer coding")
			}
			r.Chunked = true
		case EqualFold(f.Name, "connection"):
			for tok := range tokens(f.Value) {
				switch {
				case EqualFold(tok, "close"):
					connClose = true
				case EqualFold(tok, "keep-alive"):
					connKeep = true
				case EqualFold(tok, "upgrade"):
					r.Upgrade = true
				}
			}
		case EqualFold(f.Name, "expect"):
			expects++
			if !EqualFold(f.Value, "100-continue") {
				return unsupported("expectation")
			}
			r.Expect100 = true
		case EqualFold(f.Name, "host"):
			hosts++
			if !validHost(f.Value) {
				return malformed("Host")
			}
			r.Host = f.Value
		case EqualFold(f.Name, "upgrade"):
			r.Upgrade = true
		}
	}
	switch {
	case codings > 1 || expects > 1:
		return unsupported("repeated Transfer-Encoding or Expect")
	case r.Chunked && (r.ContentLength >= 0 || r.Minor == 0):
		// RFC 9112, 6.1: such a message is suspect of request smuggling.
		return malformed("Transfer-Encoding with Content-Length or in HTTP/1.0")
	case hosts > 1 || r.Minor == 1 && hosts == 0:
		return malformed("Host")
	}
	if r.Minor == 1 {
		r.KeepAlive = !connClose
	} else {
		r.KeepAlive = connKeep && !connClose
	}
	return nil
}

func malformed(what string) error   { return &headError{ErrMalformed, what} }
func unsupported(what string) error { return &headError{ErrUnsupported, what} }

// headError says which part of a head ParseRequest refused.
type headError struct {
	kind error
	what string
}

func (e *headError) Error() string { return e.kind.Error() + ": " + e.what }
func (e *headError) Unwrap() error { return e.kind }

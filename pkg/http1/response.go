package http1

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

// MaxInterim bounds the interim (1xx) answers ReadResponse skips before the
// final one.
const MaxInterim = 8

// Response is a parsed response head: its status and what the framing of its
// body and of the connection after it needs.
type Response struct {
	// Minor is the protocol's minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
	Minor int
	// Status is the final status, 200..999.
	Status int
	// ContentLength is the body's length when Content-Length frames it, else
	// -1.
	ContentLength int64
	// Chunked reports a body framed by the chunked coding.
	Chunked bool
	// NoBody reports a response without a body, whatever its fields say: to
	// a HEAD request, 204 No Content and 304 Not Modified. A body that is
	// neither chunked nor length-delimited runs to the end of the connection.
	NoBody bool
	// KeepAlive reports whether the connection can carry another request once
	// the body has been read to its end: HTTP/1.1 without Connection: close,
	// or HTTP/1.0 with Connection: keep-alive, and a body framed without
	// doubt (not to the end of the connection; not Content-Length beside
	// Transfer-Encoding; no Transfer-Encoding repeated or in HTTP/1.0).
	KeepAlive bool
	// HeadBytes counts the bytes of the head read, interim answers included,
	// also when ReadResponse fails: 0 means that nothing arrived.
	HeadBytes int
}

// ReadResponse reads from br the head of the final answer to a request of the
// given method into r: interim (1xx) answers are skipped, at most MaxInterim
// of them; 101 Switching Protocols is an error, as the connection would speak
// another protocol then. The head, interim answers included, may be at most
// max bytes. The status line must fit in br's buffer; a longer field line is
// skipped, unless it is a framing field (Content-Length, Transfer-Encoding,
// Connection) or continues one. Lines may end with CRLF or a bare LF.
//
// field, when not nil, is called with the name and the value (without
// surrounding white space) of every other field line of the final answer;
// r.Status is set by then. The slices are valid only during the call.
//
// Errors wrap ErrMalformed (a head that is not HTTP/1.x, a bad field line,
// invalid or conflicting Content-Length without a transfer coding, a folded
// framing field), ErrUnsupported (101) or ErrHeadTooLarge, or are the reader's,
// io.ErrUnexpectedEOF for a connection that ended early. What ReadResponse
// accepts and keeps the connection for, net/http frames the same way
// (FuzzReadResponse checks that); the body is then read with
// BodyReader.ResetResponse.
func ReadResponse(br *bufio.Reader, method string, max int, r *Response, field func(name, value []byte)) error {
	*r = Response{}
	for interim := 0; ; interim++ {
		line, err := r.readLine(br, max)
		if err == bufio.ErrBufferFull {
			return malformed("status line longer than the read buffer")
		}
		if err != nil {
			return err
		}
		minor, status, ok := parseStatusLine(line)
		if !ok {
			return malformed("status line " + quote(line))
		}
		final, fn := status >= 200, field
		if final {
			r.Minor, r.Status = minor, status
		} else {
			fn = nil
		}
		f, err := r.readFields(br, max, fn)
		if err != nil {
			return err
		}
		switch {
		case final:
			r.frame(method, f)
			return nil
		case status == 101:
			return unsupported("status 101 Switching Protocols")
		case interim == MaxInterim:
			return malformed("more than " + strconv.Itoa(MaxInterim) + " interim answers")
		}
	}
}

// parseStatusLine parses "HTTP/1.x SSS[ reason]" with a status of 100..999.
func parseStatusLine(line []byte) (minor, status int, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
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
	return int(line[7] - '0'), status, status >= 100
}

// framing is what the fields of a response head say about its body and the
// connection.
type framing struct {
	length    int64 // Content-Length, -1 without a valid one
	digits    int   // of the Content-Length, to tell "3" from "03"
	lengths   int   // Content-Length fields
	badLength bool  // one that is not a number, or two that differ
	codings   int   // Transfer-Encoding fields
	chunked   bool  // the last transfer coding is chunked
	close     bool  // Connection: close, or a folded Connection
	keep      bool  // Connection: keep-alive
}

// Kinds of field a folded line may continue.
const (
	fieldOther = iota
	fieldFraming
	fieldConnection
)

// readFields reads field lines up to the empty line that ends a head.
func (r *Response) readFields(br *bufio.Reader, max int, field func(name, value []byte)) (framing, error) {
	f := framing{length: -1}
	prev := fieldOther // the field a folded line continues
	for {
		line, err := r.readLine(br, max)
		if err == bufio.ErrBufferFull {
			// An overlong line: skipped unless it frames the body (or its
			// name does not even fit in the buffer).
			switch {
			case prev == fieldFraming && (line[0] == ' ' || line[0] == '\t') || framingField(line):
				return f, malformed("overlong framing field " + quote(line))
			case line[0] != ' ' && line[0] != '\t' && bytes.IndexByte(line, ':') <= 0:
				return f, malformed("field line " + quote(line))
			}
			for err == bufio.ErrBufferFull {
				_, err = r.readLine(br, max)
			}
			if err != nil {
				return f, err
			}
			prev = fieldOther
			continue
		}
		if err != nil {
			return f, err
		}
		if len(line) == 0 {
			return f, f.check()
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Obsolete line folding continues the previous field's value:
			// the body's framing is then unknown, and a folded Connection is
			// not trusted to keep the connection.
			switch prev {
			case fieldFraming:
				return f, malformed("folded Content-Length or Transfer-Encoding")
			case fieldConnection:
				f.close = true
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return f, malformed("field line " + quote(line))
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if prev = f.note(name, value); prev == fieldOther && field != nil {
			field(name, value)
		}
	}
}

// readLine reads one line of a head without its end, counting it against
// max. An overlong line gives its start and bufio.ErrBufferFull.
func (r *Response) readLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if r.HeadBytes += len(line); r.HeadBytes > max {
		return nil, ErrHeadTooLarge
	}
	switch {
	case err == bufio.ErrBufferFull:
		return line, err
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// framingField reports whether line starts a framing field.
func framingField(line []byte) bool {
	for _, name := range [...]string{"content-length", "transfer-encoding", "connection"} {
		if HasPrefixFold(line, name) && len(line) > len(name) && (line[len(name)] == ':' || line[len(name)] == ' ') {
			return true
		}
	}
	return false
}

// note takes in a field and tells what kind it is.
func (f *framing) note(name, value []byte) int {
	switch {
	case EqualFold(name, "content-length"):
		n, ok := ParseDecimal(value)
		f.lengths++
		if !ok || f.length >= 0 && (n != f.length || len(value) != f.digits) {
			// net/http compares repeated values as text.
			f.badLength = true
		}
		if ok {
			f.length, f.digits = n, len(value)
		}
		return fieldFraming
	case EqualFold(name, "transfer-encoding"):
		// Only chunked as the last coding frames the body; with anything
		// else it runs to the end of the connection.
		f.codings++
		var last []byte
		for t := range tokens(value) {
			last = t
		}
		f.chunked = EqualFold(last, "chunked")
		return fieldFraming
	case EqualFold(name, "connection"):
		for t := range tokens(value) {
			switch {
			case EqualFold(t, "close"):
				f.close = true
			case EqualFold(t, "keep-alive"):
				f.keep = true
			}
		}
		return fieldConnection
	}
	return fieldOther
}

// check refuses a Content-Length that cannot frame a body no transfer coding
// frames.
func (f *framing) check() error {
	if f.badLength && f.codings == 0 {
		return malformed("invalid or conflicting Content-Length")
	}
	return nil
}

// frame sets r's body framing and KeepAlive from what its fields said
// (RFC 9112, section 6.3).
func (r *Response) frame(method string, f framing) {
	r.ContentLength = -1
	r.NoBody = method == "HEAD" || r.Status == 204 || r.Status == 304
	r.KeepAlive = !f.close && (r.Minor >= 1 || f.keep)
	codings := f.codings > 0 && r.Minor >= 1
	if f.codings > 0 && (f.lengths > 0 || f.codings > 1 || r.Minor == 0 || !f.chunked) {
		// Content-Length beside Transfer-Encoding is a sign of request
		// smuggling or response splitting; several Transfer-Encoding
		// fields, or codings other than chunked, net/http refuses; in
		// HTTP/1.0 it is faulty framing (section 6.1): the connection is
		// not trusted again.
		r.KeepAlive = false
	}
	switch {
	case r.NoBody:
	case codings && f.chunked:
		r.Chunked = true
	case codings:
		// Another coding: the body runs to the end of the connection.
	case f.length >= 0:
		r.ContentLength = f.length
	default:
		r.KeepAlive = false
	}
}

// quote shortens a line for an error message.
func quote(b []byte) string {
	return strconv.Quote(string(b[:min(len(b), 64)]))
}

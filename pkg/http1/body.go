package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ErrBadChunk means a chunked body is malformed: a chunk size that is not hex,
// a chunk not followed by CRLF, a size line or trailer section too long.
var ErrBadChunk = errors.New("http1: malformed chunked body")

// ErrBodyTooLarge is BodyReader.Discard's error for a body longer than its
// bound.
var ErrBodyTooLarge = errors.New("http1: body too large")

// Bounds of the framing around a chunked body's data.
const (
	// MaxChunkLine bounds a chunk-size line with its extensions.
	MaxChunkLine = 4096
	// MaxTrailerBytes bounds the trailer section after the last chunk.
	MaxTrailerBytes = 16 << 10
)

// BodyReader reads one message body from a bufio.Reader, length-delimited,
// chunked or (a response's) up to the end of the connection, and never reads
// past its end: the next message starts where it returned io.EOF. Read
// returns what has arrived as soon as it has (a chunk's data as it comes, not
// a whole chunk), so a caller counting bytes sees each byte when the peer
// sends it. A body the connection ends early gives io.ErrUnexpectedEOF; a
// malformed chunked one ErrBadChunk. The zero value is an empty body; Reset
// and ResetResponse prepare the next one.
type BodyReader struct {
	br      *bufio.Reader
	chunked bool
	toEOF   bool  // the body runs to the end of the connection
	left    int64 // bytes left in the body, or in the current chunk
	excess  int64 // framing bytes beyond what the data allows so far
	state   uint8
	err     error
}

// States of a body; a length-delimited one is in bodyData or bodyDone.
const (
	bodyDone     uint8 = iota // the end was reached: io.EOF
	bodyData                  // in data: left bytes (of the body or the chunk), or to the end
	chunkSize                 // before a chunk-size line
	chunkEnd                  // after a chunk's data, before its CRLF
	chunkTrailer              // after the last chunk, before the trailer section
)

// Reset makes r read a body from br: length bytes, or chunked when chunked is
// true (length is then ignored).
func (r *BodyReader) Reset(br *bufio.Reader, length int64, chunked bool) {
	*r = BodyReader{br: br, chunked: chunked, left: max(length, 0)}
	switch {
	case chunked:
		r.state = chunkSize
	case length > 0:
		r.state = bodyData
	}
}

// ResetResponse makes r read from br the body of the response whose head is
// resp: none, chunked, Content-Length bytes, or everything up to the end of
// the connection, as resp says.
func (r *BodyReader) ResetResponse(br *bufio.Reader, resp *Response) {
	switch {
	case resp.NoBody:
		r.Reset(br, 0, false)
	case resp.Chunked || resp.ContentLength >= 0:
		r.Reset(br, resp.ContentLength, resp.Chunked)
	default:
		*r = BodyReader{br: br, toEOF: true, state: bodyData}
	}
}

// Read implements io.Reader.
func (r *BodyReader) Read(p []byte) (int, error) {
	if r.state != bodyData || r.err != nil {
		if err := r.ready(); err != nil {
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !r.toEOF && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.took(n)
	if err != nil {
		r.fail(err)
		err = r.err
		if err == io.EOF && n > 0 {
			err = nil
		}
	}
	return n, err
}

// Discard reads the rest of the body and drops it without copying, and
// returns how many bytes of data it dropped. It stops with ErrBodyTooLarge
// when the body holds more than max bytes, before reading data beyond max
// when the framing tells the size ahead (a Content-Length, a chunk's size).
func (r *BodyReader) Discard(max int64) (int64, error) {
	var n int64
	for {
		if err := r.ready(); err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
		k := r.left
		if r.toEOF {
			if _, err := r.br.Peek(1); err != nil {
				r.fail(err)
				continue
			}
			k = int64(r.br.Buffered())
		}
		if k > max-n {
			r.err = ErrBodyTooLarge
			return n, r.err
		}
		d, err := r.br.Discard(int(k))
		n += int64(d)
		r.took(d)
		if err != nil {
			r.fail(err)
		}
	}
}

// Buffered returns the body's data that has arrived and can be read without
// waiting: of a chunked body, what is buffered of the current chunk (a
// chunk-size line that has arrived whole is read first). It does not consume
// the data; the slice is valid until the next read from the bufio.Reader.
func (r *BodyReader) Buffered() []byte {
	if r.err != nil {
		return nil
	}
	if r.state == chunkSize {
		b, _ := r.br.Peek(r.br.Buffered())
		if bytes.IndexByte(b, '\n') < 0 {
			return nil
		}
		if err := r.readChunkSize(); err != nil {
			r.err = err
			return nil
		}
	}
	if r.state != bodyData {
		return nil
	}
	n := r.br.Buffered()
	if !r.toEOF {
		n = int(min(int64(n), r.left))
	}
	b, _ := r.br.Peek(n)
	return b
}

// ready reads the framing up to the next data: it returns nil in bodyData,
// else the error that ends the body (io.EOF at its end), which it keeps.
func (r *BodyReader) ready() error {
	for r.err == nil {
		var err error
		switch r.state {
		case bodyData:
			return nil
		case chunkSize:
			err = r.readChunkSize()
		case chunkEnd:
			if err = r.readCRLF(); err == nil {
				r.state = chunkSize
			}
		case chunkTrailer:
			err = r.readTrailer()
		default:
			err = io.EOF
		}
		if err != nil {
			r.err = err
		}
	}
	return r.err
}

// took counts n bytes of data read.
func (r *BodyReader) took(n int) {
	if r.toEOF {
		return
	}
	if r.left -= int64(n); r.left == 0 {
		r.state = bodyDone
		if r.chunked {
			r.state = chunkEnd
		}
	}
}

// fail keeps the error of a read of data: the end of the connection is the
// end of a body that runs to it, and too early for any other.
func (r *BodyReader) fail(err error) {
	switch {
	case err == io.EOF && r.toEOF:
		r.state = bodyDone
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	r.err = err
}

// readLine reads one line of the chunked framing, which must end with CRLF
// and hold no other CR, without its end.
func (r *BodyReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || len(line) > MaxChunkLine:
		return nil, ErrBadChunk
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	if len(line) < 2 || bytes.IndexByte(line, '\r') != len(line)-2 {
		return nil, ErrBadChunk
	}
	return line[:len(line)-2], nil
}

// readChunkSize reads a chunk-size line (hex size, then optional white space
// or extensions). As net/http, it refuses a body whose framing outweighs its
// data: more than 16 bytes of overhead per chunk plus twice its data, counted
// over the body, beyond 16 KiB.
func (r *BodyReader) readChunkSize() error {
	line, err := r.readLine()
	if err != nil {
		return err
	}
	r.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	size, ok := parseHex(line)
	if !ok {
		return ErrBadChunk
	}
	r.excess = max(r.excess-16-2*size, 0)
	if r.excess > maxChunkOverhead {
		return ErrBadChunk
	}
	if size > 0 {
		r.left, r.state = size, bodyData
	} else {
		r.state = chunkTrailer
	}
	return nil
}

// readTrailer reads the trailer section after the last chunk, up to the
// empty line that ends the body.
func (r *BodyReader) readTrailer() error {
	total := 0
	for {
		line, err := r.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			r.state = bodyDone
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if total += len(line); total > MaxTrailerBytes || colon <= 0 || !IsToken(line[:colon]) {
			return ErrBadChunk
		}
	}
}

// maxChunkOverhead bounds the framing bytes beyond what the data allows.
const maxChunkOverhead = 16 << 10

// readCRLF reads the line end after a chunk's data.
func (r *BodyReader) readCRLF() error {
	line, err := r.readLine()
	if err != nil {
		return err
	}
	if len(line) != 0 {
		return ErrBadChunk
	}
	return nil
}

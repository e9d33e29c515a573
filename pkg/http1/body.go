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

// Bounds of the framing around a chunked body's data.
const (
	// MaxChunkLine bounds a chunk-size line with its extensions.
	MaxChunkLine = 4096
	// MaxTrailerBytes bounds the trailer section after the last chunk.
	MaxTrailerBytes = 16 << 10
)

// BodyReader reads one message body from a bufio.Reader, length-delimited or
// chunked, and never reads past its end: the next message starts where it
// returned io.EOF. Read returns what has arrived as soon as it has (a chunk's
// data as it comes, not a whole chunk), so a caller counting bytes sees each
// byte when the peer sends it. A body the connection ends early gives
// io.ErrUnexpectedEOF; a malformed chunked one ErrBadChunk. The zero value
// is an empty body; Reset prepares the next one.
type BodyReader struct {
	br      *bufio.Reader
	chunked bool
	left    int64 // bytes left in the body, or in the current chunk
	excess  int64 // framing bytes beyond what the data allows so far
	state   uint8
	err     error
}

// States of a chunked body.
const (
	chunkSize uint8 = iota // before a chunk-size line
	chunkData              // in a chunk's data (left bytes)
	chunkEnd               // after a chunk's data, before its CRLF
	chunkDone              // the last chunk and the trailers were read
)

// Reset makes r read a body from br: length bytes, or chunked when chunked is
// true (length is then ignored).
func (r *BodyReader) Reset(br *bufio.Reader, length int64, chunked bool) {
	*r = BodyReader{br: br, chunked: chunked, left: max(length, 0), state: chunkSize}
}

// Read implements io.Reader.
func (r *BodyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if !r.chunked {
		if r.left == 0 {
			r.err = io.EOF
			return 0, io.EOF
		}
		n, err := r.readData(p)
		return n, err
	}
	for {
		switch r.state {
		case chunkSize:
			if err := r.readChunkSize(); err != nil {
				r.err = err
				return 0, err
			}
		case chunkData:
			if len(p) == 0 {
				return 0, nil
			}
			n, err := r.readData(p)
			if r.left == 0 {
				r.state = chunkEnd
			}
			return n, err
		case chunkEnd:
			if err := r.readCRLF(); err != nil {
				r.err = err
				return 0, err
			}
			r.state = chunkSize
		default:
			r.err = io.EOF
			return 0, io.EOF
		}
	}
}

// readData reads at most r.left bytes into p.
func (r *BodyReader) readData(p []byte) (int, error) {
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		r.err = err
	}
	return n, err
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
// or extensions) and, after the last chunk, the trailer section. As net/http,
// it refuses a body whose framing outweighs its data: more than 16 bytes of
// overhead per chunk plus twice its data, counted over the body, beyond
// 16 KiB.
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
		r.left, r.state = size, chunkData
		return nil
	}
	total := 0
	for {
		line, err := r.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			r.state = chunkDone
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if total += len(line); total > MaxTrailerBytes || colon <= 0 || !isToken(line[:colon]) {
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

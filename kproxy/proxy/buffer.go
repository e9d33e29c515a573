package proxy

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Value buffers grow with the bytes that arrived, never with the length a client
// announced: a value is read into a buffer of minValueBuf bytes, replaced by one
// twice as large each time it fills. Buffers up to maxPooledValueBuf come from a
// pool per size; larger ones are allocated for the record and dropped after it,
// so a few large values do not pin memory.
const (
	minValueBuf       = 4 << 10
	maxPooledValueBuf = 64 << 10
)

// valueBuf is a pooled value buffer; pooling the pointer, not the slice, keeps
// Put from allocating.
type valueBuf struct{ b []byte }

// valuePools holds one pool per pooled size: minValueBuf << i.
var valuePools [5]sync.Pool

// poolIndex returns the pool of buffers of exactly size bytes, or -1.
func poolIndex(size int) int {
	for i, s := 0, minValueBuf; s <= maxPooledValueBuf; i, s = i+1, s*2 {
		if s == size {
			return i
		}
	}
	return -1
}

// bufSize returns the size of the buffer that holds n bytes: the smallest pooled
// size, else n rounded up to a multiple of minValueBuf.
func bufSize(n int) int {
	for s := minValueBuf; s <= maxPooledValueBuf; s *= 2 {
		if n <= s {
			return s
		}
	}
	return (n + minValueBuf - 1) / minValueBuf * minValueBuf
}

// getValueBuf returns a buffer of bufSize(n) bytes.
func getValueBuf(n int) *valueBuf {
	size := bufSize(n)
	if i := poolIndex(size); i >= 0 {
		if vb, ok := valuePools[i].Get().(*valueBuf); ok {
			return vb
		}
	}
	return &valueBuf{b: make([]byte, size)}
}

// putValueBuf gives vb back to its pool; buffers of other sizes are dropped.
func putValueBuf(vb *valueBuf) {
	if i := poolIndex(cap(vb.b)); i >= 0 {
		vb.b = vb.b[:cap(vb.b)]
		valuePools[i].Put(vb)
	}
}

// bodyMemory is the budget of max_body_memory_bytes: the bytes of value buffers
// records hold, from the first byte read until Kafka is done with the record.
type bodyMemory struct {
	limit int64
	used  atomic.Int64
}

// reserve takes n bytes of the budget; false when they are not left.
func (m *bodyMemory) reserve(n int) bool {
	if m.used.Add(int64(n)) > m.limit {
		m.used.Add(-int64(n))
		return false
	}
	return true
}

func (m *bodyMemory) release(n int) { m.used.Add(-int64(n)) }

// full returns the error of a buffer the budget has no room for.
func (m *bodyMemory) full(n int) error {
	return fmt.Errorf("%w (max_body_memory_bytes %d: %d bytes of bodies held, %d more needed)", ErrBackpressure, m.limit, m.used.Load(), n)
}

// body is the value buffer of a Record or the body buffer of a Batch: read or
// set under max_request_size_bytes, taken from max_body_memory_bytes.
type body struct {
	mem   *bodyMemory
	limit int       // max_request_size_bytes
	buf   *valueBuf // nil until a value is read or set
	value []byte    // the bytes read or set, in buf
	probe [1]byte   // reads the byte past the limit
}

// valueBuf returns the buffer, emptied, taking one for at least n bytes from
// the budget when there is none.
func (b *body) valueBuf(n int) ([]byte, error) {
	if b.buf == nil {
		size := bufSize(n)
		if !b.mem.reserve(size) {
			return nil, b.mem.full(size)
		}
		b.buf = getValueBuf(size)
	}
	return b.buf.b[:0], nil
}

// grow replaces the buffer by one holding v (the value so far, in the current
// buffer) with room for at least n bytes: twice the current size, but no more
// than ceiling bytes are asked for unless n needs them. The new buffer is taken
// from the budget before the old one goes back: both exist during the copy.
func (b *body) grow(v []byte, n, ceiling int) ([]byte, error) {
	old := b.buf
	size := bufSize(max(n, min(2*cap(old.b), ceiling)))
	if !b.mem.reserve(size) {
		return v, b.mem.full(size)
	}
	next := getValueBuf(size)
	v = append(next.b[:0], v...)
	b.mem.release(cap(old.b))
	putValueBuf(old)
	b.buf = next
	return v, nil
}

// free gives the buffer back to its pool and to the budget.
func (b *body) free() {
	if b.buf != nil {
		b.mem.release(cap(b.buf.b))
		putValueBuf(b.buf)
		b.buf = nil
	}
	b.value = nil
}

// read reads the body from src until io.EOF; see Record.ReadValue.
func (b *body) read(src io.Reader) error {
	limit := b.limit
	v, err := b.valueBuf(minValueBuf)
	if err != nil {
		return err
	}
	for {
		if len(v) >= limit {
			// At the limit: the body must end here.
			err = b.expectEOF(src)
			break
		}
		if len(v) == cap(v) {
			if v, err = b.grow(v, len(v)+1, limit); err != nil {
				break
			}
		}
		var n int
		n, err = src.Read(v[len(v):min(cap(v), limit)])
		v = v[:len(v)+n]
		if errors.Is(err, io.EOF) {
			err = nil
			break
		}
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrBodyRead, err)
			break
		}
	}
	if err != nil {
		b.value = v[:0]
		return err
	}
	b.value = v
	if len(v) == 0 {
		return ErrEmptyBody
	}
	return nil
}

// expectEOF reads src after limit bytes: the first further byte is one too many.
func (b *body) expectEOF(src io.Reader) error {
	for {
		n, err := src.Read(b.probe[:])
		switch {
		case n > 0:
			return fmt.Errorf("%w: more than max_request_size_bytes %d", ErrBodyTooLarge, b.limit)
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("%w: %v", ErrBodyRead, err)
		}
	}
}

// set sets the body to a copy of v; see Record.SetValue.
func (b *body) set(v []byte) error {
	switch {
	case len(v) == 0:
		return ErrEmptyBody
	case len(v) > b.limit:
		return fmt.Errorf("%w: %d bytes, max_request_size_bytes is %d", ErrBodyTooLarge, len(v), b.limit)
	}
	buf, err := b.valueBuf(len(v))
	if err == nil && cap(buf) < len(v) {
		buf, err = b.grow(buf, len(v), len(v))
	}
	if err != nil {
		return err
	}
	b.value = append(buf[:0], v...)
	return nil
}

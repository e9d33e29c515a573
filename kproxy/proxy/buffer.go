package proxy

import (
	"fmt"
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

// valueBuf returns the record's buffer, emptied, taking one for at least n bytes
// from the budget when it has none.
func (r *Record) valueBuf(n int) ([]byte, error) {
	if r.buf == nil {
		size := bufSize(n)
		if !r.p.mem.reserve(size) {
			return nil, r.p.mem.full(size)
		}
		r.buf = getValueBuf(size)
	}
	return r.buf.b[:0], nil
}

// grow replaces the record's buffer by one holding b (the value so far, in the
// current buffer) with room for at least n bytes: twice the current size, but no
// more than ceiling bytes are asked for unless n needs them. The new buffer is
// taken from the budget before the old one goes back: both exist during the
// copy.
func (r *Record) grow(b []byte, n, ceiling int) ([]byte, error) {
	old := r.buf
	size := bufSize(max(n, min(2*cap(old.b), ceiling)))
	if !r.p.mem.reserve(size) {
		return b, r.p.mem.full(size)
	}
	next := getValueBuf(size)
	b = append(next.b[:0], b...)
	r.p.mem.release(cap(old.b))
	putValueBuf(old)
	r.buf = next
	return b, nil
}

// freeValue gives the record's buffer back to its pool and to the budget.
func (r *Record) freeValue() {
	if r.buf != nil {
		r.p.mem.release(cap(r.buf.b))
		putValueBuf(r.buf)
		r.buf = nil
	}
	r.value = nil
}

package proxy

import "sync"

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
// size, else n rounded up to a multiple of maxPooledValueBuf.
func bufSize(n int) int {
	for s := minValueBuf; s <= maxPooledValueBuf; s *= 2 {
		if n <= s {
			return s
		}
	}
	return (n + maxPooledValueBuf - 1) / maxPooledValueBuf * maxPooledValueBuf
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

// valueBuf returns the record's buffer, emptied, taking one for at least n bytes
// when it has none.
func (r *Record) valueBuf(n int) []byte {
	if r.buf == nil {
		r.buf = getValueBuf(n)
	}
	return r.buf.b[:0]
}

// grow replaces the record's buffer by one holding b (the value so far, in the
// current buffer) with room for at least n bytes: twice the current size, but no
// more than ceiling bytes are asked for unless n needs them.
func (r *Record) grow(b []byte, n, ceiling int) []byte {
	old := r.buf
	want := min(2*cap(old.b), ceiling)
	next := getValueBuf(max(n, want))
	b = append(next.b[:0], b...)
	putValueBuf(old)
	r.buf = next
	return b
}

// freeValue gives the record's buffer back.
func (r *Record) freeValue() {
	if r.buf != nil {
		putValueBuf(r.buf)
		r.buf = nil
	}
	r.value = nil
}

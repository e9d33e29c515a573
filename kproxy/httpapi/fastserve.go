package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// answer is the answer to one request of a connection, in its place in the
// connection's queue: written once it is ready and every answer before it
// was written.
type slot struct {
	rec   *proxy.Record // the record waiting for Kafka, until its callback
	batch *proxy.Batch  // the batch waiting for Kafka, until its callback
	// held is the batch of a written answer, released once the answer is
	// written: until then its memory, counted against max_body_memory_bytes
	// and larger than its answer, stands for the answer's.
	held  *proxy.Batch
	minor int  // the request's HTTP minor version
	keep  bool // an HTTP/1.0 request asked for keep-alive
	close bool // the connection ends after this answer
	ready bool
	buf   []byte // the answer's bytes, once ready
}

// maxPooledSlot bounds the answer buffers kept in the pool (a batch's
// answers can be large).
const maxPooledSlot = 4 << 10

var slots = sync.Pool{New: func() any { return &slot{buf: make([]byte, 0, 512)} }}

func getSlot() *slot { return slots.Get().(*slot) }

func putSlot(a *slot) {
	if cap(a.buf) > maxPooledSlot {
		return
	}
	*a = slot{buf: a.buf[:0]}
	slots.Put(a)
}

// The ways serveRequest ends.
const (
	keepReading = iota // read the next request
	stopReading        // close the connection once the answers are written
)

// serveRequest serves the POST /commit or /batch whose head of headLen bytes
// c.req holds: it queues the request's answer, reads what the request needs of
// its head (the head's bytes may move once the body is read), and then does
// what the net/http handlers do — refuse, or admit, read the body and hand
// the records to Kafka, whose callback fills the answer.
func (c *fastConn) serveRequest(headLen int) int {
	r := &c.req
	a := getSlot()
	a.minor, a.keep = r.Minor, r.Minor == 0 && r.KeepAlive
	// A chunked request keeps its connection: the loop reads the chunked
	// framing to its end itself, and a head with a Content-Length beside
	// Transfer-Encoding never comes here (pkg/http1 refuses it, so net/http
	// serves it and closes the connection, RFC 9112 6.1).
	a.close = !r.KeepAlive
	c.mu.Lock()
	c.queue = append(c.queue, a)
	c.mu.Unlock()

	path, rawQuery := r.Target, r.Target[len(r.Target):]
	if i := indexByte(path, '?'); i >= 0 {
		path, rawQuery = path[:i], path[i+1:]
	}
	batch := string(path) == "/batch"
	auth := ""
	if c.s.core.AuthRequired() {
		v, _ := r.Field("authorization")
		auth = string(v)
	}
	var hdrs []kgo.RecordHeader
	var herr error
	for i := range r.Fields {
		if hdrs, herr = appendRecordHeader(hdrs, r.Fields[i].Name, r.Fields[i].Value); herr != nil {
			break
		}
	}
	req := fastRequest{a: a, batch: batch, length: r.ContentLength, chunked: r.Chunked, expect: r.Expect100}
	switch {
	case req.chunked:
		req.length = -1
	case req.length < 0:
		req.length = 0 // no framing field: no body
	}
	// The query's bytes stay in the buffer until the body is read; the key is
	// copied into the record before that.
	params, err := parseQuery(rawQuery, c.s.core.DefaultAcks(), c.topic)
	_, _ = c.br.Discard(headLen)

	switch {
	case !c.s.core.AuthorizedBy(auth):
		return c.refuse(&req, proxy.ErrUnauthorized)
	case c.s.core.Draining():
		return c.refuse(&req, proxy.ErrShuttingDown)
	}
	if err == nil {
		err = herr
	}
	if err != nil {
		return c.refuse(&req, err)
	}
	if batch {
		return c.serveBatch(&req, params, hdrs)
	}
	return c.serveCommit(&req, params, hdrs)
}

// fastRequest is what a request's serving needs once its head is gone.
type fastRequest struct {
	a       *slot
	batch   bool
	length  int64 // -1: chunked
	chunked bool
	expect  bool // Expect: 100-continue
}

// hasBody reports whether the request has a body.
func (q *fastRequest) hasBody() bool { return q.chunked || q.length > 0 }

// serveCommit serves POST /commit as Server.commit does.
func (c *fastConn) serveCommit(q *fastRequest, params commitParams[[]byte], hdrs []kgo.RecordHeader) int {
	rec, err := c.s.core.Admit(params.topic)
	if err != nil {
		return c.refuse(q, err)
	}
	rec.Acks, rec.Headers = params.acks, hdrs
	rec.SetKeyBytes(params.key)
	if err := checkLength(q.length, c.s.cfg.MaxRequestSizeBytes); err != nil {
		rec.Release()
		return c.refuse(q, err)
	}
	src, err := c.bodySource(q)
	if err == nil {
		err = rec.ReadValue(src)
	}
	if err != nil {
		rec.Release()
		return c.refuse(q, err)
	}
	if c.s.cfg.ValidateMsgpack {
		if err := envelope.Validate(rec.Value()); err != nil {
			rec.Release()
			return c.fail(q, fmt.Errorf("%w: %v", proxy.ErrInvalidMsgpack, err))
		}
	}
	q.a.rec = rec
	next := c.next(q)
	c.s.core.CommitAsync(c.ctx, rec, c.done)
	return next
}

// serveBatch serves POST /batch as Server.batch does.
func (c *fastConn) serveBatch(q *fastRequest, params commitParams[[]byte], hdrs []kgo.RecordHeader) int {
	b, err := c.s.core.AdmitBatch(params.topic)
	if err != nil {
		return c.refuse(q, err)
	}
	b.Acks, b.Headers = params.acks, hdrs
	if err := checkLength(q.length, c.s.cfg.MaxRequestSizeBytes); err != nil {
		b.Release()
		return c.refuse(q, err)
	}
	src, err := c.bodySource(q)
	if err == nil {
		err = b.ReadBody(src)
	}
	if err != nil {
		b.Release()
		return c.refuse(q, err)
	}
	if err := parseBatch(b.Body(), c.s.cfg.MaxBatchRecords, len(hdrs), b); err != nil {
		b.Release()
		return c.fail(q, err)
	}
	q.a.batch = b
	next := c.next(q)
	c.s.core.CommitBatchAsync(c.ctx, b, c.bdone)
	return next
}

// next is how the loop goes on after the request; it must be asked before the
// request's slot is ready or its records handed over.
func (c *fastConn) next(q *fastRequest) int {
	if q.a.close {
		return stopReading
	}
	return keepReading
}

// bodySource returns the reader of the request's body: after 100 Continue
// when the client waits for it, under read_timeout_ms from the request's
// start when the body is not all in the buffer already.
func (c *fastConn) bodySource(q *fastRequest) (io.Reader, error) {
	if q.expect {
		if err := c.sendContinue(q.a); err != nil {
			return nil, fmt.Errorf("%w: %v", proxy.ErrBodyRead, err)
		}
	}
	if d := c.s.lim.ReadTimeout; d > 0 && (q.chunked || int64(c.br.Buffered()) < q.length) {
		c.setReadDeadline(c.headStart.Add(d))
	}
	c.body.Reset(c.br, q.length, q.chunked)
	return &c.body, nil
}

// sendContinue writes 100 Continue once every earlier answer is written, so
// the interim answer comes in its place.
func (c *fastConn) sendContinue(a *slot) error {
	c.mu.Lock()
	for (len(c.queue) > 1 || c.writing) && !c.broken {
		c.cond.Wait()
	}
	if c.broken {
		c.mu.Unlock()
		return errors.New("the connection broke")
	}
	c.writing = true
	c.mu.Unlock()
	c.wbuf = append(http1.AppendStatusLine(c.wbuf[:0], a.minor, http.StatusContinue), "\r\n"...)
	err := c.writeBlocking(c.wbuf)
	c.mu.Lock()
	c.writing = false
	if err != nil {
		c.breakLocked()
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	return err
}

// refuse answers a request whose body was not read to its end with err; the
// connection ends after the answer when there was a body: otherwise the loop
// would have to read a body kproxy does not want, from a client that may send
// it slowly or never.
func (c *fastConn) refuse(q *fastRequest, err error) int {
	if q.hasBody() {
		q.a.close = true
	}
	return c.fail(q, err)
}

// fail answers the request with err at once (in its place). The slot is not
// touched once it is ready: it may be written and reused at once.
func (c *fastConn) fail(q *fastRequest, err error) int {
	c.failAnswer(q.a, q.batch, err)
	next := c.next(q)
	c.ready(q.a, true)
	return next
}

// failAnswer fills a with the error answer of err and counts it.
func (c *fastConn) failAnswer(a *slot, batch bool, err error) {
	status, code := Status(err)
	if batch {
		c.s.metrics.batch(status, code, nil)
	} else {
		c.s.metrics.request(status, code)
	}
	body := appendErrorBody(nil, code, err.Error())
	a.buf = c.appendHead(a.buf[:0], a, status, len(body))
	if status == http.StatusServiceUnavailable {
		a.buf = http1.AppendField(a.buf, "Retry-After", c.s.retryAfter)
	}
	if status == http.StatusUnauthorized {
		a.buf = http1.AppendField(a.buf, "WWW-Authenticate", `Bearer realm="kproxy"`)
	}
	a.buf = append(append(a.buf, "\r\n"...), body...)
}

// appendHead appends the status line and the fields every answer has:
// Content-Type, Content-Length, Date and the connection's fate. The caller
// adds its own fields and the empty line.
func (c *fastConn) appendHead(b []byte, a *slot, status, length int) []byte {
	if c.s.core.Draining() {
		a.close = true
	}
	b = http1.AppendStatusLine(b, a.minor, status)
	b = append(b, "Content-Type: application/json\r\n"...)
	b = http1.AppendContentLength(b, length)
	b = c.s.clock.AppendDate(b)
	switch {
	case a.close && a.minor == 1:
		b = append(b, "Connection: close\r\n"...)
	case a.keep && !a.close:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return b
}

// committed is CommitAsync's callback: the answer of the record's request.
func (c *fastConn) committed(r *proxy.Record, ack proxy.Ack, err error) {
	a := c.slotOf(r, nil)
	r.Release()
	if a == nil {
		c.s.log.Error("no answer queued for a record", "topic", ack.Topic)
		return
	}
	switch {
	case err == nil:
		c.s.metrics.ok.Inc()
		var tmp [96 + proxy.MaxTopicLen]byte
		body := appendSuccessBody(tmp[:0], ack.Topic, ack.Partition, ack.Offset)
		a.buf = c.appendHead(a.buf[:0], a, http.StatusOK, len(body))
		a.buf = append(append(a.buf, "\r\n"...), body...)
	case errors.Is(err, proxy.ErrCanceled):
		// The caller went away; nobody reads an answer.
		c.s.metrics.request(499, proxy.CodeCanceled)
		a.buf, a.close = a.buf[:0], true
	default:
		c.failAnswer(a, false, err)
	}
	c.ready(a, false)
}

// batched is CommitBatchAsync's callback: the answer of the batch's request.
func (c *fastConn) batched(b *proxy.Batch) {
	a := c.slotOf(nil, b)
	if a == nil {
		c.s.log.Error("no answer queued for a batch", "topic", b.Topic)
		b.Release()
		return
	}
	ans := batchAnswers.Get().(*batchAnswer)
	ans.build(b)
	c.s.metrics.batch(ans.status, ans.code, b)
	if ans.status == 499 {
		a.buf, a.close = a.buf[:0], true
	} else {
		a.buf = c.appendHead(a.buf[:0], a, ans.status, len(ans.body))
		if ans.status == http.StatusServiceUnavailable {
			a.buf = http1.AppendField(a.buf, "Retry-After", c.s.retryAfter)
		}
		a.buf = append(append(a.buf, "\r\n"...), ans.body...)
	}
	if cap(ans.body) <= maxPooledSlot {
		batchAnswers.Put(ans)
	}
	c.mu.Lock()
	if c.broken {
		b.Release()
	} else {
		a.held = b
	}
	a.ready = true
	c.flushLocked(false)
	c.mu.Unlock()
}

// slotOf returns the queued answer waiting for r or b. Every record and
// batch handed to Kafka has its answer queued until its callback ran.
func (c *fastConn) slotOf(r *proxy.Record, b *proxy.Batch) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.queue {
		if a.rec == r && a.batch == b {
			a.rec, a.batch = nil, nil
			return a
		}
	}
	return nil
}

// ready marks a written and writes what can be written. mayBlock says the
// caller may wait for a slow client (the connection's own goroutines), which
// the Kafka clients' callbacks must not.
func (c *fastConn) ready(a *slot, mayBlock bool) {
	c.mu.Lock()
	a.ready = true
	c.flushLocked(mayBlock)
	c.mu.Unlock()
}

// flushLocked writes the ready answers at the head of the queue, in order, as
// one write; c.mu is held, and released during the write. Without mayBlock,
// the write is an attempt that never blocks, and what it could not write goes
// to a goroutine that may; under TLS, where no write can be made that way,
// that goroutine writes it all.
func (c *fastConn) flushLocked(mayBlock bool) {
	for !c.writing && !c.broken {
		k := 0
		for k < len(c.queue) && c.queue[k].ready {
			k++
			if c.queue[k-1].close {
				break
			}
		}
		if k == 0 {
			return
		}
		out := c.queue[0].buf
		if k > 1 {
			// Pipelined answers go out together.
			out = c.wbuf[:0]
			for _, a := range c.queue[:k] {
				out = append(out, a.buf...)
			}
			if cap(out) <= maxPooledSlot {
				c.wbuf = out
			}
		}
		c.writing = true
		if !mayBlock && c.raw == nil {
			c.s.wg.Add(1)
			go c.writeRest(k, out)
			return
		}
		c.mu.Unlock()
		var err error
		n := 0
		if mayBlock {
			err = c.writeBlocking(out)
			n = len(out)
		} else {
			n, err = c.writeNow(out)
		}
		c.mu.Lock()
		if err == nil && n < len(out) {
			c.s.wg.Add(1)
			go c.writeRest(k, out[n:])
			return
		}
		c.writing = false
		if err != nil {
			c.breakLocked()
			return
		}
		c.popLocked(k)
	}
}

// writeRest writes out, the rest of the write of the first k answers, waiting
// for the client up to write_timeout_ms, then goes on with what became ready.
func (c *fastConn) writeRest(k int, out []byte) {
	defer c.s.wg.Done()
	err := c.writeBlocking(out)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writing = false
	if err != nil {
		c.breakLocked()
		return
	}
	c.popLocked(k)
	c.flushLocked(true)
}

// writeNow writes what the socket takes at once, without blocking.
func (c *fastConn) writeNow(b []byte) (int, error) {
	c.wb, c.wn, c.werr = b, 0, nil
	err := c.raw.Write(c.rawWrite)
	n, werr := c.wn, c.werr
	c.wb = nil
	if err == nil {
		err = werr
	}
	return n, err
}

// writeFd is writeNow's function on the socket (bound once, as c.rawWrite:
// a closure per write would allocate); c.wb, c.wn and c.werr are its
// arguments and results, owned by the write under way.
func (c *fastConn) writeFd(fd uintptr) bool {
	for c.wn < len(c.wb) {
		m, err := syscall.Write(int(fd), c.wb[c.wn:])
		if m > 0 {
			c.wn += m
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil && err != syscall.EAGAIN {
			c.werr = err
		}
		if err != nil || m <= 0 {
			break
		}
	}
	return true
}

// writeBlocking writes b, waiting for the client up to write_timeout_ms.
func (c *fastConn) writeBlocking(b []byte) error {
	if d := c.s.lim.WriteTimeout; d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	_, err := c.nc.Write(b)
	return err
}

// popLocked takes the first k answers, written, off the queue.
func (c *fastConn) popLocked(k int) {
	for i := 0; i < k; i++ {
		if b := c.queue[i].held; b != nil {
			b.Release()
		}
		putSlot(c.queue[i])
		c.queue[i] = nil
	}
	n := copy(c.queue, c.queue[k:])
	clear(c.queue[n:])
	c.queue = c.queue[:n]
	if len(c.queue) == 0 && c.waiting {
		c.setIdleLocked(c.between)
		if c.draining {
			// The last answer is written: the wait for a request ends.
			_ = c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
	c.cond.Broadcast()
}

// breakLocked notes a failed write: nothing more is written, the batches
// held for their answers are released (those still with Kafka are when their
// callbacks come), and the loop, should it wait to read, stops.
func (c *fastConn) breakLocked() {
	c.broken = true
	for _, a := range c.queue {
		if a.held != nil {
			a.held.Release()
			a.held = nil
		}
	}
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	c.cond.Broadcast()
}

// appendErrorBody appends {"error":msg,"code":code}\n.
func appendErrorBody(b []byte, code, msg string) []byte {
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	return append(b, "\"}\n"...)
}

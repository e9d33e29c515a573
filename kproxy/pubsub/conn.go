package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"
)

// conn is one upgraded connection. Its handler goroutine reads requests
// (readLoop); each Kafka command runs in a goroutine of its own; one writer
// goroutine (writeLoop) writes the answers in request order. slots bounds the
// requests read and not yet answered to Options.MaxInFlight: the reader takes a
// slot before it reads a frame and the writer gives it back once the answer is
// written, so a client that does not read its answers stops being read, and
// what it holds in memory is at most MaxInFlight answers.
type conn struct {
	h       *Handler
	ws      *websocket.Conn
	log     *slog.Logger
	ctx     context.Context // ends when the connection is done; cancels Kafka requests
	cancel  context.CancelFunc
	slots   chan struct{}
	queue   chan *job     // answers in request order; never holds more than MaxInFlight
	stop    chan struct{} // closed by stopReading
	once    sync.Once     // closes stop
	ended   sync.Once     // sets reason
	reason  string        // why the connection ends, set once by setReason
	closing sync.Once     // sends the close frame
}

// job is one request's answer, ready once done is closed.
type job struct {
	done chan struct{}
	resp *PubSubResp
}

func newConn(h *Handler, ws *websocket.Conn, id uint64, remote string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		h:      h,
		ws:     ws,
		log:    h.log.With("conn", id, "remote", remote),
		ctx:    ctx,
		cancel: cancel,
		slots:  make(chan struct{}, h.opts.MaxInFlight),
		queue:  make(chan *job, h.opts.MaxInFlight),
		stop:   make(chan struct{}),
	}
}

// serve runs the connection until the client closes it, a read or write
// fails, or Shutdown stops it; then closes it.
func (c *conn) serve() {
	c.h.metrics.connections.Inc()
	defer c.h.metrics.connections.Dec()
	c.log.Debug("pubsub: connection open")
	c.ws.SetReadLimit(c.h.opts.MaxFrameBytes)

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	reason := c.readLoop()
	// The reader's reason comes first: answers that then fail to reach a
	// client that has gone are not a write error.
	c.setReason(reason)
	close(c.queue)
	<-writerDone
	c.closeNow(websocket.CloseGoingAway, "kproxy is shutting down", reason)
}

// readLoop reads frames until the connection fails or stops and returns why.
func (c *conn) readLoop() string {
	var buf []byte
	for {
		// A writer that failed still frees slots, so this wait ends.
		select {
		case c.slots <- struct{}{}:
		case <-c.stop:
			return closedShutdown
		}
		if c.ctx.Err() != nil {
			// A write failed and closed the connection; frames the
			// library has buffered are not worth a Kafka request.
			return closedWriteErr
		}
		typ, r, err := c.ws.NextReader()
		if err == nil {
			buf, err = readFrame(buf[:0], r)
		}
		if err != nil {
			<-c.slots
			return c.readFailed(err)
		}
		if typ != websocket.BinaryMessage {
			// As APISIX: pubsub requests are binary; text is ignored.
			<-c.slots
			c.h.metrics.received.WithLabelValues(inText).Inc()
			continue
		}
		j := &job{done: make(chan struct{})}
		req := &PubSubReq{}
		if err := proto.Unmarshal(buf, req); err != nil {
			c.h.metrics.received.WithLabelValues(inUndecodable).Inc()
			c.log.Debug("pubsub: undecodable frame", "bytes", len(buf), "err", err)
			j.resp = c.h.errorResp(0, fmt.Errorf("%w: the frame is not a PubSubReq: %v", ErrWrongCommand, err))
			close(j.done)
		} else {
			c.h.metrics.received.WithLabelValues(commandKind(req)).Inc()
			if needsKafka(req) {
				go func() {
					defer close(j.done)
					j.resp = c.h.answer(c.ctx, req)
				}()
			} else {
				j.resp = c.h.answer(c.ctx, req)
				close(j.done)
			}
		}
		c.h.metrics.inflight.Inc()
		c.queue <- j // never blocks: every queued job holds a slot
		if cap(buf) > 4<<10 {
			buf = nil // do not keep a large frame's buffer for an idle connection
		}
	}
}

// readFrame appends the frame's payload to buf. The reader stops at
// Options.MaxFrameBytes (websocket.ErrReadLimit).
func readFrame(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// readFailed logs a read error and returns its close reason.
func (c *conn) readFailed(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c.log.Debug("pubsub: client closed the connection", "code", ce.Code, "text", ce.Text)
		return closedByClient
	case errors.Is(err, websocket.ErrReadLimit):
		c.log.Info("pubsub: frame above the size limit, connection closed", "limit_bytes", c.h.opts.MaxFrameBytes)
		return closedTooLarge
	}
	select {
	case <-c.stop:
		return closedShutdown // the read deadline stopReading set
	default:
	}
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && !ne.Timeout()) {
		c.log.Debug("pubsub: connection lost", "err", err)
		return closedByClient
	}
	c.log.Info("pubsub: read failed, connection closed", "err", err)
	return closedReadErr
}

// bufPool holds marshalled answers' buffers, shared by every connection.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// writeLoop writes the answers in request order. After a failed write it
// writes nothing more, but still takes every answer off the queue so the
// reader can end.
func (c *conn) writeLoop() {
	failed := false
	for j := range c.queue {
		<-j.done
		if !failed {
			if err := c.write(j.resp); err != nil {
				failed = true
				c.log.Info("pubsub: write failed, connection closed", "err", err, "write_timeout", c.h.opts.WriteTimeout)
				c.closeNow(websocket.CloseGoingAway, "write failed", closedWriteErr)
			}
		}
		c.h.metrics.inflight.Dec()
		<-c.slots
	}
}

// write marshals and writes one answer within Options.WriteTimeout.
func (c *conn) write(resp *PubSubResp) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, err := proto.MarshalOptions{}.MarshalAppend((*bp)[:0], resp)
	if err != nil {
		// Only an invalid UTF-8 string can get here; tell the client.
		c.log.Error("pubsub: marshal answer", "sequence", resp.GetSequence(), "err", err)
		b, _ = proto.MarshalOptions{}.MarshalAppend((*bp)[:0],
			c.h.errorResp(resp.GetSequence(), fmt.Errorf("the answer could not be encoded: %v", err)))
	}
	if cap(b) <= 1<<20 {
		*bp = b
	}
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout)); err != nil {
		return err
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return err
	}
	c.h.metrics.sent.WithLabelValues(answerKind(resp)).Inc()
	c.h.metrics.sentBytes.Add(float64(len(b)))
	return nil
}

// answerKind is the metric label of an answer.
func answerKind(resp *PubSubResp) string {
	switch resp.GetResp().(type) {
	case *PubSubResp_PongResp:
		return outPong
	case *PubSubResp_KafkaFetchResp:
		return outFetch
	case *PubSubResp_KafkaListOffsetResp:
		return outListOffset
	default:
		return outError
	}
}

// stopReading makes the reader stop after the frame it is reading; the answers
// of requests already read are still written. Safe to call more than once.
func (c *conn) stopReading() {
	c.once.Do(func() {
		close(c.stop)
		// Wakes a reader waiting for the next frame.
		_ = c.ws.UnderlyingConn().SetReadDeadline(time.Now())
	})
}

// setReason counts why the connection ends; only the first call counts.
func (c *conn) setReason(reason string) {
	c.ended.Do(func() {
		c.reason = reason
		c.h.metrics.closed.WithLabelValues(reason).Inc()
		c.log.Debug("pubsub: connection closing", "reason", reason)
	})
}

// closeNow closes the connection and ends its Kafka requests. When it ends for
// shutdown or a broken frame it first sends a close frame with code and text
// (bounded by a second); a client that closed or left, a frame too large
// (the library sent 1009) and a failed write need none. reason counts unless
// another was counted first. Safe to call concurrently and more than once.
func (c *conn) closeNow(code int, text, reason string) {
	c.setReason(reason)
	c.closing.Do(func() {
		switch c.reason {
		case closedShutdown:
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		case closedReadErr:
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, ""), time.Now().Add(time.Second))
		}
	})
	c.cancel()
	_ = c.ws.Close()
}

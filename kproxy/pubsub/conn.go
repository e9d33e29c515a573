package pubsub

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
)

// conn is one upgraded connection. Its handler goroutine reads requests
// (readLoop); each Kafka command runs in a goroutine of its own; one writer
// goroutine (writeLoop) writes the answers in request order. slots bounds the
// requests read and not yet answered to Options.MaxInFlight: the reader takes a
// slot before it reads a frame and the writer gives it back once the answer is
// written, so a client that does not read its answers stops being read, and
// what it holds in memory is at most MaxInFlight answers. Its Socket's context
// ends when the connection is done: it cancels Kafka requests.
type conn struct {
	*wsgate.Socket
	h     *Handler
	slots chan struct{}
	queue chan *job // answers in request order; never holds more than MaxInFlight
}

// job is one request's answer, ready once done is closed.
type job struct {
	done chan struct{}
	resp *PubSubResp
}

func newConn(h *Handler, s *wsgate.Socket) *conn {
	return &conn{
		Socket: s,
		h:      h,
		slots:  make(chan struct{}, h.opts.MaxInFlight),
		queue:  make(chan *job, h.opts.MaxInFlight),
	}
}

// Serve runs the connection until the client closes it, a read or write
// fails, or Shutdown stops it; then closes it.
func (c *conn) Serve() {
	c.Log().Debug("pubsub: connection open")
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	reason := c.readLoop()
	// The reader's reason comes first: answers that then fail to reach a
	// client that has gone are not a write error.
	c.SetReason(reason)
	close(c.queue)
	<-writerDone
	c.End(reason)
}

// Abort closes the connection at once (Shutdown's deadline passed), with
// 1001 if the socket takes it within a second.
func (c *conn) Abort() { c.End(wsgate.ClosedShutdown) }

// readLoop reads frames until the connection fails or stops and returns why.
func (c *conn) readLoop() string {
	var buf []byte
	for {
		// A writer that failed still frees slots, so this wait ends.
		select {
		case c.slots <- struct{}{}:
		case <-c.Stopping():
			return wsgate.ClosedShutdown
		}
		if c.Context().Err() != nil {
			// A write failed and closed the connection; frames the
			// library has buffered are not worth a Kafka request.
			return wsgate.ClosedWriteErr
		}
		typ, r, err := c.WS().NextReader()
		if err == nil {
			buf, err = readFrame(buf[:0], r)
		}
		if err != nil {
			<-c.slots
			return c.ReadFailed(err)
		}
		if typ != websocket.BinaryMessage {
			// As APISIX: pubsub requests are binary; text is ignored.
			<-c.slots
			c.h.metrics.FramesReceived.WithLabelValues(inText).Inc()
			continue
		}
		j := &job{done: make(chan struct{})}
		req := &PubSubReq{}
		if err := proto.Unmarshal(buf, req); err != nil {
			c.h.metrics.FramesReceived.WithLabelValues(inUndecodable).Inc()
			c.Log().Debug("pubsub: undecodable frame", "bytes", len(buf), "err", err)
			j.resp = c.h.errorResp(0, fmt.Errorf("%w: the frame is not a PubSubReq: %v", ErrWrongCommand, err))
			close(j.done)
		} else {
			c.h.metrics.FramesReceived.WithLabelValues(commandKind(req)).Inc()
			if needsKafka(req) {
				go func() {
					defer close(j.done)
					j.resp = c.h.answer(c.Context(), req)
				}()
			} else {
				j.resp = c.h.answer(c.Context(), req)
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
				c.Log().Info("pubsub: write failed, connection closed", "err", err, "write_timeout", c.h.opts.WriteTimeout)
				c.End(wsgate.ClosedWriteErr)
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
		c.Log().Error("pubsub: marshal answer", "sequence", resp.GetSequence(), "err", err)
		b, _ = proto.MarshalOptions{}.MarshalAppend((*bp)[:0],
			c.h.errorResp(resp.GetSequence(), fmt.Errorf("the answer could not be encoded: %v", err)))
	}
	if cap(b) <= 1<<20 {
		*bp = b
	}
	ws := c.WS()
	if err := ws.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout)); err != nil {
		return err
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return err
	}
	c.h.metrics.sent.WithLabelValues(answerKind(resp)).Inc()
	c.h.metrics.SentBytes.Add(float64(len(b)))
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

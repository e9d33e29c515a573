package devicehive

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
)

// conn is one upgraded connection. Its handler goroutine reads frames
// (readLoop) and handles their messages one after the other, writing each
// reply before it reads on: the messages of a connection are handled in
// order, and a client that does not read its replies stops being read. A
// writer goroutine (writeLoop) writes the notifications its consumer group
// memberships queue, and pings. Writes are serialised by writeMu and bounded
// by Options.WriteTimeout.
//
// Its Socket's context ends with the connection: it cancels Kafka requests
// and consumers.
//
// Lock order: member.mu, then writeMu.
type conn struct {
	*wsgate.Socket
	h     *Handler
	queue *sendQueue

	writeMu sync.Mutex

	subsMu sync.Mutex
	subs   []*member // consumer group memberships, one per group

	nextNotif  int64         // id of the last notification sent; used by writeLoop only
	writing    bool          // Serve started writeLoop (set and read by the handler goroutine)
	writerDone chan struct{} // closed when writeLoop has returned
	ending     sync.Once     // runs end
	buf        bytes.Buffer
}

func newConn(h *Handler, s *wsgate.Socket) *conn {
	return &conn{
		Socket:     s,
		h:          h,
		queue:      newSendQueue(h.opts.SendQueueBytes, h.metrics.queuedBytes),
		writerDone: make(chan struct{}),
	}
}

// Serve runs the connection until the client closes it, a read or write
// fails, or Shutdown stops it; then ends it.
func (c *conn) Serve() {
	c.Log().Debug("devicehive: connection open")
	c.WS().SetPongHandler(func(string) error {
		c.extendRead()
		return nil
	})
	c.writing = true
	go c.writeLoop()
	c.end(c.readLoop())
}

// readLoop reads frames and handles them until the connection fails or
// stops, and returns why.
func (c *conn) readLoop() string {
	for {
		c.extendRead()
		select {
		case <-c.Stopping():
			return wsgate.ClosedShutdown
		default:
		}
		_, r, err := c.WS().NextReader()
		if err == nil {
			c.buf.Reset()
			_, err = c.buf.ReadFrom(r)
		}
		if err != nil {
			return c.ReadFailed(err)
		}
		c.handleFrame(c.buf.Bytes())
		if c.Context().Err() != nil {
			return wsgate.ClosedWriteErr // a write failed; its reason was counted first
		}
		if c.buf.Cap() > 64<<10 {
			c.buf = bytes.Buffer{} // do not keep a large frame's buffer for an idle connection
		}
	}
}

// extendRead gives the client two ping intervals to send its next frame or
// pong, unless reading stopped.
func (c *conn) extendRead() { c.ExtendRead(2 * c.h.opts.PingInterval) }

// handleFrame handles the messages of one frame in order, each answered
// before the next is handled.
func (c *conn) handleFrame(frame []byte) {
	msgs, err := decodeFrame(frame)
	if err != nil {
		c.h.metrics.frames(frameInvalid)
		c.h.metrics.received.WithLabelValues(kindInvalid).Inc()
		c.Log().Debug("devicehive: frame is not JSON", "bytes", len(frame))
		_ = c.writeReply(kindInvalid, errorReply(&message{id: jsonNull}, err))
		return
	}
	if len(frame) > 0 && bytes.TrimLeft(frame, " \t\r\n")[0] == '[' {
		c.h.metrics.frames(frameBatch)
	} else {
		c.h.metrics.frames(frameSingle)
	}
	for i := range msgs {
		if c.Context().Err() != nil {
			return // the connection ended: nobody reads the rest
		}
		m := &msgs[i]
		kind := m.kind()
		c.h.metrics.received.WithLabelValues(kind).Inc()
		rep, after := c.handle(m)
		if err := c.writeReply(kind, rep); err != nil {
			return
		}
		if after != nil {
			after()
		}
	}
}

// writeReply writes one reply as a text frame and counts it.
func (c *conn) writeReply(kind string, r *reply) error {
	b, err := json.Marshal(r)
	if err != nil {
		// Only a payload the handlers built wrongly gets here; tell the client.
		c.Log().Error("devicehive: encode reply", "t", r.T, "a", r.A, "err", err)
		b, _ = json.Marshal(&reply{ID: r.ID, RefID: r.RefID, T: r.T, A: r.A, S: 500, P: "the reply could not be encoded", Code: "internal"})
	}
	if err := c.write(b); err != nil {
		return err
	}
	c.h.metrics.replies(kind, r.S)
	return nil
}

// write writes one text frame within Options.WriteTimeout. A failed write
// ends the connection.
func (c *conn) write(b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.Context().Err(); err != nil {
		return err
	}
	ws := c.WS()
	err := ws.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
	if err == nil {
		err = ws.WriteMessage(websocket.TextMessage, b)
	}
	if err != nil {
		c.writeFailed(err)
		return err
	}
	c.h.metrics.SentBytes.Add(float64(len(b)))
	return nil
}

// writeFailed ends the connection after a failed write (closing the socket
// wakes the reader): a timeout means the client stopped reading (stalled),
// anything else that it went away.
func (c *conn) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.Log().Info("devicehive: the client read nothing for write_timeout_ms, connection closed",
			"write_timeout", c.h.opts.WriteTimeout, "queued_bytes", c.queue.size())
		c.Drop(wsgate.ClosedStalled)
		return
	}
	c.Log().Debug("devicehive: write failed, connection closed", "err", err)
	c.Drop(wsgate.ClosedWriteErr)
}

// writeLoop writes the queued notifications and pings until the connection
// ends.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.h.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.Context().Done():
			return
		case <-ping.C:
			if err := c.WS().WriteControl(websocket.PingMessage, nil, time.Now().Add(c.h.opts.WriteTimeout)); err != nil {
				c.writeFailed(err)
				return
			}
		case <-c.queue.ready:
			for b := c.queue.pop(); b != nil; b = c.queue.pop() {
				c.deliver(b)
			}
		}
	}
}

// deliver writes the records of b that its member still owns as one frame of
// notifications, then marks them for the member's next offset commit. The
// member's lock is held throughout, so a rebalance cannot take a partition
// away between the check and the mark: offsets are committed only for
// records written, and only by their partition's owner.
func (c *conn) deliver(b *batch) {
	defer c.queue.done(b)
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	recs := b.recs[:0]
	for _, r := range b.recs {
		if m.owns(r.Topic, r.Partition) {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return
	}
	notifs := make([]notification, len(recs))
	for i, r := range recs {
		c.nextNotif++
		notifs[i] = toNotification(c.nextNotif, r)
	}
	frame, err := json.Marshal(notifs)
	if err != nil {
		c.Log().Error("devicehive: encode notifications", "err", err)
		return
	}
	if err := c.write(frame); err != nil {
		return
	}
	m.cl.MarkCommitRecords(recs...)
	c.h.metrics.notifFrames.Inc()
	c.h.metrics.delivered.Add(float64(len(recs)))
}

// Abort closes the connection at once (Shutdown's deadline passed); the
// reader then ends it.
func (c *conn) Abort() { c.Drop(wsgate.ClosedShutdown) }

// end closes the connection for reason (unless another was counted first),
// with a close frame when it ends for shutdown, a stalled or idle client or a
// protocol error (wsgate.Socket.End); then it leaves the connection's consumer
// groups (committing the offsets of what was sent) and waits for the writer.
// Safe to call more than once.
func (c *conn) end(reason string) {
	c.ending.Do(func() {
		c.End(reason)
		c.subsMu.Lock()
		subs := c.subs
		c.subs = nil
		c.subsMu.Unlock()
		closeMembers(subs, c.h.opts.RequestTimeout)
		if c.writing {
			<-c.writerDone
		}
		c.queue.discard()
	})
}

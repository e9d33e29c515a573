package wsgate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a connection ends: the values of PREFIX_closed_total{reason}.
const (
	// ClosedByClient: the client sent a close frame or went away.
	ClosedByClient = "client"
	// ClosedReadErr: a frame broke the protocol; closed with 1002.
	ClosedReadErr = "read_error"
	// ClosedTooLarge: a frame above MaxFrameBytes; the library closed with 1009.
	ClosedTooLarge = "frame_too_large"
	// ClosedWriteErr: writing to the client failed.
	ClosedWriteErr = "write_error"
	// ClosedStalled: a write was stuck for the write timeout (the client
	// reads nothing); closed with 1008. The devicehive gateway tells this
	// from ClosedWriteErr.
	ClosedStalled = "stalled"
	// ClosedIdle: nothing came, pongs included, within the read deadline of
	// ExtendRead; closed with 1008.
	ClosedIdle = "idle"
	// ClosedShutdown: Shutdown; closed with 1001 (going away).
	ClosedShutdown = "shutdown"
)

// closeFrame returns the close frame End sends for reason, or nil for none (a
// client that closed or left, a frame too large, a failed write).
func closeFrame(reason string) []byte {
	switch reason {
	case ClosedShutdown:
		return websocket.FormatCloseMessage(websocket.CloseGoingAway, "kproxy is shutting down")
	case ClosedStalled:
		return websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "the client did not read its notifications")
	case ClosedIdle:
		return websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "no frame or pong for two ping intervals")
	case ClosedReadErr:
		return websocket.FormatCloseMessage(websocket.CloseProtocolError, "")
	}
	return nil
}

// sockets is what every Socket of one Gate shares.
type sockets struct {
	name     string
	idKey    string
	log      *slog.Logger
	maxFrame int64
	closed   *prometheus.CounterVec
}

// Socket is the part of a gateway's connection every protocol has: the
// upgraded WebSocket, a context that ends with it, the stop of reading that
// Shutdown asks for, and the one reason it ends, counted in
// PREFIX_closed_total. The gateway's connection type embeds it. Its methods
// are safe for concurrent use.
type Socket struct {
	ws     *websocket.Conn
	id     uint64
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	g      *sockets

	stop    chan struct{} // closed by StopReading
	mu      sync.Mutex    // orders read deadline changes with StopReading
	stopped bool          // stop is closed; guarded by mu
	idle    time.Duration // the read deadline of ExtendRead; guarded by mu

	ended   sync.Once // sets reason
	reason  string
	closing sync.Once // sends the close frame
}

func (g *sockets) newSocket(ws *websocket.Conn, id uint64, remote string) *Socket {
	ws.SetReadLimit(g.maxFrame)
	ctx, cancel := context.WithCancel(context.Background())
	return &Socket{
		ws:     ws,
		id:     id,
		log:    g.log.With(g.idKey, id, "remote", remote),
		ctx:    ctx,
		cancel: cancel,
		g:      g,
		stop:   make(chan struct{}),
	}
}

// WS returns the WebSocket connection.
func (s *Socket) WS() *websocket.Conn { return s.ws }

// ID returns the connection's number: 1 for the gate's first, then counting
// up.
func (s *Socket) ID() uint64 { return s.id }

// Log returns the connection's logger (with its number and remote address).
func (s *Socket) Log() *slog.Logger { return s.log }

// Context returns a context that ends when the connection is closed (End,
// Drop): it cancels the connection's Kafka requests.
func (s *Socket) Context() context.Context { return s.ctx }

// Stopping returns a channel closed once StopReading was called.
func (s *Socket) Stopping() <-chan struct{} { return s.stop }

// StopReading makes the reader stop: Stopping is closed and a read waiting
// for the next frame fails at once. Safe to call more than once.
func (s *Socket) StopReading() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
		_ = s.ws.SetReadDeadline(time.Now())
	}
}

// ExtendRead gives the client idle from now to send its next frame or pong,
// unless reading stopped; a read that times out then ends the connection as
// ClosedIdle.
func (s *Socket) ExtendRead(idle time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.idle = idle
		_ = s.ws.SetReadDeadline(time.Now().Add(idle))
	}
}

// SetReason counts why the connection ends; only the first call counts.
func (s *Socket) SetReason(reason string) {
	s.ended.Do(func() {
		s.reason = reason
		s.g.closed.WithLabelValues(reason).Inc()
		s.log.Debug(s.g.name+": connection closing", "reason", reason)
	})
}

// Drop closes the connection at once, without a close frame, and ends its
// context; reason counts unless another was counted first.
func (s *Socket) Drop(reason string) {
	s.SetReason(reason)
	s.cancel()
	_ = s.ws.Close()
}

// End closes the connection: first, once, the close frame of the reason
// counted (reason, unless another was counted first) when it has one —
// 1001 for ClosedShutdown, 1008 for ClosedStalled and ClosedIdle, 1002 for
// ClosedReadErr — bounded by a second; then the socket, and it ends the
// context. Safe to call concurrently and more than once.
func (s *Socket) End(reason string) {
	s.SetReason(reason)
	s.closing.Do(func() {
		if frame := closeFrame(s.reason); frame != nil {
			_ = s.ws.WriteControl(websocket.CloseMessage, frame, time.Now().Add(time.Second))
		}
	})
	s.cancel()
	_ = s.ws.Close()
}

// ReadFailed logs err, the error that ended reading, and returns the reason
// the connection ends for.
func (s *Socket) ReadFailed(err error) string {
	name := s.g.name
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		s.log.Debug(name+": client closed the connection", "code", ce.Code, "text", ce.Text)
		return ClosedByClient
	case errors.Is(err, websocket.ErrReadLimit):
		s.log.Info(name+": frame above the size limit, connection closed", "limit_bytes", s.g.maxFrame)
		return ClosedTooLarge
	}
	select {
	case <-s.stop:
		return ClosedShutdown // the read deadline StopReading set
	default:
	}
	if s.ctx.Err() != nil {
		// Drop or End closed the socket under the reader, after counting
		// their reason; this one does not count.
		return ClosedWriteErr
	}
	var ne net.Error
	isNet := errors.As(err, &ne)
	if isNet && ne.Timeout() {
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		if idle > 0 {
			s.log.Info(name+": client silent past its read deadline, connection closed", "idle", idle)
			return ClosedIdle
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || (isNet && !ne.Timeout()) {
		s.log.Debug(name+": connection lost", "err", err)
		return ClosedByClient
	}
	s.log.Info(name+": read failed, connection closed", "err", err)
	return ClosedReadErr
}

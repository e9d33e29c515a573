package httpapi

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// fdReserve is how many file descriptors max_connections leaves for everything
// else: listeners, Kafka and ZooKeeper connections, log files.
const fdReserve = 256

// effectiveMaxConns returns max_connections, lowered to what the process's open
// file limit leaves after fdReserve, so connections can never use up the
// descriptors kproxy needs for Kafka. lowered reports whether it was.
func effectiveMaxConns(configured int) (limit int, lowered bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) {
		return configured, false
	}
	room := int64(rl.Cur) - fdReserve
	if room < int64(rl.Cur)/2 {
		room = int64(rl.Cur) / 2
	}
	if room < 1 {
		room = 1
	}
	if int64(configured) > room {
		return int(room), true
	}
	return configured, false
}

// connLimiter bounds the connections of one listener to max. When a new
// connection finds max reached, the connection idle longest between two
// requests is closed to make room (an idle keep-alive connection costs its
// client nothing to open again); when none is idle, the new connection is
// closed at once. So idle connections can neither exhaust the process's file
// descriptors nor lock real clients out. Its methods are safe for concurrent use.
type connLimiter struct {
	max int
	log *slog.Logger

	mu   sync.Mutex
	open int
	// idle is a list of the idle connections, the longest idle first.
	idleHead, idleTail *limitedConn

	refused, evicted, acceptErrs prometheus.Counter
	warn                         proxy.Throttle // "max_connections reached"
	acceptWarn                   proxy.Throttle
}

func newConnLimiter(max int, log *slog.Logger, reg prometheus.Registerer) *connLimiter {
	l := &connLimiter{
		max: max,
		log: log,
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_connections_refused_total",
			Help: "Connections to port closed at once because max_connections were open and none was idle.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_connections_evicted_total",
			Help: "Idle keep-alive connections to port closed to make room for a new one at max_connections.",
		}),
		acceptErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_accept_errors_total",
			Help: "Errors accepting connections on port (such as running out of file descriptors).",
		}),
	}
	reg.MustRegister(l.refused, l.evicted, l.acceptErrs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_connections",
			Help: "Connections open on port, WebSocket connections included.",
		}, func() float64 {
			l.mu.Lock()
			defer l.mu.Unlock()
			return float64(l.open)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_connections_max",
			Help: "The bound on connections open on port: max_connections, lowered to fit the open file limit.",
		}, func() float64 { return float64(l.max) }),
	)
	return l
}

// listener returns ln with the limit applied.
func (l *connLimiter) listener(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, l: l}
}

// admit takes a slot for a new connection, closing the longest idle connection
// when all are taken. It returns false when every connection is busy.
func (l *connLimiter) admit() bool {
	l.mu.Lock()
	if l.open < l.max {
		l.open++
		l.mu.Unlock()
		return true
	}
	victim := l.idleHead
	if victim == nil {
		l.mu.Unlock()
		l.refused.Inc()
		l.warn.Warn(l.log, "max_connections reached and no connection idle: refusing new connections", "max_connections", l.max)
		return false
	}
	l.unlinkLocked(victim)
	victim.evicted = true
	// The victim's slot passes to the new connection: its Close must not free it.
	victim.counted = false
	l.mu.Unlock()
	l.evicted.Inc()
	l.warn.Warn(l.log, "max_connections reached: closing idle keep-alive connections to make room", "max_connections", l.max)
	_ = victim.Conn.Close()
	return true
}

// connState follows net/http's connection states (for connections handed
// to it): idle connections may be closed to make room, active ones not.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	if h, ok := c.(*handedConn); ok {
		c = h.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		l.setIdle(lc, state == http.StateIdle)
	}
}

// setIdle puts c on the idle list, as the most recently idle, or takes it
// off.
func (l *connLimiter) setIdle(c *limitedConn, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !idle {
		l.unlinkLocked(c)
		return
	}
	if c.idle || c.evicted || !c.counted {
		return
	}
	c.idle = true
	c.prev, c.next = l.idleTail, nil
	if l.idleTail != nil {
		l.idleTail.next = c
	} else {
		l.idleHead = c
	}
	l.idleTail = c
}

// unlinkLocked takes c off the idle list; l.mu is held.
func (l *connLimiter) unlinkLocked(c *limitedConn) {
	if !c.idle {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.idleHead = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.idleTail = c.prev
	}
	c.prev, c.next, c.idle = nil, nil, false
}

// release frees c's slot when it closes.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	l.unlinkLocked(c)
	if c.counted {
		c.counted = false
		l.open--
	}
	l.mu.Unlock()
}

// limitedListener accepts connections within the limit. It logs accept errors at
// warning level (at most one line every proxy.ThrottleEvery; Server.accept
// retries temporary ones with a growing pause) and counts them.
type limitedListener struct {
	net.Listener
	l *connLimiter
}

// Accept implements net.Listener.
func (ln *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				ln.l.acceptErrs.Inc()
				ln.l.acceptWarn.Warn(ln.l.log, "accepting a connection failed", "err", err)
			}
			return nil, err
		}
		if !ln.l.admit() {
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: ln.l, counted: true}, nil
	}
}

// limitedConn is a connection holding a slot of its listener's limit until it
// is closed. Its list fields are guarded by the limiter's mutex.
type limitedConn struct {
	net.Conn
	l          *connLimiter
	closed     atomic.Bool
	prev, next *limitedConn
	idle       bool // on the idle list
	evicted    bool // closed to make room
	counted    bool // holds a slot
}

// Close implements net.Conn.
func (c *limitedConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.Conn.Close()
	c.l.release(c)
	return err
}

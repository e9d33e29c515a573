// Package zkconn is the one way the daemons reach ZooKeeper: Connect opens a
// go-zookeeper client that logs through log/slog, bounds each TCP connection
// attempt, and observes the session timeout the server granted and when the
// server last sent anything (for fencing); the package also holds the one set of
// rules for ZooKeeper settings — hosts, chroot, timeouts, node names — that each
// daemon applies under its own key names (Settings.Check, CheckNodeName,
// CheckChroot).
//
// No other package calls zk.Connect.
package zkconn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Defaults of Options.
const (
	// DefaultSessionTimeout is the session timeout requested when Options has
	// none: the default of every daemon's session timeout key.
	DefaultSessionTimeout = 6 * time.Second
	// DefaultConnectTimeout bounds one TCP connection attempt to one server
	// when Options has none (the go-zookeeper client's own default).
	DefaultConnectTimeout = time.Second
)

// connectResponseHead is how many bytes of a connection's first answer (the
// connect response: length, protocol version, granted timeout) are read to learn
// the session timeout the server granted.
const connectResponseHead = 12

// Options configure Connect. The zero value is usable.
type Options struct {
	// SessionTimeout is the session timeout requested from the server, which
	// clamps it to its minSessionTimeout..maxSessionTimeout; zero or negative
	// means DefaultSessionTimeout.
	SessionTimeout time.Duration
	// ConnectTimeout bounds one TCP connection attempt to one server; zero or
	// negative means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// OnEvent, when set, receives every event of the client (sessions, watches)
	// from the client's own goroutines, in order; it must not block. It may be
	// called before Connect returns.
	OnEvent func(zk.Event)
	// Log receives the client's messages at debug level (its connection errors
	// repeat every second during an outage; callers report the session changes
	// that matter themselves); nil means none.
	Log *slog.Logger
}

// Conn is a ZooKeeper client: the embedded *zk.Conn, which connects and
// reconnects in the background, plus what the client does not tell — the
// session timeout the server granted and how long the server has been silent.
// Its methods are safe for concurrent use; Close is the client's.
type Conn struct {
	*zk.Conn

	start    time.Time
	lastRecv atomic.Int64 // nanoseconds since start when a server last sent bytes
	granted  atomic.Int64 // session timeout the server granted, in nanoseconds

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every session event
}

// Connect opens a client of the ensemble hosts (HOST:PORT each). It does not wait
// for a session: see WaitSession.
func Connect(hosts []string, o Options) (*Conn, error) {
	if len(hosts) == 0 {
		return nil, errors.New("connect to ZooKeeper: no host given")
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{start: time.Now(), changed: make(chan struct{})}
	c.granted.Store(int64(o.SessionTimeout))
	connect := o.ConnectTimeout
	dial := func(network, addr string, _ time.Duration) (net.Conn, error) {
		nc, err := net.DialTimeout(network, addr, connect)
		if err != nil {
			return nil, err
		}
		return &recvConn{Conn: nc, c: c}, nil
	}
	onEvent := o.OnEvent
	// The client's event channel is not read: the callback sees every event,
	// and the client drops what does not fit in the channel.
	zc, _, err := zk.Connect(hosts, o.SessionTimeout,
		zk.WithDialer(dial),
		zk.WithLogger(logger{log}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession {
				c.broadcast()
			}
			if onEvent != nil {
				onEvent(ev)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper %v: %w", hosts, err)
	}
	c.Conn = zc
	return c, nil
}

// Granted returns the session timeout the server granted at the last
// handshake, or the requested one before the first.
func (c *Conn) Granted() time.Duration { return time.Duration(c.granted.Load()) }

// Silent returns how long ago a server last sent anything (an answer, a ping's
// reply, an event); since Connect before the first byte.
func (c *Conn) Silent() time.Duration {
	return time.Since(c.start) - time.Duration(c.lastRecv.Load())
}

// HasSession reports whether the client holds an established session.
func (c *Conn) HasSession() bool { return c.State() == zk.StateHasSession }

// WaitSession waits until the client holds an established session, or ctx
// ends.
func (c *Conn) WaitSession(ctx context.Context) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.HasSession() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for a ZooKeeper session (%s): %w", c.State(), context.Cause(ctx))
		}
	}
}

func (c *Conn) broadcast() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.changed)
	c.changed = make(chan struct{})
}

// Dial connects to hosts and waits for a session, at most timeout (or until ctx
// ends), closing the client when none came. It suits short-lived reads such as
// broker discovery.
func Dial(ctx context.Context, hosts []string, timeout time.Duration, o Options) (*Conn, error) {
	c, err := Connect(hosts, o)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.WaitSession(wctx); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to ZooKeeper %v: %w", hosts, context.Cause(ctx))
		}
		return nil, fmt.Errorf("connect to ZooKeeper %v: no session within %s", hosts, timeout)
	}
	return c, nil
}

// recvConn is a connection to a server that notes when bytes arrive and reads
// the granted timeout from the connect response. Reads happen on one goroutine
// at a time (the handshake, then the receive loop).
type recvConn struct {
	net.Conn
	c    *Conn
	head []byte
}

func (r *recvConn) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n > 0 {
		r.c.lastRecv.Store(int64(time.Since(r.c.start)))
		if len(r.head) < connectResponseHead {
			r.head = append(r.head, b[:min(n, connectResponseHead-len(r.head))]...)
			if len(r.head) == connectResponseHead {
				// length, protocol version, then the granted timeout in ms;
				// 0 when the server refused an expired session.
				if ms := int32(binary.BigEndian.Uint32(r.head[8:12])); ms > 0 {
					r.c.granted.Store(int64(time.Duration(ms) * time.Millisecond))
				}
			}
		}
	}
	return n, err
}

// logger sends the client's messages to slog at debug level.
type logger struct{ log *slog.Logger }

func (l logger) Printf(format string, args ...any) {
	l.log.Debug("zookeeper client", "detail", fmt.Sprintf(format, args...))
}

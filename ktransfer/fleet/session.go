// Package fleet spreads a module's partitions over the live ktransfer processes
// through ZooKeeper: registration, even assignment, ownership by ephemeral owner
// nodes, orderly hand-over, take-over after a crash, and fencing so only the
// current owner writes an offset.
//
// A process opens one [Session] (one ZooKeeper connection and session) and joins
// one [Member] per module. The member registers the instance under
// {group}/ids, deals the topic's partitions out round-robin over the sorted
// instance ids, takes the ones dealt to it by creating their ephemeral owner
// nodes, and hands each to the engine as a [Lease]. When the assignment changes
// the lease's context is cancelled (cause [ErrRevoked]); the engine drains,
// commits and calls [Lease.Release], which deletes the owner node so the next
// owner, watching it, takes over. A crashed process's nodes vanish when its
// session expires, and the others take its partitions over.
//
// Fencing: when the session expires, or ZooKeeper has not answered for 2/3 of the
// session timeout (the server may already have expired the session and given the
// partitions to someone else), every lease is cancelled at once with cause
// [ErrFenced]. An offset is only written in a ZooKeeper multi-operation that
// checks the owner node's version and the offset node's version; taking a
// partition bumps both (the "claim"), so a previous owner's late write fails.
// Nothing is written for a partition until the process has registered again
// and owns it anew.
//
// Ghosts: the layout's ids and owner nodes are ephemeral, so a persistent one
// there (planted before the module ever ran, or left by a tool) belongs to no
// live process; a member ignores ghost instances and replaces ghost owners, and
// SecureGroup deletes both. Taking a partition back after a fence, the engine can
// compare the offset node the claim found ([Lease.Found]) with the one its
// previous lease last wrote ([Lease.Written]): equal means nobody pushed the
// partition meanwhile.
//
// Access control (optional): a member joined WithAuth authenticates the session
// with a ZooKeeper digest credential and protects its module's nodes with it
// (digest ALL, world READ), so tenants sharing one ZooKeeper cannot change each
// other's offsets while monitors still read them. One session may hold several
// credentials, one per module; see [Auth].
package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// DefaultRetryInterval is the pause after a failed ZooKeeper operation
// (zk_fail_retry_interval_ms) when Connect is given none.
const DefaultRetryInterval = time.Second

// Session is one ZooKeeper connection and session, shared by the process's
// members. go-zookeeper reconnects by itself and, after the server expired the
// session, opens a new one; Session tracks which session is current and whether
// the process may still trust that it holds its ephemeral nodes (see the package
// comment on fencing).
//
// Its methods are safe for concurrent use.
type Session struct {
	conn  *zkconn.Conn // knows the granted timeout and the server's silence
	retry time.Duration
	log   *slog.Logger

	base       context.Context // parent of every epoch; cancelled with ErrClosed by Close
	cancelBase context.CancelCauseFunc

	mu        sync.Mutex
	queue     []zk.State // session states reported by the client, not yet applied
	everConn  bool
	connected bool   // the last applied state is StateHasSession
	expired   bool   // the last session ended by expiry and no new one exists yet
	ep        *epoch // the current session's trust period, possibly ended
	changedCh chan struct{}
	closed    bool

	// authMu serialises Authenticate; it is never held together with mu.
	authMu sync.Mutex
	auths  map[Auth]bool // credentials added to the connection

	kick      chan struct{}
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// epoch is a period in which the process trusts that its session holds its
// ephemeral nodes. ctx is cancelled with ErrFenced when the trust ends, or with
// ErrClosed when the Session closes. A session reconnected in time keeps its
// epoch; after fencing, the same or a new session starts a new epoch.
type epoch struct {
	id     int64 // ZooKeeper session id
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (e *epoch) live() bool { return e != nil && e.ctx.Err() == nil }

// Connect opens a ZooKeeper session with hosts (HOST:PORT) and the given session
// timeout; retryInterval is the pause members take after a failed ZooKeeper
// operation. Zero or negative durations mean zkconn.DefaultSessionTimeout and
// DefaultRetryInterval; log nil means no logging. Connect does not wait for the
// session: use WaitConnected for that. The ZooKeeper client's own messages are
// logged at debug level (its connection errors repeat every second during an
// outage, which Session reports once at warning level), session changes at info
// and warning level.
//
// The server should grant the requested timeout (it clamps requests to its
// min/maxSessionTimeout); fencing follows the timeout it grants.
func Connect(hosts []string, sessionTimeout, retryInterval time.Duration, log *slog.Logger) (*Session, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("connect to ZooKeeper: zk_hosts is empty")
	}
	if retryInterval <= 0 {
		retryInterval = DefaultRetryInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		retry:     retryInterval,
		log:       log,
		changedCh: make(chan struct{}),
		kick:      make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.base, s.cancelBase = context.WithCancelCause(context.Background())
	conn, err := zkconn.Connect(hosts, zkconn.Options{SessionTimeout: sessionTimeout, OnEvent: s.onEvent, Log: log})
	if err != nil {
		s.cancelBase(ErrClosed)
		return nil, err
	}
	s.conn = conn
	go s.run()
	return s, nil
}

// Conn returns the ZooKeeper client, for reads outside the fleet (such as broker
// discovery). Do not close it; Close does.
func (s *Session) Conn() *zk.Conn { return s.conn.Conn }

// Timeout returns the session timeout the server granted, or the requested one
// before the first session.
func (s *Session) Timeout() time.Duration { return s.conn.Granted() }

// SessionID returns the id of the current ZooKeeper session, 0 before the first.
func (s *Session) SessionID() int64 { return s.conn.SessionID() }

// State describes the session for /status: "connecting" (before the first
// session), "connected", "fenced" (connected, but trust in the session ended and
// a new period has not begun yet), "disconnected", "expired" or "closed".
func (s *Session) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked()
}

func (s *Session) stateLocked() string {
	switch {
	case s.closed:
		return "closed"
	case s.connected && s.ep.live():
		return "connected"
	case s.connected:
		return "fenced"
	case s.expired:
		return "expired"
	case !s.everConn:
		return "connecting"
	default:
		return "disconnected"
	}
}

// Err returns nil while the session is usable, otherwise an error wrapping
// ErrNoSession that names the state. It suits a readiness check.
func (s *Session) Err() error {
	if s.live() != nil {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoSession, s.State())
}

// WaitConnected waits until the session is usable or ctx ends.
func (s *Session) WaitConnected(ctx context.Context) error {
	for {
		changed := s.changed()
		if s.live() != nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for a ZooKeeper session (%s): %w", s.State(), context.Cause(ctx))
		}
	}
}

// Close ends the session: every lease still open is cancelled with cause
// ErrClosed and the client closes, which makes the server delete the session's
// ephemeral nodes. Close members first so they release in order. Close is safe
// to call more than once.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.connected = false
		s.broadcastLocked()
		s.mu.Unlock()
		s.cancelBase(ErrClosed)
		close(s.quit)
		<-s.done
		s.conn.Close()
	})
}

// live returns the current epoch while the session is connected and trusted,
// nil otherwise.
func (s *Session) live() *epoch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.connected || !s.ep.live() || s.conn.State() != zk.StateHasSession {
		return nil
	}
	return s.ep
}

// changed returns a channel that is closed at the next change of the session's
// state or epoch.
func (s *Session) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedCh
}

func (s *Session) broadcastLocked() {
	close(s.changedCh)
	s.changedCh = make(chan struct{})
}

// onEvent is the client's event callback. It must not block: it queues session
// states for run.
func (s *Session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	s.queue = append(s.queue, ev.State)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run applies session states in order and fences the epoch when the server has
// been silent for too long.
func (s *Session) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		states := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, st := range states {
			s.apply(st)
		}
		wait, ok := s.checkSilence()
		timer.Stop()
		if ok {
			timer.Reset(wait)
		}
		select {
		case <-s.quit:
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}

func (s *Session) apply(st zk.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	switch st {
	case zk.StateHasSession:
		// The client stores the session id before it reports the state.
		id := s.conn.SessionID()
		s.connected, s.expired, s.everConn = true, false, true
		if s.ep.live() && s.ep.id == id {
			s.log.Info("ZooKeeper connection restored within the session", "session", sessionHex(id), "server", s.conn.Server())
		} else {
			if s.ep != nil {
				s.ep.cancel(ErrFenced)
			}
			ctx, cancel := context.WithCancelCause(s.base)
			s.ep = &epoch{id: id, ctx: ctx, cancel: cancel}
			s.log.Info("ZooKeeper session established", "session", sessionHex(id), "timeout", s.Timeout(), "server", s.conn.Server())
		}
		s.broadcastLocked()
	case zk.StateExpired:
		s.connected, s.expired = false, true
		s.fenceLocked("the ZooKeeper session expired")
		s.broadcastLocked()
	default:
		if s.connected {
			s.connected = false
			s.log.Warn("ZooKeeper connection lost; reconnecting", "session", sessionHex(s.ep.id), "fencing_after", s.fenceAfter())
			s.broadcastLocked()
		}
	}
}

// checkSilence fences the epoch when the server has sent nothing for 2/3 of the
// session timeout, and otherwise returns how long until that would be the case.
// The server counts the session timeout from the last request it received; our
// pings are answered every 1/3 of the timeout, so silence for 2/3 of it means the
// session may expire before we hear back.
func (s *Session) checkSilence() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.ep.live() {
		return 0, false
	}
	silent := s.conn.Silent()
	limit := s.fenceAfter()
	if silent < limit {
		return limit - silent, true
	}
	s.fenceLocked(fmt.Sprintf("ZooKeeper has not answered for %v (2/3 of the session timeout); the session may have expired", silent.Round(time.Millisecond)))
	s.broadcastLocked()
	return 0, false
}

func (s *Session) fenceAfter() time.Duration { return s.Timeout() * 2 / 3 }

func (s *Session) fenceLocked(reason string) {
	if !s.ep.live() {
		return
	}
	s.ep.cancel(ErrFenced)
	s.log.Warn("fenced: every partition lease is revoked until the session is usable again", "reason", reason, "session", sessionHex(s.ep.id))
}

func sessionHex(id int64) string { return fmt.Sprintf("0x%x", id) }

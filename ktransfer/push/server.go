package push

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// idleTimeout closes a connection that has been idle this long instead of using
// it: shorter than common server keep-alive timeouts (nginx 75 s), so the server
// rarely closes a connection just as a request goes out on it.
const idleTimeout = 50 * time.Second

// maxIdlePerServer bounds the idle connections kept per server; enough for every
// worker of a large module.
const maxIdlePerServer = 1024

// server is one backend: where to connect, what to put in the request line and
// Host header, its idle connections and its health.
type server struct {
	name    string      // as configured, for logs and results
	addr    string      // host:port to dial
	host    string      // Host header value
	base    string      // path prefix of every request, without a trailing slash
	tlsConf *tls.Config // nil for http://

	mu      sync.Mutex
	idle    []*conn // most recently used last
	closed  bool
	flights *flight // requests in progress, while the servers are watched

	fails atomic.Int32 // consecutive failures
	until atomic.Int64 // end of the bench, UnixNano; 0 = in rotation
	probe atomic.Bool  // the one request let through after the cooldown is out

	lastAnswer atomic.Int64 // when it last answered, since the Pusher's epoch (0: never, or at the epoch, before any request)
	owes       atomic.Bool  // its last attempt ended without an answer
	stalled    atomic.Bool  // silent while another server answers: no new requests
}

// parseServer accepts "host:port" (plain HTTP) or an http:// or https:// base URL.
func parseServer(s string, tlsBase *tls.Config) (*server, error) {
	if !strings.Contains(s, "://") {
		if err := checkHostPort(s); err != nil {
			return nil, err
		}
		return &server{name: s, addr: s, host: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("must be SCHEME://HOST[:PORT][/PATH] without user, query or fragment")
	}
	sv := &server{name: s, host: u.Host, base: strings.TrimRight(u.EscapedPath(), "/")}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	sv.addr = net.JoinHostPort(u.Hostname(), port)
	if err := checkHostPort(sv.addr); err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		c := &tls.Config{}
		if tlsBase != nil {
			c = tlsBase.Clone()
		}
		if c.ServerName == "" {
			c.ServerName = u.Hostname()
		}
		// Only HTTP/1.1 is spoken.
		c.NextProtos = []string{"http/1.1"}
		if c.ClientSessionCache == nil {
			c.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
		sv.tlsConf = c
	}
	return sv, nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("host is empty")
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("host %q contains spaces or control characters", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not in 1..65535", port)
	}
	return nil
}

// get returns an idle connection or nil. Connections idle for too long are closed
// on the way.
func (s *server) get(now time.Time) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The oldest connection sits first; drop it when stale so a pool grown in a
	// burst shrinks again.
	if len(s.idle) > 1 && now.Sub(s.idle[0].idleSince) > idleTimeout {
		s.idle[0].close()
		copy(s.idle, s.idle[1:])
		s.idle[len(s.idle)-1] = nil
		s.idle = s.idle[:len(s.idle)-1]
	}
	for n := len(s.idle); n > 0; n = len(s.idle) {
		c := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		if now.Sub(c.idleSince) <= idleTimeout {
			return c
		}
		c.close()
	}
	return nil
}

// put keeps c for the next request, or closes it when the pool is full or closed.
func (s *server) put(c *conn, now time.Time) {
	c.idleSince = now
	c.reused = true
	s.mu.Lock()
	if s.closed || len(s.idle) >= maxIdlePerServer {
		s.mu.Unlock()
		c.close()
		return
	}
	s.idle = append(s.idle, c)
	s.mu.Unlock()
}

// closeIdle closes the idle connections; with final, later puts close theirs too.
func (s *server) closeIdle(final bool) {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	if final {
		s.closed = true
	}
	s.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// available reports whether s may take a request at now (UnixNano), and whether
// that request is the probe after a cooldown (its outcome must be reported).
func (s *server) available(now int64) (ok, probe bool) {
	u := s.until.Load()
	if u == 0 {
		return true, false
	}
	if now < u || !s.probe.CompareAndSwap(false, true) {
		return false, false
	}
	return true, true
}

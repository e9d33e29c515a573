package push

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seen is one request a test backend received.
type seen struct {
	Method, Host, URI string
	Header            http.Header
	Body              []byte
}

// backend is an httptest server on 127.0.0.1 that records every request and
// answers with its handler (200 when nil).
type backend struct {
	*httptest.Server
	name     string // host:port
	mu       sync.Mutex
	reqs     []seen
	conns    atomic.Int64 // connections accepted
	handle   atomic.Pointer[http.HandlerFunc]
	requests atomic.Int64
}

func newBackend(t *testing.T, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{}
	b.set(h)
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, seen{r.Method, r.Host, r.RequestURI, r.Header.Clone(), body})
		b.mu.Unlock()
		b.requests.Add(1)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if h := *b.handle.Load(); h != nil {
			h(w, r)
		}
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	b.name = b.Listener.Addr().String()
	return b
}

// set replaces the handler; nil answers 200.
func (b *backend) set(h http.HandlerFunc) { b.handle.Store(&h) }

func (b *backend) seen() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// newPusher builds a Pusher closed at the end of the test.
func newPusher(t *testing.T, cfg Config, ev Events) *Pusher {
	t.Helper()
	if cfg.URI == "" {
		cfg.URI = "/push"
	}
	p, err := New(cfg, nil, ev)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// recorder collects Events calls.
type recorder struct {
	mu       sync.Mutex
	servers  []string
	statuses []int
	errs     []error
	waits    []time.Duration
	attempts []int
}

func (r *recorder) events() Events {
	return Events{
		Attempt: func(server string, status int, err error, _ time.Duration) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.servers = append(r.servers, server)
			r.statuses = append(r.statuses, status)
			r.errs = append(r.errs, err)
		},
		Retry: func(attempt int, wait time.Duration) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.attempts = append(r.attempts, attempt)
			r.waits = append(r.waits, wait)
		},
	}
}

func (r *recorder) snapshot() (servers []string, waits []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.servers...), append([]time.Duration(nil), r.waits...)
}

// rawServer accepts connections on 127.0.0.1 and hands each to serve; the
// listener and every connection are closed at the end of the test.
type rawServer struct {
	ln    net.Listener
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
	count atomic.Int64
}

func newRawServer(t *testing.T, serve func(c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &rawServer{ln: ln, addr: ln.Addr().String()}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.count.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// readRequest reads one request head and its Content-Length body from br.
func readRequest(br interface {
	ReadString(byte) (string, error)
	io.Reader
}) (string, error) {
	var headLines []string
	n := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		headLines = append(headLines, line)
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
			for _, c := range strings.TrimSpace(v) {
				n = n*10 + int(c-'0')
			}
		}
	}
	if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
		return "", err
	}
	return strings.Join(headLines, "\n"), nil
}

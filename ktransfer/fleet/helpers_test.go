package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// eventually polls cond until it returns nil, and fails the test with cond's last
// error when that takes longer than timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLog returns a logger writing to t.Log until the test's cleanups have run.
// Call it before anything that logs registers its cleanup.
func testLog(t *testing.T, name string) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", name)
}

type testWriter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}

// connect opens a Session to addr and waits for it; it is closed when the test ends.
func connect(t *testing.T, addr string, timeout time.Duration, log *slog.Logger) *Session {
	t.Helper()
	s, err := Connect([]string{addr}, timeout, 100*time.Millisecond, log)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// registry is what a fleet of test engines shares: who pushes which partition
// right now, and the offsets committed, to catch a partition pushed twice at once
// and an offset lost at hand-over.
type registry struct {
	mu         sync.Mutex
	holder     map[int32]string
	ok         map[int32]int64 // highest offset whose Commit succeeded
	tried      map[int32]int64 // highest offset a Commit was attempted with
	violations []string
}

func newRegistry() *registry {
	return &registry{holder: map[int32]string{}, ok: map[int32]int64{}, tried: map[int32]int64{}}
}

func (r *registry) start(name string, p int32, loaded int64, found bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, busy := r.holder[p]; busy {
		r.violations = append(r.violations, fmt.Sprintf("partition %d given to %s while %s still pushes it", p, name, h))
	}
	r.holder[p] = name
	if lo, known := r.ok[p]; known {
		hi := r.tried[p]
		if !found || loaded < lo || loaded > hi {
			r.violations = append(r.violations, fmt.Sprintf("partition %d: %s loaded offset %d (found %v), want between %d and %d", p, name, loaded, found, lo, hi))
		}
	}
}

func (r *registry) stop(name string, p int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holder[p] == name {
		delete(r.holder, p)
	}
}

func (r *registry) commit(p int32, off int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tried[p] = max(r.tried[p], off)
	if err == nil {
		r.ok[p] = max(r.ok[p], off)
	}
}

func (r *registry) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.violations {
		t.Error(v)
	}
}

// engine stands in for the transfer engine: for each lease it loads the offset,
// commits it, advances it every few milliseconds while the lease lasts, then
// (unless fenced) makes a final commit and releases.
type engine struct {
	name    string
	m       *Member
	reg     *registry
	hold    chan struct{} // when not nil, leases are released only once it is closed
	advance bool

	mu     sync.Mutex
	live   map[int32]*Lease
	all    []*Lease
	causes map[*Lease]error
	wg     sync.WaitGroup
	loop   chan struct{}
}

// join starts a member and a test engine for it; both stop when the test ends.
// configure, when not nil, adjusts the engine before it starts.
func join(t *testing.T, sess *Session, layout zkconsumers.Layout, group, topic, id string, reg *registry, log *slog.Logger, configure func(*engine), opts ...Option) (*Member, *engine) {
	t.Helper()
	m, err := Join(context.Background(), sess, layout, group, topic, id, log, opts...)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	e := newEngine(id, m, reg)
	if configure != nil {
		configure(e)
	}
	go e.run()
	t.Cleanup(func() {
		if e.hold != nil {
			select {
			case <-e.hold:
			default:
				close(e.hold)
			}
		}
		m.Close()
		e.wait()
	})
	return m, e
}

func newEngine(name string, m *Member, reg *registry) *engine {
	return &engine{name: name, m: m, reg: reg, advance: true, live: map[int32]*Lease{}, causes: map[*Lease]error{}, loop: make(chan struct{})}
}

func (e *engine) run() {
	defer close(e.loop)
	for l := range e.m.Leases() {
		e.mu.Lock()
		e.live[l.Partition()] = l
		e.all = append(e.all, l)
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.push(l)
		}()
	}
}

func (e *engine) push(l *Lease) {
	p := l.Partition()
	off, found, err := l.LoadOffset()
	if err == nil {
		if !found {
			off = 1000 * int64(p)
		}
		if e.reg != nil {
			e.reg.start(e.name, p, off, found)
		}
		err = l.Commit(off)
		if e.reg != nil {
			e.reg.commit(p, off, err)
		}
	}
	ctx := l.Context()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for err == nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			if e.advance {
				off++
				cerr := l.Commit(off)
				if e.reg != nil {
					e.reg.commit(p, off, cerr)
				}
			}
		}
	}
	<-ctx.Done()
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrFenced) && err == nil {
		off++
		cerr := l.Commit(off)
		if e.reg != nil {
			e.reg.commit(p, off, cerr)
		}
	}
	if e.reg != nil {
		e.reg.stop(e.name, p)
	}
	e.mu.Lock()
	if e.live[p] == l {
		delete(e.live, p)
	}
	e.causes[l] = cause
	e.mu.Unlock()
	if e.hold != nil {
		<-e.hold
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.Release(rctx)
}

// wait returns once the member stopped and every lease goroutine ended.
func (e *engine) wait() {
	<-e.loop
	e.wg.Wait()
}

// owned returns the partitions the engine pushes now.
func (e *engine) owned() []int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return sortedKeys(e.live)
}

func (e *engine) lease(p int32) *Lease {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[p]
}

func (e *engine) leases() []*Lease {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func (e *engine) cause(l *Lease) (error, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.causes[l]
	return c, ok
}

// wantOwned is an eventually condition: each engine pushes exactly its partitions.
func wantOwned(want map[*engine][]int32) func() error {
	return func() error {
		var bad []string
		for e, ps := range want {
			if got := e.owned(); !slices.Equal(got, ps) {
				bad = append(bad, fmt.Sprintf("%s owns %v, want %v", e.name, got, ps))
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	}
}

// owners reads the owner nodes of partitions 0..n-1: partition -> data, "" when missing.
func owners(conn *zk.Conn, layout zkconsumers.Layout, group, topic string, n int32) (map[int32]string, error) {
	got := map[int32]string{}
	for p := range n {
		data, _, err := conn.Get(layout.Owner(group, topic, p))
		switch {
		case errors.Is(err, zk.ErrNoNode):
			got[p] = ""
		case err != nil:
			return nil, err
		default:
			got[p] = string(data)
		}
	}
	return got, nil
}

// proxy forwards loopback TCP connections to target until cut, which drops every
// connection at once and refuses new ones until heal: to ZooKeeper it looks like
// the client's host vanished.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			for _, pair := range [][2]net.Conn{{up, c}, {c, up}} {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					_, _ = io.Copy(pair[0], pair[1])
					pair[0].Close()
					pair[1].Close()
				}()
			}
		}
	}()
}

// track registers a connection pair unless the proxy was cut meanwhile.
func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// cut closes the listener and every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// heal listens on the same address again.
func (p *proxy) heal() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// testLog returns a logger writing to t.Log until the test's cleanups have run.
// Call it before anything that logs registers its cleanup.
func testLog(t *testing.T, name string) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testwait.LogTo(t), &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", name)
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

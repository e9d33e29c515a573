package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// partKey names one module partition.
type partKey struct {
	group     string
	topic     string
	partition int32
}

// zkPart is what ZooKeeper says about one module partition.
type zkPart struct {
	committed  int64 // valid when hasCommit
	hasCommit  bool
	commitTime time.Time // mtime of the offset node
	owner      string    // data of the owner node; "" = no owner
}

// groupTopic names a topic directory of a group (under offsets/ or owners/).
type groupTopic struct{ group, topic string }

// zkState is the consumer tree of one chroot as the watches last reported it. It
// is safe for concurrent use.
type zkState struct {
	mu     sync.Mutex
	parts  map[partKey]*zkPart
	topics map[groupTopic]int // reference count: offsets/ and owners/ dirs
	// added receives a signal (without blocking) when a partition or topic
	// directory appears, so the poll loop reads its log offsets at once rather
	// than a poll interval later.
	added chan struct{}
}

func newZKState() *zkState {
	return &zkState{parts: map[partKey]*zkPart{}, topics: map[groupTopic]int{}, added: make(chan struct{}, 1)}
}

func (s *zkState) signalAdded() {
	select {
	case s.added <- struct{}{}:
	default:
	}
}

// update applies fn to the entry of k (created when missing) and drops the entry
// when it no longer holds anything.
func (s *zkState) update(k partKey, fn func(p *zkPart)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, existed := s.parts[k]
	if !existed {
		p = &zkPart{}
	}
	fn(p)
	switch {
	case !p.hasCommit && p.owner == "":
		delete(s.parts, k)
	case !existed:
		s.parts[k] = p
		s.signalAdded()
	}
}

func (s *zkState) addTopic(gt groupTopic, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.topics[gt] + delta; n > 0 {
		if s.topics[gt] == 0 {
			s.signalAdded()
		}
		s.topics[gt] = n
	} else {
		delete(s.topics, gt)
	}
}

// snapshot copies the state.
func (s *zkState) snapshot() (map[partKey]zkPart, []groupTopic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make(map[partKey]zkPart, len(s.parts))
	for k, p := range s.parts {
		parts[k] = *p
	}
	topics := make([]groupTopic, 0, len(s.topics))
	for gt := range s.topics {
		topics = append(topics, gt)
	}
	return parts, topics
}

// zkWatcher keeps a zkState in step with {chroot}/consumers through ZooKeeper
// watches: one goroutine per watched node, started when the node appears in its
// parent's children and stopped when it disappears. Errors (ZooKeeper down,
// session expired) never end it: each goroutine retries after retry, and the
// values read before stay in the state until a successful read replaces them.
type zkWatcher struct {
	conn   *zk.Conn
	layout zkconsumers.Layout
	state  *zkState
	log    *slog.Logger
	retry  time.Duration
}

// dialZK opens a ZooKeeper client; it connects, and reconnects, in the background.
func dialZK(hosts []string, session, connect time.Duration, log *slog.Logger) (*zk.Conn, error) {
	dialer := func(network, address string, _ time.Duration) (net.Conn, error) {
		return net.DialTimeout(network, address, connect)
	}
	conn, _, err := zk.Connect(hosts, session,
		zk.WithDialer(dialer),
		zk.WithLogger(zkLogger{log}),
		zk.WithLogInfo(false))
	return conn, err
}

type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug("zookeeper client", "msg", fmt.Sprintf(format, args...))
}

// run watches until ctx ends.
func (w *zkWatcher) run(ctx context.Context) {
	w.children(ctx, w.layout.Consumers(), func(ctx context.Context, group string) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			w.topicDirs(ctx, group, w.layout.OffsetsRoot(group), w.watchOffset)
		}()
		go func() {
			defer wg.Done()
			w.topicDirs(ctx, group, path.Join(w.layout.Group(group), "owners"), w.watchOwner)
		}()
		wg.Wait()
	})
}

// topicDirs watches dir/{topic}/{partition} and runs leaf for every partition.
func (w *zkWatcher) topicDirs(ctx context.Context, group, dir string, leaf func(ctx context.Context, k partKey, node string)) {
	w.children(ctx, dir, func(ctx context.Context, topic string) {
		gt := groupTopic{group, topic}
		w.state.addTopic(gt, 1)
		defer w.state.addTopic(gt, -1)
		w.children(ctx, path.Join(dir, topic), func(ctx context.Context, name string) {
			p, err := zkconsumers.ParsePartition(name)
			if err != nil {
				w.log.Debug("ignoring node that is not a partition", "path", path.Join(dir, topic, name))
				<-ctx.Done()
				return
			}
			leaf(ctx, partKey{group, topic, p}, path.Join(dir, topic, name))
		})
	})
}

// children keeps one goroutine running spawn(ctx, child) per child of dir until
// ctx ends; a child's context is cancelled when it leaves the list. A missing dir
// is waited for. children returns after every spawned goroutine returned.
func (w *zkWatcher) children(ctx context.Context, dir string, spawn func(ctx context.Context, child string)) {
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	kids := map[string]running{}
	defer func() {
		for _, r := range kids {
			r.cancel()
		}
		for _, r := range kids {
			<-r.done
		}
	}()
	for ctx.Err() == nil {
		names, _, ev, err := w.conn.ChildrenW(dir)
		if errors.Is(err, zk.ErrNoNode) {
			names = nil
			var ok bool
			ok, _, ev, err = w.conn.ExistsW(dir)
			if err == nil && ok {
				continue // created meanwhile
			}
		}
		if err != nil {
			w.log.Debug("zookeeper read failed; retrying", "path", dir, "err", err)
			if !sleep(ctx, w.retry) {
				return
			}
			continue
		}
		want := make(map[string]bool, len(names))
		for _, n := range names {
			want[n] = true
			if _, ok := kids[n]; ok {
				continue
			}
			cctx, cancel := context.WithCancel(ctx)
			r := running{cancel: cancel, done: make(chan struct{})}
			kids[n] = r
			go func(n string) {
				defer close(r.done)
				spawn(cctx, n)
			}(n)
		}
		for n, r := range kids {
			if !want[n] {
				r.cancel()
				<-r.done
				delete(kids, n)
			}
		}
		select {
		case <-ev:
		case <-ctx.Done():
		}
	}
}

// data calls set with the node's data and stat on every change, and gone while
// it does not exist and when ctx ends.
func (w *zkWatcher) data(ctx context.Context, node string, set func(data []byte, st *zk.Stat), gone func()) {
	defer gone()
	for ctx.Err() == nil {
		data, st, ev, err := w.conn.GetW(node)
		if errors.Is(err, zk.ErrNoNode) {
			gone()
			var ok bool
			ok, _, ev, err = w.conn.ExistsW(node)
			if err == nil && ok {
				continue
			}
		} else if err == nil {
			set(data, st)
		}
		if err != nil {
			w.log.Debug("zookeeper read failed; retrying", "path", node, "err", err)
			if !sleep(ctx, w.retry) {
				return
			}
			continue
		}
		select {
		case <-ev:
		case <-ctx.Done():
		}
	}
}

func (w *zkWatcher) watchOffset(ctx context.Context, k partKey, node string) {
	w.data(ctx, node, func(data []byte, st *zk.Stat) {
		off, err := zkconsumers.DecodeOffset(data)
		if err != nil {
			w.log.Warn("offset node unreadable; partition counts as not committed", "path", node, "err", err)
		}
		w.state.update(k, func(p *zkPart) {
			p.hasCommit = err == nil
			p.committed = off
			p.commitTime = time.UnixMilli(st.Mtime)
		})
	}, func() {
		w.state.update(k, func(p *zkPart) { p.hasCommit, p.committed, p.commitTime = false, 0, time.Time{} })
	})
}

func (w *zkWatcher) watchOwner(ctx context.Context, k partKey, node string) {
	w.data(ctx, node, func(data []byte, _ *zk.Stat) {
		owner := string(data)
		if owner == "" {
			owner = "?" // an owner node without data still means owned
		}
		w.state.update(k, func(p *zkPart) { p.owner = owner })
	}, func() {
		w.state.update(k, func(p *zkPart) { p.owner = "" })
	})
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package zkwatch

import (
	"context"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// itemKind tells what a queue item asks for.
type itemKind uint8

const (
	itemPath    itemKind = iota // read a path again
	itemResync                  // read every watched path again
	itemSession                 // compare the session with the last one seen
)

type item struct {
	kind itemKind
	path string
}

// queue holds the work of a Watcher: paths to read again, each at most once
// in the queue and read by one worker at a time, and the resync and session
// flags. Adding never blocks beyond a short lock, so the ZooKeeper client can
// call event from its receive loop.
type queue struct {
	mu      sync.Mutex
	cond    sync.Cond
	paths   []string        // in arrival order, from head on
	head    int             // first unread entry of paths
	queued  map[string]bool // in paths
	busy    map[string]bool // being read
	again   map[string]bool // changed while being read
	resync  bool
	session bool
	lost    bool            // watches were dropped; resync at the next session
	retry   map[string]bool // waiting for the retry timer
	timer   bool            // the retry timer runs
}

func newQueue() *queue {
	q := &queue{queued: map[string]bool{}, busy: map[string]bool{}, again: map[string]bool{}, retry: map[string]bool{}}
	q.cond.L = &q.mu
	return q
}

// event is the event callback of the ZooKeeper client.
func (q *queue) event(ev zk.Event) {
	switch ev.Type {
	case zk.EventNodeCreated, zk.EventNodeDeleted, zk.EventNodeDataChanged, zk.EventNodeChildrenChanged:
		q.push(ev.Path)
	case zk.EventNotWatching:
		// The session expired (or the client closed): the watches are gone.
		// The tree is read again once a new session is established.
		q.mu.Lock()
		q.lost = true
		q.mu.Unlock()
	case zk.EventSession:
		if ev.State == zk.StateHasSession {
			q.flag(&q.session)
		}
	}
}

// flag sets one of the flags of q.
func (q *queue) flag(f *bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !*f {
		*f = true
		q.cond.Signal()
	}
}

func (q *queue) push(p string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pushLocked(p)
}

func (q *queue) pushAll(ps []string) {
	if len(ps) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range ps {
		q.pushLocked(p)
	}
}

func (q *queue) pushLocked(p string) {
	switch {
	case q.busy[p]:
		q.again[p] = true
	case !q.queued[p]:
		q.queued[p] = true
		q.paths = append(q.paths, p)
		q.cond.Signal()
	}
}

// next waits for an item; it reports false when ctx ended.
func (q *queue) next(ctx context.Context) (item, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case ctx.Err() != nil:
			return item{}, false
		case q.resync:
			q.resync = false
			return item{kind: itemResync}, true
		case q.session:
			q.session = false
			return item{kind: itemSession}, true
		case q.head < len(q.paths):
			p := q.paths[q.head]
			q.paths[q.head] = ""
			q.head++
			if q.head == len(q.paths) {
				q.paths, q.head = q.paths[:0], 0
				if cap(q.paths) > 4096 {
					// The burst of a start (a path per node) is read: its
					// memory goes (Go maps never shrink). Every queued path
					// was in paths, so queued holds only p now.
					q.paths, q.queued = nil, map[string]bool{}
				}
			} else if q.head >= 1024 && q.head*2 >= len(q.paths) {
				q.paths = append(q.paths[:0], q.paths[q.head:]...)
				q.head = 0
			}
			delete(q.queued, p)
			q.busy[p] = true
			return item{kind: itemPath, path: p}, true
		}
		q.cond.Wait()
	}
}

// done ends the read of p that next handed out.
func (q *queue) done(p string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.busy, p)
	if q.again[p] {
		delete(q.again, p)
		q.pushLocked(p)
	}
}

// later queues p again after d.
func (q *queue) later(p string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.retry[p] = true
	if !q.timer {
		q.timer = true
		time.AfterFunc(d, q.retryNow)
	}
}

func (q *queue) retryNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timer = false
	for p := range q.retry {
		q.pushLocked(p)
	}
	clear(q.retry)
}

// wakeAll wakes the waiting workers, so they see their context ended.
func (q *queue) wakeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cond.Broadcast()
}

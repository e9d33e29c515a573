package monitor

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
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
	topics map[groupTopic]int // reference count: offsets/ and owners/ dirs, registrations subscribing
	// added receives a signal (without blocking) when a partition or topic
	// directory appears, so the poll loop reads its log offsets at once rather
	// than a poll interval later.
	added chan struct{}
	// version counts changes, so answers rendered from the state can be reused
	// until it changes.
	version atomic.Uint64

	// snap is the last snapshot: it is shared until the state changes, since
	// its readers never modify it.
	snap *zkSnapshot
}

// zkSnapshot is a copy of a zkState at one version. It is shared: nobody
// modifies it.
type zkSnapshot struct {
	parts   map[partKey]zkPart
	topics  []groupTopic
	version uint64
}

// Version returns a number that changes whenever the state does.
func (s *zkState) Version() uint64 { return s.version.Load() }

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
	s.version.Add(1)
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
	s.version.Add(1)
	if n := s.topics[gt] + delta; n > 0 {
		if s.topics[gt] == 0 {
			s.signalAdded()
		}
		s.topics[gt] = n
	} else {
		delete(s.topics, gt)
	}
}

// snapshot returns a copy of the state, shared by every caller until the state
// changes: callers must not modify it. (20,000 groups copied at every poll and
// answer cost megabytes each time while nothing changed.)
func (s *zkState) snapshot() *zkSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	// version only changes with s.mu held, so it is stable here.
	if s.snap != nil && s.snap.version == s.version.Load() {
		return s.snap
	}
	parts := make(map[partKey]zkPart, len(s.parts))
	for k, p := range s.parts {
		parts[k] = *p
	}
	topics := make([]groupTopic, 0, len(s.topics))
	for gt := range s.topics {
		topics = append(topics, gt)
	}
	s.snap = &zkSnapshot{parts: parts, topics: topics, version: s.version.Load()}
	return s.snap
}

// zkWorkers is the number of goroutines a zkWatcher reads ZooKeeper with.
const zkWorkers = 32

// zkWatcher keeps a zkState in step with {chroot}/consumers through ZooKeeper
// watches. The ZooKeeper client hands every watch event to the queue dialZK
// attached to the connection; a fixed pool of workers takes the changed paths
// from it, reads them again (which re-arms the watch) and applies the
// difference. Errors (ZooKeeper down, session expired) never end it: a failed
// read is retried after retry, a lost session reads the whole tree again, and
// the values read before stay in the state until a successful read replaces
// them.
type zkWatcher struct {
	conn   *zkconn.Conn
	layout zkconsumers.Layout
	state  *zkState
	log    *slog.Logger
	retry  time.Duration

	q *zkQueue // the queue conn's events go to (from dialZK)

	filter *groupFilter    // which groups to watch
	report func(admission) // told the outcome of every read of {chroot}/consumers

	mu      sync.Mutex         // guards the fields below
	nodes   map[string]*zkNode // watched paths
	session int64              // the last ZooKeeper session seen; 0 = none yet
}

// zkNodeKind tells what a watched path is.
type zkNodeKind uint8

const (
	nodeConsumers    zkNodeKind = iota // {chroot}/consumers: children are groups
	nodeTopics                         // offsets/ or owners/ of a group: children are topics
	nodePartitions                     // a topic directory: children are partitions
	nodeOffset                         // an offset node
	nodeOwner                          // an owner node
	nodeIDs                            // ids/ of a group: children are registrations
	nodeRegistration                   // an instance's registration: its subscription names topics
)

// zkNode is one watched path. A node read while it is already replaced in
// zkWatcher.nodes (it vanished, maybe to reappear) is not applied.
type zkNode struct {
	kind     zkNodeKind
	key      partKey         // the group; the topic below nodeTopics; the partition of leaves
	owners   bool            // nodeTopics and nodePartitions: below owners/
	children map[string]bool // directories: the children listed last
	set      bool            // leaves: a value is in the state
	topics   []string        // registrations: the topics put in the state
}

func (n *zkNode) leaf() bool {
	return n.kind == nodeOffset || n.kind == nodeOwner || n.kind == nodeRegistration
}

// dialZK opens a ZooKeeper client; it connects, and reconnects, in the background.
// Its events go to the returned queue, which the connection's zkWatcher processes.
func dialZK(hosts []string, session, connect time.Duration, log *slog.Logger) (*zkconn.Conn, *zkQueue, error) {
	q := newZKQueue()
	conn, err := zkconn.Connect(hosts, zkconn.Options{SessionTimeout: session, ConnectTimeout: connect, OnEvent: q.event, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return conn, q, nil
}

// run watches until ctx ends.
func (w *zkWatcher) run(ctx context.Context) {
	w.mu.Lock()
	root := w.layout.Consumers()
	if w.nodes == nil {
		w.nodes = map[string]*zkNode{root: {kind: nodeConsumers, children: map[string]bool{}}}
		w.q.push(root)
	} else {
		w.q.flag(&w.q.resync)
	}
	w.session = w.conn.SessionID()
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, w.q.wakeAll)
	defer stop()
	var wg sync.WaitGroup
	for range zkWorkers {
		wg.Go(func() { w.work(ctx) })
	}
	wg.Wait()
}

// work processes the queue until ctx ends.
func (w *zkWatcher) work(ctx context.Context) {
	for {
		it, ok := w.q.next(ctx)
		if !ok {
			return
		}
		switch it.kind {
		case itemResync:
			w.resync()
		case itemSession:
			w.checkSession()
		case itemPath:
			w.read(it.path)
			w.q.done(it.path)
		}
	}
}

// resync reads every watched path again, which re-arms the watches a lost
// session or connection dropped.
func (w *zkWatcher) resync() {
	w.mu.Lock()
	paths := make([]string, 0, len(w.nodes))
	for p := range w.nodes {
		paths = append(paths, p)
	}
	w.mu.Unlock()
	w.log.Debug("ZooKeeper watches lost; reading all watched nodes again", "nodes", len(paths))
	w.q.pushAll(paths)
}

// checkSession resyncs when the client got a new session or dropped its
// watches: the watches of the old session are gone.
func (w *zkWatcher) checkSession() {
	id := w.conn.SessionID()
	if id == 0 {
		return // disconnected again; the next session is checked
	}
	w.q.mu.Lock()
	lost := w.q.lost
	w.q.lost = false
	w.q.mu.Unlock()
	w.mu.Lock()
	changed := w.session != 0 && w.session != id
	w.session = id
	w.mu.Unlock()
	if lost || changed {
		w.resync()
	}
}

// read reads path p again, re-arming its watch, and applies what changed.
func (w *zkWatcher) read(p string) {
	w.mu.Lock()
	n := w.nodes[p]
	w.mu.Unlock()
	if n == nil {
		return // no longer watched
	}
	if n.leaf() {
		w.readLeaf(p, n)
	} else {
		w.readDir(p, n)
	}
}

// current reports, with w.mu held, whether n is still the node watched at p.
func (w *zkWatcher) current(p string, n *zkNode) bool { return w.nodes[p] == n }

func (w *zkWatcher) readDir(p string, n *zkNode) {
	names, _, _, err := w.conn.ChildrenW(p)
	exists := true
	if errors.Is(err, zk.ErrNoNode) {
		names, exists, err = nil, false, nil
	}
	if err != nil {
		w.failed(p, err)
		return
	}
	w.mu.Lock()
	if !w.current(p, n) {
		w.mu.Unlock()
		return
	}
	if n.kind == nodeConsumers {
		a := w.filter.admit(names, n.children)
		names = a.keep
		w.report(a)
	}
	want := make(map[string]bool, len(names))
	for _, name := range names {
		want[name] = true
	}
	for name := range n.children {
		if !want[name] {
			delete(n.children, name)
			for _, c := range w.children(p, n, name) {
				w.remove(c.path)
			}
		}
	}
	var added []string
	for _, name := range names {
		if n.children[name] {
			continue
		}
		if n.children == nil {
			n.children = make(map[string]bool, len(names))
		}
		n.children[name] = true
		kids := w.children(p, n, name)
		if len(kids) == 0 {
			w.log.Debug("ignoring node that is not a partition", "path", path.Join(p, name))
		}
		for _, c := range kids {
			w.nodes[c.path] = c.node
			if c.node.kind == nodePartitions {
				w.state.addTopic(groupTopic{c.node.key.group, c.node.key.topic}, 1)
			}
			added = append(added, c.path)
		}
	}
	w.mu.Unlock()
	w.q.pushAll(added)
	if !exists {
		w.waitFor(p, n)
	}
}

func (w *zkWatcher) readLeaf(p string, n *zkNode) {
	data, st, _, err := w.conn.GetW(p)
	if errors.Is(err, zk.ErrNoNode) {
		w.mu.Lock()
		if w.current(p, n) {
			w.clear(n)
		}
		w.mu.Unlock()
		w.waitFor(p, n)
		return
	}
	if err != nil {
		w.failed(p, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.current(p, n) {
		return
	}
	n.set = true
	switch n.kind {
	case nodeRegistration:
		topics, perr := parseSubscription(data)
		if perr != nil {
			w.log.Debug("registration unreadable; its topics are not listed", "path", p, "err", perr)
		}
		for _, t := range n.topics {
			if !slices.Contains(topics, t) {
				w.state.addTopic(groupTopic{n.key.group, t}, -1)
			}
		}
		for _, t := range topics {
			if !slices.Contains(n.topics, t) {
				w.state.addTopic(groupTopic{n.key.group, t}, 1)
			}
		}
		n.topics = topics
		return
	case nodeOwner:
		owner := string(data)
		if owner == "" {
			owner = "?" // an owner node without data still means owned
		}
		w.state.update(n.key, func(zp *zkPart) { zp.owner = owner })
		return
	}
	off, derr := zkconsumers.DecodeOffset(data)
	if derr != nil {
		w.log.Warn("offset node unreadable; partition counts as not committed", "path", p, "err", derr)
	}
	w.state.update(n.key, func(zp *zkPart) {
		zp.hasCommit = derr == nil
		zp.committed = off
		zp.commitTime = time.UnixMilli(st.Mtime)
	})
}

// waitFor watches the missing path p for its creation.
func (w *zkWatcher) waitFor(p string, n *zkNode) {
	w.mu.Lock()
	watched := w.current(p, n)
	w.mu.Unlock()
	if !watched {
		return
	}
	ok, _, _, err := w.conn.ExistsW(p)
	switch {
	case err != nil:
		w.failed(p, err)
	case ok:
		w.q.push(p) // created meanwhile
	}
}

// failed schedules another read of p after a failed one.
func (w *zkWatcher) failed(p string, err error) {
	w.log.Debug("zookeeper read failed; retrying", "path", p, "err", err)
	w.q.later(p, w.retry)
}

// zkChild is a path watched for a child of a directory.
type zkChild struct {
	path string
	node *zkNode
}

// children returns the paths watched for child name of directory n at p.
func (w *zkWatcher) children(p string, n *zkNode, name string) []zkChild {
	dir := func(path string, key partKey, owners bool) zkChild {
		// children is made at the first child: most directories of idle
		// groups (owners/, ids/) do not exist.
		return zkChild{path, &zkNode{kind: nodeTopics, key: key, owners: owners}}
	}
	switch n.kind {
	case nodeConsumers:
		ids := dir(w.layout.IDs(name), partKey{group: name}, false)
		ids.node.kind = nodeIDs
		return []zkChild{
			dir(w.layout.OffsetsRoot(name), partKey{group: name}, false),
			dir(path.Join(w.layout.Group(name), "owners"), partKey{group: name}, true),
			ids,
		}
	case nodeIDs:
		return []zkChild{{path.Join(p, name), &zkNode{kind: nodeRegistration, key: n.key}}}
	case nodeTopics:
		c := dir(path.Join(p, name), partKey{group: n.key.group, topic: name}, n.owners)
		c.node.kind = nodePartitions
		return []zkChild{c}
	default:
		part, err := zkconsumers.ParsePartition(name)
		if err != nil {
			return nil
		}
		kind := nodeOffset
		if n.owners {
			kind = nodeOwner
		}
		return []zkChild{{path.Join(p, name), &zkNode{kind: kind, key: partKey{n.key.group, n.key.topic, part}}}}
	}
}

// remove stops watching p and everything below it, dropping what they put in
// the state; w.mu is held.
func (w *zkWatcher) remove(p string) {
	n := w.nodes[p]
	if n == nil {
		return
	}
	delete(w.nodes, p)
	if n.leaf() {
		w.clear(n)
		return
	}
	for name := range n.children {
		for _, c := range w.children(p, n, name) {
			w.remove(c.path)
		}
	}
	if n.kind == nodePartitions {
		w.state.addTopic(groupTopic{n.key.group, n.key.topic}, -1)
	}
}

// clear drops the value of leaf n from the state; w.mu is held.
func (w *zkWatcher) clear(n *zkNode) {
	if !n.set {
		return
	}
	n.set = false
	switch n.kind {
	case nodeRegistration:
		for _, t := range n.topics {
			w.state.addTopic(groupTopic{n.key.group, t}, -1)
		}
		n.topics = nil
	case nodeOwner:
		w.state.update(n.key, func(p *zkPart) { p.owner = "" })
	default:
		w.state.update(n.key, func(p *zkPart) { p.hasCommit, p.committed, p.commitTime = false, 0, time.Time{} })
	}
}

// zkItemKind tells what a queue item asks for.
type zkItemKind uint8

const (
	itemPath    zkItemKind = iota // read a path again
	itemResync                    // read every watched path again
	itemSession                   // compare the session with the last one seen
)

type zkItem struct {
	kind zkItemKind
	path string
}

// zkQueue holds the work of a zkWatcher: paths to read again, each at most once
// in the queue and read by one worker at a time, and the resync and session
// flags. Adding never blocks beyond a short lock, so the ZooKeeper client can
// call event from its receive loop.
type zkQueue struct {
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

func newZKQueue() *zkQueue {
	q := &zkQueue{queued: map[string]bool{}, busy: map[string]bool{}, again: map[string]bool{}, retry: map[string]bool{}}
	q.cond.L = &q.mu
	return q
}

// event is the event callback of the ZooKeeper client.
func (q *zkQueue) event(ev zk.Event) {
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
func (q *zkQueue) flag(f *bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !*f {
		*f = true
		q.cond.Signal()
	}
}

func (q *zkQueue) push(p string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pushLocked(p)
}

func (q *zkQueue) pushAll(ps []string) {
	if len(ps) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range ps {
		q.pushLocked(p)
	}
}

func (q *zkQueue) pushLocked(p string) {
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
func (q *zkQueue) next(ctx context.Context) (zkItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case ctx.Err() != nil:
			return zkItem{}, false
		case q.resync:
			q.resync = false
			return zkItem{kind: itemResync}, true
		case q.session:
			q.session = false
			return zkItem{kind: itemSession}, true
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
			return zkItem{kind: itemPath, path: p}, true
		}
		q.cond.Wait()
	}
}

// done ends the read of p that next handed out.
func (q *zkQueue) done(p string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.busy, p)
	if q.again[p] {
		delete(q.again, p)
		q.pushLocked(p)
	}
}

// later queues p again after d.
func (q *zkQueue) later(p string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.retry[p] = true
	if !q.timer {
		q.timer = true
		time.AfterFunc(d, q.retryNow)
	}
}

func (q *zkQueue) retryNow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timer = false
	for p := range q.retry {
		q.pushLocked(p)
	}
	clear(q.retry)
}

// wakeAll wakes the waiting workers, so they see their context ended.
func (q *zkQueue) wakeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cond.Broadcast()
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

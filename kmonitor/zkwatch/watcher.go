// Package zkwatch follows the committed offsets of a cluster's consumer groups
// in ZooKeeper, in the Kafka 0.8 consumer layout ktransfer writes
// (pkg/zkconsumers): a Watcher is kmonitor's ZooKeeper offset source, a
// committed.Source.
//
// It watches {chroot}/consumers and, below every group the cluster's
// committed.Filter admits, the offsets/ and owners/ directories, their topics
// and partitions, and the instances' registrations under ids/ (whose static
// subscriptions name the topics a group consumes before it commits). A write
// shows in the Watcher's view within a round trip; nodes that appear later are
// picked up, deleted ones drop out.
package zkwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// Config is what a Watcher follows and how.
type Config struct {
	// Hosts is the ZooKeeper ensemble, HOST:PORT each.
	Hosts []string
	// Chroot prefixes {chroot}/consumers and {chroot}/brokers/ids.
	Chroot string
	// SessionTimeout is the session timeout requested; ConnectTimeout bounds
	// one TCP connection attempt (zkconn.Options).
	SessionTimeout, ConnectTimeout time.Duration
	// Retry is the pause before a path whose read failed is read again.
	Retry time.Duration
	// Filter chooses the groups followed; it must not be nil.
	Filter *committed.Filter
	// Report, when set, is told what Filter decided at every read of
	// {chroot}/consumers, from the Watcher's goroutines.
	Report func(committed.Admission)
}

// Watcher keeps a committed.State in step with {chroot}/consumers through
// ZooKeeper watches. The ZooKeeper client hands every watch event to the
// Watcher's queue; a fixed pool of workers takes the changed paths from it,
// reads them again (which re-arms the watch) and applies the difference. Errors
// (ZooKeeper down, session expired) never end it: a failed read is retried after
// Config.Retry, a lost session reads the whole tree again, and the values read
// before stay in the state until a successful read replaces them.
//
// Its methods are safe for concurrent use.
type Watcher struct {
	conn   *zkconn.Conn
	hosts  []string
	chroot string
	layout zkconsumers.Layout
	state  *committed.State
	log    *slog.Logger
	retry  time.Duration

	q *queue // the queue conn's events go to

	filter *committed.Filter         // which groups to watch
	report func(committed.Admission) // told the outcome of every read of {chroot}/consumers

	mu      sync.Mutex       // guards the fields below
	nodes   map[string]*node // watched paths
	session int64            // the last ZooKeeper session seen; 0 = none yet
}

var _ committed.Source = (*Watcher)(nil)

// New returns a Watcher of cfg. Its client starts connecting, and reconnects,
// in the background; nothing is read before Run.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	if cfg.Filter == nil {
		return nil, errors.New("zkwatch: no group filter")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Report == nil {
		cfg.Report = func(committed.Admission) {}
	}
	q := newQueue()
	conn, err := zkconn.Connect(cfg.Hosts, zkconn.Options{SessionTimeout: cfg.SessionTimeout, ConnectTimeout: cfg.ConnectTimeout,
		OnEvent: q.event, Log: log})
	if err != nil {
		return nil, err
	}
	return &Watcher{conn: conn, hosts: cfg.Hosts, chroot: cfg.Chroot, layout: zkconsumers.New(cfg.Chroot), state: committed.NewState(),
		log: log, retry: cfg.Retry, q: q, filter: cfg.Filter, report: cfg.Report}, nil
}

// Run watches until ctx ends, then closes the client.
func (w *Watcher) Run(ctx context.Context) {
	// Closing the client at once ends the ZooKeeper calls the workers, and a
	// broker discovery, may be blocked in while ZooKeeper is unreachable.
	stop := context.AfterFunc(ctx, w.conn.Close)
	defer stop()
	w.watch(ctx)
}

// Snapshot returns the current view (committed.Source).
func (w *Watcher) Snapshot() *committed.Snapshot { return w.state.Snapshot() }

// Version returns a number that changes with the view (committed.Source).
func (w *Watcher) Version() uint64 { return w.state.Version() }

// Added signals partitions and topics that appeared (committed.Source).
func (w *Watcher) Added() <-chan struct{} { return w.state.Added() }

// Err returns nil while the ZooKeeper session is established, else the
// ensemble and the client's state.
func (w *Watcher) Err() error {
	if st := w.conn.State(); st != zk.StateHasSession {
		return fmt.Errorf("ZooKeeper %v: %s", w.hosts, st)
	}
	return nil
}

// Close closes the client; safe to call twice.
func (w *Watcher) Close() { w.conn.Close() }

// Brokers returns the Kafka brokers registered in {chroot}/brokers/ids, for a
// cluster section without broker_hosts.
func (w *Watcher) Brokers() ([]string, error) { return kafkaconn.ReadBrokers(w.conn.Conn, w.chroot) }

// workers is the number of goroutines a Watcher reads ZooKeeper with.
const workers = 32

// nodeKind tells what a watched path is.
type nodeKind uint8

const (
	nodeConsumers    nodeKind = iota // {chroot}/consumers: children are groups
	nodeTopics                       // offsets/ or owners/ of a group: children are topics
	nodePartitions                   // a topic directory: children are partitions
	nodeOffset                       // an offset node
	nodeOwner                        // an owner node
	nodeIDs                          // ids/ of a group: children are registrations
	nodeRegistration                 // an instance's registration: its subscription names topics
)

// node is one watched path. A node read while it is already replaced in
// Watcher.nodes (it vanished, maybe to reappear) is not applied.
type node struct {
	kind     nodeKind
	key      committed.Key   // the group; the topic below nodeTopics; the partition of leaves
	owners   bool            // nodeTopics and nodePartitions: below owners/
	children map[string]bool // directories: the children listed last
	set      bool            // leaves: a value is in the state
	topics   []string        // registrations: the topics put in the state
}

func (n *node) leaf() bool {
	return n.kind == nodeOffset || n.kind == nodeOwner || n.kind == nodeRegistration
}

// watch runs the workers until ctx ends.
func (w *Watcher) watch(ctx context.Context) {
	w.mu.Lock()
	root := w.layout.Consumers()
	if w.nodes == nil {
		w.nodes = map[string]*node{root: {kind: nodeConsumers, children: map[string]bool{}}}
		w.q.push(root)
	} else {
		w.q.flag(&w.q.resync)
	}
	w.session = w.conn.SessionID()
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, w.q.wakeAll)
	defer stop()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { w.work(ctx) })
	}
	wg.Wait()
}

// work processes the queue until ctx ends.
func (w *Watcher) work(ctx context.Context) {
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
func (w *Watcher) resync() {
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
func (w *Watcher) checkSession() {
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
func (w *Watcher) read(p string) {
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
func (w *Watcher) current(p string, n *node) bool { return w.nodes[p] == n }

func (w *Watcher) readDir(p string, n *node) {
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
		a := w.filter.Admit(names, n.children)
		names = a.Keep
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
				w.state.AddTopic(committed.GroupTopic{Group: c.node.key.Group, Topic: c.node.key.Topic}, 1)
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

func (w *Watcher) readLeaf(p string, n *node) {
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
				w.state.AddTopic(committed.GroupTopic{Group: n.key.Group, Topic: t}, -1)
			}
		}
		for _, t := range topics {
			if !slices.Contains(n.topics, t) {
				w.state.AddTopic(committed.GroupTopic{Group: n.key.Group, Topic: t}, 1)
			}
		}
		n.topics = topics
		return
	case nodeOwner:
		owner := string(data)
		if owner == "" {
			owner = "?" // an owner node without data still means owned
		}
		w.state.Update(n.key, func(zp *committed.Part) { zp.Owner = owner })
		return
	}
	off, derr := zkconsumers.DecodeOffset(data)
	if derr != nil {
		w.log.Warn("offset node unreadable; partition counts as not committed", "path", p, "err", derr)
	}
	w.state.Update(n.key, func(zp *committed.Part) {
		zp.HasCommit = derr == nil
		zp.Offset = off
		zp.CommitTime = time.UnixMilli(st.Mtime)
	})
}

// waitFor watches the missing path p for its creation.
func (w *Watcher) waitFor(p string, n *node) {
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
func (w *Watcher) failed(p string, err error) {
	w.log.Debug("zookeeper read failed; retrying", "path", p, "err", err)
	w.q.later(p, w.retry)
}

// child is a path watched for a child of a directory.
type child struct {
	path string
	node *node
}

// children returns the paths watched for child name of directory n at p.
func (w *Watcher) children(p string, n *node, name string) []child {
	dir := func(path string, key committed.Key, owners bool) child {
		// children is made at the first child: most directories of idle
		// groups (owners/, ids/) do not exist.
		return child{path, &node{kind: nodeTopics, key: key, owners: owners}}
	}
	switch n.kind {
	case nodeConsumers:
		ids := dir(w.layout.IDs(name), committed.Key{Group: name}, false)
		ids.node.kind = nodeIDs
		return []child{
			dir(w.layout.OffsetsRoot(name), committed.Key{Group: name}, false),
			dir(path.Join(w.layout.Group(name), "owners"), committed.Key{Group: name}, true),
			ids,
		}
	case nodeIDs:
		return []child{{path.Join(p, name), &node{kind: nodeRegistration, key: n.key}}}
	case nodeTopics:
		c := dir(path.Join(p, name), committed.Key{Group: n.key.Group, Topic: name}, n.owners)
		c.node.kind = nodePartitions
		return []child{c}
	default:
		part, err := zkconsumers.ParsePartition(name)
		if err != nil {
			return nil
		}
		kind := nodeOffset
		if n.owners {
			kind = nodeOwner
		}
		return []child{{path.Join(p, name), &node{kind: kind, key: committed.Key{Group: n.key.Group, Topic: n.key.Topic, Partition: part}}}}
	}
}

// remove stops watching p and everything below it, dropping what they put in
// the state; w.mu is held.
func (w *Watcher) remove(p string) {
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
		w.state.AddTopic(committed.GroupTopic{Group: n.key.Group, Topic: n.key.Topic}, -1)
	}
}

// clear drops the value of leaf n from the state; w.mu is held.
func (w *Watcher) clear(n *node) {
	if !n.set {
		return
	}
	n.set = false
	switch n.kind {
	case nodeRegistration:
		for _, t := range n.topics {
			w.state.AddTopic(committed.GroupTopic{Group: n.key.Group, Topic: t}, -1)
		}
		n.topics = nil
	case nodeOwner:
		w.state.Update(n.key, func(p *committed.Part) { p.Owner = "" })
	default:
		w.state.Update(n.key, func(p *committed.Part) { p.Offset, p.HasCommit, p.CommitTime = 0, false, time.Time{} })
	}
}

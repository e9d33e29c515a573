package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// DefaultCloseTimeout bounds how long Member.Close waits for the engine to
// release the revoked leases.
const DefaultCloseTimeout = 30 * time.Second

// Option adjusts a Member at Join.
type Option func(*Member)

// WithCloseTimeout sets how long Close waits for the engine to release its
// leases (default DefaultCloseTimeout). After it, Close deletes the owner nodes
// itself so other instances can take the partitions; the leases' commits fail
// from then on.
func WithCloseTimeout(d time.Duration) Option {
	return func(m *Member) {
		if d > 0 {
			m.closeWait = d
		}
	}
}

// WithAuth protects the module's nodes with a ZooKeeper digest credential: the
// member authenticates the session with a before it creates anything, gives
// every node it creates from {chroot}/consumers/{group} downward the ACL
// a.ACL() (digest ALL, world READ), leaves the shared parents {chroot} and
// {chroot}/consumers open so other modules can be created beside it, and once,
// before it registers, brings the ACL of the group's existing nodes in line
// (see SecureGroup). Default: no credential, every node open.
func WithAuth(a Auth) Option {
	return func(m *Member) { m.auth = a }
}

// WithOpsListen adds the address of the process's operations endpoints (and
// its host name and process id) to the instance's registration in ids/, so an
// operator finds every process's /status; readers of the Kafka 0.8 layout
// ignore the added fields. Empty: the registration holds only Kafka's fields.
func WithOpsListen(addr string) Option {
	return func(m *Member) { m.opsListen = addr }
}

// Member is one instance's membership in one module (consumer group) for one
// topic. It registers the instance, computes the partitions the instance should
// own, takes them, and hands them to the engine as leases on Leases. It runs
// until Close or the end of Join's context.
//
// Assignment: the registered instance ids are sorted and partition p belongs to
// ids[p % len(ids)], so partitions spread evenly and a process may own many.
// When the assignment changes, leases of partitions that moved are revoked
// (ErrRevoked); the partition stays with this instance until the engine
// releases the lease. An engine that never releases keeps the partition (no
// other instance pushes it meanwhile); release_timeout_ms bounds the engine's
// drain for that reason.
//
// Only ephemeral nodes count: a persistent node under ids/ (a ghost instance, no
// process made it) is left out of the assignment and logged at warning level; a
// persistent owner node, or an ephemeral one naming an instance that has not been
// registered for longer than a leaving member may drain (close timeout plus the
// session timeout), is stale and replaced, with a warning naming it.
//
// Its methods are safe for concurrent use.
type Member struct {
	sess      *Session
	layout    zkconsumers.Layout
	group     string
	topic     string
	id        string
	log       *slog.Logger
	closeWait time.Duration
	auth      Auth
	acl       []zk.ACL // of every node from the group's node downward
	opsListen string   // added to the registration when not empty
	// staleAfter is how long an ephemeral owner node naming an instance that
	// is not registered is respected before it counts as stale: a leaving
	// member deletes its ids node first and holds its owner nodes for at most
	// its close timeout while it drains.
	staleAfter time.Duration

	cancel context.CancelFunc
	out    chan *Lease
	poke   chan struct{}  // wakes run
	stop   chan struct{}  // closed to end the watch goroutines
	done   chan struct{}  // closed when run has returned
	wg     sync.WaitGroup // watch goroutines; Add and Wait only in run

	partitions atomic.Int32

	relMu sync.Mutex
	relQ  []*releaseReq

	wmu      sync.Mutex
	watching map[string]bool // paths with a ZooKeeper watch that has not fired

	// The rest is owned by run.
	leases   map[int32]*Lease // not yet released, delivered or pending
	pending  []*Lease         // not yet handed to the engine
	held     map[int32]heldNode
	regID    int64 // session whose ephemeral ids node is ours; 0 = not registered
	lastSess int64
	ids      []string
	desired  map[int32]bool
	waiting  map[int32]string // desired partitions held by another instance, and by whom
	lastErr  error
	secured  bool                  // SecureGroup succeeded
	ghosts   map[string]bool       // persistent ids nodes already warned about
	orphans  map[int32]orphanOwner // owner nodes naming an unregistered instance, since when

	smu  sync.Mutex
	snap Snapshot
}

// heldNode is an owner node this member created or adopted and has not yet seen
// deleted.
type heldNode struct {
	czxid   int64
	session int64
}

// orphanOwner is an ephemeral owner node, held by another session, whose data
// names no registered instance: stale once it stays so for staleAfter.
type orphanOwner struct {
	czxid int64
	since time.Time
}

type releaseReq struct {
	l    *Lease
	done chan struct{}
}

// Snapshot is a member's state for /status.
type Snapshot struct {
	// Instance is this process's instance id.
	Instance string `json:"instance"`
	// Session is the ZooKeeper session's state, see Session.State.
	Session string `json:"session"`
	// Registered tells whether the instance's ids node exists in this session.
	Registered bool `json:"registered"`
	// Partitions is the topic's partition count as set by SetPartitions.
	Partitions int32 `json:"partitions"`
	// Instances are the registered instance ids, sorted.
	Instances []string `json:"instances"`
	// Desired are the partitions the assignment gives this instance.
	Desired []int32 `json:"desired"`
	// Owned are the partitions with a lease not yet released.
	Owned []int32 `json:"owned"`
	// Revoking are owned partitions whose lease is revoked and awaits Release.
	Revoking []int32 `json:"revoking,omitempty"`
	// Waiting are desired partitions still held by another instance, by holder.
	Waiting map[int32]string `json:"waiting,omitempty"`
	// LastError is the last ZooKeeper failure, cleared by the next success.
	LastError string `json:"last_error,omitempty"`
	// AuthUser is the ZooKeeper digest user whose ACL protects the module's
	// nodes; empty when they are open.
	AuthUser string `json:"zk_auth_user,omitempty"`
}

// Join starts the membership of instanceID in group for topic, through sess,
// with the nodes laid out by layout. The member runs until ctx ends or Close is
// called; either revokes every lease with cause ErrClosed, waits for their
// release and leaves the group. Group, topic and instance id must be ZooKeeper
// node names (zkconn.CheckNodeName); sess must not be nil. log nil means no
// logging.
func Join(ctx context.Context, sess *Session, layout zkconsumers.Layout, group, topic, instanceID string, log *slog.Logger, opts ...Option) (*Member, error) {
	for _, n := range []struct{ what, v string }{{"group", group}, {"topic", topic}, {"instance id", instanceID}} {
		if err := zkconn.CheckNodeName(n.v); err != nil {
			return nil, fmt.Errorf("join fleet: %s %q %w", n.what, n.v, err)
		}
	}
	if err := zkconn.CheckChroot(layout.Chroot); err != nil {
		return nil, fmt.Errorf("join fleet: chroot %q %w", layout.Chroot, err)
	}
	if sess == nil {
		return nil, errors.New("join fleet: no ZooKeeper session")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Member{
		sess:      sess,
		layout:    layout,
		group:     group,
		topic:     topic,
		id:        instanceID,
		log:       log,
		closeWait: DefaultCloseTimeout,
		out:       make(chan *Lease),
		poke:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		watching:  map[string]bool{},
		leases:    map[int32]*Lease{},
		held:      map[int32]heldNode{},
		desired:   map[int32]bool{},
		waiting:   map[int32]string{},
		ghosts:    map[string]bool{},
		orphans:   map[int32]orphanOwner{},
	}
	for _, o := range opts {
		o(m)
	}
	if m.staleAfter <= 0 {
		m.staleAfter = m.closeWait + sess.Timeout()
	}
	m.acl = m.auth.ACL()
	m.publish()
	ctx, m.cancel = context.WithCancel(ctx)
	go m.run(ctx)
	return m, nil
}

// NewMember is Join with a context that never ends: the member runs until Close.
// An empty instanceID means DefaultInstanceID. Invalid names are an error, and
// no member is made.
func NewMember(sess *Session, layout zkconsumers.Layout, group, topic, instanceID string, log *slog.Logger, opts ...Option) (*Member, error) {
	if instanceID == "" {
		instanceID = DefaultInstanceID()
	}
	return Join(context.Background(), sess, layout, group, topic, instanceID, log, opts...)
}

// DefaultInstanceID returns HOST-PID-RANDOM, unique per process.
func DefaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "ktransfer"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", strings.ReplaceAll(host, "/", "_"), os.Getpid(), hex.EncodeToString(b[:]))
}

// Leases delivers a lease for every partition the member takes. It is closed
// when the member stops. Leases not received yet are dropped by the member when
// they are revoked.
func (m *Member) Leases() <-chan *Lease { return m.out }

// SetPartitions tells the member the topic's partition count; call it again when
// the topic grows. Until the first call the member owns nothing.
func (m *Member) SetPartitions(n int32) {
	if n < 0 {
		n = 0
	}
	if m.partitions.Swap(n) != n {
		m.nudge()
	}
}

// Snapshot returns the member's current state.
func (m *Member) Snapshot() Snapshot {
	m.smu.Lock()
	defer m.smu.Unlock()
	s := m.snap
	s.Instances = slices.Clone(s.Instances)
	s.Desired = slices.Clone(s.Desired)
	s.Owned = slices.Clone(s.Owned)
	s.Revoking = slices.Clone(s.Revoking)
	s.Waiting = maps.Clone(s.Waiting)
	return s
}

// Close leaves the group: it deletes the instance's ids node (so the others
// rebalance at once), revokes every lease with cause ErrClosed, waits for the
// engine to release them (bounded by WithCloseTimeout), deletes the remaining
// owner nodes and stops. It is safe to call more than once.
func (m *Member) Close() {
	m.cancel()
	<-m.done
}

func (m *Member) nudge() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

func (m *Member) enqueueRelease(l *Lease) <-chan struct{} {
	r := &releaseReq{l: l, done: make(chan struct{})}
	m.relMu.Lock()
	m.relQ = append(m.relQ, r)
	m.relMu.Unlock()
	m.nudge()
	return r.done
}

func (m *Member) run(ctx context.Context) {
	defer close(m.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	retrying := false
	for {
		changed := m.sess.changed()
		m.processReleases()
		err := m.reconcile()
		m.setErr(err)
		if err != nil {
			m.log.Warn("ZooKeeper operation failed; retrying", "err", err, "retry_in", m.sess.retry)
			if !retrying {
				retry.Reset(m.sess.retry)
				retrying = true
			}
		}
		m.publish()
		var out chan<- *Lease
		var next *Lease
		if len(m.pending) > 0 {
			out, next = m.out, m.pending[0]
		}
		select {
		case <-ctx.Done():
			m.shutdown()
			return
		case <-changed:
		case <-m.poke:
		case <-retry.C:
			retrying = false
		case out <- next:
			m.pending = m.pending[1:]
		}
	}
}

// reconcile brings ZooKeeper and the leases in line with the assignment. An
// error means a ZooKeeper operation failed; run tries again after the retry
// interval.
func (m *Member) reconcile() error {
	m.dropUndelivered()
	ep := m.sess.live()
	if ep == nil {
		return nil // the session's change wakes run
	}
	if ep.id != m.lastSess {
		// A new session: the old one's ephemeral nodes are gone.
		m.lastSess = ep.id
		for p, h := range m.held {
			if h.session != ep.id {
				delete(m.held, p)
			}
		}
	}
	if err := m.authenticate(); err != nil {
		return err
	}
	fresh, err := m.register(ep)
	if err != nil || m.regID != ep.id {
		return err
	}
	listed, err := m.listInstances(fresh)
	if err != nil {
		return err
	}
	if listed && !slices.Contains(m.ids, m.id) {
		m.log.Warn("this instance's ids node disappeared; registering again")
		m.regID = 0
		m.nudge()
		return nil
	}
	m.desired = map[int32]bool{}
	for _, p := range assign(m.ids, m.id, m.partitions.Load()) {
		m.desired[p] = true
	}
	for p, l := range m.leases {
		if !m.desired[p] && l.ctx.Err() == nil {
			m.log.Info("partition moves to another instance: revoking its lease", "partition", p)
			l.revoke(ErrRevoked)
		}
	}
	m.dropUndelivered()
	for p := range m.waiting {
		if !m.desired[p] {
			delete(m.waiting, p)
		}
	}
	for p := range m.orphans {
		if !m.desired[p] {
			delete(m.orphans, p)
		}
	}
	for _, p := range sortedKeys(m.desired) {
		if m.leases[p] != nil || (m.isWatching(m.ownerPath(p)) && !m.orphanDue(p)) {
			continue
		}
		if err := m.acquire(ep, p); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(m.held) {
		if m.leases[p] == nil && !m.desired[p] {
			if err := m.deleteOwner(ep, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// authenticate adds the member's credential to the session, and the first time
// it succeeds brings the ACL of the group's existing nodes in line.
func (m *Member) authenticate() error {
	if !m.auth.Enabled() {
		return nil
	}
	if err := m.sess.Authenticate(m.auth); err != nil {
		return err
	}
	if m.secured {
		return nil
	}
	if err := SecureGroup(m.sess, m.layout, m.group, m.auth, m.log); err != nil {
		return fmt.Errorf("protect the module's nodes: %w", err)
	}
	m.secured = true
	m.log.Info("module nodes protected by a ZooKeeper ACL", "zk_auth", m.auth, "acl", formatACL(m.acl))
	return nil
}

// register creates the instance's ephemeral ids node, or adopts it when this
// session made it already. fresh reports that the node was just created.
func (m *Member) register(ep *epoch) (fresh bool, err error) {
	if m.regID == ep.id {
		return false, nil
	}
	p := m.layout.ID(m.group, m.id)
	reg := zkconsumers.NewRegistration(m.topic, time.Now())
	if m.opsListen != "" {
		reg.OpsListen = m.opsListen
		reg.Host, _ = os.Hostname()
		reg.PID = os.Getpid()
	}
	err = m.create(p, reg.Encode(), zk.FlagEphemeral)
	if err == nil {
		m.regID = ep.id
		m.log.Info("registered in the group", "path", p)
		return true, nil
	}
	if !errors.Is(err, zk.ErrNodeExists) {
		return false, fmt.Errorf("register %s: %w", p, err)
	}
	_, st, err := m.sess.conn.Get(p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		m.nudge()
		return false, nil
	case err != nil:
		return false, fmt.Errorf("register %s: %w", p, err)
	case st.EphemeralOwner == ep.id:
		m.regID = ep.id
		return true, nil
	case st.EphemeralOwner == 0:
		// No session holds it: a ghost left by someone else, never removed by
		// ZooKeeper. It would keep this instance from registering forever.
		m.log.Warn("a persistent node holds this instance's registration path (no live instance made it): deleting it", "path", p)
		if err := deleteTree(m.sess.conn.Conn, p); err != nil {
			return false, fmt.Errorf("register %s: delete the persistent node there: %w", p, err)
		}
		m.nudge()
		return false, nil
	}
	if m.isWatching(p) {
		return false, nil
	}
	exists, _, ch, err := m.sess.conn.ExistsW(p)
	if err != nil {
		return false, fmt.Errorf("register %s: %w", p, err)
	}
	if !exists {
		m.nudge()
		return false, nil
	}
	m.armWatch(p, ch)
	m.log.Warn("instance id is registered by another ZooKeeper session (an earlier run whose session has not expired yet, or another process with the same instance_id); waiting for it to go", "path", p, "session", sessionHex(st.EphemeralOwner))
	return false, nil
}

// listInstances reads the registered instance ids and watches for changes; while
// the watch has not fired, the ids read before are current. force reads anyway.
func (m *Member) listInstances(force bool) (listed bool, err error) {
	dir := m.layout.IDs(m.group)
	if !force && m.isWatching(dir) {
		return false, nil
	}
	children, _, ch, err := m.sess.conn.ChildrenW(dir)
	if err != nil {
		return false, fmt.Errorf("list instances %s: %w", dir, err)
	}
	m.armWatch(dir, ch)
	ids := make([]string, 0, len(children))
	for _, id := range children {
		live, err := m.liveInstance(id)
		if err != nil {
			return false, err
		}
		if live {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, m.ids) {
		m.log.Info("group instances", "instances", ids)
	}
	m.ids = ids
	return true, nil
}

// liveInstance tells whether ids/{id} is an ephemeral node, the registration of
// a live instance. A persistent node there is a ghost (no process made it, and
// ZooKeeper never removes it): it is left out of the assignment, so it holds
// no partition, and logged at warning level once.
func (m *Member) liveInstance(id string) (bool, error) {
	p := m.layout.ID(m.group, id)
	ok, st, err := m.sess.conn.Exists(p)
	switch {
	case err != nil:
		return false, fmt.Errorf("read instance %s: %w", p, err)
	case !ok:
		return false, nil
	case st.EphemeralOwner != 0:
		delete(m.ghosts, id)
		return true, nil
	}
	if !m.ghosts[id] {
		m.ghosts[id] = true
		m.log.Warn("persistent node among the registered instances: ignored (a live instance's node is ephemeral); delete it, or set zk_auth to have it removed", "path", p)
	}
	return false, nil
}

// assign returns the partitions of 0..n-1 that instance id owns when they are
// dealt round-robin over ids, which must be sorted.
func assign(ids []string, id string, n int32) []int32 {
	i := slices.Index(ids, id)
	if i < 0 || n <= 0 {
		return nil
	}
	var ps []int32
	for p := int32(i); p < n; p += int32(len(ids)) {
		ps = append(ps, p)
	}
	return ps
}

// acquire takes partition p: it creates the owner node, or adopts it when this
// session holds it already, claims the offset node and queues a lease. When
// another instance holds the node it watches it and leaves p for later.
func (m *Member) acquire(ep *epoch, p int32) error {
	conn := m.sess.conn
	op := m.ownerPath(p)
	err := m.create(op, []byte(m.id), zk.FlagEphemeral)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create owner node %s: %w", op, err)
	}
	data, st, err := conn.Get(op)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		m.nudge() // deleted meanwhile: try again
		return nil
	case err != nil:
		return fmt.Errorf("read owner node %s: %w", op, err)
	}
	if st.EphemeralOwner != ep.id {
		stale, why, err := m.staleOwner(p, string(data), st)
		if err != nil {
			return err
		}
		if stale {
			m.log.Warn("owner node is stale: replacing it", "partition", p, "path", op, "holder", string(data), "reason", why)
			if err := conn.Delete(op, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
				return fmt.Errorf("delete stale owner node %s: %w", op, err)
			}
			delete(m.orphans, p)
			m.nudge()
			return nil
		}
		exists, _, ch, err := conn.ExistsW(op)
		if err != nil {
			return fmt.Errorf("watch owner node %s: %w", op, err)
		}
		if !exists {
			m.nudge()
			return nil
		}
		m.armWatch(op, ch)
		if m.waiting[p] != string(data) {
			m.log.Info("partition is still held by another instance; waiting for its release", "partition", p, "holder", string(data))
		}
		m.waiting[p] = string(data)
		return nil
	}
	delete(m.waiting, p)
	delete(m.orphans, p)
	m.held[p] = heldNode{czxid: st.Czxid, session: ep.id}
	l, err := m.claim(ep, p, st)
	if err != nil || l == nil {
		return err
	}
	m.leases[p] = l
	m.pending = append(m.pending, l)
	m.log.Info("partition acquired", "partition", p, "committed", lastOffset(l))
	return nil
}

// staleOwner tells whether p's owner node, held by someone else (data names the
// holder, st is the node's stat), is stale and may be replaced: a persistent node
// (no live instance made it; ZooKeeper never removes it), or an ephemeral one
// whose holder has had no registration for staleAfter (a leaving member holds its
// owner nodes without a registration only while it drains).
func (m *Member) staleOwner(p int32, holder string, st *zk.Stat) (bool, string, error) {
	if st.EphemeralOwner == 0 {
		return true, "persistent node: no live instance holds it", nil
	}
	registered := false
	if zkconn.CheckNodeName(holder) == nil {
		live, err := m.liveInstance(holder)
		if err != nil {
			return false, "", err
		}
		registered = live
	}
	if registered {
		delete(m.orphans, p)
		return false, "", nil
	}
	o, ok := m.orphans[p]
	if !ok || o.czxid != st.Czxid {
		m.orphans[p] = orphanOwner{czxid: st.Czxid, since: time.Now()}
		m.log.Info("owner node names an instance that is not registered; it counts as stale unless it goes within the grace", "partition", p, "holder", holder, "grace", m.staleAfter)
		time.AfterFunc(m.staleAfter, m.nudge)
		return false, "", nil
	}
	if time.Since(o.since) < m.staleAfter {
		return false, "", nil
	}
	return true, fmt.Sprintf("held by a session whose instance %q has not been registered for %v", holder, m.staleAfter), nil
}

// orphanDue tells whether p's owner node has named an unregistered instance for
// staleAfter, so it is looked at again although its watch has not fired.
func (m *Member) orphanDue(p int32) bool {
	o, ok := m.orphans[p]
	return ok && time.Since(o.since) >= m.staleAfter
}

// claim makes a new lease on p whose owner node (ours, with stat owner) exists.
// In one multi-operation it rewrites the owner node and the offset node with
// their own data, checking both versions: the new versions fence off every
// earlier lease of the partition, also one whose late write arrives through a
// later session.
func (m *Member) claim(ep *epoch, p int32, owner *zk.Stat) (*Lease, error) {
	conn := m.sess.conn
	op, offp := m.ownerPath(p), m.layout.Offset(m.group, m.topic, p)
	for attempt := 1; ; attempt++ {
		data, ost, err := conn.Get(offp)
		absent := errors.Is(err, zk.ErrNoNode)
		if err != nil && !absent {
			return nil, fmt.Errorf("read offset node %s: %w", offp, err)
		}
		if absent {
			// Commit creates the node in its multi-operation, which needs the parent.
			if err := m.ensurePath(path.Dir(offp)); err != nil {
				return nil, err
			}
		}
		ops := []any{&zk.SetDataRequest{Path: op, Data: []byte(m.id), Version: owner.Version}}
		if !absent {
			ops = append(ops, &zk.SetDataRequest{Path: offp, Data: data, Version: ost.Version})
		}
		res, err := conn.Multi(ops...)
		if err == nil && len(res) == len(ops) && res[0].Stat != nil && (absent || res[1].Stat != nil) {
			ctx, cancel := context.WithCancelCause(ep.ctx)
			l := &Lease{
				m: m, p: p, ep: ep, ctx: ctx, cancel: cancel,
				ownerPath: op, offsetPath: offp, czxid: owner.Czxid, acquired: time.Now(),
				ownerVersion: res[0].Stat.Version, offsetVersion: -1,
			}
			if !absent {
				l.offsetVersion = res[1].Stat.Version
				off, derr := zkconsumers.DecodeOffset(data)
				l.found = NodeVersion{zxid: ost.Mzxid, version: ost.Version, offset: off}
				l.written = NodeVersion{zxid: res[1].Stat.Mzxid, version: res[1].Stat.Version, offset: off}
				if derr == nil {
					l.last, l.hasLast = off, true
				}
			}
			return l, nil
		}
		if err == nil {
			return nil, fmt.Errorf("claim partition %d: unexpected multi-operation result %+v", p, res)
		}
		if !checkFailed(err) || attempt == 3 {
			return nil, fmt.Errorf("claim partition %d: %w", p, err)
		}
		// A node changed between the reads and the claim: read both again.
		_, owner, err = conn.Get(op)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			m.nudge()
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("read owner node %s: %w", op, err)
		case owner.EphemeralOwner != ep.id:
			m.nudge()
			return nil, nil
		}
	}
}

// dropUndelivered releases the queued leases that were revoked before the engine
// received them.
func (m *Member) dropUndelivered() {
	m.pending = slices.DeleteFunc(m.pending, func(l *Lease) bool {
		if l.ctx.Err() == nil {
			return false
		}
		l.mu.Lock()
		l.released = true
		l.mu.Unlock()
		if m.leases[l.p] == l {
			delete(m.leases, l.p)
		}
		m.dropOwner(l)
		return true
	})
}

// processReleases handles the leases the engine released.
func (m *Member) processReleases() {
	m.relMu.Lock()
	q := m.relQ
	m.relQ = nil
	m.relMu.Unlock()
	for _, r := range q {
		l := r.l
		if m.leases[l.p] == l {
			delete(m.leases, l.p)
			m.pending = slices.DeleteFunc(m.pending, func(x *Lease) bool { return x == l })
			m.dropOwner(l)
			m.log.Info("partition released", "partition", l.p, "reason", context.Cause(l.ctx))
		}
		close(r.done)
	}
}

// dropOwner deletes the owner node of a released lease when this session still
// holds it. When ZooKeeper is unreachable the node stays in held: reconcile
// deletes or adopts it later, or it vanishes with the session.
func (m *Member) dropOwner(l *Lease) {
	h, ok := m.held[l.p]
	if !ok || h.czxid != l.czxid {
		return
	}
	ep := m.sess.live()
	if ep == nil {
		return
	}
	if err := m.deleteOwner(ep, l.p); err != nil {
		m.log.Warn("delete owner node; trying again later", "partition", l.p, "err", err)
	}
}

// deleteOwner deletes p's owner node if it is the one in held, and forgets it.
func (m *Member) deleteOwner(ep *epoch, p int32) error {
	h, ok := m.held[p]
	if !ok {
		return nil
	}
	if h.session != ep.id {
		delete(m.held, p)
		return nil
	}
	op := m.ownerPath(p)
	_, st, err := m.sess.conn.Get(op)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		delete(m.held, p)
		return nil
	case err != nil:
		return fmt.Errorf("read owner node %s: %w", op, err)
	case st.Czxid != h.czxid || st.EphemeralOwner != ep.id:
		delete(m.held, p) // not ours any more
		return nil
	}
	err = m.sess.conn.Delete(op, st.Version)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("delete owner node %s: %w", op, err)
	}
	delete(m.held, p)
	return nil
}

// shutdown leaves the group; see Close.
func (m *Member) shutdown() {
	if ep := m.sess.live(); ep != nil && m.regID == ep.id {
		p := m.layout.ID(m.group, m.id)
		if _, st, err := m.sess.conn.Get(p); err == nil && st.EphemeralOwner == ep.id {
			if err := m.sess.conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
				m.log.Warn("delete the ids node", "path", p, "err", err)
			}
		}
	}
	m.regID = 0
	for _, l := range m.leases {
		l.revoke(ErrClosed)
	}
	m.dropUndelivered()
	close(m.out)
	if len(m.leases) > 0 {
		m.publish()
		timer := time.NewTimer(m.closeWait)
		defer timer.Stop()
	wait:
		for {
			m.processReleases()
			if len(m.leases) == 0 {
				break
			}
			select {
			case <-m.poke:
			case <-timer.C:
				m.log.Warn("partitions not released in time; deleting their owner nodes", "partitions", sortedKeys(m.leases), "timeout", m.closeWait)
				break wait
			}
		}
	}
	if ep := m.sess.live(); ep != nil {
		for _, p := range sortedKeys(m.held) {
			if err := m.deleteOwner(ep, p); err != nil {
				m.log.Warn("delete owner node", "partition", p, "err", err)
			}
		}
	}
	m.leases = map[int32]*Lease{}
	m.desired = map[int32]bool{}
	m.waiting = map[int32]string{}
	close(m.stop)
	m.wg.Wait()
	m.publish()
	m.log.Info("left the group")
}

// create creates a node, and its missing parents as persistent nodes.
func (m *Member) create(p string, data []byte, flags int32) error {
	_, err := m.sess.conn.Create(p, data, flags, m.aclFor(p))
	if errors.Is(err, zk.ErrNoNode) {
		if err := m.ensurePath(path.Dir(p)); err != nil {
			return err
		}
		_, err = m.sess.conn.Create(p, data, flags, m.aclFor(p))
	}
	return err
}

// aclFor returns the ACL of a new node: the module's from the group's node
// downward, open above it ({chroot}, {chroot}/consumers are shared by every
// module and must let others create theirs).
func (m *Member) aclFor(p string) []zk.ACL {
	g := m.layout.Group(m.group)
	if p == g || strings.HasPrefix(p, g+"/") {
		return m.acl
	}
	return openACL
}

// ensurePath creates dir and its parents as empty persistent nodes where missing.
func (m *Member) ensurePath(dir string) error {
	cur := ""
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		cur += "/" + part
		_, err := m.sess.conn.Create(cur, nil, zk.FlagPersistent, m.aclFor(cur))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", cur, err)
		}
	}
	return nil
}

func (m *Member) ownerPath(p int32) string { return m.layout.Owner(m.group, m.topic, p) }

func (m *Member) isWatching(p string) bool {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.watching[p]
}

// armWatch notes a watch on p and wakes run when it fires. go-zookeeper fires
// every watch when the session expires or the client closes, and keeps them
// across reconnects within a session.
func (m *Member) armWatch(p string, ch <-chan zk.Event) {
	m.wmu.Lock()
	m.watching[p] = true
	m.wmu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-ch:
		case <-m.stop:
			return
		}
		m.wmu.Lock()
		delete(m.watching, p)
		m.wmu.Unlock()
		m.nudge()
	}()
}

func (m *Member) setErr(err error) {
	if err != nil {
		m.lastErr = err
	} else if m.sess.live() != nil {
		m.lastErr = nil
	}
}

func (m *Member) publish() {
	s := Snapshot{
		Instance:   m.id,
		Session:    m.sess.State(),
		Registered: m.regID != 0 && m.regID == m.sess.SessionID(),
		Partitions: m.partitions.Load(),
		Instances:  slices.Clone(m.ids),
		Desired:    sortedKeys(m.desired),
		Owned:      sortedKeys(m.leases),
	}
	if m.auth.Enabled() {
		s.AuthUser = m.auth.User
	}
	for _, p := range s.Owned {
		if m.leases[p].ctx.Err() != nil {
			s.Revoking = append(s.Revoking, p)
		}
	}
	if len(m.waiting) > 0 {
		s.Waiting = maps.Clone(m.waiting)
	}
	if m.lastErr != nil {
		s.LastError = m.lastErr.Error()
	}
	m.smu.Lock()
	m.snap = s
	m.smu.Unlock()
}

func lastOffset(l *Lease) any {
	if !l.hasLast {
		return "none"
	}
	return l.last
}

func sortedKeys[V any](m map[int32]V) []int32 {
	return slices.Sorted(maps.Keys(m))
}

// deleteTree deletes the node at p and everything below it, whatever their
// versions; nodes already gone are fine.
func deleteTree(conn *zk.Conn, p string) error {
	children, _, err := conn.Children(p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil
	case err != nil:
		return fmt.Errorf("list %s: %w", p, err)
	}
	for _, c := range children {
		if err := deleteTree(conn, p+"/"+c); err != nil {
			return err
		}
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}

// Package kgroup is ktransfer's fleet on a Kafka consumer group, for
// offset_store: kafka: each module is a consumer group named after it, Kafka's
// group protocol decides which process owns which partition, and offsets are
// committed to the group, so the fleet needs no ZooKeeper at all.
//
// A Member joins the group with a franz-go group client and hands the engine a
// fleet.Claim for every partition the coordinator assigns to it. The protocol
// is KIP-848's consumer protocol (the coordinator assigns, "uniform" assignor)
// when every broker offers it, else the classic protocol with the
// cooperative-sticky assignor; Config.Protocol can pin either. Both are
// cooperative: a rebalance revokes only the partitions that move, and the
// group waits for the revocation callback, in which the engine drains the
// partition (its pushes finish or release_timeout_ms passes) and makes its
// final commit, before the coordinator gives the partition to another member.
//
// The group client does not fetch: its topic stays paused, and the engine
// fetches the claimed partitions with its own client, from the offset it
// chooses (initial_offset, offset_reset), exactly as with the ZooKeeper
// fleet. The group client is the member: it heartbeats, receives assignments
// and commits.
//
// Fencing, from Kafka itself: every commit carries the member id and the
// generation (classic) or member epoch (KIP-848), and the coordinator refuses
// it once the member lost its partitions (removed after its session timeout,
// fenced by a newer epoch): the claim is then fenced and so is every other
// claim of the member. Besides, the member times the coordinator's answers to
// its heartbeats: when none was answered for 2/3 of the session timeout
// (paused by SIGSTOP, cut off by the network), every claim is fenced at once
// and the pushes stop, before the coordinator can have given the partitions to
// another member. A fenced partition that the group still assigns to this
// member is claimed again once the coordinator answers again; the claim's
// first commit then tells whether the membership survived.
//
// Every commit's metadata names the instance and the time (package
// commitmeta).
package kgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
)

// Group protocols, the values of Config.Protocol.
const (
	// ProtocolAuto chooses ProtocolConsumer when every broker offers it
	// (ConsumerGroupHeartbeat v1, Kafka 4.0 and later), else ProtocolClassic.
	ProtocolAuto = "auto"
	// ProtocolConsumer is KIP-848's protocol: the coordinator assigns.
	ProtocolConsumer = "consumer"
	// ProtocolClassic is the JoinGroup/SyncGroup protocol with the
	// cooperative-sticky assignor.
	ProtocolClassic = "classic"
)

// Defaults of the Config durations left zero.
const (
	DefaultSessionTimeout = 10 * time.Second
	DefaultReleaseWait    = 30 * time.Second
	DefaultRetryInterval  = time.Second
	// commitTimeout bounds one commit request (retries inside the client
	// included).
	commitTimeout = 10 * time.Second
)

// Config describes a Member.
type Config struct {
	// Group is the consumer group: the module's name.
	Group string
	// Topic is the module's topic, the group's only subscription.
	Topic string
	// Instance names this process (instance_id): it is the group client's
	// client id, so Kafka's tools show which process is which member, and it
	// goes into every commit's metadata.
	Instance string
	// Protocol is ProtocolAuto (default), ProtocolConsumer or ProtocolClassic.
	Protocol string
	// SessionTimeout is how long the coordinator keeps a member it hears
	// nothing from (group_session_timeout_ms): the classic protocol sends it
	// with JoinGroup; with the consumer protocol the member sets the group's
	// consumer.session.timeout.ms (and consumer.heartbeat.interval.ms to a
	// third of it), which the brokers may refuse (their
	// group.consumer.min/max.session.timeout.ms): then the group's own value
	// applies and is logged. Default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// ReleaseWait bounds how long a revocation waits for the engine to
	// release the revoked claims (drain, final commit); past it the claims
	// are fenced and the rebalance goes on. The rebalance timeout sent to
	// Kafka is ReleaseWait plus 15 s, at least 60 s. Default
	// DefaultReleaseWait.
	ReleaseWait time.Duration
	// RetryInterval is the pause before a partition whose claim the engine
	// gave back on its own (it could not start it) is claimed again. Default
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// Import, when set, gives the offset of a partition that has no committed
	// offset in the group yet: the ZooKeeper offset of a module moving to
	// Kafka. ok false means none there either. An error makes the claim's
	// LoadOffset fail (the partition is claimed again after RetryInterval).
	Import func(ctx context.Context, partition int32) (off int64, ok bool, err error)
	// Log receives the member's messages; nil discards them.
	Log *slog.Logger

	// fenceAfter overrides 2/3 of the session timeout as the silence after
	// which every claim is fenced; negative disables it (tests only).
	fenceAfter time.Duration
}

// Member is this process's membership in one module's consumer group; it
// implements fleet.Membership. Its methods are safe for concurrent use.
//
// Lock order: Claim.mu before Member.mu (a claim's commit may fence the whole
// member). Member.mu is never held while calling into the group client or
// waiting for the engine; Claim.mu is held across a LoadOffset or a commit.
type Member struct {
	cfg  Config
	base []kgo.Opt
	log  *slog.Logger

	epoch      time.Time    // heard counts from here, on the monotonic clock
	heard      atomic.Int64 // ns after epoch at which the last answered heartbeat, join or sync was sent
	fenceAfter atomic.Int64 // ns; 0 = not yet known

	cl       atomic.Pointer[kgo.Client]
	commitQ  chan *commitReq
	out      chan fleet.Claim
	wake     chan struct{}
	stop     chan struct{} // closed by Close once the group client is closed
	startCtx context.Context
	cancelSt context.CancelFunc
	done     chan struct{} // closed when run returns
	closing  atomic.Bool
	once     sync.Once
	// resubscribing is set while the group client subscribes to a recreated
	// topic again, in a goroutine of bg.
	resubscribing atomic.Bool
	bg            sync.WaitGroup

	// commitMu is held (read) while the committer checks and sends a batch,
	// and (write) by onLost while it fences the lost claims: a claim fenced
	// there commits nothing after the group client joins again.
	commitMu sync.RWMutex

	mu          sync.Mutex
	protocol    string              // chosen; "" until the group client exists
	session     time.Duration       // the session timeout in force
	assigned    map[int32]string    // by the coordinator, now: the member id it assigned the partition to
	claims      map[int32]*Claim    // not yet released (delivered or pending)
	pending     []*Claim            // not yet handed to the engine
	retryAt     map[int32]time.Time // assigned partitions given back, claimed again from then
	fencedHeard int64               // heard when the member last fenced every claim; claims wait for a newer answer
	lastErr     string              // the last failure, for Snapshot
	revoking    map[int32]bool      // claims revoked and not yet released
}

// Join validates cfg and starts the membership. It returns at once: the group
// client is made in the background (after choosing the protocol, which asks
// the brokers, retried while they cannot be reached), and claims arrive on
// Claims once the coordinator assigns partitions. base holds the connection
// options (brokers, TLS, SASL, logger).
func Join(base []kgo.Opt, cfg Config) (*Member, error) {
	if cfg.Group == "" || cfg.Topic == "" {
		return nil, errors.New("kafka group: group and topic are required")
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = ProtocolAuto
	case ProtocolAuto, ProtocolConsumer, ProtocolClassic:
	default:
		return nil, fmt.Errorf("kafka group: protocol %q is not %s, %s or %s", cfg.Protocol, ProtocolAuto, ProtocolConsumer, ProtocolClassic)
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.ReleaseWait <= 0 {
		cfg.ReleaseWait = DefaultReleaseWait
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Member{
		cfg:         cfg,
		base:        base,
		log:         log.With("group", cfg.Group),
		epoch:       time.Now(),
		commitQ:     make(chan *commitReq, 64),
		out:         make(chan fleet.Claim),
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		assigned:    map[int32]string{},
		claims:      map[int32]*Claim{},
		retryAt:     map[int32]time.Time{},
		revoking:    map[int32]bool{},
		fencedHeard: -1,
	}
	m.startCtx, m.cancelSt = context.WithCancel(context.Background())
	go m.run()
	return m, nil
}

// Claims delivers a claim for every partition the coordinator assigns to this
// member. It is closed when the member stops.
func (m *Member) Claims() <-chan fleet.Claim { return m.out }

// SetPartitions does nothing: the coordinator knows the topic's partitions.
func (m *Member) SetPartitions(int32) {}

// Close leaves the group: the group client revokes every partition (the claims'
// cause is fleet.ErrClosed), waits up to ReleaseWait for the engine to release
// them, and leaves, so the other members take the partitions at once. It is
// safe to call more than once.
func (m *Member) Close() {
	m.once.Do(func() {
		m.mu.Lock()
		m.closing.Store(true)
		cl := m.cl.Load()
		m.mu.Unlock()
		m.cancelSt()
		m.nudge()
		if cl != nil {
			cl.Close()
		}
		m.bg.Wait()
		close(m.stop)
		<-m.done
	})
}

func (m *Member) nudge() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Member) setErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.lastErr = ""
	} else {
		m.lastErr = err.Error()
	}
}

// run makes the group client, then hands out claims, releases the undelivered
// ones that were revoked, and watches the coordinator's silence, until Close.
func (m *Member) run() {
	defer close(m.done)
	defer close(m.out)
	if !m.start() {
		<-m.stop
		return
	}
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		m.commitLoop()
	}()
	defer func() { <-commitsDone }()
	tick := time.NewTimer(time.Hour)
	defer tick.Stop()
	for {
		m.checkSilence()
		next, wait := m.reconcile()
		if wait <= 0 || wait > 100*time.Millisecond {
			wait = 100 * time.Millisecond // the silence watch
		}
		tick.Reset(wait)
		var out chan<- fleet.Claim
		var revoked <-chan struct{}
		if next != nil {
			out, revoked = m.out, next.ctx.Done()
		}
		select {
		case out <- next:
			m.delivered(next)
		case <-revoked:
		case <-m.wake:
		case <-tick.C:
		case <-m.stop:
			m.mu.Lock()
			for _, c := range m.pending {
				m.dropLocked(c)
			}
			m.pending = nil
			m.mu.Unlock()
			return
		}
	}
}

// reconcile claims every assigned partition that has no claim and may be
// claimed now, releases pending claims that were revoked before the engine
// took them, and returns the next claim to deliver and how long until a
// partition given back may be claimed again.
func (m *Member) reconcile() (*Claim, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = slices.DeleteFunc(m.pending, func(c *Claim) bool {
		if c.ctx.Err() == nil {
			return false
		}
		m.dropLocked(c)
		return true
	})
	var wait time.Duration
	if !m.closing.Load() && m.heard.Load() > m.fencedHeard {
		now := time.Now()
		for _, p := range sortedKeys(m.assigned) {
			if m.claims[p] != nil {
				continue
			}
			if at, ok := m.retryAt[p]; ok {
				if d := at.Sub(now); d > 0 {
					if wait == 0 || d < wait {
						wait = d
					}
					continue
				}
				delete(m.retryAt, p)
			}
			c := m.newClaim(p, m.assigned[p])
			m.claims[p] = c
			m.pending = append(m.pending, c)
		}
	}
	if len(m.pending) == 0 {
		return nil, wait
	}
	return m.pending[0], wait
}

func (m *Member) delivered(c *Claim) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) > 0 && m.pending[0] == c {
		m.pending = m.pending[1:]
	}
	c.delivered.Store(true)
}

// dropLocked releases a claim the engine never received.
func (m *Member) dropLocked(c *Claim) {
	c.cancel(fleet.ErrRevoked)
	c.markReleased()
	if m.claims[c.p] == c {
		delete(m.claims, c.p)
	}
	delete(m.revoking, c.p)
}

// released is a claim's Release: the partition may be claimed again — at
// once when it is still assigned and the claim was revoked for nothing (never
// happens) or after RetryInterval when the engine gave it back on its own.
func (m *Member) released(c *Claim) {
	m.mu.Lock()
	if m.claims[c.p] == c {
		delete(m.claims, c.p)
		delete(m.revoking, c.p)
		if _, ok := m.assigned[c.p]; ok {
			m.retryAt[c.p] = time.Now().Add(m.cfg.RetryInterval)
		}
	}
	m.mu.Unlock()
	m.nudge()
}

// overdue tells whether the coordinator has answered no heartbeat sent in the
// last 2/3 of the session timeout.
func (m *Member) overdue() bool {
	fa := m.fenceAfter.Load()
	if fa <= 0 {
		return false
	}
	return int64(time.Since(m.epoch))-m.heard.Load() > fa
}

// checkSilence fences every claim when the coordinator has been silent too long.
func (m *Member) checkSilence() {
	if m.overdue() {
		silent := time.Since(m.epoch) - time.Duration(m.heard.Load())
		m.fenceAll(fmt.Sprintf("the group coordinator has answered no heartbeat for %v (2/3 of the session timeout %v): the member may have been removed", silent.Round(time.Millisecond), m.sessionTimeout()))
	}
}

// fenceAll fences every claim not yet released: pushes stop at once and the
// claims commit nothing more. Partitions still assigned are claimed again
// once the coordinator answers a later heartbeat.
func (m *Member) fenceAll(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fencedHeard = m.heard.Load()
	n := 0
	for _, c := range m.claims {
		if c.fenceNow() {
			n++
		}
	}
	if n > 0 {
		m.lastErr = reason
		m.log.Warn("fenced: every partition of the module stops at once, without a final commit", "reason", reason, "partitions", n)
	}
}

func (m *Member) sessionTimeout() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.session
}

// Snapshot is a member's state for /status.
type Snapshot struct {
	// Instance is this process's instance id, the member's client id.
	Instance string `json:"instance"`
	// Group is the consumer group (the module).
	Group string `json:"group"`
	// Protocol is the group protocol in use, consumer or classic; empty
	// until the member could ask the brokers.
	Protocol string `json:"protocol"`
	// MemberID is the member id the coordinator knows this process by;
	// empty outside the group.
	MemberID string `json:"member_id"`
	// Generation is the classic generation or the KIP-848 member epoch; -1
	// outside the group.
	Generation int32 `json:"generation"`
	// SessionTimeoutMs is the session timeout in force.
	SessionTimeoutMs int64 `json:"session_timeout_ms"`
	// LastHeartbeatUnixMs is when the last heartbeat the coordinator answered
	// was sent.
	LastHeartbeatUnixMs int64 `json:"last_heartbeat_unix_ms,omitempty"`
	// Assigned are the partitions the coordinator assigns to this member.
	Assigned []int32 `json:"assigned"`
	// Owned are the partitions with a claim not yet released.
	Owned []int32 `json:"owned"`
	// Revoking are owned partitions being handed over.
	Revoking []int32 `json:"revoking,omitempty"`
	// LastError is the last failure (cleared by the next success).
	LastError string `json:"last_error,omitempty"`
}

// Snapshot returns the member's current state.
func (m *Member) Snapshot() any {
	s := Snapshot{Instance: m.cfg.Instance, Group: m.cfg.Group, Generation: -1}
	if cl := m.cl.Load(); cl != nil {
		s.MemberID, s.Generation = cl.GroupMetadata()
	}
	if h := m.heard.Load(); h > 0 {
		s.LastHeartbeatUnixMs = m.epoch.Add(time.Duration(h)).UnixMilli()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Protocol = m.protocol
	s.SessionTimeoutMs = m.session.Milliseconds()
	s.Assigned = sortedKeys(m.assigned)
	s.Owned = sortedKeys(m.claims)
	s.Revoking = sortedKeys(m.revoking)
	s.LastError = m.lastErr
	return s
}

// onAssigned is the group client's callback for partitions the coordinator
// assigned (added ones only, as both protocols are cooperative).
func (m *Member) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	// The group client never fetches: pausing here, before its fetches of the
	// new partitions could begin, holds whatever the first pause missed.
	cl.PauseFetchTopics(m.cfg.Topic)
	ps := assigned[m.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	memberID, _ := cl.GroupMetadata()
	m.mu.Lock()
	for _, p := range ps {
		m.assigned[p] = memberID
		delete(m.retryAt, p)
	}
	m.mu.Unlock()
	m.log.Info("partitions assigned by the group coordinator", "partitions", sorted(ps))
	m.nudge()
}

// onRevoked revokes the claims of the partitions the coordinator takes away
// (or every partition when the member leaves the group) and waits, up to
// ReleaseWait, for the engine to drain them and make its final commits: the
// coordinator gives the partitions to another member only after this returns.
func (m *Member) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := revoked[m.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	cause := fleet.ErrRevoked
	if m.closing.Load() {
		cause = fleet.ErrClosed
	}
	var wait []*Claim
	m.mu.Lock()
	for _, p := range ps {
		delete(m.assigned, p)
		delete(m.retryAt, p)
		if c := m.claims[p]; c != nil {
			c.cancel(cause)
			m.revoking[p] = true
			wait = append(wait, c)
		}
	}
	m.mu.Unlock()
	m.nudge() // undelivered claims are released by run
	m.log.Info("partitions revoked by the group coordinator: draining them", "partitions", sorted(ps), "reason", cause)
	deadline := time.NewTimer(m.cfg.ReleaseWait)
	defer deadline.Stop()
	for _, c := range wait {
		select {
		case <-c.released:
		case <-deadline.C:
			deadline.Reset(0)
			// The rebalance cannot wait longer. Fencing waits for a commit in
			// flight, so none lands after the partition moved.
			c.fenceWait(fmt.Sprintf("not released within %v of its revocation", m.cfg.ReleaseWait))
			m.log.Warn("a revoked partition was not released in time: fenced, the next owner pushes its records again from the last commit", "partition", c.p, "release_wait", m.cfg.ReleaseWait)
		}
	}
}

// onLost fences the claims of partitions the member lost without a
// revocation (removed from the group, its generation or epoch fenced): another
// member may own them already, so nothing is drained or committed.
func (m *Member) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ps := lost[m.cfg.Topic]
	if len(ps) == 0 {
		return
	}
	// After a commit in flight ends, and before the client joins again.
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	m.mu.Lock()
	m.fencedHeard = m.heard.Load()
	for _, p := range ps {
		delete(m.assigned, p)
		delete(m.retryAt, p)
		if c := m.claims[p]; c != nil {
			c.fenceNow()
		}
	}
	m.lastErr = "partitions lost: the group coordinator no longer knows this member"
	m.mu.Unlock()
	m.nudge()
	m.log.Warn("partitions lost (the group coordinator removed this member or fenced its generation): stopped at once, without a final commit; rejoining", "partitions", sorted(ps))
}

// hooks times the coordinator's answers for the silence watch.
type hooks struct{ m *Member }

// OnBrokerE2E records when the request of an answered heartbeat, join or sync
// was sent: the coordinator's session timer restarted no earlier.
func (h hooks) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	switch kmsg.Key(key) {
	case kmsg.Heartbeat, kmsg.JoinGroup, kmsg.SyncGroup, kmsg.ConsumerGroupHeartbeat:
	default:
		return
	}
	if e2e.WriteErr != nil || e2e.ReadErr != nil {
		return
	}
	sent := int64(time.Since(h.m.epoch) - e2e.DurationE2E())
	for {
		old := h.m.heard.Load()
		if sent <= old || h.m.heard.CompareAndSwap(old, sent) {
			break
		}
	}
}

func sortedKeys[V any](m map[int32]V) []int32 {
	out := make([]int32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sorted(ps []int32) []int32 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return out
}

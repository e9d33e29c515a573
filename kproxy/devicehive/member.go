package devicehive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
)

// member is one connection's membership in one Kafka consumer group: a
// franz-go group consumer of its own (Kafka sees the group and the member),
// a goroutine polling it into the connection's send queue, and the
// bookkeeping that ties offset commits to what was written.
//
// The group uses the eager round-robin protocol, as upstream: a member
// joining or leaving makes every member give up its partitions, commit what
// it sent and rejoin. Offsets are committed (every second, and at every
// rebalance and leave) for records whose frame was written to the socket,
// and only by the partition's current owner: mu is held while a frame of the
// member's records is written and marked, and by the rebalance callbacks.
//
// A member whose connection's send queue is full stops fetching
// (PauseFetchTopics) until the writer has made room. It keeps its partitions
// meanwhile — franz-go heartbeats on its own goroutine, so the group sees a
// live member and does not rebalance — and the other members go on with
// theirs. Partitions held by a client that stopped reading therefore stall
// until write_timeout_ms closes the connection; closing it leaves the group,
// and the rebalance hands the partitions, from the last offset committed for
// records written, to the remaining members. Records that were queued but not
// written are not committed, so they go to the new owner: delivery is at
// least once.
type member struct {
	c       *conn
	group   string
	cl      *kgo.Client   // set once created; the callbacks wait for created
	created chan struct{} // closed once cl is set

	mu     sync.Mutex                    // delivery lock, see above
	topics []string                      // sorted; fixed at creation
	owned  map[string]map[int32]struct{} // partitions assigned in the current session
	closed bool

	stateMu     sync.Mutex
	assignments int           // completed assignments
	assigned    chan struct{} // closed and replaced at each completed assignment

	pollCancel context.CancelFunc
	pollDone   chan struct{}
}

// newMember creates the member's client, which starts joining the group at
// once. Wait for the join with waitAssigned, start delivering with poll, end
// with close.
func newMember(c *conn, group string, topics []string) (*member, error) {
	o := &c.h.opts
	m := &member{
		c:        c,
		group:    group,
		topics:   slices.Sorted(slices.Values(topics)),
		created:  make(chan struct{}),
		assigned: make(chan struct{}),
		pollDone: make(chan struct{}),
	}
	fetchBytes := int32(min(o.SendQueueBytes, 1<<30))
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(m.topics...),
		kgo.Balancers(kgo.RoundRobinBalancer()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		// A committed offset the log no longer has (retention) restarts at the
		// log start, as upstream (outOfRangeOffset: earliest). Partitions
		// without a commit start where adjust says.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(m.onRevoked),
		kgo.OnPartitionsLost(m.onLost),
		kgo.AdjustFetchOffsetsFn(m.adjust),
		kgo.SessionTimeout(o.SessionTimeout),
		kgo.HeartbeatInterval(o.HeartbeatInterval),
		// One fetch at a time, of at most the send queue's size, in flight or
		// waiting to be polled: what a member holds is bounded whatever the
		// number of brokers. A fetch long-polls at most 250 ms, so partitions
		// on another broker wait no longer than that.
		kgo.FetchMaxBytes(fetchBytes),
		kgo.FetchMaxPartitionBytes(fetchBytes),
		kgo.MaxConcurrentFetches(1),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}
	cl, err := c.h.core.NewKafkaClient(append(opts, o.MemberOpts...)...)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	close(m.created)
	c.h.metrics.subscriptions.Inc()
	return m, nil
}

// owns reports whether the member may deliver (and commit) a record of the
// partition: it is assigned to it and the member is not closed. m.mu must be
// held.
func (m *member) owns(topic string, partition int32) bool {
	if m.closed {
		return false
	}
	_, ok := m.owned[topic][partition]
	return ok
}

// onAssigned is franz-go's OnPartitionsAssigned. An empty assignment has no
// offsets to fetch (adjust is not called), so the join is complete here.
func (m *member) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	if len(assigned) == 0 {
		m.c.Log().Debug("devicehive: joined with no partitions", "group", m.group)
		m.setOwned(nil)
		m.assignmentDone()
	}
}

// adjust is franz-go's AdjustFetchOffsetsFn: it runs once the offsets of the
// assigned partitions are fetched, before fetching starts. A partition
// without a committed offset starts at the log end (or start, with
// StartAtOldest) as it is now, and that offset is committed at once: the
// group's position is then fixed, so that a record written after this
// member joined is delivered even if a rebalance hands its partition to
// another member before this one sent anything. When the offsets cannot be
// listed the error ends the session and franz-go joins again.
func (m *member) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	select {
	case <-m.created: // the client may join before newMember has it
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var missing []string
	for topic, parts := range offsets {
		for _, o := range parts {
			if o.EpochOffset().Offset < 0 {
				missing = append(missing, topic)
				break
			}
		}
	}
	if len(missing) > 0 {
		if err := m.startOffsets(ctx, missing, offsets); err != nil {
			m.c.Log().Warn("devicehive: cannot list the start offsets of a new group; joining again", "group", m.group, "err", err)
			return nil, err
		}
	}
	owned := make(map[string]map[int32]struct{}, len(offsets))
	for topic, parts := range offsets {
		owned[topic] = make(map[int32]struct{}, len(parts))
		for p := range parts {
			owned[topic][p] = struct{}{}
		}
	}
	m.setOwned(owned)
	m.c.Log().Debug("devicehive: partitions assigned", "group", m.group, "offsets", offsets)
	m.assignmentDone()
	return offsets, nil
}

// startOffsets sets the offset of every partition of topics in offsets that
// has no committed offset to the log end (or start), and commits them.
func (m *member) startOffsets(ctx context.Context, topics []string, offsets map[string]map[int32]kgo.Offset) error {
	ctx, cancel := context.WithTimeout(ctx, m.c.h.opts.RequestTimeout)
	defer cancel()
	adm := kadm.NewClient(m.cl)
	list := adm.ListEndOffsets
	if m.c.h.opts.StartAtOldest {
		list = adm.ListStartOffsets
	}
	listed, err := list(ctx, topics...)
	if err != nil {
		return err
	}
	commit := map[string]map[int32]kgo.EpochOffset{}
	for topic, parts := range offsets {
		for p, o := range parts {
			if o.EpochOffset().Offset >= 0 {
				continue
			}
			lo, ok := listed.Lookup(topic, p)
			if !ok {
				return fmt.Errorf("%s/%d: %w", topic, p, kerr.UnknownTopicOrPartition)
			}
			if lo.Err != nil {
				return fmt.Errorf("%s/%d: %w", topic, p, lo.Err)
			}
			parts[p] = kgo.NewOffset().At(lo.Offset).WithEpoch(-1)
			if commit[topic] == nil {
				commit[topic] = map[int32]kgo.EpochOffset{}
			}
			commit[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: lo.Offset}
		}
	}
	if err := m.commitStart(ctx, commit); err != nil {
		// The member still starts where it should; only a rebalance before
		// its first commit could skip records.
		m.c.Log().Warn("devicehive: cannot commit a new group's start offsets", "group", m.group, "err", err)
	}
	return nil
}

// commitStart commits offsets with the member's generation in a request of
// its own: franz-go's commit functions expect a running session, which
// begins only once adjust has returned.
func (m *member) commitStart(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	meta := kmsg.NewPtrMetadataRequest()
	for topic := range offsets {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		meta.Topics = append(meta.Topics, mt)
	}
	// OffsetCommit v10 names topics by ID.
	md, err := m.cl.RequestCachedMetadata(ctx, meta, 0)
	if err != nil {
		return err
	}
	ids := map[string][16]byte{}
	for _, t := range md.Topics {
		if t.Topic != nil {
			ids[*t.Topic] = t.TopicID
		}
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = m.group
	req.MemberID, req.Generation = m.cl.GroupMetadata()
	for topic, parts := range offsets {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = topic, ids[topic]
		for p, o := range parts {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, o.Offset, o.Epoch
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

// onRevoked is franz-go's OnPartitionsRevoked (a rebalance or the leave): the
// member stops delivering the partitions, then commits the offsets of what
// it wrote. Taking mu waits for a frame being written.
func (m *member) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	m.disown(revoked)
	ctx, cancel := context.WithTimeout(ctx, m.c.h.opts.RequestTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		m.c.Log().Warn("devicehive: commit on rebalance failed; records sent since the last commit will be delivered again", "group", m.group, "err", err)
	}
}

// onLost is franz-go's OnPartitionsLost (the member was fenced or Kafka is
// gone): the member stops delivering the partitions; a commit would fail.
func (m *member) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	m.c.Log().Warn("devicehive: partitions lost", "group", m.group, "lost", lost)
	m.disown(lost)
}

func (m *member) disown(parts map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(m.owned[topic], p)
		}
	}
}

func (m *member) setOwned(owned map[string]map[int32]struct{}) {
	m.mu.Lock()
	m.owned = owned
	m.mu.Unlock()
}

// assignmentDone counts a completed assignment and wakes waitAssigned.
func (m *member) assignmentDone() {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	m.assignments++
	close(m.assigned)
	m.assigned = make(chan struct{})
}

// waitAssigned waits for the first completed assignment, at most
// Options.JoinTimeout, and not past the connection's end or Shutdown.
func (m *member) waitAssigned(ctx context.Context) error {
	t := time.NewTimer(m.c.h.opts.JoinTimeout)
	defer t.Stop()
	for {
		m.stateMu.Lock()
		n, ch := m.assignments, m.assigned
		m.stateMu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return fmt.Errorf("%w: group %q, join_timeout %s (is Kafka reachable?)", ErrJoinTimeout, m.group, m.c.h.opts.JoinTimeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-m.c.Stopping():
			return proxy.ErrShuttingDown
		}
	}
}

// poll starts the goroutine that polls records into the connection's send
// queue until close.
func (m *member) poll() {
	ctx, cancel := context.WithCancel(m.c.Context())
	m.pollCancel = cancel
	go func() {
		defer close(m.pollDone)
		for {
			fs := m.cl.PollRecords(ctx, m.c.h.opts.MaxNotifsPerFrame)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			failed := false
			fs.EachError(func(topic string, p int32, err error) {
				if errors.Is(err, context.Canceled) {
					return
				}
				failed = true
				m.c.Log().Warn("devicehive: fetch failed", "group", m.group, "topic", topic, "partition", p, "err", err)
			})
			recs := fs.Records()
			if len(recs) == 0 {
				if failed && !backoff.Sleep(ctx, time.Second) {
					return // errors only: do not spin on a persistent one
				}
				continue
			}
			if !m.enqueue(ctx, newBatch(m, recs)) {
				return
			}
		}
	}()
}

// enqueue puts b in the connection's send queue. When it does not fit, the
// member stops fetching until the writer has made room.
func (m *member) enqueue(ctx context.Context, b *batch) bool {
	ok, room := m.c.queue.tryPush(b)
	if ok {
		return true
	}
	m.cl.PauseFetchTopics(m.topics...)
	defer m.cl.ResumeFetchTopics(m.topics...)
	m.c.h.metrics.pauses.Inc()
	m.c.Log().Debug("devicehive: send queue full, fetching paused", "group", m.group, "queued_bytes", m.c.queue.size())
	for {
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
		if ok, room = m.c.queue.tryPush(b); ok {
			return true
		}
	}
}

// close ends the membership: nothing more of it is delivered, its poller
// stops, and it leaves the group within timeout (the revoke commits the
// offsets of what was written). Safe to call once.
func (m *member) close(timeout time.Duration) {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	if m.pollCancel != nil {
		m.pollCancel()
		<-m.pollDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	if err := m.cl.LeaveGroupContext(ctx); err != nil {
		m.c.Log().Warn("devicehive: leaving the group failed; Kafka drops the member after its session timeout", "group", m.group, "err", err)
	}
	cancel()
	m.cl.Close()
	m.c.h.metrics.subscriptions.Dec()
}

// closeMembers closes ms in parallel and waits for them.
func closeMembers(ms []*member, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() { m.close(timeout) })
	}
	wg.Wait()
}

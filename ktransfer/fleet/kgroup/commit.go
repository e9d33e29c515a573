package kgroup

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
)

// commitReq is one claim's commit waiting for the committer.
type commitReq struct {
	c    *Claim
	off  int64
	meta string
	res  chan error
}

// errNotInGroup stops a commit the group client would send without a member
// id or generation: Kafka takes such a commit as an administrator's, and
// accepts it in an empty group whatever happened meanwhile.
var errNotInGroup = errors.New("not a member of the group at the moment (joining)")

// errOtherMember stops a claim's commit the group client would send under
// another member id than the one the partition was assigned to: the member
// that owned the claim was removed, and the client joined again as a new one.
var errOtherMember = errors.New("the group member the partition was assigned to is gone")

// commit sends one partition's offset, batched with the commits other claims
// make meanwhile, and returns its outcome (see classify).
func (m *Member) commit(c *Claim, off int64, meta string) error {
	r := &commitReq{c: c, off: off, meta: meta, res: make(chan error, 1)}
	select {
	case m.commitQ <- r:
	case <-m.stop:
		return fmt.Errorf("%w: the member left the group", fleet.ErrNotOwner)
	}
	select {
	case err := <-r.res:
		return err
	case <-m.done:
		return fmt.Errorf("%w: the member left the group", fleet.ErrNotOwner)
	}
}

// commitLoop sends the queued commits, all that wait in one request, until the
// member stops.
func (m *Member) commitLoop() {
	for {
		var batch []*commitReq
		select {
		case r := <-m.commitQ:
			batch = append(batch, r)
		case <-m.stop:
			for {
				select {
				case r := <-m.commitQ:
					r.res <- fmt.Errorf("%w: the member left the group", fleet.ErrNotOwner)
				default:
					return
				}
			}
		}
	more:
		for len(batch) < 10000 {
			select {
			case r := <-m.commitQ:
				batch = append(batch, r)
			default:
				break more
			}
		}
		m.commitBatch(batch)
	}
}

// commitBatch commits the batch with the group client, which sends the
// member id and generation or epoch it holds; the metadata of each partition
// is its claim's. Claims fenced or released since they asked are answered
// without a request, and a claim assigned to another member id than the one
// the client sends is refused: commitMu keeps onLost from fencing claims
// while a batch is checked and sent.
func (m *Member) commitBatch(batch []*commitReq) {
	m.commitMu.RLock()
	defer m.commitMu.RUnlock()
	offsets := map[int32]kgo.EpochOffset{}
	byPart := map[int32]*commitReq{}
	var send []*commitReq
	for _, r := range batch {
		if err := r.c.stateErr(); err != nil {
			r.res <- err
			continue
		}
		offsets[r.c.p] = kgo.EpochOffset{Epoch: -1, Offset: r.off}
		byPart[r.c.p] = r
		send = append(send, r)
	}
	if len(send) == 0 {
		return
	}
	refused := map[int32]bool{} // partitions taken out by the pre-commit check
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	ctx = kgo.PreCommitFnContext(ctx, ownedOnly(byPart, refused))
	results, reqErr := m.commitSync(ctx, offsets)
	m.answer(send, refused, results, reqErr)
}

// ownedOnly returns the pre-commit check of a batch: it keeps in the request
// the partitions whose claim belongs to the member the request is sent as,
// with their metadata, and marks the others in refused. A request with no
// member, or left with no partition, is not sent.
func ownedOnly(byPart map[int32]*commitReq, refused map[int32]bool) func(*kmsg.OffsetCommitRequest) error {
	return func(req *kmsg.OffsetCommitRequest) error {
		if req.MemberID == "" || req.Generation < 0 {
			return errNotInGroup
		}
		kept := req.Topics[:0]
		for _, t := range req.Topics {
			ps := t.Partitions[:0]
			for _, rp := range t.Partitions {
				r := byPart[rp.Partition]
				if r == nil || r.c.memberID != req.MemberID {
					refused[rp.Partition] = true
					continue
				}
				meta := r.meta
				rp.Metadata = &meta
				ps = append(ps, rp)
			}
			if len(ps) > 0 {
				t.Partitions = ps
				kept = append(kept, t)
			}
		}
		req.Topics = kept
		if len(kept) == 0 && len(refused) > 0 {
			return errOtherMember
		}
		return nil
	}
}

// commitSync commits offsets for the module's topic and returns Kafka's
// answer per partition, or the error of the whole request.
func (m *Member) commitSync(ctx context.Context, offsets map[int32]kgo.EpochOffset) (map[int32]error, error) {
	results := map[int32]error{}
	var reqErr error
	m.cl.Load().CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{m.cfg.Topic: offsets},
		func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				reqErr = err
				return
			}
			// From version 10 on, Kafka answers by topic id, not name.
			var ids [][16]byte
			for _, t := range req.Topics {
				if t.Topic == m.cfg.Topic {
					ids = append(ids, t.TopicID)
				}
			}
			for _, t := range resp.Topics {
				if t.Topic != m.cfg.Topic && (t.Topic != "" || !slices.Contains(ids, t.TopicID)) {
					continue
				}
				for _, p := range t.Partitions {
					results[p.Partition] = kerr.ErrorForCode(p.ErrorCode)
				}
			}
		})
	return results, reqErr
}

// answer tells each request of a sent batch its outcome: refused partitions
// are fenced at once; an error that fences the member fences every claim;
// a topic Kafka no longer knows by its id makes the client subscribe again.
func (m *Member) answer(send []*commitReq, refused map[int32]bool, results map[int32]error, reqErr error) {
	var fenceMember error
	recreated := false
	for _, r := range send {
		p := r.c.p
		if refused[p] {
			r.c.fenceNow()
			r.res <- fmt.Errorf("%w: %v", fleet.ErrNotOwner, errOtherMember)
			continue
		}
		err, ok := reqErr, true
		if err == nil {
			err, ok = results[p]
			if !ok {
				err = errors.New("the answer of Kafka does not name the partition")
			}
		}
		if errors.Is(err, kerr.UnknownTopicID) {
			recreated = true
		}
		var fence bool
		err, fence = classify(err)
		if fence && fenceMember == nil {
			fenceMember = err
		}
		r.res <- err
	}
	if fenceMember != nil {
		m.fenceAll(fenceMember.Error())
	}
	if recreated {
		m.resubscribe()
	}
}

// resubscribe has the group client forget the topic and subscribe to it
// again: the topic was deleted and recreated, and the client refuses to
// commit under the old topic id (UNKNOWN_TOPIC_ID) until it learns the new
// one. The coordinator revokes the old topic's partitions (the claims drain;
// their final commits fail the same way) and assigns the new topic's. One at
// a time, in the background: the purge waits for the revocation, which waits
// for commits.
func (m *Member) resubscribe() {
	if m.closing.Load() || !m.resubscribing.CompareAndSwap(false, true) {
		return
	}
	m.bg.Go(func() {
		defer m.resubscribing.Store(false)
		cl := m.cl.Load()
		m.log.Warn("the topic was deleted and recreated: the group member subscribes to the new topic", "topic", m.cfg.Topic)
		cl.PurgeTopicsFromClient(m.cfg.Topic)
		if !m.closing.Load() {
			cl.AddConsumeTopics(m.cfg.Topic)
		}
	})
}

// classify maps a commit's or offset fetch's failure to the claim's errors:
// the coordinator refusing the member (unknown member, stale generation,
// fenced epoch or instance) wraps fleet.ErrNotOwner and fences the member;
// what a later attempt may overcome (the coordinator moving or loading, a
// rebalance in progress, a member epoch the client has not learnt yet, a
// connection or a timeout) wraps fleet.ErrNoSession; the rest is returned as
// it is.
func classify(err error) (error, bool) {
	if err == nil {
		return nil, false
	}
	var ke *kerr.Error
	switch {
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.FencedInstanceID), errors.Is(err, kerr.FencedMemberEpoch):
		return fmt.Errorf("%w: Kafka refused the commit of this member: %v", fleet.ErrNotOwner, err), true
	case errors.Is(err, errOtherMember):
		return fmt.Errorf("%w: %v", fleet.ErrNotOwner, err), false
	case errors.Is(err, errNotInGroup), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kerr.StaleMemberEpoch), errors.Is(err, kerr.RebalanceInProgress):
		return fmt.Errorf("%w: %v", fleet.ErrNoSession, err), false
	case errors.As(err, &ke):
		if ke.Retriable {
			return fmt.Errorf("%w: %v", fleet.ErrNoSession, err), false
		}
		return err, false
	}
	// Not an answer of Kafka: the request did not make it (connection,
	// client closing).
	return fmt.Errorf("%w: %v", fleet.ErrNoSession, err), false
}

package kafkagroups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listedGroup is what ListGroups says of a group.
type listedGroup struct {
	typ   string // classic, consumer (KIP-848); "" from brokers before Kafka 3.8
	state string // Empty, Stable, PreparingRebalance, ...; "" from brokers before 2.6
}

// list lists the groups of every broker. complete is false when some broker
// did not answer; listed is nil when none did. Share groups (KIP-932) are
// left out: their offsets are not consumer group offsets.
func (s *Source) list(ctx context.Context) (listed map[string]listedGroup, complete bool, err error) {
	req := kmsg.NewPtrListGroupsRequest()
	shards := s.cl.RequestSharded(ctx, req)
	var errs []error
	complete = true
	for _, sh := range shards {
		if sh.Err == nil {
			if code := sh.Resp.(*kmsg.ListGroupsResponse).ErrorCode; code != 0 {
				sh.Err = kerr.ErrorForCode(code)
			}
		}
		if sh.Err != nil {
			complete = false
			errs = append(errs, fmt.Errorf("list the consumer groups of broker %d: %w", sh.Meta.NodeID, sh.Err))
			continue
		}
		if listed == nil {
			listed = map[string]listedGroup{}
		}
		for _, g := range sh.Resp.(*kmsg.ListGroupsResponse).Groups {
			if strings.EqualFold(g.GroupType, "share") || g.ProtocolType == "share" {
				continue
			}
			listed[g.Group] = listedGroup{typ: strings.ToLower(g.GroupType), state: g.GroupState}
		}
	}
	return listed, complete, errors.Join(errs...)
}

// described is what a describe said of a group: each partition's owner and
// the topics its members subscribe to.
type described struct {
	owners map[tp]string
	topics []string
}

// idle reports whether a group in state needs no describing: it has no
// members.
func idle(state string) bool {
	return strings.EqualFold(state, "Empty") || strings.EqualFold(state, "Dead")
}

// rebalancing reports whether a classic group in state is between
// assignments: its members have none to show.
func rebalancing(state string) bool {
	return strings.EqualFold(state, "PreparingRebalance") || strings.EqualFold(state, "CompletingRebalance")
}

// describe describes the groups of names that have members, the classic ones
// with one DescribeGroups and the KIP-848 ones with one ConsumerGroupDescribe
// per coordinator. A group is missing from the result when it was not listed
// this time, when describing it failed (err says why) or when it was
// rebalancing: its owners stay as they were.
func (s *Source) describe(ctx context.Context, names []string, listed map[string]listedGroup) (map[string]*described, error) {
	out := make(map[string]*described, len(names))
	var classic, consumer []string
	for _, n := range names {
		l, ok := listed[n]
		switch {
		case !ok:
		case idle(l.state):
			out[n] = &described{}
		case l.typ == "consumer":
			consumer = append(consumer, n)
		default:
			classic = append(classic, n)
		}
	}
	var errs []error
	if len(classic) > 0 {
		errs = append(errs, s.describeClassic(ctx, classic, out))
	}
	if len(consumer) > 0 {
		errs = append(errs, s.describeConsumer(ctx, consumer, out))
	}
	return out, errors.Join(errs...)
}

// describeClassic describes classic groups: a member's assignment and
// subscription are in the consumer protocol's encoding.
func (s *Source) describeClassic(ctx context.Context, names []string, out map[string]*described) error {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = names
	var errs []error
	for _, sh := range s.cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			errs = append(errs, fmt.Errorf("describe %d groups: %w", len(sh.Req.(*kmsg.DescribeGroupsRequest).Groups), sh.Err))
			continue
		}
		for _, g := range sh.Resp.(*kmsg.DescribeGroupsResponse).Groups {
			if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
				if errors.Is(err, kerr.GroupIDNotFound) {
					out[g.Group] = &described{} // gone since the listing
					continue
				}
				errs = append(errs, fmt.Errorf("describe group %q: %w", g.Group, err))
				continue
			}
			if rebalancing(g.State) {
				continue
			}
			d := &described{owners: map[tp]string{}}
			for _, m := range g.Members {
				if g.ProtocolType != "consumer" {
					continue // connect and others: no partitions to tell
				}
				owner := ownerName(m.InstanceID, m.ClientID, m.MemberID, m.ClientHost)
				var meta kmsg.ConsumerMemberMetadata
				if len(m.ProtocolMetadata) > 0 && meta.ReadFrom(m.ProtocolMetadata) == nil {
					d.topics = append(d.topics, meta.Topics...)
				}
				var a kmsg.ConsumerMemberAssignment
				if len(m.MemberAssignment) == 0 || a.ReadFrom(m.MemberAssignment) != nil {
					continue
				}
				for _, t := range a.Topics {
					d.topics = append(d.topics, t.Topic)
					for _, p := range t.Partitions {
						d.owners[tp{t.Topic, p}] = owner
					}
				}
			}
			d.topics = sortedUnique(d.topics)
			out[g.Group] = d
		}
	}
	return errors.Join(errs...)
}

// describeConsumer describes KIP-848 consumer groups. Their assignments name
// topics by id; ids not known yet are looked up in the metadata once.
func (s *Source) describeConsumer(ctx context.Context, names []string, out map[string]*described) error {
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = names
	type assigned struct {
		group string
		id    [16]byte
		name  string
		parts []int32
		owner string
	}
	var (
		errs    []error
		pending []assigned
		unknown bool
	)
	for _, sh := range s.cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			errs = append(errs, fmt.Errorf("describe %d consumer groups: %w", len(sh.Req.(*kmsg.ConsumerGroupDescribeRequest).Groups), sh.Err))
			continue
		}
		for _, g := range sh.Resp.(*kmsg.ConsumerGroupDescribeResponse).Groups {
			if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
				if errors.Is(err, kerr.GroupIDNotFound) {
					out[g.Group] = &described{}
					continue
				}
				errs = append(errs, fmt.Errorf("describe consumer group %q: %w", g.Group, err))
				continue
			}
			d := &described{owners: map[tp]string{}}
			for _, m := range g.Members {
				owner := ownerName(m.InstanceID, m.ClientID, m.MemberID, m.ClientHost)
				d.topics = append(d.topics, m.SubscribedTopics...)
				for _, t := range m.Assignment.TopicPartitions {
					name := t.Topic
					if name == "" {
						name = s.topicIDs[t.TopicID]
						unknown = unknown || name == ""
					}
					pending = append(pending, assigned{g.Group, t.TopicID, name, t.Partitions, owner})
				}
			}
			out[g.Group] = d
		}
	}
	if unknown {
		if err := s.loadTopicIDs(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range pending {
		name := a.name
		if name == "" {
			name = s.topicIDs[a.id]
		}
		if name == "" {
			continue // a topic deleted meanwhile
		}
		d := out[a.group]
		d.topics = append(d.topics, name)
		for _, p := range a.parts {
			d.owners[tp{name, p}] = a.owner
		}
	}
	for _, n := range names {
		if d := out[n]; d != nil {
			d.topics = sortedUnique(d.topics)
		}
	}
	return errors.Join(errs...)
}

// loadTopicIDs reads every topic's id from the metadata, replacing the ids
// known before (a recreated topic has a new id).
func (s *Source) loadTopicIDs(ctx context.Context) error {
	md, err := s.adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("read topic ids from the metadata: %w", err)
	}
	ids := make(map[[16]byte]string, len(md.Topics))
	for _, t := range md.Topics {
		if t.Err == nil {
			ids[t.ID] = t.Topic
		}
	}
	s.topicIDs = ids
	return nil
}

// ownerName names a member: INSTANCE@HOST with its group.instance.id, else
// its client id, else its member id, and the host it connected from (Kafka
// writes it with a leading slash, which is dropped).
func ownerName(instanceID *string, clientID, memberID, host string) string {
	name := clientID
	switch {
	case instanceID != nil && *instanceID != "":
		name = *instanceID
	case name == "":
		name = memberID
	}
	if name == "" {
		name = "?" // an owner Kafka does not name still means owned
	}
	if host = strings.TrimPrefix(host, "/"); host != "" {
		name += "@" + host
	}
	return name
}

// sortedUnique sorts ts and drops repeats.
func sortedUnique(ts []string) []string {
	slices.Sort(ts)
	return slices.Compact(ts)
}

package devicehive

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// maxTopicsPerMessage bounds the topics one topic create or topic subscribe
// names.
const maxTopicsPerMessage = 100

// maxGroupLen bounds a consumer group's name.
const maxGroupLen = 249

// handle runs one message and returns its reply and, for a subscribe, what to
// run once the reply is written (start delivering: notifications never come
// before the subscribe's reply).
func (c *conn) handle(m *message) (*reply, func()) {
	if m.err != nil {
		return errorReply(m, m.err), nil
	}
	switch m.t {
	case typeTopic:
		switch m.a {
		case actionCreate:
			return c.topicCreate(m), nil
		case actionList:
			return c.topicList(m), nil
		case actionSubscribe:
			return c.subscribe(m)
		case actionUnsubscribe:
			return c.unsubscribe(m), nil
		}
	case typeNotif:
		if m.a == actionCreate {
			return c.notifCreate(m), nil
		}
	case typeHealth:
		return okReply(m, c.h.health()), nil
	default:
		return errorReply(m, fmt.Errorf("%w %q: use topic, notif or health", ErrUnknownType, m.t)), nil
	}
	return errorReply(m, fmt.Errorf("%w %q for type %q", ErrUnknownAction, m.a, m.t)), nil
}

// decodePayload decodes m's payload into dst. Fields dst does not have are
// ignored, as upstream's JavaScript ignores them.
func decodePayload(m *message, dst any, shape string) error {
	if m.p == nil {
		return fmt.Errorf("%w: p is required: %s", ErrBadPayload, shape)
	}
	if err := json.Unmarshal(m.p, dst); err != nil {
		return fmt.Errorf("%w: %v; want %s", ErrBadPayload, err, shape)
	}
	return nil
}

// topicNames checks a list of topics: not empty, at most maxTopicsPerMessage,
// each allowed by the topic rules. It returns them without duplicates, in
// their order.
func (c *conn) topicNames(topics []string) ([]string, error) {
	if len(topics) == 0 {
		return nil, fmt.Errorf("%w: the list of topics is empty", ErrBadPayload)
	}
	if len(topics) > maxTopicsPerMessage {
		return nil, fmt.Errorf("%w: %d topics, at most %d per message", ErrBadPayload, len(topics), maxTopicsPerMessage)
	}
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		if err := c.h.core.CheckTopic(t); err != nil {
			return nil, err
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// topicCreate creates topics with the broker's default partitions and
// replication. A topic that exists already counts as created.
func (c *conn) topicCreate(m *message) *reply {
	if !c.h.opts.AllowTopicCreate {
		return errorReply(m, ErrTopicCreateDisabled)
	}
	var topics []string
	if err := decodePayload(m, &topics, `["topic",...]`); err != nil {
		return errorReply(m, err)
	}
	topics, err := c.topicNames(topics)
	if err != nil {
		return errorReply(m, err)
	}
	if c.h.core.Draining() {
		return errorReply(m, proxy.ErrShuttingDown)
	}
	ctx, cancel := context.WithTimeout(c.Context(), c.h.opts.RequestTimeout)
	defer cancel()
	resps, err := kadm.NewClient(c.h.admin).CreateTopics(ctx, -1, -1, nil, topics...)
	if err != nil {
		return errorReply(m, kafkaError(err))
	}
	var errs []error
	for _, t := range topics {
		r, ok := resps[t]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("topic %q: Kafka's answer lacks it: %w", t, proxy.ErrKafkaUnavailable))
		case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			detail := ""
			if r.ErrMessage != "" {
				detail = " (" + r.ErrMessage + ")"
			}
			errs = append(errs, fmt.Errorf("topic %q: %w%s", t, r.Err, detail))
		}
	}
	if len(errs) > 0 {
		return errorReply(m, errors.Join(errs...))
	}
	c.Log().Info("devicehive: topics created", "topics", topics)
	return okReply(m, topics)
}

// topicPartition is one element of a topic list reply.
type topicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// topicList lists the partitions of every topic the topic rules allow.
func (c *conn) topicList(m *message) *reply {
	ctx, cancel := context.WithTimeout(c.Context(), c.h.opts.RequestTimeout)
	defer cancel()
	md, err := kadm.NewClient(c.h.admin).Metadata(ctx)
	if err != nil {
		return errorReply(m, kafkaError(err))
	}
	out := []topicPartition{}
	for _, t := range md.Topics.Sorted() {
		if t.Err != nil || c.h.core.CheckTopic(t.Topic) != nil {
			continue
		}
		for _, p := range t.Partitions.Sorted() {
			out = append(out, topicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	return okReply(m, out)
}

// subscribeRequest is the payload of topic subscribe.
type subscribeRequest struct {
	T     []string `json:"t"`
	Group *string  `json:"consumer_group"`
}

// subscribe makes the connection a member of the consumer group for topics.
// The reply comes once the group assigned this member its partitions (maybe
// none): every record written to the topics afterwards is delivered to one
// member of the group. Subscribing again to a group the connection is in
// leaves it and joins again with the topics of both subscriptions.
func (c *conn) subscribe(m *message) (*reply, func()) {
	var req subscribeRequest
	if err := decodePayload(m, &req, `{"t":["topic",...],"consumer_group":"group"}`); err != nil {
		return errorReply(m, err), nil
	}
	topics, err := c.topicNames(req.T)
	if err != nil {
		return errorReply(m, err), nil
	}
	group := c.h.opts.DefaultGroup
	if req.Group != nil && *req.Group != "" {
		group = *req.Group
	}
	switch {
	case group == "":
		return errorReply(m, ErrNoConsumerGroup), nil
	case len(group) > maxGroupLen || strings.ContainsFunc(group, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return errorReply(m, fmt.Errorf("%w: consumer_group must be 1..%d characters without control characters", ErrBadPayload, maxGroupLen)), nil
	case c.h.core.Draining():
		return errorReply(m, proxy.ErrShuttingDown), nil
	}
	if err := c.topicsExist(topics); err != nil {
		return errorReply(m, err), nil
	}

	c.subsMu.Lock()
	old := -1
	for i, s := range c.subs {
		if s.group == group {
			old = i
		}
	}
	if old < 0 && len(c.subs) >= c.h.opts.MaxSubscriptions {
		c.subsMu.Unlock()
		return errorReply(m, fmt.Errorf("%w: %d consumer groups, max_subscriptions is %d; unsubscribe first",
			ErrTooManySubscriptions, len(c.subs), c.h.opts.MaxSubscriptions)), nil
	}
	var prev *member
	if old >= 0 {
		prev = c.subs[old]
		for _, t := range prev.topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
		if len(topics) == len(prev.topics) {
			c.subsMu.Unlock()
			return okReply(m, prev.topics), nil // nothing new
		}
		c.subs = slices.Delete(c.subs, old, old+1)
	}
	c.subsMu.Unlock()
	if prev != nil {
		prev.close(c.h.opts.RequestTimeout)
	}

	mem, err := newMember(c, group, topics)
	if err != nil {
		return errorReply(m, kafkaError(err)), nil
	}
	if err := mem.waitAssigned(c.Context()); err != nil {
		mem.close(c.h.opts.RequestTimeout)
		if errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %w", proxy.ErrCanceled, err)
		}
		return errorReply(m, err), nil
	}
	c.subsMu.Lock()
	c.subs = append(c.subs, mem)
	c.subsMu.Unlock()
	c.Log().Info("devicehive: subscribed", "group", group, "topics", mem.topics)
	return okReply(m, mem.topics), mem.poll
}

// topicsExist checks that Kafka has every topic.
func (c *conn) topicsExist(topics []string) error {
	ctx, cancel := context.WithTimeout(c.Context(), c.h.opts.RequestTimeout)
	defer cancel()
	md, err := kadm.NewClient(c.h.admin).Metadata(ctx, topics...)
	if err != nil {
		return kafkaError(err)
	}
	for _, t := range topics {
		d, ok := md.Topics[t]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			return fmt.Errorf("%w %q: Kafka does not have it", proxy.ErrUnknownTopic, t)
		case d.Err != nil:
			return fmt.Errorf("topic %q: %w", t, kafkaError(d.Err))
		}
	}
	return nil
}

// unsubscribeRequest is the optional payload of topic unsubscribe.
type unsubscribeRequest struct {
	Group *string `json:"consumer_group"`
}

// unsubscribe leaves the connection's consumer groups (or the one named),
// committing the offsets of what was sent. Nothing of them is delivered after
// the reply. The reply lists the topics left.
func (c *conn) unsubscribe(m *message) *reply {
	var req unsubscribeRequest
	if m.p != nil {
		if err := decodePayload(m, &req, `nothing, or {"consumer_group":"group"}`); err != nil {
			return errorReply(m, err)
		}
	}
	c.subsMu.Lock()
	var leaving []*member
	c.subs = slices.DeleteFunc(c.subs, func(s *member) bool {
		if req.Group == nil || *req.Group == s.group {
			leaving = append(leaving, s)
			return true
		}
		return false
	})
	c.subsMu.Unlock()
	closeMembers(leaving, c.h.opts.RequestTimeout)
	left := []string{}
	for _, s := range leaving {
		left = append(left, s.topics...)
	}
	slices.Sort(left)
	left = slices.Compact(left)
	if len(leaving) > 0 {
		c.Log().Info("devicehive: unsubscribed", "topics", left)
	}
	return okReply(m, left)
}

// notifRequest is the payload of notif create.
type notifRequest struct {
	T    string          `json:"t"`
	M    json.RawMessage `json:"m"`
	Part *int32          `json:"part"`
	Key  *string         `json:"key"`
}

// ackPayload is the payload of an acknowledged notif create.
type ackPayload struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// notifCreate writes the message m to topic t as one record, through the
// core, and answers once Kafka acknowledged it. A string m is written as it
// is; any other JSON value as its JSON text.
func (c *conn) notifCreate(m *message) *reply {
	var req notifRequest
	if err := decodePayload(m, &req, `{"t":"topic","m":message,"part":N (optional),"key":"key" (optional)}`); err != nil {
		return errorReply(m, err)
	}
	value, err := notifValue(req.M)
	if err != nil {
		return errorReply(m, err)
	}
	if req.Part != nil && *req.Part < 0 {
		return errorReply(m, fmt.Errorf("%w: part %d is negative", ErrBadPayload, *req.Part))
	}
	rec, err := c.h.core.Admit(req.T)
	if err != nil {
		return errorReply(m, err)
	}
	defer rec.Release()
	if req.Part != nil {
		rec.Partition = *req.Part
	}
	if req.Key != nil {
		rec.SetKey(*req.Key)
	}
	if err := rec.SetValue(value); err != nil {
		return errorReply(m, err)
	}
	ack, err := c.h.core.Commit(c.Context(), rec)
	if err != nil {
		c.h.log.Debug("devicehive: notif create failed", "ws", c.ID(), "topic", req.T, "err", err)
		return errorReply(m, err)
	}
	return okReply(m, ackPayload{Topic: ack.Topic, Partition: ack.Partition, Offset: ack.Offset})
}

// notifValue returns the record value of a notif create's m.
func notifValue(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil, fmt.Errorf("%w: m, the message, is required", ErrBadPayload)
	}
	if raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%w: m: %v", ErrBadPayload, err)
	}
	return []byte(s), nil
}

// consumerInfo is one element of the health reply.
type consumerInfo struct {
	WS     uint64   `json:"ws"`
	Topics []string `json:"topics"`
	Groups []string `json:"consumer_groups"`
}

// healthPayload is the payload of the health reply.
type healthPayload struct {
	Consumers []consumerInfo `json:"consumers"`
}

// health lists the open connections (by number, "ws") with their topics and
// consumer groups.
func (h *Handler) health() healthPayload {
	conns := h.gate.Conns()
	out := healthPayload{Consumers: make([]consumerInfo, 0, len(conns))}
	for _, c := range conns {
		info := consumerInfo{WS: c.ID(), Topics: []string{}, Groups: []string{}}
		c.subsMu.Lock()
		for _, s := range c.subs {
			info.Groups = append(info.Groups, s.group)
			info.Topics = append(info.Topics, s.topics...)
		}
		c.subsMu.Unlock()
		slices.Sort(info.Topics)
		info.Topics = slices.Compact(info.Topics)
		slices.Sort(info.Groups)
		out.Consumers = append(out.Consumers, info)
	}
	slices.SortFunc(out.Consumers, func(a, b consumerInfo) int { return int(a.WS) - int(b.WS) })
	return out
}

// toNotification converts a record to a notification with id.
func toNotification(id int64, r *kgo.Record) notification {
	n := notification{ID: id, T: typeNotif, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	if textOf(r.Key, r.Value) {
		n.P = string(r.Value)
		if r.Key != nil {
			k := string(r.Key)
			n.Key = &k
		}
		return n
	}
	n.Enc = "base64"
	n.P = base64.StdEncoding.EncodeToString(r.Value)
	if r.Key != nil {
		k := base64.StdEncoding.EncodeToString(r.Key)
		n.Key = &k
	}
	return n
}

// kafkaError classifies an error of a Kafka request the handler sent itself
// (not through the core) with the core's sentinels, so Status maps it as the
// core's: Kafka's own errors pass as they are (proxy.Code knows them), a
// deadline becomes ErrTimeout, and a failure to reach Kafka
// ErrKafkaUnavailable.
func kafkaError(err error) error {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", proxy.ErrTimeout, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %v", proxy.ErrCanceled, err)
	default:
		return fmt.Errorf("%w: %v", proxy.ErrKafkaUnavailable, err)
	}
}

package pubsub

import (
	"context"
	"fmt"
	"time"
)

// commandKind is the metric label of a decoded request's command.
func commandKind(req *PubSubReq) string {
	switch req.GetReq().(type) {
	case *PubSubReq_CmdPing:
		return inPing
	case *PubSubReq_CmdEmpty:
		return inEmpty
	case *PubSubReq_CmdKafkaListOffset:
		return inListOffset
	case *PubSubReq_CmdKafkaFetch:
		return inFetch
	default:
		return inNoCommand
	}
}

// needsKafka reports whether answering req takes a Kafka request; the others
// are answered as soon as they are read.
func needsKafka(req *PubSubReq) bool {
	switch req.GetReq().(type) {
	case *PubSubReq_CmdKafkaListOffset, *PubSubReq_CmdKafkaFetch:
		return true
	}
	return false
}

// answer runs one decoded request and returns its answer, never nil. The Kafka
// commands are bounded by Options.RequestTimeout and end early when ctx does
// (the connection closed).
func (h *Handler) answer(ctx context.Context, req *PubSubReq) *PubSubResp {
	seq := req.GetSequence()
	switch cmd := req.GetReq().(type) {
	case *PubSubReq_CmdPing:
		return &PubSubResp{Sequence: seq, Resp: &PubSubResp_PongResp{PongResp: &PongResp{State: cmd.CmdPing.GetState()}}}

	case *PubSubReq_CmdKafkaListOffset:
		c := cmd.CmdKafkaListOffset
		topic, partition := c.GetTopic(), c.GetPartition()
		start := time.Now()
		offset, err := h.run(ctx, topic, partition, func(ctx context.Context) (int64, error) {
			return h.reader.listOffset(ctx, topic, partition, c.GetTimestamp())
		})
		h.metrics.duration.WithLabelValues(inListOffset).Observe(time.Since(start).Seconds())
		if err != nil {
			return h.errorResp(seq, fmt.Errorf("failed to list offset, topic: %s, partition: %d, err: %w", topic, partition, err))
		}
		return &PubSubResp{Sequence: seq, Resp: &PubSubResp_KafkaListOffsetResp{KafkaListOffsetResp: &KafkaListOffsetResp{Offset: offset}}}

	case *PubSubReq_CmdKafkaFetch:
		c := cmd.CmdKafkaFetch
		topic, partition := c.GetTopic(), c.GetPartition()
		start := time.Now()
		var msgs []*KafkaMessage
		_, err := h.run(ctx, topic, partition, func(ctx context.Context) (int64, error) {
			var err error
			msgs, err = h.reader.fetch(ctx, topic, partition, c.GetOffset())
			return 0, err
		})
		h.metrics.duration.WithLabelValues(inFetch).Observe(time.Since(start).Seconds())
		if err != nil {
			return h.errorResp(seq, fmt.Errorf("failed to fetch message, topic: %s, partition: %d, err: %w", topic, partition, err))
		}
		h.metrics.records.Add(float64(len(msgs)))
		return &PubSubResp{Sequence: seq, Resp: &PubSubResp_KafkaFetchResp{KafkaFetchResp: &KafkaFetchResp{Messages: msgs}}}

	default: // CmdEmpty, or no command at all
		return h.errorResp(seq, ErrUnknownCommand)
	}
}

// run applies the topic rules, then calls fn with the command's deadline.
func (h *Handler) run(ctx context.Context, topic string, partition int32, fn func(context.Context) (int64, error)) (int64, error) {
	if err := checkPartition(topic, partition); err != nil {
		return 0, err
	}
	if err := h.opts.TopicAllowed(topic); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrTopicNotAllowed, err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.RequestTimeout)
	defer cancel()
	return fn(ctx)
}

// errorResp is the ErrorResp answer to the request of sequence seq, counted
// by its machine code.
func (h *Handler) errorResp(seq int64, err error) *PubSubResp {
	code, label := errorCode(err)
	h.metrics.errors.WithLabelValues(label).Inc()
	return &PubSubResp{Sequence: seq, Resp: &PubSubResp_ErrorResp{ErrorResp: &ErrorResp{Code: code, Message: err.Error()}}}
}

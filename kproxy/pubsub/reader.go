package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxTopicLen is Kafka's longest topic name.
const maxTopicLen = 249

// reader answers offset lookups and fetches of single partitions through a
// shared franz-go client: one ListOffsets request, or one sessionless Fetch
// request sent to the partition's leader, per command. It keeps no state of
// its own beyond the client's metadata cache, so it is safe for concurrent use.
//
// Fetches never wait inside the broker (MaxWait 0): Kafka answers the requests
// of one connection in order, and all fetches of the client to one broker
// share a connection, so one request parked at a log end would hold up every
// other client's fetch. A fetch at the log end polls instead, every
// pollInterval until maxWait has passed.
type reader struct {
	cl           *kgo.Client
	maxBytes     int32
	maxWait      time.Duration
	pollInterval time.Duration
	decompressor kgo.Decompressor
}

func newReader(cl *kgo.Client, maxBytes int32, maxWait time.Duration) *reader {
	return &reader{
		cl:           cl,
		maxBytes:     maxBytes,
		maxWait:      maxWait,
		pollInterval: max(min(maxWait/5, 100*time.Millisecond), 5*time.Millisecond),
		decompressor: kgo.DefaultDecompressor(),
	}
}

// checkPartition refuses what no Kafka can have, before asking one.
func checkPartition(topic string, partition int32) error {
	if topic == "" {
		return fmt.Errorf("%w: empty topic", ErrInvalidRequest)
	}
	if len(topic) > maxTopicLen {
		return fmt.Errorf("%w: topic name of %d bytes, longer than Kafka's %d", ErrInvalidRequest, len(topic), maxTopicLen)
	}
	if partition < 0 {
		return fmt.Errorf("%w: negative partition", ErrInvalidRequest)
	}
	return nil
}

// The commands below expect a topic and partition checkPartition accepted.

// listOffset returns the log start (timestamp -2), the log end (-1, the offset
// the next record gets) or the first offset whose record's timestamp is at or
// after timestamp (Unix milliseconds; -1 when every record is older). Records of
// open transactions are not counted as written (read_committed).
func (r *reader) listOffset(ctx context.Context, topic string, partition int32, timestamp int64) (int64, error) {
	if timestamp < -2 {
		return 0, fmt.Errorf("%w: timestamp %d: want -2 (log start), -1 (log end) or a time in Unix milliseconds", ErrInvalidRequest, timestamp)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = 1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.Timestamp = timestamp
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// The client sends it to the partition's leader and retries a stale one.
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return 0, kafkaError(err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic != topic || p.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, kafkaError(err)
			}
			return p.Offset, nil
		}
	}
	return 0, fmt.Errorf("%w: Kafka's answer lacks the partition", ErrUnknownTopicOrPartition)
}

// maxFetchRounds bounds the Fetch requests of one command that return records.
const maxFetchRounds = 8

// fetch returns records of the partition in offset order, the first one at
// offset, or the first record after it when offset holds none (a transaction
// marker, an aborted record or one removed by compaction). At the log end it
// waits up to maxWait for records, then returns none.
//
// An answer holds whole record batches as Kafka stores them (the first from
// offset on): while they stay within maxBytes as stored, compressed or not,
// as Kafka's own fetch limit counts, but always the batch of offset, and
// always the record after offset when there is one, so that a client asking
// again from the last offset it got (as the APISIX clients do) gets further.
// No batch is decoded twice for one answer, and none is cut.
func (r *reader) fetch(ctx context.Context, topic string, partition int32, offset int64) ([]*KafkaMessage, error) {
	deadline := time.Now().Add(r.maxWait)
	pos := offset
	budget := int(r.maxBytes) // batch bytes still allowed
	var (
		out            []*KafkaMessage
		rounds         int
		timer          *time.Timer
		fresh, retried bool
	)
	for {
		// At least one byte: Kafka then answers with one whole batch.
		rp, err := r.fetchOnce(ctx, topic, partition, pos, int32(max(budget, 1)), fresh)
		fresh = false
		if err != nil {
			if len(out) > 0 {
				return out, nil // what was read so far; the next fetch tells
			}
			if !retried && retriableLeaderError(err) {
				// Once per command: the leader moved or the topic was recreated.
				fresh, retried = true, true
				continue
			}
			if errors.Is(err, kerr.OffsetOutOfRange) && rp != nil {
				return nil, fmt.Errorf("%w: offset %d is outside the log (start %d, end %d)",
					ErrOffsetOutOfRange, pos, rp.LogStartOffset, rp.HighWatermark)
			}
			return nil, kafkaError(err)
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset:         pos,
			IsolationLevel: kgo.ReadCommitted(),
			Topic:          topic,
			Partition:      partition,
		}, rp, r.decompressor, nil)
		if fp.Err != nil && len(fp.Records) == 0 {
			if len(out) > 0 {
				return out, nil
			}
			return nil, fmt.Errorf("%w: read record batch at offset %d: %v", ErrKafkaUnavailable, pos, fp.Err)
		}
		budget -= len(rp.RecordBatches)
		out = appendMessages(out, fp.Records)
		if len(fp.Records) > 0 {
			rounds++
		}
		end := rp.LastStableOffset // what read_committed may read
		if end < 0 {
			end = rp.HighWatermark
		}
		switch {
		case len(out) > 0 && (next >= end || rounds >= maxFetchRounds || (budget <= 0 && len(out) > 1)):
			return out, nil
		case next > pos:
			// Read on: room for more batches, only the offset's own record so
			// far, or only markers and aborted records.
			pos = next
			continue
		}
		// At the log end with nothing: wait for records.
		wait := time.Until(deadline)
		if wait <= 0 {
			return out, nil
		}
		if timer == nil {
			timer = time.NewTimer(min(r.pollInterval, wait))
			defer timer.Stop()
		} else {
			timer.Reset(min(r.pollInterval, wait))
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, kafkaError(ctx.Err())
		}
	}
}

// appendMessages converts records onto out, the messages allocated together.
// The keys and values stay the decoded batches' own bytes.
func appendMessages(out []*KafkaMessage, recs []*kgo.Record) []*KafkaMessage {
	if len(recs) == 0 {
		return out
	}
	slab := make([]KafkaMessage, len(recs))
	out = slices.Grow(out, len(recs))
	for i, rec := range recs {
		m := &slab[i]
		m.Offset, m.Timestamp, m.Key, m.Value = rec.Offset, rec.Timestamp.UnixMilli(), rec.Key, rec.Value
		out = append(out, m)
	}
	return out
}

// fetchOnce sends one Fetch request for the partition at offset, for at most
// maxBytes of batches (but one whole batch at least), to its leader and returns the partition's part of the answer. A Kafka error of the
// partition is returned along with that part (out-of-range answers carry the
// log start and end).
func (r *reader) fetchOnce(ctx context.Context, topic string, partition int32, offset int64, maxBytes int32, fresh bool) (*kmsg.FetchResponseTopicPartition, error) {
	leader, topicID, err := r.leader(ctx, topic, partition, fresh)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = maxBytes
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rt.TopicID = topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = maxBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := r.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != topic && t.TopicID != topicID {
			continue
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.Partition == partition {
				return p, kerr.ErrorForCode(p.ErrorCode)
			}
		}
	}
	return nil, fmt.Errorf("%w: the leader's answer lacks the partition", kerr.UnknownTopicOrPartition)
}

// leader returns the partition's leader and its topic's ID from the client's
// metadata cache (refreshed when older than the client's MetadataMinAge, or
// now when fresh is set).
func (r *reader) leader(ctx context.Context, topic string, partition int32, fresh bool) (int32, [16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	limit := time.Duration(0) // the client's MetadataMinAge
	if fresh {
		limit = time.Nanosecond
	}
	resp, err := r.cl.RequestCachedMetadata(ctx, req, limit)
	if err != nil {
		return 0, [16]byte{}, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return 0, [16]byte{}, err
		}
		for _, p := range t.Partitions {
			if p.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil && !errors.Is(err, kerr.ReplicaNotAvailable) {
				return 0, [16]byte{}, err
			}
			if p.Leader < 0 {
				return 0, [16]byte{}, kerr.LeaderNotAvailable
			}
			return p.Leader, t.TopicID, nil
		}
		return 0, [16]byte{}, fmt.Errorf("%w: the topic has %d partitions", kerr.UnknownTopicOrPartition, len(t.Partitions))
	}
	return 0, [16]byte{}, kerr.UnknownTopicOrPartition
}

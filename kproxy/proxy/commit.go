package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Ack is Kafka's acknowledgement of one record.
type Ack struct {
	// Topic is the record's topic.
	Topic string
	// Partition is the partition Kafka wrote the record to.
	Partition int32
	// Offset is the record's offset in its partition; -1 at acks=0, where the
	// broker does not say.
	Offset int64
}

// Commit hands r to the Kafka client of its acks level and returns Kafka's
// acknowledgement, or the reason there is none: an error wrapping one of this
// package's sentinels or a Kafka error that Code classifies. Commit waits at most
// produce_timeout_ms (then ErrTimeout: the record may or may not be written) and
// until ctx ends (then ErrCanceled: the caller is gone). After those two, Kafka's
// client may still read r's key, value and headers: the door must not touch
// them, and Release leaves them to the client. r must have been admitted and
// hold a value.
func (p *Proxy) Commit(ctx context.Context, r *Record) (Ack, error) {
	r.rec.Topic, r.rec.Value, r.rec.Headers = r.Topic, r.value, r.Headers
	// explicitPartitioner writes to a partition set here, and leaves NoPartition
	// to the configured partitioner.
	r.rec.Partition = r.Partition
	r.state.Store(stateProducing)
	// ctx usually ends when the door answered: after a timeout the client then
	// drops the record if it has not been sent yet. A record already sent (an
	// idempotent batch cannot be recalled) is freed when its promise runs.
	p.prod.client(r.Acks, r.rec.Key).TryProduce(ctx, &r.rec, r.promise)
	r.timer.Reset(p.produceTimeout)
	select {
	case <-r.done:
		r.timer.Stop()
	case <-r.timer.C:
		if r.abandon() {
			p.metrics.produceErrs.WithLabelValues("kafka_timeout").Inc()
			p.health.suspect()
			return Ack{}, fmt.Errorf("%w (produce_timeout_ms %d)", ErrTimeout, p.cfg.ProduceTimeoutMs)
		}
	case <-ctx.Done():
		if r.abandon() {
			r.timer.Stop()
			return Ack{}, fmt.Errorf("%w: %w", ErrCanceled, ctx.Err())
		}
		r.timer.Stop()
	}
	if r.err != nil {
		return Ack{}, p.produceFailed(r, r.err)
	}
	ack := Ack{Topic: r.Topic, Partition: r.rec.Partition, Offset: r.rec.Offset}
	if r.Acks == AcksNone {
		ack.Offset = -1
	}
	p.metrics.latencyByAck[r.Acks.index()].Observe(time.Since(r.start).Seconds())
	p.metrics.bodyBytes.Add(float64(len(r.value)))
	return ack, nil
}

// abandon gives r up to its promise after Commit stopped waiting. It returns false
// when the promise ran first: its answer is then in r.done, and Commit takes it.
func (r *Record) abandon() bool {
	if r.state.CompareAndSwap(stateProducing, stateAbandoned) {
		return true
	}
	<-r.done
	return false
}

// produceFailed returns the error for a record Kafka did not acknowledge, after
// counting and logging it.
func (p *Proxy) produceFailed(r *Record, err error) error {
	if r.Partition != NoPartition && strings.Contains(err.Error(), "invalid record partitioning choice") {
		// explicitPartitioner refused a partition the topic does not have.
		err = fmt.Errorf("%w %d in topic %q: %v", ErrUnknownPartition, r.Partition, r.Topic, err)
	}
	code := Code(err)
	p.metrics.produceErrs.WithLabelValues(code).Inc()
	if errors.Is(err, kerr.UnknownTopicID) {
		// The topic was deleted and created again under a new ID: the client keeps
		// failing it until it forgets the old one. The caller gets
		// ErrKafkaUnavailable and its retry finds the new topic (or
		// ErrUnknownTopic if it is really gone).
		p.purgeTopic(p.prod.client(r.Acks, r.rec.Key), r.Topic)
		err = fmt.Errorf("%w: topic %q was deleted or recreated in Kafka: %v", ErrKafkaUnavailable, r.Topic, err)
	} else if Retriable(code) {
		p.health.suspect()
	}
	p.log.Warn("record not acknowledged", "topic", r.Topic, "acks", r.Acks.String(), "code", code, "err", err)
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		err = fmt.Errorf("%w (max_buffered_records %d)", ErrBackpressure, p.cfg.MaxBufferedRecords)
	case code == CodeUnknownTopic:
		err = fmt.Errorf("%w %q: Kafka does not have it and does not create it", ErrUnknownTopic, r.Topic)
	case code == CodeBodyTooLarge:
		err = fmt.Errorf("%w: Kafka refused the record as too large: %v", ErrBodyTooLarge, err)
	case code == CodeKafkaUnavailable:
		err = fmt.Errorf("%w: %v", ErrKafkaUnavailable, err)
	case code == CodeKafkaTimeout:
		err = fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}

// purgeTopic makes cl forget topic, once at a time per topic, in the background:
// purging waits for the client's metadata loop.
func (p *Proxy) purgeTopic(cl *kgo.Client, topic string) {
	if _, busy := p.purging.LoadOrStore(topic, true); busy {
		return
	}
	p.log.Warn("topic has a new ID in Kafka: dropping the client's view of it", "topic", topic)
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		defer p.purging.Delete(topic)
		cl.PurgeTopicsFromProducing(topic)
	}()
}

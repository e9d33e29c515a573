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
	r.done = nil
	p.launch(ctx, r)
	select {
	case <-r.wait:
	case <-ctx.Done():
		if r.fl.abandon(flightCanceled) {
			p.sweep.remove(&r.fl)
			return Ack{}, fmt.Errorf("%w: %w", ErrCanceled, ctx.Err())
		}
		<-r.wait
	}
	return r.ack, r.err
}

// CommitAsync is Commit without the wait: it hands r to the Kafka client of its
// acks level and returns at once, and done is called once with what Commit
// would have returned — after Kafka answered or produce_timeout_ms passed. done
// runs on one of the Kafka client's goroutines, or the core's timeout sweeper,
// or (when the client refuses the record at once) on the caller's before
// CommitAsync returns; it must not block, and may call Release. When ctx ends,
// the client drops r if it has not sent it yet and done gets ErrCanceled; a
// record already sent gets Kafka's answer. After an ErrTimeout, Release leaves
// r's bytes to the client as after Commit's.
func (p *Proxy) CommitAsync(ctx context.Context, r *Record, done func(*Record, Ack, error)) {
	r.done = done
	p.launch(ctx, r)
}

// launch hands r's entry to its client; landed reports the outcome.
func (p *Proxy) launch(ctx context.Context, r *Record) {
	e := &r.ent
	e.rec.Topic, e.rec.Value, e.rec.Headers = r.Topic, r.value, r.Headers
	// explicitPartitioner writes to a partition set here, and leaves NoPartition
	// to the configured partitioner.
	e.rec.Partition = r.Partition
	r.fl.acks = r.Acks
	r.fl.start(1)
	p.sweep.add(&r.fl)
	p.prod.client(r.Acks, e.rec.Key).TryProduce(ctx, &e.rec, promise)
	r.fl.answered()
}

// expire gives a flight up at produce_timeout_ms; the sweeper calls it.
func (p *Proxy) expire(fl *flight) {
	if fl.abandon(flightTimedOut) {
		p.health.suspect()
		fl.owner.landed()
	}
}

// outcome returns the acknowledgement of e or the reason there is none, and
// counts it. state is its flight's: an entry not answered when the flight was
// given up gets ErrTimeout or ErrCanceled.
func (p *Proxy) outcome(e *entry, topic string, acks Acks, state int32, start time.Time) (Ack, error) {
	if !e.done.Load() {
		if state == flightCanceled {
			return Ack{}, ErrCanceled
		}
		p.metrics.produceErrs.WithLabelValues(CodeKafkaTimeout).Inc()
		return Ack{}, fmt.Errorf("%w (produce_timeout_ms %d)", ErrTimeout, p.cfg.ProduceTimeoutMs)
	}
	if e.err != nil {
		return Ack{}, p.produceFailed(e, topic, acks)
	}
	ack := Ack{Topic: topic, Partition: e.rec.Partition, Offset: e.rec.Offset}
	if acks == AcksNone {
		ack.Offset = -1
	}
	p.metrics.latencyByAck[acks.index()].Observe(time.Since(start).Seconds())
	p.metrics.bodyBytes.Add(float64(len(e.rec.Value)))
	return ack, nil
}

// produceFailed returns the error for an entry Kafka did not acknowledge, after
// counting it and asking for a health probe when Kafka may be gone.
func (p *Proxy) produceFailed(e *entry, topic string, acks Acks) error {
	err := e.err
	if errors.Is(err, context.Canceled) {
		// The door's context ended (its client went away) before the record
		// was sent.
		return fmt.Errorf("%w: %v", ErrCanceled, err)
	}
	if e.rec.Partition != NoPartition && strings.Contains(err.Error(), "invalid record partitioning choice") {
		// explicitPartitioner refused a partition the topic does not have.
		err = fmt.Errorf("%w %d in topic %q: %v", ErrUnknownPartition, e.rec.Partition, topic, err)
	}
	code := Code(err)
	p.metrics.produceErrs.WithLabelValues(code).Inc()
	if errors.Is(err, kerr.UnknownTopicID) {
		// The topic was deleted and created again under a new ID: the client keeps
		// failing it until it forgets the old one. The caller gets
		// ErrKafkaUnavailable and its retry finds the new topic (or
		// ErrUnknownTopic if it is really gone).
		p.purgeTopic(p.prod.client(acks, e.rec.Key), topic)
		return fmt.Errorf("%w: topic %q was deleted or recreated in Kafka: %v", ErrKafkaUnavailable, topic, err)
	}
	if Retriable(code) {
		p.health.suspect()
	}
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		err = fmt.Errorf("%w (max_buffered_records %d)", ErrBackpressure, p.cfg.MaxBufferedRecords)
	case code == CodeUnknownTopic:
		err = fmt.Errorf("%w %q: Kafka does not have it and does not create it", ErrUnknownTopic, topic)
	case code == CodeBodyTooLarge:
		err = fmt.Errorf("%w: Kafka refused the record as too large: %v", ErrBodyTooLarge, err)
	case code == CodeKafkaUnavailable:
		err = fmt.Errorf("%w: %v", ErrKafkaUnavailable, err)
	case code == CodeKafkaTimeout:
		err = fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}

// logFailure logs a record Kafka did not acknowledge, unless its caller went
// away: at most a line every ThrottleEvery per machine code, as a failure
// (backpressure, Kafka gone) often comes to every request at once, when
// kproxy has least CPU to spare. Every failure is counted in
// kproxy_produce_errors_total.
func (p *Proxy) logFailure(topic string, acks Acks, err error) {
	if errors.Is(err, ErrCanceled) {
		return
	}
	code := Code(err)
	p.failLog(code).Warn(p.log, "record not acknowledged", "topic", topic, "acks", acks.String(), "code", code, "err", err)
}

// failLog returns the Throttle of failures of code.
func (p *Proxy) failLog(code string) *Throttle {
	if t, ok := p.failLogs.Load(code); ok {
		return t.(*Throttle)
	}
	t, _ := p.failLogs.LoadOrStore(code, &Throttle{})
	return t.(*Throttle)
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

package proxy

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// NoPartition in Record.Partition lets the configured partitioner choose: by key
// when the record has one, any partition otherwise.
const NoPartition int32 = -1

// Record is one record on its way through the core, from admission to Kafka's
// answer. A door gets it from Admit, fills it (SetKey, ReadValue or SetValue, and
// the exported fields), hands it to Commit and ends it with Release. Records and
// their buffers are pooled: a Record must not be used after Release, and it is
// not safe for concurrent use.
type Record struct {
	// Topic is the topic Admit checked; a door must not change it.
	Topic string
	// Acks is the acknowledgement Commit waits for; Admit sets default_acks.
	Acks Acks
	// Partition is the partition to write to, or NoPartition (Admit's default).
	Partition int32
	// Headers are the record's Kafka headers; nil for none. The door owns the
	// slice and must leave it alone until Release, and for good when Commit
	// returned ErrTimeout or ErrCanceled (Kafka's client may still read it).
	Headers []kgo.RecordHeader

	p     *Proxy
	start time.Time
	key   []byte    // pooled key bytes, nil for no key
	buf   *valueBuf // the value's buffer, nil until a value is read or set
	value []byte    // the value, in buf
	probe [1]byte   // reads the byte past max_request_size_bytes
	rec   kgo.Record
	err   error
	done  chan struct{}
	timer *time.Timer
	// state is stateIdle outside Commit, stateProducing while the Kafka client
	// holds rec, stateAbandoned once Commit gave up waiting: the promise then
	// frees what the record holds.
	state   atomic.Int32
	promise func(*kgo.Record, error) // bound once: a method value allocates
}

const (
	stateIdle int32 = iota
	stateProducing
	stateAbandoned
)

var recordPool = sync.Pool{New: func() any {
	r := &Record{done: make(chan struct{}, 1)}
	r.promise = func(_ *kgo.Record, err error) {
		if !r.state.CompareAndSwap(stateProducing, stateIdle) {
			// Commit gave up on the record and nobody waits: let go of its buffer.
			// The Record itself is left to the garbage collector.
			r.freeValue()
			return
		}
		r.err = err
		r.done <- struct{}{}
	}
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	return r
}}

// Admit admits one record for topic before the door reads its value, so that a
// refused record costs no memory: the topic must be a legal Kafka name
// (ErrMissingTopic, ErrInvalidTopic) allowed by the topic rules
// (ErrTopicNotAllowed), kproxy must not be draining (ErrShuttingDown), fewer than
// req_pool_size records may be in progress (ErrBackpressure) and Kafka must be
// reachable as far as the health probe knows (ErrKafkaUnavailable). Every
// admitted record holds a slot of req_pool_size until Release.
func (p *Proxy) Admit(topic string) (*Record, error) {
	if err := p.CheckTopic(topic); err != nil {
		return nil, err
	}
	if p.draining.Load() {
		return nil, ErrShuttingDown
	}
	if n := p.inflight.Add(1); n > int64(p.cfg.ReqPoolSize) {
		p.inflight.Add(-1)
		return nil, fmt.Errorf("%w (%d requests in progress, req_pool_size %d)", ErrBackpressure, n-1, p.cfg.ReqPoolSize)
	}
	if err := p.health.err(); err != nil {
		p.inflight.Add(-1)
		return nil, err
	}
	r := recordPool.Get().(*Record)
	r.p, r.start = p, time.Now()
	r.Topic, r.Acks, r.Partition = topic, p.defaultAcks, NoPartition
	return r, nil
}

// CheckTopic returns the error Admit would give for topic's name and the topic
// rules, so a door can refuse a request before it does any other work.
func (p *Proxy) CheckTopic(topic string) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	if !p.topicAllowed(topic) {
		return fmt.Errorf("%w: %q is refused by this kproxy's topic rules", ErrTopicNotAllowed, topic)
	}
	return nil
}

// SetKey sets the record's key; an empty key means none (any partition).
func (r *Record) SetKey(key string) {
	if key == "" {
		r.key = r.key[:0]
		r.rec.Key = nil
		return
	}
	r.key = append(r.key[:0], key...)
	r.rec.Key = r.key
}

// Key returns the record's key, nil for none.
func (r *Record) Key() []byte { return r.rec.Key }

// Value returns the record's value as read or set.
func (r *Record) Value() []byte { return r.value }

// ReadValue reads the record's value from src until io.EOF. The buffer grows as
// bytes arrive, whatever length the client announced, and holds at most
// max_request_size_bytes: the first byte past it ends the read with
// ErrBodyTooLarge. Nothing read gives ErrEmptyBody, a failing src ErrBodyRead.
// Every buffer is taken from max_body_memory_bytes first; when that is used up
// the read ends with ErrBackpressure.
func (r *Record) ReadValue(src io.Reader) error {
	limit := r.p.cfg.MaxRequestSizeBytes
	b, err := r.valueBuf(minValueBuf)
	if err != nil {
		return err
	}
	for {
		if len(b) >= limit {
			// At the limit: the body must end here.
			err = r.expectEOF(src, limit)
			break
		}
		if len(b) == cap(b) {
			if b, err = r.grow(b, len(b)+1, limit); err != nil {
				break
			}
		}
		var n int
		n, err = src.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			err = nil
			break
		}
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrBodyRead, err)
			break
		}
	}
	if err != nil {
		r.value = b[:0]
		return err
	}
	r.value = b
	if len(b) == 0 {
		return ErrEmptyBody
	}
	return nil
}

// expectEOF reads src after limit bytes: the first further byte is one too many.
func (r *Record) expectEOF(src io.Reader, limit int) error {
	for {
		n, err := src.Read(r.probe[:])
		switch {
		case n > 0:
			return fmt.Errorf("%w: more than max_request_size_bytes %d", ErrBodyTooLarge, limit)
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("%w: %v", ErrBodyRead, err)
		}
	}
}

// SetValue sets the record's value to a copy of v, under the rules of
// ReadValue: not empty, at most max_request_size_bytes.
func (r *Record) SetValue(v []byte) error {
	limit := r.p.cfg.MaxRequestSizeBytes
	switch {
	case len(v) == 0:
		return ErrEmptyBody
	case len(v) > limit:
		return fmt.Errorf("%w: %d bytes, max_request_size_bytes is %d", ErrBodyTooLarge, len(v), limit)
	}
	b, err := r.valueBuf(len(v))
	if err == nil && cap(b) < len(v) {
		b, err = r.grow(b, len(v), len(v))
	}
	if err != nil {
		return err
	}
	r.value = append(b[:0], v...)
	return nil
}

// Release ends the record: it frees its slot of req_pool_size, and its buffers go
// back to the pools unless the Kafka client still holds them (after Commit gave
// up waiting), in which case they are freed when the client is done. r must not
// be used afterwards.
func (r *Record) Release() {
	p := r.p
	p.inflight.Add(-1)
	if r.state.Load() == stateAbandoned {
		// The promise owns the record now.
		return
	}
	r.freeValue()
	r.Topic, r.Headers, r.p = "", nil, nil
	r.rec, r.err = kgo.Record{}, nil
	if cap(r.key) > maxPooledKey {
		r.key = nil
	}
	recordPool.Put(r)
}

// maxPooledKey bounds the key buffers kept in the pool.
const maxPooledKey = 1 << 10

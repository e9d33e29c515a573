package proxy

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// NoPartition in Record.Partition lets the configured partitioner choose: by key
// when the record has one, any partition otherwise.
const NoPartition int32 = -1

// Record is one record on its way through the core, from admission to Kafka's
// answer. A door gets it from Admit, fills it (SetKey, ReadValue or SetValue, and
// the exported fields), hands it to Commit or CommitAsync and ends it with
// Release. Records and their buffers are pooled: a Record must not be used after
// Release, and it is not safe for concurrent use.
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
	// CheckHeader states what a header may hold.
	Headers []kgo.RecordHeader

	p     *Proxy
	start time.Time
	key   []byte // pooled key bytes, nil for no key
	body         // the value
	ent   entry
	fl    flight
	wait  chan struct{}             // Commit's wait for landed
	done  func(*Record, Ack, error) // CommitAsync's callback
	ack   Ack                       // the outcome, set before landed reports it
	err   error                     //
	_     [0]func()                 // not comparable
}

var recordPool = sync.Pool{New: func() any {
	r := &Record{wait: make(chan struct{}, 1)}
	r.fl.owner = r
	r.ent.init(&r.fl)
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
	if err := p.admit(topic); err != nil {
		return nil, err
	}
	r := recordPool.Get().(*Record)
	r.p, r.start = p, time.Now()
	r.fl.p = p
	r.body.mem, r.body.limit = &p.mem, p.cfg.MaxRequestSizeBytes
	r.Topic, r.Acks, r.Partition = topic, p.defaultAcks, NoPartition
	return r, nil
}

// admit checks what Admit and AdmitBatch check and takes a slot of
// req_pool_size.
func (p *Proxy) admit(topic string) error {
	if err := p.CheckTopic(topic); err != nil {
		return err
	}
	if p.draining.Load() {
		return ErrShuttingDown
	}
	if n := p.inflight.Add(1); n > int64(p.cfg.ReqPoolSize) {
		p.inflight.Add(-1)
		return fmt.Errorf("%w (%d requests in progress, req_pool_size %d)", ErrBackpressure, n-1, p.cfg.ReqPoolSize)
	}
	if err := p.health.err(); err != nil {
		p.inflight.Add(-1)
		return err
	}
	return nil
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
		r.ent.rec.Key = nil
		return
	}
	r.key = append(r.key[:0], key...)
	r.ent.rec.Key = r.key
}

// SetKeyBytes is SetKey for a key held as bytes; it copies them.
func (r *Record) SetKeyBytes(key []byte) {
	if len(key) == 0 {
		r.key = r.key[:0]
		r.ent.rec.Key = nil
		return
	}
	r.key = append(r.key[:0], key...)
	r.ent.rec.Key = r.key
}

// Key returns the record's key, nil for none.
func (r *Record) Key() []byte { return r.ent.rec.Key }

// Value returns the record's value as read or set.
func (r *Record) Value() []byte { return r.value }

// ReadValue reads the record's value from src until io.EOF. The buffer grows as
// bytes arrive, whatever length the client announced, and holds at most
// max_request_size_bytes: the first byte past it ends the read with
// ErrBodyTooLarge. Nothing read gives ErrEmptyBody, a failing src ErrBodyRead.
// Every buffer is taken from max_body_memory_bytes first; when that is used up
// the read ends with ErrBackpressure.
func (r *Record) ReadValue(src io.Reader) error { return r.body.read(src) }

// SetValue sets the record's value to a copy of v, under the rules of
// ReadValue: not empty, at most max_request_size_bytes.
func (r *Record) SetValue(v []byte) error { return r.body.set(v) }

// Release ends the record: it frees its slot of req_pool_size, and its buffers go
// back to the pools unless the Kafka client still holds them (after Commit gave
// up waiting), in which case they are freed when the client is done. r must not
// be used afterwards.
func (r *Record) Release() {
	p := r.p
	p.inflight.Add(-1)
	if r.fl.abandoned() {
		// The last promise owns the record now (orphaned).
		return
	}
	r.body.free()
	r.Topic, r.Headers, r.p, r.done = "", nil, nil, nil
	r.ack, r.err = Ack{}, nil
	r.ent.reset()
	r.fl.state.Store(flightIdle)
	if cap(r.key) > maxPooledKey {
		r.key = nil
	}
	recordPool.Put(r)
}

// maxPooledKey bounds the key buffers kept in the pool.
const maxPooledKey = 1 << 10

// landed implements flightOwner: the outcome goes to the waiting Commit or to
// CommitAsync's callback.
func (r *Record) landed() {
	r.ack, r.err = r.p.outcome(&r.ent, r.Topic, r.Acks, r.fl.state.Load(), r.start)
	if r.err != nil && r.fl.state.Load() == flightDone {
		r.p.logFailure(r.Topic, r.Acks, r.err)
	}
	if r.done != nil {
		r.done(r, r.ack, r.err)
		return
	}
	r.wait <- struct{}{}
}

// orphaned implements flightOwner: Kafka answered the last entry of a record
// Commit gave up on; its value buffer goes back. The Record itself is left to
// the garbage collector.
func (r *Record) orphaned() { r.body.free() }

package proxy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Batch is the records of one request that carries many (POST /batch), on their
// way through the core: admitted once, their keys and values slices of one body
// read under max_request_size_bytes, handed to Kafka together, each answered on
// its own. A door gets it from AdmitBatch, reads the body (ReadBody), adds the
// records it finds there (Add, AddHeader), hands the batch to CommitBatch or
// CommitBatchAsync, reads each record's outcome (Result) and ends it with
// Release. Batches are pooled: a Batch must not be used after Release, and it is
// not safe for concurrent use.
type Batch struct {
	// Topic is the topic AdmitBatch checked; a door must not change it.
	Topic string
	// Acks is the acknowledgement every record waits for; AdmitBatch sets
	// default_acks.
	Acks Acks
	// Headers come first in every record's headers, before those added with
	// AddHeader; nil for none. Set them before the first AddHeader. The door
	// owns the slice as Record.Headers.
	Headers []kgo.RecordHeader

	p       *Proxy
	start   time.Time
	body            // the request body
	ents    []entry // one per record
	spans   []headerSpan
	own     []kgo.RecordHeader // the headers of records with their own: Headers, then theirs
	counted int                // bytes of bookkeeping taken from max_body_memory_bytes
	room    int                // records counted there
	fl      flight
	wait    chan struct{}
	done    func(*Batch)
	failed  int // records not acknowledged, once landed
}

// headerSpan is the range of own that holds one record's headers; empty when
// the record has Headers alone.
type headerSpan struct{ start, end int32 }

// Sizes counted against max_body_memory_bytes for a batch's bookkeeping, and
// the most of it a pooled batch keeps.
const (
	entryBytes       = int(unsafe.Sizeof(entry{})) + int(unsafe.Sizeof(headerSpan{}))
	headerBytes      = int(unsafe.Sizeof(kgo.RecordHeader{}))
	maxPooledEntries = 1024
)

var batchPool = sync.Pool{New: func() any {
	b := &Batch{wait: make(chan struct{}, 1)}
	b.fl.owner = b
	return b
}}

// AdmitBatch admits a batch of records for topic before the door reads the
// body, as Admit admits one record (the same checks and errors); the batch
// holds one slot of req_pool_size until Release.
func (p *Proxy) AdmitBatch(topic string) (*Batch, error) {
	if err := p.admit(topic); err != nil {
		return nil, err
	}
	b := batchPool.Get().(*Batch)
	b.p, b.start = p, time.Now()
	b.fl.p = p
	b.body.mem, b.body.limit = &p.mem, p.cfg.MaxRequestSizeBytes
	b.Topic, b.Acks = topic, p.defaultAcks
	return b, nil
}

// ReadBody reads the request body from src until io.EOF, under the rules of
// Record.ReadValue (max_request_size_bytes counted as bytes arrive,
// max_body_memory_bytes, ErrEmptyBody, ErrBodyRead).
func (b *Batch) ReadBody(src io.Reader) error { return b.body.read(src) }

// SetBody sets the body to a copy of v, under the rules of Record.SetValue.
func (b *Batch) SetBody(v []byte) error { return b.body.set(v) }

// Body returns the body read or set.
func (b *Batch) Body() []byte { return b.value }

// take counts n more bytes of the batch's bookkeeping against
// max_body_memory_bytes; ErrBackpressure when they do not fit.
func (b *Batch) take(n int) error {
	if !b.mem.reserve(n) {
		return b.mem.full(n)
	}
	b.counted += n
	return nil
}

// Grow makes room for n more records, taking their bookkeeping from
// max_body_memory_bytes (ErrBackpressure when it does not fit), so that Add
// does not grow the batch as it goes. A door that knows the number of records
// calls it once before the first Add.
func (b *Batch) Grow(n int) error {
	if err := b.take(n * entryBytes); err != nil {
		return err
	}
	b.room += n
	need := len(b.ents) + n
	if need <= cap(b.ents) {
		return nil
	}
	old := b.ents
	b.ents = make([]entry, len(old), need)
	for i := range old {
		e := &b.ents[i]
		e.init(&b.fl)
		e.rec = old[i].rec
		e.rec.Context = e
	}
	b.spans = append(make([]headerSpan, 0, need), b.spans...)
	return nil
}

// Add adds a record with key (nil or empty for none) and value, both slices of
// Body() or other bytes the door keeps until Release. The record is written as
// a Record with NoPartition would be. It returns ErrBackpressure when its
// bookkeeping does not fit in max_body_memory_bytes (see Grow).
func (b *Batch) Add(key, value []byte) error {
	if len(b.ents) >= b.room {
		if err := b.Grow(max(16, len(b.ents))); err != nil {
			return err
		}
	}
	b.ents = b.ents[:len(b.ents)+1]
	e := &b.ents[len(b.ents)-1]
	e.init(&b.fl)
	if len(key) == 0 {
		key = nil
	}
	e.rec.Key, e.rec.Value = key, value
	b.spans = append(b.spans, headerSpan{})
	return nil
}

// AddHeader adds a header to the record added last, after Headers and the
// headers added to it before. The door checks it (CheckHeader, and
// MaxRecordHeaders for the record's headers together); value is kept as Add
// keeps values. It returns ErrBackpressure when the header's bookkeeping does
// not fit in max_body_memory_bytes.
func (b *Batch) AddHeader(name string, value []byte) error {
	if len(b.ents) == 0 {
		return fmt.Errorf("%w: a header before the first record", ErrInvalidHeader)
	}
	s := &b.spans[len(b.spans)-1]
	first := s.end == s.start
	n := 1
	if first {
		n += len(b.Headers)
	}
	if err := b.take(n * headerBytes); err != nil {
		return err
	}
	if first {
		s.start = int32(len(b.own))
		b.own = append(b.own, b.Headers...)
	}
	b.own = append(b.own, kgo.RecordHeader{Key: name, Value: value})
	s.end = int32(len(b.own))
	return nil
}

// Len returns the number of records added.
func (b *Batch) Len() int { return len(b.ents) }

// Result returns the acknowledgement of record i (in the order of Add) or the
// reason there is none, as Commit returns them; valid once the batch landed
// (CommitBatch returned, or CommitBatchAsync called back).
func (b *Batch) Result(i int) (Ack, error) {
	e := &b.ents[i]
	return e.ack, e.final
}

// Failed returns the number of records Kafka did not acknowledge; valid once
// the batch landed.
func (b *Batch) Failed() int { return b.failed }

// CommitBatch hands every record of b to the Kafka client of b's acks level
// and waits until Kafka answered each, produce_timeout_ms passed (the records
// not answered by then get ErrTimeout) or ctx ended (ErrCanceled). Then Result
// tells each record's outcome. The rules of Commit apply to the batch as a
// whole: after a timeout or cancellation, Kafka's client may still read the
// body and headers, and Release leaves them to it.
func (p *Proxy) CommitBatch(ctx context.Context, b *Batch) {
	b.done = nil
	p.launchBatch(ctx, b)
	select {
	case <-b.wait:
	case <-ctx.Done():
		if b.fl.abandon(flightCanceled) {
			p.sweep.remove(&b.fl)
			b.settle()
			return
		}
		<-b.wait
	}
}

// CommitBatchAsync is CommitBatch without the wait: done is called once when
// the batch landed, under the rules of CommitAsync's callback.
func (p *Proxy) CommitBatchAsync(ctx context.Context, b *Batch, done func(*Batch)) {
	b.done = done
	p.launchBatch(ctx, b)
}

// launchBatch hands every entry to the client of b's level.
func (p *Proxy) launchBatch(ctx context.Context, b *Batch) {
	b.fl.acks = b.Acks
	b.fl.start(len(b.ents))
	p.sweep.add(&b.fl)
	for i := range b.ents {
		e := &b.ents[i]
		e.rec.Topic, e.rec.Partition = b.Topic, NoPartition
		if s := b.spans[i]; s.end > s.start {
			e.rec.Headers = b.own[s.start:s.end:s.end]
		} else if len(b.Headers) > 0 {
			e.rec.Headers = b.Headers[:len(b.Headers):len(b.Headers)]
		}
		p.prod.client(b.Acks, e.rec.Key).TryProduce(ctx, &e.rec, promise)
	}
	b.fl.answered()
}

// settle sets every record's outcome from its answer or the flight's state.
func (b *Batch) settle() {
	state := b.fl.state.Load()
	b.failed = 0
	for i := range b.ents {
		e := &b.ents[i]
		e.ack, e.final = b.p.outcome(e, b.Topic, b.Acks, state, b.start)
		if e.final != nil {
			b.failed++
		}
	}
	if b.failed > 0 && state == flightDone {
		b.logFailures()
	}
}

// logFailures logs one line for the records Kafka did not acknowledge: how
// many, by code, and the first error; at most one every ThrottleEvery for
// all batches.
func (b *Batch) logFailures() {
	codes := map[string]int{}
	var first error
	for i := range b.ents {
		if err := b.ents[i].final; err != nil {
			codes[Code(err)]++
			if first == nil {
				first = err
			}
		}
	}
	if codes[CodeCanceled] == b.failed {
		return
	}
	names := make([]string, 0, len(codes))
	for c := range codes {
		names = append(names, c)
	}
	sort.Strings(names)
	var sb strings.Builder
	for i, c := range names {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s=%d", c, codes[c])
	}
	b.p.failLog("batch").Warn(b.p.log, "records of a batch not acknowledged", "topic", b.Topic, "acks", b.Acks.String(),
		"records", len(b.ents), "failed", b.failed, "codes", sb.String(), "first_err", first)
}

// landed implements flightOwner.
func (b *Batch) landed() {
	b.settle()
	if b.done != nil {
		b.done(b)
		return
	}
	b.wait <- struct{}{}
}

// orphaned implements flightOwner: Kafka answered the last record of a batch
// CommitBatch gave up on; its body and bookkeeping memory go back. The Batch
// itself is left to the garbage collector.
func (b *Batch) orphaned() {
	b.body.free()
	b.mem.release(b.counted)
	b.counted = 0
}

// Release ends the batch: it frees its slot of req_pool_size and its memory,
// unless Kafka's client still holds records (after CommitBatch gave up), in
// which case they are freed when the client is done. b must not be used
// afterwards.
func (b *Batch) Release() {
	b.p.inflight.Add(-1)
	if b.fl.abandoned() {
		return
	}
	b.body.free()
	b.mem.release(b.counted)
	b.counted, b.room = 0, 0
	for i := range b.ents {
		b.ents[i].reset()
	}
	clear(b.own)
	b.ents, b.spans, b.own = b.ents[:0], b.spans[:0], b.own[:0]
	if cap(b.ents) > maxPooledEntries {
		b.ents, b.spans = nil, nil
	}
	if cap(b.own) > maxPooledEntries {
		b.own = nil
	}
	b.Topic, b.Headers, b.p, b.done, b.failed = "", nil, nil, nil, 0
	b.fl.state.Store(flightIdle)
	batchPool.Put(b)
}

package devicehive

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batch is one poll's records of one group membership, waiting to be written
// as one frame of notifications.
type batch struct {
	m     *member
	recs  []*kgo.Record
	bytes int // what the batch counts against the send queue
}

// recordOverhead is what a record counts against the send queue beyond its key
// and value: the notification's other fields, the record's own struct.
const recordOverhead = 128

func newBatch(m *member, recs []*kgo.Record) *batch {
	b := &batch{m: m, recs: recs}
	for _, r := range recs {
		b.bytes += len(r.Key) + len(r.Value) + recordOverhead
	}
	return b
}

// sendQueue holds the batches waiting for a connection's writer, bounded in
// bytes: a batch is taken while the queue holds less than limit bytes with it,
// or when the queue is empty (so a batch larger than the limit still goes). A
// batch counts until its frame is written. It is safe for concurrent use.
type sendQueue struct {
	mu    sync.Mutex
	items []*batch
	bytes int
	limit int
	room  chan struct{} // closed when bytes drop, then replaced
	gauge prometheus.Gauge

	// ready holds a token while the queue may hold batches for the writer.
	ready chan struct{}
}

func newSendQueue(limit int, gauge prometheus.Gauge) *sendQueue {
	return &sendQueue{limit: limit, gauge: gauge, room: make(chan struct{}), ready: make(chan struct{}, 1)}
}

// tryPush queues b if it fits. When it does not, it returns a channel that is
// closed once the writer has made room.
func (q *sendQueue) tryPush(b *batch) (bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes > 0 && q.bytes+b.bytes > q.limit {
		return false, q.room
	}
	q.items = append(q.items, b)
	q.bytes += b.bytes
	q.gauge.Add(float64(b.bytes))
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true, nil
}

// pop returns the oldest batch, nil when there is none. The batch keeps
// counting until done.
func (q *sendQueue) pop() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		q.items = nil
		return nil
	}
	b := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return b
}

// done releases what b counted and wakes the waiting pushers.
func (q *sendQueue) done(b *batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= b.bytes
	q.gauge.Sub(float64(b.bytes))
	close(q.room)
	q.room = make(chan struct{})
}

// size returns the bytes counted now.
func (q *sendQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// discard drops every batch still queued (the connection ended).
func (q *sendQueue) discard() {
	for b := q.pop(); b != nil; b = q.pop() {
		q.done(b)
	}
}

package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A commit in progress is a flight: the Kafka records of one Record or Batch
// (its entries), handed to the clients, and the wait for their answers. Nothing
// blocks per flight: each entry's promise counts down, and the last one lands
// the flight, which tells its owner (a waiting Commit, or a door's callback).
// produce_timeout_ms is kept by one sweeper for every flight of the core (a
// list in deadline order and one timer), not by a timer per record; a flight
// it gives up on is abandoned, and the entries' buffers are freed when the
// last promise runs.

// Flight states. A flight is idle outside a commit, waiting while Kafka's
// clients hold its entries, done once every entry was answered in time, and
// timedOut or canceled once it was given up; the two last are "abandoned".
const (
	flightIdle int32 = iota
	flightWaiting
	flightDone
	flightTimedOut
	flightCanceled
)

// flightOwner is the Record or Batch a flight belongs to.
type flightOwner interface {
	// landed is called once per commit, when the flight is done or abandoned:
	// the owner reports to whoever waits. It runs on the goroutine of the
	// last promise, of the sweeper, or of the commit itself.
	landed()
	// orphaned is called when the last entry of an abandoned flight was
	// answered: the owner frees what Kafka's client held.
	orphaned()
}

type flight struct {
	p        *Proxy
	acks     Acks // the level of every entry
	owner    flightOwner
	pending  atomic.Int32 // entries not answered, plus one while they are handed over
	state    atomic.Int32
	deadline int64   // Unix nanoseconds; set and read under the sweeper's mutex
	prev     *flight // the sweeper's list, under its mutex
	next     *flight //
	listed   bool    //
}

// entry is one Kafka record of a flight. It is the record's Context, so the
// one package-level promise finds its entry without a closure per record. kgo
// asks that Context only for cancellation, which an entry never gives; its
// context methods read no field, so goroutines of kgo that still hold it after
// the promise ran (such as its wait for an unknown topic) never race with the
// entry's next use.
type entry struct {
	rec     kgo.Record
	fl      *flight
	err     error       // Kafka's answer; read only once done is set
	done    atomic.Bool // the promise ran
	retried bool        // sent again alone after Kafka refused its batch as too large
	ack     Ack         // a Batch's outcome of the entry, set when it landed
	final   error       //
}

// Deadline implements context.Context: none.
func (*entry) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context: never.
func (*entry) Done() <-chan struct{} { return nil }

// Err implements context.Context: never.
func (*entry) Err() error { return nil }

// Value implements context.Context: nothing.
func (*entry) Value(any) any { return nil }

// init readies e for use in fl.
func (e *entry) init(fl *flight) {
	e.fl = fl
	e.rec.Context = e
}

// reset clears e for its next record. The record's Context, which kgo may
// still read, is the one field left as it is.
func (e *entry) reset() {
	r := &e.rec
	r.Key, r.Value, r.Headers, r.Timestamp, r.Topic, r.Partition = nil, nil, nil, time.Time{}, "", 0
	r.Attrs, r.ProducerEpoch, r.ProducerID, r.LeaderEpoch, r.Offset = kgo.RecordAttrs{}, 0, 0, 0, 0
	e.err, e.retried, e.ack, e.final = nil, false, Ack{}, nil
	e.done.Store(false)
}

// start readies fl for n entries: the extra count is released by launched,
// once every entry was handed to Kafka's clients, so a promise that runs
// before that cannot land the flight early.
func (fl *flight) start(n int) {
	fl.pending.Store(int32(n) + 1)
	fl.state.Store(flightWaiting)
}

// answered counts one entry (or the hand-over) off; the last one lands the
// flight, or frees it when it was abandoned.
func (fl *flight) answered() {
	if fl.pending.Add(-1) != 0 {
		return
	}
	if fl.state.CompareAndSwap(flightWaiting, flightDone) {
		fl.p.sweep.remove(fl)
		fl.owner.landed()
		return
	}
	fl.owner.orphaned()
}

// abandon gives the flight up with state (flightTimedOut or flightCanceled).
// It reports false when the flight landed first.
func (fl *flight) abandon(state int32) bool {
	return fl.state.CompareAndSwap(flightWaiting, state)
}

// abandoned reports whether the flight was given up; then entries not done are
// answered by why.
func (fl *flight) abandoned() bool {
	s := fl.state.Load()
	return s == flightTimedOut || s == flightCanceled
}

// promise is the Kafka clients' callback for every entry.
func promise(r *kgo.Record, err error) {
	e := r.Context.(*entry)
	if err != nil && !e.retried && e.fl.p.prod.mayRetryAlone(e, err) {
		e.retried = true
		e.fl.p.prod.retryAlone(e)
		return
	}
	e.err = err
	e.done.Store(true)
	e.fl.answered()
}

// sweeper gives up flights at their deadline, produce_timeout_ms after they
// started. Every flight has the same timeout, so deadlines grow in the order
// flights are added: the list is in deadline order, and one timer set to the
// first deadline serves them all. Its methods are safe for concurrent use.
type sweeper struct {
	timeout time.Duration
	expire  func(*flight) // called outside the lock for each flight past its deadline
	mu      sync.Mutex
	head    *flight
	tail    *flight
	kick    chan struct{} // the list was empty and has a flight again
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newSweeper(timeout time.Duration, expire func(*flight)) *sweeper {
	s := &sweeper{timeout: timeout, expire: expire, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// add puts fl at the end of the list with its deadline.
func (s *sweeper) add(fl *flight) {
	s.mu.Lock()
	fl.deadline = time.Now().Add(s.timeout).UnixNano()
	fl.prev, fl.next, fl.listed = s.tail, nil, true
	empty := s.tail == nil
	if empty {
		s.head = fl
	} else {
		s.tail.next = fl
	}
	s.tail = fl
	s.mu.Unlock()
	if empty {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// remove takes fl off the list, if it is on it.
func (s *sweeper) remove(fl *flight) {
	s.mu.Lock()
	s.unlinkLocked(fl)
	s.mu.Unlock()
}

func (s *sweeper) unlinkLocked(fl *flight) {
	if !fl.listed {
		return
	}
	if fl.prev != nil {
		fl.prev.next = fl.next
	} else {
		s.head = fl.next
	}
	if fl.next != nil {
		fl.next.prev = fl.prev
	} else {
		s.tail = fl.prev
	}
	fl.prev, fl.next, fl.listed = nil, nil, false
}

// run waits for the first deadline, gives up every flight past it and waits
// for the next, until close.
func (s *sweeper) run() {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var due []*flight
	for {
		now := time.Now().UnixNano()
		s.mu.Lock()
		for s.head != nil && s.head.deadline <= now {
			fl := s.head
			s.unlinkLocked(fl)
			due = append(due, fl)
		}
		wait := time.Duration(-1)
		if s.head != nil {
			wait = time.Duration(s.head.deadline - now)
		}
		s.mu.Unlock()
		for i, fl := range due {
			s.expire(fl)
			due[i] = nil
		}
		due = due[:0]
		if wait >= 0 {
			t.Reset(wait)
		}
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// close stops the sweeper; it is safe to call more than once.
func (s *sweeper) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// Package window tracks one partition's records between fetch and done: it
// bounds how many are in flight (window_size) and computes the committed
// offset, the lowest offset not yet done.
//
// The window is the run of records from the lowest one not yet done to the
// last one fetched. A record that is done while a lower one is still running
// keeps its slot until every record below it is done too, so the window holds
// at most window_size records whether done or not. This is the original
// ktransfer's sliding window; it bounds memory and bounds what a crash can
// re-push to window_size records per partition, at the price that one slow
// record stops the fetch of that partition once window_size more records
// have been fetched behind it. It implies the SPEC's rule that at most
// window_size records are dispatched and not yet done.
package window

import (
	"context"
	"sync"
)

// entry is one fetched record in the window.
type entry struct {
	offset int64
	done   bool
}

// Tracker tracks one owned partition's window. It is safe for concurrent use:
// typically the fetch goroutine calls Acquire, Add and Skip while workers call
// Done. Add and Done cost O(1) amortized (O(log window_size) for a Done whose
// offset follows a gap) and do not allocate once the ring is sized.
type Tracker struct {
	size int
	// space carries wake-ups for Acquire; buffered, so Done never blocks.
	space  chan struct{}
	closed chan struct{}

	mu        sync.Mutex
	ring      []entry // power-of-two length; live entries ring[head..head+n)
	head      int
	n         int
	inFlight  int   // entries not done
	next      int64 // offset after the last added or skipped one
	waiters   int   // goroutines blocked in Acquire
	idle      chan struct{}
	closeOnce sync.Once
}

// New returns a Tracker whose first record to fetch is next (the committed
// offset read from ZooKeeper) and whose window holds at most size records. A
// size below 1 is taken as 1.
func New(next int64, size int) *Tracker {
	if size < 1 {
		size = 1
	}
	c := 1
	for c < size {
		c <<= 1
	}
	return &Tracker{
		size:   size,
		space:  make(chan struct{}, 1),
		closed: make(chan struct{}),
		ring:   make([]entry, c),
		next:   next,
	}
}

// Acquire waits until the window has room for one more record, and returns
// nil then. It returns ErrClosed once the Tracker is closed, and ctx.Err()
// when ctx ends while it waits (ctx bounds only the wait: with room, Acquire
// returns nil at once). Acquire does not reserve the room: it is meant for
// the one goroutine that adds records; with several adders the window can
// exceed its size by up to their number.
func (t *Tracker) Acquire(ctx context.Context) error {
	t.mu.Lock()
	for {
		select {
		case <-t.closed:
			t.mu.Unlock()
			return ErrClosed
		default:
		}
		if t.n < t.size {
			if t.waiters > 0 {
				// Several pops may have been merged into one signal: pass the
				// room on to the next waiter.
				t.signal()
			}
			t.mu.Unlock()
			return nil
		}
		t.waiters++
		t.mu.Unlock()
		var err error
		select {
		case <-t.space:
		case <-t.closed:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.mu.Lock()
		t.waiters--
		if err != nil {
			t.mu.Unlock()
			return err
		}
	}
}

// signal wakes one Acquire waiter, or leaves a wake-up for the next one.
// Callers hold t.mu.
func (t *Tracker) signal() {
	select {
	case t.space <- struct{}{}:
	default:
	}
}

// Add enters the fetched record at offset into the window; it is in flight
// until Done(offset). Offsets must increase strictly (gaps are fine: compacted
// records, transaction markers). Add reports whether the record was entered:
// an offset below the fetch position (not above the last added one, or below
// a Skip) is ignored and Add returns false. Add should follow a successful
// Acquire; without one the window grows beyond its size rather than fail.
func (t *Tracker) Add(offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset < t.next {
		return false
	}
	if t.n == len(t.ring) {
		t.grow()
	}
	t.ring[(t.head+t.n)&(len(t.ring)-1)] = entry{offset: offset}
	t.n++
	t.inFlight++
	t.next = offset + 1
	return true
}

// grow doubles the ring. Callers hold t.mu.
func (t *Tracker) grow() {
	ring := make([]entry, 2*len(t.ring))
	for i := 0; i < t.n; i++ {
		ring[i] = t.ring[(t.head+i)&(len(t.ring)-1)]
	}
	t.ring = ring
	t.head = 0
}

// Skip moves the fetch position forward to next without records, when the
// records before it will never be added (control records, records deleted by
// retention). With nothing in flight Committed then returns next. A next not
// above the current fetch position is ignored.
func (t *Tracker) Skip(next int64) {
	t.mu.Lock()
	if next > t.next {
		t.next = next
	}
	t.mu.Unlock()
}

// Done marks the record at offset done (pushed, dead-lettered or skipped), in
// any order. It reports whether the record was in flight; an offset never
// added, already done or already below the committed offset is ignored and
// Done returns false. Done keeps working after Close, so a released partition
// can drain.
func (t *Tracker) Done(offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.find(offset)
	if !ok {
		return false
	}
	mask := len(t.ring) - 1
	e := &t.ring[(t.head+i)&mask]
	if e.done {
		return false
	}
	e.done = true
	t.inFlight--
	if i != 0 {
		return true
	}
	// The front is done: slide the window past every done record so the front
	// is always the lowest record not yet done.
	for t.n > 0 && t.ring[t.head].done {
		t.head = (t.head + 1) & mask
		t.n--
	}
	if t.waiters > 0 {
		t.signal()
	}
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	return true
}

// find returns the ring position (0 = front) of the entry for offset. Offsets
// increase by at least one per entry, so the entry for offset sits at most
// offset-front positions from the front, and exactly there without gaps.
// Callers hold t.mu.
func (t *Tracker) find(offset int64) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := len(t.ring) - 1
	front := t.ring[t.head].offset
	if offset < front {
		return 0, false
	}
	hi := t.n - 1
	if d := offset - front; d < int64(hi) {
		hi = int(d)
	}
	if t.ring[(t.head+hi)&mask].offset == offset {
		return hi, true
	}
	lo := 0
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.ring[(t.head+m)&mask].offset < offset {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, t.ring[(t.head+lo)&mask].offset == offset
}

// Committed returns the offset to commit: the lowest offset in flight, or,
// with nothing in flight, the offset after the last added or skipped record
// (the next fetch position). Every record below it is done.
func (t *Tracker) Committed() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n > 0 {
		return t.ring[t.head].offset
	}
	return t.next
}

// Next returns the next fetch position: the offset after the last added or
// skipped record.
func (t *Tracker) Next() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next
}

// DoneAhead returns, in increasing order, the offsets of the records already
// done above Committed: those that finished while a lower record is still in
// flight. A process that takes the partition back with its own progress skips
// them instead of pushing them again.
func (t *Tracker) DoneAhead() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int64
	mask := len(t.ring) - 1
	for i := 0; i < t.n; i++ {
		if e := t.ring[(t.head+i)&mask]; e.done {
			out = append(out, e.offset)
		}
	}
	return out
}

// InFlight returns the number of records added and not yet done.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight
}

// Fill returns the number of records in the window: those in flight plus
// those done while a lower record is still in flight. Acquire waits while
// Fill() >= Size().
func (t *Tracker) Fill() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Size returns the window size.
func (t *Tracker) Size() int { return t.size }

// Close makes Acquire return ErrClosed, now and for waiters already blocked.
// Add, Done and the readers keep working, so records in flight can still be
// marked done and committed. Close is safe to call more than once.
func (t *Tracker) Close() {
	t.closeOnce.Do(func() { close(t.closed) })
}

// WaitIdle waits until no record is in flight and returns nil, or returns
// ctx.Err() when ctx ends first. A partition hand-over closes the Tracker,
// bounds WaitIdle with a timeout and then commits Committed().
func (t *Tracker) WaitIdle(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package window

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// op is one step of a scripted sequence against a Tracker.
type op struct {
	kind   byte // 'a' Add, 'd' Done, 's' Skip
	offset int64
	ok     bool  // expected result of Add or Done
	want   int64 // expected Committed after the step
}

func add(o int64, want int64) op        { return op{'a', o, true, want} }
func addIgnored(o int64, want int64) op { return op{'a', o, false, want} }
func done(o int64, want int64) op       { return op{'d', o, true, want} }
func doneIgnored(o int64, want int64) op {
	return op{'d', o, false, want}
}
func skip(o int64, want int64) op { return op{'s', o, false, want} }

func TestCommitted(t *testing.T) {
	tests := []struct {
		name string
		next int64
		size int
		ops  []op
	}{
		{"in order", 10, 4, []op{
			add(10, 10), add(11, 10), done(10, 11), done(11, 12),
		}},
		{"out of order", 0, 8, []op{
			add(0, 0), add(1, 0), add(2, 0), add(3, 0),
			done(2, 0), done(1, 0), done(3, 0), done(0, 4),
		}},
		{"middle first then front", 5, 8, []op{
			add(5, 5), add(6, 5), add(7, 5),
			done(6, 5), done(5, 7), done(7, 8),
		}},
		{"gaps", 100, 8, []op{
			add(100, 100), add(103, 100), add(107, 100), add(108, 100),
			done(107, 100), done(100, 103), done(103, 108), done(108, 109),
		}},
		{"gap after last done", 0, 8, []op{
			add(0, 0), add(50, 0), done(0, 50), done(50, 51),
		}},
		{"unknown and duplicate dones ignored", 0, 8, []op{
			add(0, 0), add(2, 0),
			doneIgnored(1, 0), doneIgnored(3, 0), doneIgnored(-1, 0),
			done(2, 0), doneIgnored(2, 0),
			done(0, 3), doneIgnored(0, 3), doneIgnored(2, 3),
		}},
		{"skip with nothing in flight", 20, 4, []op{
			skip(25, 25), add(25, 25), done(25, 26), skip(30, 30),
		}},
		{"skip does not pass in-flight records", 0, 4, []op{
			add(0, 0), skip(9, 0), done(0, 9), add(9, 9), done(9, 10),
		}},
		{"skip only moves forward", 10, 4, []op{
			skip(5, 10), skip(10, 10), add(10, 10), skip(3, 10), done(10, 11),
		}},
		{"add below fetch position ignored", 10, 4, []op{
			addIgnored(9, 10), add(10, 10), addIgnored(10, 10),
			skip(20, 10), addIgnored(15, 10), done(10, 20), add(20, 20),
		}},
		{"ring wraps", 0, 2, []op{
			add(0, 0), add(1, 0), done(0, 1), add(2, 1), done(2, 1),
			add(3, 1), done(1, 3), add(4, 3), done(4, 3), done(3, 5),
		}},
		{"add without acquire grows the ring", 0, 2, []op{
			add(0, 0), add(1, 0), add(2, 0), add(4, 0), add(5, 0),
			done(4, 0), done(1, 0), done(0, 2), done(2, 5), done(5, 6),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(tt.next, tt.size)
			if got := tr.Committed(); got != tt.next {
				t.Fatalf("initial Committed() = %d, want %d", got, tt.next)
			}
			for i, o := range tt.ops {
				switch o.kind {
				case 'a':
					if got := tr.Add(o.offset); got != o.ok {
						t.Fatalf("step %d: Add(%d) = %v, want %v", i, o.offset, got, o.ok)
					}
				case 'd':
					if got := tr.Done(o.offset); got != o.ok {
						t.Fatalf("step %d: Done(%d) = %v, want %v", i, o.offset, got, o.ok)
					}
				case 's':
					tr.Skip(o.offset)
				}
				if got := tr.Committed(); got != o.want {
					t.Fatalf("step %d (%c %d): got Committed() %d, want %d", i, o.kind, o.offset, got, o.want)
				}
			}
		})
	}
}

func TestCounts(t *testing.T) {
	tr := New(0, 4)
	if got := tr.Size(); got != 4 {
		t.Fatalf("got Size() %d, want 4", got)
	}
	for o := int64(0); o < 4; o++ {
		tr.Add(o)
	}
	tr.Done(2)
	tr.Done(1)
	if got := tr.DoneAhead(); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("got DoneAhead() %v, want [1 2]", got)
	}
	if got := tr.InFlight(); got != 2 {
		t.Errorf("got InFlight() %d, want 2", got)
	}
	if got := tr.Fill(); got != 4 {
		t.Errorf("got Fill() %d, want 4 (done records behind offset 0 keep their slots)", got)
	}
	tr.Done(0)
	if got, want := [2]int{tr.InFlight(), tr.Fill()}, [2]int{1, 1}; got != want {
		t.Errorf("got InFlight, Fill %v, want %v", got, want)
	}
	if got := tr.DoneAhead(); len(got) != 0 {
		t.Errorf("got DoneAhead() %v, want none once the front is done", got)
	}
	if got := tr.Next(); got != 4 {
		t.Errorf("got Next() %d, want 4", got)
	}
	if got := New(0, 0).Size(); got != 1 {
		t.Errorf("New(0, 0): got Size() %d, want 1", got)
	}
}

// acquireAsync runs Acquire in a goroutine and returns its result channel.
func acquireAsync(ctx context.Context, tr *Tracker) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- tr.Acquire(ctx) }()
	return ch
}

func TestAcquireBlocksAtSize(t *testing.T) {
	ctx := context.Background()
	tr := New(0, 3)
	for o := int64(0); o < 3; o++ {
		if err := tr.Acquire(ctx); err != nil {
			t.Fatalf("Acquire %d: got %v, want nil", o, err)
		}
		tr.Add(o)
	}
	ch := acquireAsync(ctx, tr)
	testwait.Blocked(t, ch, 20*time.Millisecond, "Acquire on a full window")

	// A done record behind an unfinished one frees no slot.
	tr.Done(1)
	testwait.Blocked(t, ch, 20*time.Millisecond, "Acquire after Done behind the front")

	tr.Done(0)
	if err := testwait.Recv(t, ch, 5*time.Second, "Acquire after Done at the front"); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func TestAcquireWakesEveryWaiter(t *testing.T) {
	ctx := context.Background()
	tr := New(0, 2)
	tr.Add(0)
	tr.Add(1)
	a, b := acquireAsync(ctx, tr), acquireAsync(ctx, tr)
	testwait.Blocked(t, a, 20*time.Millisecond, "first waiter")
	// One Done freeing both slots must wake both waiters.
	tr.Done(1)
	tr.Done(0)
	for _, ch := range []<-chan error{a, b} {
		if err := testwait.Recv(t, ch, 5*time.Second, "Acquire"); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	}
}

func TestAcquireContext(t *testing.T) {
	tr := New(0, 1)
	tr.Add(0)
	ctx, cancel := context.WithCancel(context.Background())
	ch := acquireAsync(ctx, tr)
	testwait.Blocked(t, ch, 20*time.Millisecond, "Acquire on a full window")
	cancel()
	if err := testwait.Recv(t, ch, 5*time.Second, "Acquire after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}

	tctx, tcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer tcancel()
	if err := tr.Acquire(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	tr := New(0, 2)
	tr.Add(0)
	tr.Add(1)
	ch := acquireAsync(ctx, tr)
	testwait.Blocked(t, ch, 20*time.Millisecond, "Acquire on a full window")
	tr.Close()
	if err := testwait.Recv(t, ch, 5*time.Second, "Acquire after Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Acquire: got %v, want ErrClosed", err)
	}
	tr.Close() // safe twice
	tr.Done(0)
	if err := tr.Acquire(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire with room after Close: got %v, want ErrClosed", err)
	}
	// Done still works after Close: the hand-over drains.
	if !tr.Done(1) {
		t.Fatalf("Done(1) after Close: got false, want true")
	}
	if got := tr.Committed(); got != 2 {
		t.Fatalf("got Committed() %d, want 2", got)
	}
}

func TestWaitIdle(t *testing.T) {
	tr := New(0, 4)
	if err := tr.WaitIdle(context.Background()); err != nil {
		t.Fatalf("empty tracker: got %v, want nil", err)
	}
	tr.Add(0)
	tr.Add(1)

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := tr.WaitIdle(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with records in flight: got %v, want context.DeadlineExceeded", err)
	}

	tr.Close()
	ch := make(chan error, 1)
	go func() { ch <- tr.WaitIdle(context.Background()) }()
	tr.Done(1)
	testwait.Blocked(t, ch, 20*time.Millisecond, "WaitIdle with offset 0 in flight")
	tr.Done(0)
	if err := testwait.Recv(t, ch, 5*time.Second, "WaitIdle"); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	// Idle again after more traffic: the idle signal is re-armed.
	tr.Add(2)
	ch2 := make(chan error, 1)
	go func() { ch2 <- tr.WaitIdle(context.Background()) }()
	testwait.Blocked(t, ch2, 20*time.Millisecond, "WaitIdle with offset 2 in flight")
	tr.Done(2)
	if err := testwait.Recv(t, ch2, 5*time.Second, "WaitIdle"); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

// model is the reference: a set of offsets in flight and the fetch position.
type model struct {
	inFlight map[int64]bool
	next     int64
}

func (m *model) committed() int64 {
	low := m.next
	for o := range m.inFlight {
		if o < low {
			low = o
		}
	}
	return low
}

// TestRandomAgainstModel drives a Tracker and a map-based model with the same
// random operations and compares every observable after each one.
func TestRandomAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		start := r.Int64N(1000)
		size := 1 + r.IntN(16)
		tr := New(start, size)
		m := &model{inFlight: map[int64]bool{}, next: start}
		var added []int64 // every offset ever added, for duplicate dones
		for step := 0; step < 2000; step++ {
			var desc string
			switch k := r.IntN(10); {
			case k < 4: // add, sometimes beyond the window, sometimes with a gap
				if tr.Fill() >= size && r.IntN(4) != 0 {
					continue
				}
				o := m.next
				if r.IntN(5) == 0 {
					o += 1 + r.Int64N(5)
				}
				if r.IntN(20) == 0 {
					o = m.next - 1 - r.Int64N(3) // not increasing: ignored
				}
				got := tr.Add(o)
				want := o >= m.next
				if want {
					m.inFlight[o] = true
					m.next = o + 1
					added = append(added, o)
				}
				if got != want {
					t.Fatalf("seed %d step %d: Add(%d) = %v, want %v", seed, step, o, got, want)
				}
				desc = "add"
			case k < 9: // done: mostly in flight, some duplicates or unknown
				var o int64
				switch {
				case len(m.inFlight) > 0 && r.IntN(5) != 0:
					n := r.IntN(len(m.inFlight))
					for x := range m.inFlight {
						if n == 0 {
							o = x
							break
						}
						n--
					}
				case len(added) > 0 && r.IntN(2) == 0:
					o = added[r.IntN(len(added))]
				default:
					o = start - 5 + r.Int64N(m.next-start+10)
				}
				want := m.inFlight[o]
				delete(m.inFlight, o)
				if got := tr.Done(o); got != want {
					t.Fatalf("seed %d step %d: Done(%d) = %v, want %v", seed, step, o, got, want)
				}
				desc = "done"
			default:
				o := m.next - 2 + r.Int64N(6)
				if o > m.next {
					m.next = o
				}
				tr.Skip(o)
				desc = "skip"
			}
			if got, want := tr.Committed(), m.committed(); got != want {
				t.Fatalf("seed %d step %d (%s): got Committed() %d, want %d", seed, step, desc, got, want)
			}
			if got, want := tr.InFlight(), len(m.inFlight); got != want {
				t.Fatalf("seed %d step %d (%s): got InFlight() %d, want %d", seed, step, desc, got, want)
			}
			if got, want := tr.Next(), m.next; got != want {
				t.Fatalf("seed %d step %d (%s): got Next() %d, want %d", seed, step, desc, got, want)
			}
			// Every offset added, at or above Committed and not in flight, is done ahead.
			var ahead []int64
			for _, o := range added {
				if o > tr.Committed() && !m.inFlight[o] {
					ahead = append(ahead, o)
				}
			}
			if got := tr.DoneAhead(); !slices.Equal(got, ahead) {
				t.Fatalf("seed %d step %d (%s): got DoneAhead() %v, want %v", seed, step, desc, got, ahead)
			}
		}
	}
}

// TestConcurrent has one fetch goroutine add records through Acquire while
// workers complete them in random order, and a checker samples Committed: it
// never goes backwards, never passes a record not yet done, and never exceeds
// the window.
func TestConcurrent(t *testing.T) {
	const (
		total   = 20000
		size    = 64
		workers = 8
	)
	tr := New(0, size)
	var doneFlags [total]atomic.Bool
	work := make(chan int64, size)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			var held []int64
			complete := func(i int) {
				doneFlags[held[i]].Store(true)
				if !tr.Done(held[i]) {
					t.Errorf("Done(%d) = false, want true", held[i])
				}
				held[i] = held[len(held)-1]
				held = held[:len(held)-1]
			}
			for {
				var o int64
				var ok bool
				select {
				case o, ok = <-work:
				default:
					// Nothing queued: finish what is held, or the window
					// could fill with held records and stall the adder.
					for len(held) > 0 {
						complete(len(held) - 1)
					}
					o, ok = <-work
				}
				if !ok {
					break
				}
				held = append(held, o)
				// Complete held records out of order.
				for len(held) > 0 && r.IntN(3) != 0 {
					complete(r.IntN(len(held)))
				}
			}
			for len(held) > 0 {
				complete(0)
			}
		}(uint64(w))
	}

	stop := make(chan struct{})
	checked := make(chan struct{})
	var samples int
	go func() {
		defer close(checked)
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := tr.Committed()
			samples++
			if c < last {
				t.Errorf("Committed went backwards: %d after %d", c, last)
				return
			}
			// Every offset below the committed one must be done already;
			// those below last were checked by earlier samples.
			for o := last; o < c; o++ {
				if !doneFlags[o].Load() {
					t.Errorf("Committed() %d passes offset %d, not done", c, o)
					return
				}
			}
			last = c
			if f := tr.Fill(); f > size {
				t.Errorf("got Fill() %d, want at most %d", f, size)
				return
			}
		}
	}()

	r := rand.New(rand.NewPCG(99, 2))
	for o := int64(0); o < total; o++ {
		if err := tr.Acquire(ctx); err != nil {
			t.Errorf("Acquire: got %v, want nil", err)
			break
		}
		tr.Add(o)
		work <- o
		if r.IntN(50) == 0 {
			tr.Skip(o + 1) // a no-op: the fetch position is already there
		}
	}
	close(work)
	wg.Wait()
	close(stop)
	<-checked

	if samples == 0 {
		t.Fatalf("checker took no samples")
	}
	if got := tr.Committed(); got != total {
		t.Fatalf("got Committed() %d after all done, want %d", got, total)
	}
	if got := tr.InFlight(); got != 0 {
		t.Fatalf("got InFlight() %d, want 0", got)
	}
}

func TestNoAllocsInSteadyState(t *testing.T) {
	tr := New(0, 128)
	ctx := context.Background()
	var o int64
	allocs := testing.AllocsPerRun(1000, func() {
		_ = tr.Acquire(ctx)
		tr.Add(o)
		tr.Done(o)
		o++
	})
	if allocs != 0 {
		t.Fatalf("got %v allocations per Acquire+Add+Done, want 0", allocs)
	}
}

// BenchmarkAddDone adds records into a window of 200 and completes them
// slightly out of order, as workers do.
func BenchmarkAddDone(b *testing.B) {
	tr := New(0, 200)
	ctx := context.Background()
	b.ReportAllocs()
	var o int64
	for b.Loop() {
		_ = tr.Acquire(ctx)
		tr.Add(o)
		if o%2 == 1 {
			tr.Done(o)
			tr.Done(o - 1)
		}
		o++
	}
}

// BenchmarkConcurrent has one adder and a completing goroutine working
// through a window of 200.
func BenchmarkConcurrent(b *testing.B) {
	tr := New(0, 200)
	ctx := context.Background()
	ch := make(chan int64, 256)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for o := range ch {
			tr.Done(o)
		}
	}()
	b.ReportAllocs()
	var o int64
	for b.Loop() {
		if err := tr.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		tr.Add(o)
		ch <- o
		o++
	}
	close(ch)
	<-finished
}

package dispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// newPool returns a Pool closed at the end of the test. Tests that block
// jobs release them in their own t.Cleanup, registered later and so run
// before this Close.
func newPool(t *testing.T, workers, queueSize int, serializeByKey bool) *Pool {
	t.Helper()
	p := New(workers, queueSize, serializeByKey)
	t.Cleanup(p.Close)
	return p
}

// gate is a channel that blocking jobs wait on; released at the latest by
// t.Cleanup, so a failing test does not leave workers blocked.
func gate(t *testing.T) (wait func(), release func()) {
	t.Helper()
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return func() { <-ch }, release
}

// async runs f in a goroutine and returns its result channel.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func TestPerKeyOrder(t *testing.T) {
	const (
		workers    = 8
		keys       = 200
		perKey     = 50
		burst      = 5
		submitters = 4
	)
	p := newPool(t, workers, 16, true)
	var running [keys]atomic.Int32
	var last [keys]atomic.Int64
	var count [keys]atomic.Int64
	ctx := context.Background()

	var wg sync.WaitGroup
	for s := 0; s < submitters; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			// Each submitter owns the keys k with k%submitters == s and
			// interleaves them in bursts of one key's consecutive jobs, so
			// each key's jobs are submitted in order and often queue
			// together.
			for first := int64(1); first <= perKey; first += burst {
				for k := s; k < keys; k += submitters {
					key := []byte(fmt.Sprintf("key-%d", k))
					for seq := first; seq < first+burst; seq++ {
						err := p.Submit(ctx, key, func() {
							if n := running[k].Add(1); n != 1 {
								t.Errorf("key %d: %d jobs running at once, want 1", k, n)
							}
							if prev := last[k].Swap(seq); prev >= seq {
								t.Errorf("key %d: job %d ran after job %d, want increasing", k, seq, prev)
							}
							count[k].Add(1)
							for range 3 {
								runtime.Gosched()
							}
							running[k].Add(-1)
						})
						if err != nil {
							t.Errorf("Submit: got %v, want nil", err)
							return
						}
					}
				}
			}
		}(s)
	}
	wg.Wait()
	p.Close()
	for k := range keys {
		if got := count[k].Load(); got != perKey {
			t.Errorf("key %d: got %d jobs run, want %d", k, got, perKey)
		}
	}
}

// TestKeyedMapping checks that a keyed job lands in the queue of worker
// partition.Worker(key, workers).
func TestKeyedMapping(t *testing.T) {
	const workers = 5
	p := newPool(t, workers, 1000, true)
	wait, _ := gate(t)
	ctx := context.Background()
	// Occupy every worker so submitted keyed jobs stay in their queues.
	for range workers {
		if err := p.Submit(ctx, nil, wait); err != nil {
			t.Fatalf("Submit: got %v, want nil", err)
		}
	}
	testwait.Eventually(t, 5*time.Second, "all workers busy", func() bool { return p.Busy() == workers })

	var want [workers]int
	for i := range 300 {
		key := []byte(fmt.Sprintf("user-%d", i*7919))
		w := partition.Worker(key, workers)
		want[w]++
		if err := p.Submit(ctx, key, func() {}); err != nil {
			t.Fatalf("Submit: got %v, want nil", err)
		}
		for q := range workers {
			if got := len(p.own[q]); got != want[q] {
				t.Fatalf("key %q: worker %d queue holds %d jobs, want %d (key maps to worker %d)", key, q, got, want[q], w)
			}
		}
	}
	if got := p.Queued(); got != 300 {
		t.Fatalf("got Queued() %d, want 300", got)
	}
}

// TestBlockedWorker blocks the worker of one key and checks that keys of
// other workers and unkeyed jobs still run, while jobs of keys hashed to the
// blocked worker wait.
func TestBlockedWorker(t *testing.T) {
	const workers = 4
	p := newPool(t, workers, 100, true)
	wait, release := gate(t)
	ctx := context.Background()

	blocked := []byte("stuck")
	bw := partition.Worker(blocked, workers)
	if err := p.Submit(ctx, blocked, wait); err != nil {
		t.Fatalf("Submit: got %v, want nil", err)
	}
	testwait.Eventually(t, 5*time.Second, "blocking job started", func() bool { return p.Busy() == 1 })

	var sameRan, otherRan, unkeyedRan atomic.Int32
	var same, other int32
	for i := range 100 {
		key := []byte(fmt.Sprintf("k%d", i))
		ran := &otherRan
		if partition.Worker(key, workers) == bw {
			ran = &sameRan
			same++
		} else {
			other++
		}
		if err := p.Submit(ctx, key, func() { ran.Add(1) }); err != nil {
			t.Fatalf("Submit: got %v, want nil", err)
		}
		if err := p.Submit(ctx, nil, func() { unkeyedRan.Add(1) }); err != nil {
			t.Fatalf("Submit: got %v, want nil", err)
		}
	}
	if same == 0 || other == 0 {
		t.Fatalf("test keys: got %d on the blocked worker and %d elsewhere, want both > 0", same, other)
	}
	testwait.Eventually(t, 5*time.Second, "other keys and unkeyed jobs ran", func() bool {
		return otherRan.Load() == other && unkeyedRan.Load() == 100
	})
	if got := sameRan.Load(); got != 0 {
		t.Fatalf("got %d jobs run on the blocked worker, want 0", got)
	}
	release()
	testwait.Eventually(t, 5*time.Second, "jobs of the blocked worker ran", func() bool { return sameRan.Load() == same })
}

// barrierJobs returns n jobs that each return only once all n run at the same
// time, and a function reporting whether they all met.
func barrierJobs(t *testing.T, n int) ([]func(), func() bool) {
	t.Helper()
	var arrived atomic.Int32
	all := make(chan struct{})
	var met atomic.Int32
	jobs := make([]func(), n)
	for i := range jobs {
		jobs[i] = func() {
			if int(arrived.Add(1)) == n {
				close(all)
			}
			select {
			case <-all:
				met.Add(1)
			case <-time.After(5 * time.Second):
			}
		}
	}
	return jobs, func() bool { return int(met.Load()) == n }
}

// TestSpread checks that jobs that need no order run on all workers at once:
// unkeyed jobs, and with serializeByKey off also jobs of one key.
func TestSpread(t *testing.T) {
	tests := []struct {
		name           string
		serializeByKey bool
		key            []byte
	}{
		{"unkeyed", true, nil},
		{"empty key", true, []byte{}},
		{"serialize_by_key off", false, []byte("same")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const workers = 4
			p := New(workers, 10, tt.serializeByKey)
			jobs, met := barrierJobs(t, workers)
			for _, j := range jobs {
				if err := p.Submit(context.Background(), tt.key, j); err != nil {
					t.Fatalf("Submit: got %v, want nil", err)
				}
			}
			p.Close()
			if !met() {
				t.Fatalf("got the %d jobs not running at once, want them spread over %d workers", workers, workers)
			}
		})
	}
}

func TestSubmitBlocksWhenFull(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
	}{
		{"keyed queue", []byte("k")},
		{"shared queue", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const queueSize = 3
			p := newPool(t, 1, queueSize, true)
			wait, release := gate(t)
			ctx := context.Background()
			if err := p.Submit(ctx, tt.key, wait); err != nil {
				t.Fatalf("Submit: got %v, want nil", err)
			}
			testwait.Eventually(t, 5*time.Second, "blocking job started", func() bool { return p.Busy() == 1 })
			for range queueSize {
				if err := p.Submit(ctx, tt.key, func() {}); err != nil {
					t.Fatalf("Submit: got %v, want nil", err)
				}
			}
			if got := p.Queued(); got != queueSize {
				t.Fatalf("got Queued() %d, want %d", got, queueSize)
			}

			tctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			defer cancel()
			if err := p.Submit(tctx, tt.key, func() {}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Submit to a full queue: got %v, want context.DeadlineExceeded", err)
			}

			ran := make(chan struct{})
			ch := async(func() error { return p.Submit(ctx, tt.key, func() { close(ran) }) })
			testwait.Blocked(t, ch, 20*time.Millisecond, "Submit to a full queue")
			release()
			if err := testwait.Recv(t, ch, 5*time.Second, "Submit"); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			select {
			case <-ran:
			case <-time.After(5 * time.Second):
				t.Fatalf("job submitted after the wait did not run")
			}
		})
	}
}

func TestClose(t *testing.T) {
	p := New(2, 10, true)
	wait, release := gate(t)
	ctx := context.Background()
	var ran atomic.Int32
	job := func() { wait(); ran.Add(1) }
	for i := range 10 {
		key := []byte(fmt.Sprintf("k%d", i))
		if i%2 == 0 {
			key = nil
		}
		if err := p.Submit(ctx, key, job); err != nil {
			t.Fatalf("Submit: got %v, want nil", err)
		}
	}
	closed := async(func() error { p.Close(); return nil })
	testwait.Blocked(t, closed, 20*time.Millisecond, "Close with jobs blocked")
	if err := p.Submit(ctx, nil, func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit during Close: got %v, want ErrClosed", err)
	}
	release()
	if err := testwait.Recv(t, closed, 5*time.Second, "Close"); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if got := ran.Load(); got != 10 {
		t.Fatalf("got %d queued jobs run by Close, want 10", got)
	}
	if got := [2]int{p.Busy(), p.Queued()}; got != [2]int{} {
		t.Fatalf("got Busy, Queued %v after Close, want [0 0]", got)
	}
	p.Close() // safe twice
	if err := p.Submit(ctx, []byte("k"), func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: got %v, want ErrClosed", err)
	}
}

// TestCloseWakesBlockedSubmit checks that a Submit waiting for room returns
// ErrClosed when Close starts rather than wait for the queue to drain.
func TestCloseWakesBlockedSubmit(t *testing.T) {
	p := New(1, 1, true)
	wait, release := gate(t)
	ctx := context.Background()
	if err := p.Submit(ctx, nil, wait); err != nil {
		t.Fatalf("Submit: got %v, want nil", err)
	}
	testwait.Eventually(t, 5*time.Second, "blocking job started", func() bool { return p.Busy() == 1 })
	if err := p.Submit(ctx, nil, func() {}); err != nil {
		t.Fatalf("Submit: got %v, want nil", err)
	}
	sub := async(func() error { return p.Submit(ctx, nil, func() {}) })
	testwait.Blocked(t, sub, 20*time.Millisecond, "Submit to a full queue")
	closed := async(func() error { p.Close(); return nil })
	if err := testwait.Recv(t, sub, 5*time.Second, "Submit during Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	release()
	if err := testwait.Recv(t, closed, 5*time.Second, "Close"); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

// TestSubmitCloseRace checks under -race that every Submit racing with Close
// either runs its job or reports ErrClosed.
func TestSubmitCloseRace(t *testing.T) {
	for round := range 20 {
		p := New(4, 2, true)
		var accepted, ran atomic.Int64
		var wg sync.WaitGroup
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					key := []byte(fmt.Sprintf("%d-%d", s, i%7))
					if i%3 == 0 {
						key = nil
					}
					err := p.Submit(context.Background(), key, func() { ran.Add(1) })
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("Submit: got %v, want nil or ErrClosed", err)
						return
					}
					accepted.Add(1)
				}
			}()
		}
		testwait.Eventually(t, 5*time.Second, "jobs accepted", func() bool { return accepted.Load() > 10 })
		p.Close()
		wg.Wait()
		if a, r := accepted.Load(), ran.Load(); a != r {
			t.Fatalf("round %d: got %d jobs run, want %d (every accepted one)", round, r, a)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		workers, queueSize int
		serializeByKey     bool
		wantWorkers        int
	}{
		{8, 4, true, 8},
		{3, 0, false, 3},
		{0, -1, true, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d/%v", tt.workers, tt.queueSize, tt.serializeByKey), func(t *testing.T) {
			p := New(tt.workers, tt.queueSize, tt.serializeByKey)
			if got := p.Workers(); got != tt.wantWorkers {
				t.Errorf("got Workers() %d, want %d", got, tt.wantWorkers)
			}
			done := make(chan struct{})
			if err := p.Submit(context.Background(), []byte("k"), func() { close(done) }); err != nil {
				t.Fatalf("Submit: got %v, want nil", err)
			}
			p.Close()
			select {
			case <-done:
			default:
				t.Fatalf("job did not run before Close returned")
			}
		})
	}
}

func TestSubmitDoesNotAllocate(t *testing.T) {
	p := newPool(t, 2, 1024, true)
	key := []byte("key")
	job := func() {}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(500, func() {
		_ = p.Submit(ctx, key, job)
		_ = p.Submit(ctx, nil, job)
	})
	if allocs != 0 {
		t.Fatalf("got %v allocations per two Submits, want 0", allocs)
	}
}

// BenchmarkSubmit measures Submit plus running a trivial job, keyed over 64
// keys and unkeyed, with 16 workers and queues of 64 (the defaults).
func BenchmarkSubmit(b *testing.B) {
	keys := make([][]byte, 64)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	for _, keyed := range []bool{true, false} {
		b.Run(fmt.Sprintf("keyed=%v", keyed), func(b *testing.B) {
			p := New(16, 64, true)
			var ran atomic.Int64
			job := func() { ran.Add(1) }
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var key []byte
				if keyed {
					key = keys[i&63]
				}
				if err := p.Submit(ctx, key, job); err != nil {
					b.Fatal(err)
				}
				i++
			}
			p.Close()
			if got := ran.Load(); got != int64(i) {
				b.Fatalf("got %d jobs run, want %d", got, i)
			}
		})
	}
}

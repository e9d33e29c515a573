// Package dispatch runs a module's workers: records of one key go to one
// worker and run one at a time in the order submitted; records without a key,
// or with serialize_by_key off, go to any free worker.
//
// Each worker has its own queue for keyed jobs, and all workers read one
// shared queue for the rest. A keyed job goes to worker
// partition.Worker(key, workers) (FNV-1a of the key modulo the number of
// workers, the SPEC's rule), whose queue is FIFO and who runs one job at a
// time; that is what keeps one key's jobs in order and never concurrent. A job
// that blocks (a push retrying) holds only its worker: keyed jobs hashed to
// other workers go on, and unkeyed jobs are taken by any idle worker.
//
// Fairness: an idle worker with jobs waiting in both its own queue and the
// shared queue picks between them at random (a Go select over both), so
// neither starves the other; on average it alternates. No worker steals
// another's keyed jobs, since that would break the per-key order.
package dispatch

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
)

// Pool is a fixed set of worker goroutines with bounded queues. It is safe
// for concurrent use.
type Pool struct {
	serializeByKey bool
	n              int
	own            []chan func() // keyed queue per worker; nil without serializeByKey
	shared         chan func()   // unkeyed queue, read by every worker
	closing        chan struct{} // closed when Close starts
	busy           atomic.Int64
	workers        sync.WaitGroup

	mu         sync.RWMutex
	closed     bool
	submitters sync.WaitGroup // Submit calls past the closed check
	closeOnce  sync.Once
}

// New starts workers goroutines (at least 1). queueSize bounds each queue:
// every worker's keyed queue and the shared queue hold at most queueSize jobs
// each (0 or less: no buffer, Submit waits for a worker to take the job). With
// serializeByKey false every job goes to the shared queue. Close stops the
// workers.
func New(workers, queueSize int, serializeByKey bool) *Pool {
	if workers < 1 {
		workers = 1
	}
	if queueSize < 0 {
		queueSize = 0
	}
	p := &Pool{
		serializeByKey: serializeByKey,
		n:              workers,
		shared:         make(chan func(), queueSize),
		closing:        make(chan struct{}),
	}
	if serializeByKey {
		p.own = make([]chan func(), workers)
		for i := range p.own {
			p.own[i] = make(chan func(), queueSize)
		}
	}
	p.workers.Add(workers)
	for i := 0; i < workers; i++ {
		var own chan func()
		if serializeByKey {
			own = p.own[i]
		}
		go p.work(own)
	}
	return p
}

// Workers returns the number of worker goroutines.
func (p *Pool) Workers() int { return p.n }

// work runs jobs from the worker's own queue (nil: none) and the shared queue
// until both are closed and empty.
func (p *Pool) work(own chan func()) {
	defer p.workers.Done()
	shared := p.shared
	for own != nil || shared != nil {
		var job func()
		var ok bool
		select {
		case job, ok = <-own:
			if !ok {
				own = nil
				continue
			}
		case job, ok = <-shared:
			if !ok {
				shared = nil
				continue
			}
		}
		p.busy.Add(1)
		job()
		p.busy.Add(-1)
	}
}

// Submit queues job and returns nil once it is queued; the job then runs
// exactly once, also when Close follows. With serializeByKey and a non-empty
// key it goes to the key's worker, after every job of that worker submitted
// before; otherwise to the shared queue, for the first free worker. Submit
// waits while the queue is full; it returns ctx.Err() when ctx ends first
// (ctx bounds only the wait: with room the job is queued even if ctx is done),
// and ErrClosed once Close has started. A Submit racing with Close either
// queues its job, which then runs, or returns ErrClosed. A keyed Submit waits
// while its worker's queue is full, even when other workers are idle.
func (p *Pool) Submit(ctx context.Context, key []byte, job func()) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ErrClosed
	}
	p.submitters.Add(1)
	p.mu.RUnlock()
	defer p.submitters.Done()

	q := p.shared
	if p.serializeByKey && len(key) > 0 {
		q = p.own[partition.Worker(key, len(p.own))]
	}
	select {
	case q <- job:
		return nil
	default:
	}
	select {
	case q <- job:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
}

// Close stops accepting jobs (Submit returns ErrClosed, also to calls waiting
// for room), lets every queued job run to completion and waits for the
// workers to exit. It is safe to call more than once and from several
// goroutines; every call returns after the workers have exited. Close must
// not be called from a job.
func (p *Pool) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.closing)
		p.mu.Unlock()
		// No Submit can start now; those under way return promptly because
		// closing is closed. After them nobody sends, so the queues can close.
		p.submitters.Wait()
		for _, q := range p.own {
			close(q)
		}
		close(p.shared)
	})
	p.workers.Wait()
}

// Busy returns the number of jobs running now.
func (p *Pool) Busy() int { return int(p.busy.Load()) }

// Queued returns the number of jobs waiting in the queues.
func (p *Pool) Queued() int {
	n := len(p.shared)
	for _, q := range p.own {
		n += len(q)
	}
	return n
}

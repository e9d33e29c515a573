package push

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Stalled servers. HTTP/1.1 gives a request no deadline of its own: without a
// read timeout (the original's read_timeout_ms: 0) a server that accepts a
// request and never answers holds the pushing goroutine for good, and with
// round-robin every goroutine soon waits on that server while the others idle.
// A Pusher with more than one server therefore watches them:
//
//   - A server's silence is how long it has owed an answer without giving any:
//     the time since the later of its oldest request in progress and its last
//     answer (0 with nothing in progress). A server answering other requests
//     while one is slow is not silent; an idle one is not either.
//   - A server is healthy when it is not benched, its last attempt did not end
//     without an answer (a timeout, a transport error, an abandonment), and it
//     has been silent for at most the stall bound. A server never used yet is
//     healthy.
//   - The stall bound is Config.Slow (expected_processing_time_ms), at least
//     minStallAfter: the time a push is expected to take.
//   - A server silent beyond the stall bound while another server is healthy is
//     stalled: it gets no new requests. Each request in progress on it that has
//     waited longer than its patience is abandoned: its connection is closed
//     and the attempt fails with ErrAbandoned, a retryable failure that benches
//     the server at once (its cooldown and probe as for other failures), and
//     the record is retried on the next server. The patience of a record's
//     first attempt is the stall bound; it doubles with each of its attempts
//     abandoned, so that a record that is slow wherever it goes is abandoned a
//     few times at most and then waited for.
//   - When no other server is healthy, nothing is abandoned: the request waits
//     as the timeouts say, since there is nowhere better to send it.
//
// The trade-off: an abandoned request may still be processed by the server that
// was silent, so the record can arrive twice, and late (after later records of
// its key) — delivery is at least once, as with a read timeout. A single-server
// Pusher is not watched: it waits as the timeouts say, as the original did.

// minStallAfter is the least stall bound.
const minStallAfter = time.Second

// flight is one attempt in progress on a server (connecting, or an exchange on
// a connection), linked into the server's list while it lasts.
type flight struct {
	prev, next *flight
	start      time.Duration // since the Pusher's epoch
	patience   time.Duration
	abort      func() // ends the attempt's connection or dial at once
	abandoned  atomic.Bool
}

// enter adds f, started at start, to the requests in progress on s.
func (s *server) enter(f *flight, start, patience time.Duration) {
	f.start, f.patience = start, patience
	f.abandoned.Store(false)
	s.mu.Lock()
	f.prev, f.next = nil, s.flights
	if s.flights != nil {
		s.flights.prev = f
	}
	s.flights = f
	s.mu.Unlock()
}

// leave removes f from the requests in progress on s.
func (s *server) leave(f *flight) {
	s.mu.Lock()
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		s.flights = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	}
	f.prev, f.next = nil, nil
	s.mu.Unlock()
}

// answered records that s answered at t (since the Pusher's epoch).
func (s *server) answered(t time.Duration) {
	s.lastAnswer.Store(int64(t))
	if s.owes.Load() {
		s.owes.Store(false)
	}
}

// silence returns how long s has owed an answer at now, and its requests in
// progress.
func (s *server) silence(now time.Duration) (time.Duration, int) {
	s.mu.Lock()
	oldest, n := time.Duration(-1), 0
	for f := s.flights; f != nil; f = f.next {
		if f.abandoned.Load() {
			continue
		}
		n++
		if oldest < 0 || f.start < oldest {
			oldest = f.start
		}
	}
	s.mu.Unlock()
	if n == 0 {
		return 0, 0
	}
	return now - max(oldest, time.Duration(s.lastAnswer.Load())), n
}

// since returns t as a duration since p's epoch (monotonic).
func (p *Pusher) since(t time.Time) time.Duration { return t.Sub(p.epoch) }

// patience is how long an attempt of a record whose attempts were abandoned
// abandons times so far may wait on a stalled server.
func (p *Pusher) patience(abandons int) time.Duration {
	return p.stallAfter << min(abandons, 16)
}

// dialWatched dials s; while a watch runs, the dial counts as a request in
// progress on s since start (the attempt's) and can be abandoned like one.
func (p *Pusher) dialWatched(ctx context.Context, s *server, start time.Time, patience time.Duration) (*conn, error) {
	if p.stallAfter == 0 {
		return p.dial(ctx, s, time.Now())
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &flight{abort: cancel}
	s.enter(f, p.since(start), patience)
	c, err := p.dial(dctx, s, time.Now())
	s.leave(f)
	if err != nil && f.abandoned.Load() && ctx.Err() == nil {
		err = p.abandonedErr(s, start)
	}
	return c, err
}

// abandonedErr is the error of an attempt on s, started at start, that was
// abandoned. The error the abort caused (a timeout, a cancelled dial) says
// nothing more and is left out.
func (p *Pusher) abandonedErr(s *server, start time.Time) error {
	return fmt.Errorf("%w: no answer from %s for %v while another server answers",
		ErrAbandoned, s.name, time.Since(start).Round(time.Millisecond))
}

// startWatch starts the watch of p's servers, once, unless p is closed.
func (p *Pusher) startWatch() {
	p.watchMu.Lock()
	defer p.watchMu.Unlock()
	if p.watchStop != nil || p.closed {
		return
	}
	p.watchStop, p.watchDone = make(chan struct{}), make(chan struct{})
	go p.watch(p.watchStop, p.watchDone)
	p.watching.Store(true)
}

// stopWatch ends the watch and waits for it; the servers are no longer stalled.
func (p *Pusher) stopWatch() {
	p.watchMu.Lock()
	p.closed = true
	stop, done := p.watchStop, p.watchDone
	p.watchStop = nil
	p.watching.Store(true) // pushes after Close do not try to start it
	p.watchMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	for _, s := range p.servers {
		s.stalled.Store(false)
	}
}

// watch checks the servers every quarter of the stall bound until stop closes.
func (p *Pusher) watch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(p.stallAfter / 4)
	defer t.Stop()
	silence := make([]time.Duration, len(p.servers))
	inFlight := make([]int, len(p.servers))
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.checkStalls(silence, inFlight)
		}
	}
}

// checkStalls applies the rules above once: it marks the stalled servers and
// abandons the requests on them that have waited beyond their patience.
// silence and inFlight are scratch space, one entry per server.
func (p *Pusher) checkStalls(silence []time.Duration, inFlight []int) {
	now := p.since(time.Now())
	healthy := 0
	for i, s := range p.servers {
		silence[i], inFlight[i] = s.silence(now)
		if s.until.Load() == 0 && !s.owes.Load() && silence[i] <= p.stallAfter {
			healthy++
		}
	}
	for i, s := range p.servers {
		// A silent server is not healthy itself: any healthy one is another.
		stalled := silence[i] > p.stallAfter && healthy > 0
		if was := s.stalled.Swap(stalled); was != stalled {
			if stalled {
				p.log.Warn("push server stalled: no new pushes to it while another server answers",
					slog.String("server", s.name), slog.Duration("silent_for", silence[i].Round(time.Millisecond)),
					slog.Int("in_flight", inFlight[i]), slog.Duration("stall_after", p.stallAfter))
			} else {
				p.log.Info("push server no longer stalled", slog.String("server", s.name),
					slog.Int("in_flight", inFlight[i]))
			}
		}
		if !stalled {
			continue
		}
		s.mu.Lock()
		for f := s.flights; f != nil; f = f.next {
			if !f.abandoned.Load() && now-f.start > f.patience {
				f.abandoned.Store(true)
				f.abort()
			}
		}
		s.mu.Unlock()
	}
}

// Package loadgen drives a fixed number of concurrent workers — keep-alive
// HTTP connections or plain function calls — for a fixed time and measures
// throughput and latency; the benchmarks of kproxy and ktransfer use it to
// compare the daemons with baselines measured the same way.
//
// Runs are closed-loop: each worker sends its next request as soon as the
// previous one finished. Every worker counts into its own statistics and
// Histogram, which are merged when the run ends, so the generator takes no
// lock and allocates nothing per request on its side (see RunHTTP).
package loadgen

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what a run measured. Only requests started after the warm-up are
// counted; requests in flight when the duration ends are completed and
// counted, and Duration runs until the last of them finished.
type Result struct {
	// Requests is the number of requests (or calls) made: OK, non-2xx
	// responses and errors together.
	Requests int64
	// OK is the number of successful requests: a 2xx response for RunHTTP, a
	// nil error for RunFunc.
	OK int64
	// Errors is the number of requests that got no HTTP response (dial, write,
	// read or protocol error, timeout) for RunHTTP, or returned an error for
	// RunFunc. Non-2xx responses are not errors; they are in Status.
	Errors int64
	// Status counts responses by HTTP status code; nil for RunFunc.
	Status map[int]int64
	// Duration is the measured time: from the end of the warm-up until the
	// last counted request finished.
	Duration time.Duration
	// Latency holds the latencies of the successful requests only, so fast
	// rejections (503) or errors do not flatter the quantiles.
	Latency *Histogram
	// FirstError is the first error a worker saw, nil when Errors is 0.
	FirstError error
}

// Rate returns successful requests per second: 2xx responses (RunHTTP) or
// nil-error calls (RunFunc) divided by Duration. Non-2xx responses and errors
// do not count. It is 0 for an empty result.
func (r Result) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.OK) / r.Duration.Seconds()
}

// Quantile returns the q-quantile of the successful requests' latency (see
// Histogram.Quantile), 0 when there were none.
func (r Result) Quantile(q float64) time.Duration {
	if r.Latency == nil {
		return 0
	}
	return r.Latency.Quantile(q)
}

// String returns a one-line summary, for example
// "10.00s 181234 req 181230 ok 0 err 18123.0 ok/s p50 3.40ms p99 9.80ms max 21.0ms status 200:181230 503:4",
// followed by " first error: ..." when there was one.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d req %d ok %d err %.1f ok/s p50 %s p99 %s max %s",
		fmtDuration(r.Duration), r.Requests, r.OK, r.Errors, r.Rate(),
		fmtDuration(r.Quantile(0.5)), fmtDuration(r.Quantile(0.99)), fmtDuration(r.Quantile(1)))
	if len(r.Status) > 0 {
		codes := make([]int, 0, len(r.Status))
		for c := range r.Status {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		b.WriteString(" status")
		for _, c := range codes {
			fmt.Fprintf(&b, " %d:%d", c, r.Status[c])
		}
	}
	if r.FirstError != nil {
		fmt.Fprintf(&b, " first error: %v", r.FirstError)
	}
	return b.String()
}

// Ratio returns a.Rate() / b.Rate(), the form in which benchmarks report a
// daemon against a baseline measured in the same run; 0 when b has no rate.
func Ratio(a, b Result) float64 {
	if br := b.Rate(); br > 0 {
		return a.Rate() / br
	}
	return 0
}

// Option changes how RunHTTP and RunFunc run.
type Option func(*options)

type options struct {
	warmup time.Duration
}

// Warmup runs the workers for d before measuring starts; requests started
// during the warm-up are not counted. Default 0.
func Warmup(d time.Duration) Option {
	return func(o *options) { o.warmup = d }
}

// stats is one worker's private tally, merged into a Result at the end.
type stats struct {
	hist                 Histogram
	status               [1000]int64 // by status code; codes are three digits
	requests, ok, errors int64
	firstErr             error
	last                 time.Time // when the last counted request finished
}

// clock holds the instants of a run; workers compare monotonic times against
// it instead of sharing a flag, and read abort only to learn about ctx
// cancellation.
type clock struct {
	measure time.Time // end of warm-up
	end     time.Time // no request starts at or after it
	abort   atomic.Bool
}

// count records one finished request that started at t0 and ended at t1.
// status is 0 for a call without HTTP status. Requests started during the
// warm-up are not counted.
func (c *clock) count(s *stats, t0, t1 time.Time, ok bool, status int, err error) {
	if t0.Before(c.measure) {
		return
	}
	s.requests++
	switch {
	case err != nil:
		s.errors++
		if s.firstErr == nil {
			s.firstErr = err
		}
	case ok:
		s.ok++
		s.hist.Record(t1.Sub(t0))
	}
	if status > 0 {
		s.status[status]++
	}
	s.last = t1
}

func validateLoad(workers int, d time.Duration, o *options) error {
	if workers < 1 {
		return fmt.Errorf("%w: workers %d is not >= 1", ErrBadLoad, workers)
	}
	if d <= 0 {
		return fmt.Errorf("%w: duration %s is not > 0", ErrBadLoad, d)
	}
	if o.warmup < 0 {
		return fmt.Errorf("%w: warm-up %s is not >= 0", ErrBadLoad, o.warmup)
	}
	return nil
}

func applyOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// merge combines the workers' tallies into a Result; withStatus makes the
// Status map (HTTP runs).
func merge(c *clock, all []*stats, withStatus bool) Result {
	r := Result{Latency: new(Histogram)}
	if withStatus {
		r.Status = make(map[int]int64)
	}
	last := c.measure
	for _, s := range all {
		r.Requests += s.requests
		r.OK += s.ok
		r.Errors += s.errors
		if r.FirstError == nil {
			r.FirstError = s.firstErr
		}
		r.Latency.Merge(&s.hist)
		if withStatus {
			for code, n := range s.status {
				if n > 0 {
					r.Status[code] += n
				}
			}
		}
		if s.last.After(last) {
			last = s.last
		}
	}
	r.Duration = last.Sub(c.measure)
	return r
}

// RunFunc calls fn from workers goroutines in a closed loop for d (after the
// warm-up, see Warmup) and measures it the way RunHTTP measures HTTP requests:
// a nil error is a success, anything else counts in Errors. worker is
// 0..workers-1 and seq counts the calls of one worker from 0. fn gets ctx and
// must be safe for concurrent use; when d ends, calls in flight are waited
// for and counted.
//
// When ctx is cancelled, RunFunc stops starting calls, waits for the calls in
// flight (which see the cancelled ctx; those that fail are not counted), and
// returns what it measured so far together with an error wrapping ctx.Err().
func RunFunc(ctx context.Context, workers int, d time.Duration, fn func(ctx context.Context, worker int, seq uint64) error, opts ...Option) (Result, error) {
	o := applyOptions(opts)
	if err := validateLoad(workers, d, &o); err != nil {
		return Result{}, err
	}
	if fn == nil {
		return Result{}, fmt.Errorf("%w: nil function", ErrBadLoad)
	}
	c := &clock{}
	start := time.Now()
	c.measure = start.Add(o.warmup)
	c.end = c.measure.Add(d)
	stop := context.AfterFunc(ctx, func() { c.abort.Store(true) })
	defer stop()

	all := make([]*stats, workers)
	var wg sync.WaitGroup
	for w := range workers {
		s := new(stats)
		all[w] = s
		wg.Go(func() {
			t0 := time.Now()
			for seq := uint64(0); t0.Before(c.end) && !c.abort.Load(); seq++ {
				err := fn(ctx, w, seq)
				t1 := time.Now()
				// The flag is set by AfterFunc shortly after ctx is done, so
				// a call failing on the cancellation may come first.
				if c.abort.Load() || (err != nil && ctx.Err() != nil) {
					break
				}
				c.count(s, t0, t1, err == nil, 0, err)
				t0 = t1
			}
		})
	}
	wg.Wait()
	r := merge(c, all, false)
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("loadgen: run cancelled: %w", err)
	}
	return r, nil
}

// fmtDuration prints d with three significant digits in ASCII units, so
// table columns stay aligned.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", int64(d))
	case d < 999_500*time.Nanosecond: // would round to 1000us
		return sig3(float64(d)/float64(time.Microsecond)) + "us"
	case d < 999_500*time.Microsecond:
		return sig3(float64(d)/float64(time.Millisecond)) + "ms"
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// sig3 prints v (1 <= v < 999.5) with three significant digits and no
// exponent.
func sig3(v float64) string {
	switch {
	case v >= 99.95:
		return fmt.Sprintf("%.0f", v)
	case v >= 9.995:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Package backoff is the one way the daemons wait between attempts: a Policy
// of exponential pauses with jitter, bounded by a ceiling and optionally by a
// number of attempts, and waits that end early when their context ends.
// ktransfer's pushes (retry_interval_ms, backoff_max_ms, with Retry-After
// taking precedence), its dead-letter writes, final commits and log-offset
// lookups, the Kafka group member's joins, and kproxy's accept loop use it.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy describes the pauses between the attempts of one operation. The zero
// value retries at once, without bound. A Policy is a value: safe to share and
// to use from many goroutines.
type Policy struct {
	// Initial is the pause before the first retry, and the shortest pause.
	Initial time.Duration
	// Max, when above Initial, makes the pauses grow: the pause before retry
	// n is a random time between half and all of Initial*2^(n-1) (1 ms is used
	// for an Initial of 0), capped at Max, and never less than Initial. At or
	// below Initial every pause is Initial, with no jitter.
	Max time.Duration
	// Attempts bounds how many times Retry calls its operation; 0 = until it
	// succeeds, fails permanently or the context ends.
	Attempts int
}

// Delay returns the pause before retry n (1 = the first retry; below 1 counts
// as 1).
func (p Policy) Delay(n int) time.Duration {
	if p.Max <= p.Initial {
		return p.Initial
	}
	e := max(p.Initial, time.Millisecond)
	for i := 1; i < n && e < p.Max; i++ {
		e *= 2
	}
	e = min(e, p.Max)
	half := e / 2
	return max(p.Initial, half+rand.N(e-half+1))
}

// Retry calls op until it returns nil, and then returns nil. It calls op at
// least once, then again after each pause (Delay) while op fails, and stops:
// with op's error when that error is marked with Permanent (the mark
// removed), or when p.Attempts calls failed; with ctx's error when ctx ends
// before a retry or during a pause. onRetry, when not nil, is told each
// failure that is followed by a retry and the pause before it (to log it).
func (p Policy) Retry(ctx context.Context, op func() error, onRetry func(err error, wait time.Duration)) error {
	for n := 1; ; n++ {
		err := op()
		if err == nil {
			return nil
		}
		if perm, ok := errors.AsType[*permanent](err); ok {
			return perm.err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if p.Attempts > 0 && n >= p.Attempts {
			return err
		}
		wait := p.Delay(n)
		if onRetry != nil {
			onRetry(err, wait)
		}
		if !Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// Permanent marks err as not worth another attempt: Retry returns it (without
// the mark) at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// permanent is an error Retry does not retry.
type permanent struct{ err error }

func (e *permanent) Error() string { return e.err.Error() }
func (e *permanent) Unwrap() error { return e.err }

// Sleep waits d, or less when ctx ends first; it reports whether ctx is still
// live. A d of 0 or less does not wait.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

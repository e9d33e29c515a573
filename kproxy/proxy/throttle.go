package proxy

import (
	"log/slog"
	"sync"
	"time"
)

// Throttle logs a warning at most once every ThrottleEvery, with the number of
// occurrences since the last line, so that a failure repeated by every
// request costs one line, not one per request. The zero value is ready; it is
// safe for concurrent use.
type Throttle struct {
	mu     sync.Mutex
	last   time.Time
	missed int
}

// ThrottleEvery is the shortest time between two lines of one Throttle.
const ThrottleEvery = 10 * time.Second

// Warn logs msg with args at warning level, unless the Throttle logged less
// than ThrottleEvery ago.
func (t *Throttle) Warn(log *slog.Logger, msg string, args ...any) {
	t.mu.Lock()
	now := time.Now()
	if !t.last.IsZero() && now.Sub(t.last) < ThrottleEvery {
		t.missed++
		t.mu.Unlock()
		return
	}
	missed := t.missed
	t.last, t.missed = now, 0
	t.mu.Unlock()
	if missed > 0 {
		args = append(args, "more_since_last_line", missed)
	}
	log.Warn(msg, args...)
}

package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		name         string
		initial, max time.Duration
		n            int
		lo, hi       time.Duration
	}{
		{"no growth", 200 * time.Millisecond, 0, 5, 200 * time.Millisecond, 200 * time.Millisecond},
		{"ceiling below initial", 200 * time.Millisecond, 100 * time.Millisecond, 5, 200 * time.Millisecond, 200 * time.Millisecond},
		{"zero policy", 0, 0, 3, 0, 0},
		{"first retry", 100 * time.Millisecond, time.Second, 1, 100 * time.Millisecond, 100 * time.Millisecond},
		{"retry 0 counts as the first", 100 * time.Millisecond, time.Second, 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{"second retry", 100 * time.Millisecond, time.Second, 2, 100 * time.Millisecond, 200 * time.Millisecond},
		{"fourth retry", 100 * time.Millisecond, time.Second, 4, 400 * time.Millisecond, 800 * time.Millisecond},
		{"capped", 100 * time.Millisecond, time.Second, 9, 500 * time.Millisecond, time.Second},
		{"forever", 100 * time.Millisecond, time.Second, 1 << 30, 500 * time.Millisecond, time.Second},
		{"zero initial", 0, 8 * time.Millisecond, 3, 2 * time.Millisecond, 4 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{Initial: tt.initial, Max: tt.max}
			var seenLo, seenHi bool
			for range 2000 {
				d := p.Delay(tt.n)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.n, d, tt.lo, tt.hi)
				}
				seenLo = seenLo || d < tt.lo+(tt.hi-tt.lo)/4
				seenHi = seenHi || d > tt.hi-(tt.hi-tt.lo)/4
			}
			if tt.lo != tt.hi && (!seenLo || !seenHi) {
				t.Errorf("Delay(%d) did not spread over [%v, %v] (jitter missing)", tt.n, tt.lo, tt.hi)
			}
		})
	}
}

func TestRetrySucceeds(t *testing.T) {
	var calls int
	var waits []time.Duration
	p := Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond}
	err := p.Retry(context.Background(), func() error {
		calls++
		if calls < 4 {
			return errors.New("not yet")
		}
		return nil
	}, func(err error, wait time.Duration) {
		if err.Error() != "not yet" {
			t.Errorf("onRetry got %v, want the operation's error", err)
		}
		waits = append(waits, wait)
	})
	if err != nil || calls != 4 {
		t.Fatalf("got %v after %d calls, want nil after 4", err, calls)
	}
	if len(waits) != 3 {
		t.Fatalf("got %d retries told, want 3", len(waits))
	}
	for i, w := range waits {
		if hi := min(time.Millisecond<<i, 4*time.Millisecond); w < time.Millisecond || w > hi {
			t.Errorf("pause before retry %d: got %v, want within [1ms, %v]", i+1, w, hi)
		}
	}
}

func TestRetryAttempts(t *testing.T) {
	var calls, told int
	want := errors.New("down")
	err := Policy{Attempts: 3}.Retry(context.Background(), func() error {
		calls++
		return want
	}, func(error, time.Duration) { told++ })
	if !errors.Is(err, want) || calls != 3 || told != 2 {
		t.Errorf("got %v after %d calls and %d retries told, want %v after 3 calls and 2 told", err, calls, told, want)
	}
}

func TestRetryPermanent(t *testing.T) {
	var calls int
	want := errors.New("refused")
	err := Policy{}.Retry(context.Background(), func() error {
		calls++
		return Permanent(want)
	}, func(error, time.Duration) { t.Error("onRetry called for a permanent error") })
	if err != want || calls != 1 {
		t.Errorf("got %v after %d calls, want exactly %v after 1", err, calls, want)
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
}

// TestRetryContext: the end of the context stops the retries, during a pause
// or between attempts, and the first attempt is made even on an ended one.
func TestRetryContext(t *testing.T) {
	t.Run("during a pause", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var calls int
		done := make(chan error, 1)
		go func() {
			done <- Policy{Initial: time.Hour}.Retry(ctx, func() error {
				calls++
				return errors.New("down")
			}, func(error, time.Duration) { cancel() })
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || calls != 1 {
				t.Errorf("got %v after %d calls, want context.Canceled after 1", err, calls)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Retry still waits after its context ended")
		}
	})
	t.Run("ended before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var calls int
		err := Policy{}.Retry(ctx, func() error {
			calls++
			return errors.New("down")
		}, nil)
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("got %v after %d calls, want context.Canceled after 1", err, calls)
		}
		if err := (Policy{}).Retry(ctx, func() error { return nil }, nil); err != nil {
			t.Errorf("an attempt that succeeds on an ended context: got %v, want nil", err)
		}
	})
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) || !Sleep(context.Background(), 0) {
		t.Error("Sleep on a live context reported it ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) || Sleep(ctx, 0) {
		t.Error("Sleep on an ended context reported it live")
	}
}

// Package testwait is how tests wait instead of sleeping, and where they keep
// what a logger writes: Eventually and Until poll a condition until it holds
// and fail the test, naming what it waited for, when a timeout passes first;
// Within does the same without failing; Recv waits for a channel and Blocked
// checks that one stays silent; Closed waits for the other side to close a
// connection; Log is a lock-protected buffer for a
// logger (or a process's output) that a test reads while it is written, and
// LogTo a writer to the test's own log that falls silent once the test ends.
//
// A timeout here guards against a hang, it is not a timing check: pass one
// long enough for a loaded machine. Only tests import this package; no binary
// contains it (TestNotInBinaries).
package testwait

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Polling starts at firstPoll between checks and doubles up to maxPoll, so a
// condition that holds soon is seen soon and a long wait costs little.
const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// Within polls cond until it holds or timeout passes, and reports whether it
// held. cond is checked once more at the deadline, so a wait that ends at
// the timeout has seen the latest state.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for pause := firstPoll; ; pause = min(2*pause, maxPoll) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
	}
}

// Eventually polls cond until it holds, and fails the test with
// "WHAT: not within TIMEOUT" when timeout passes first.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Within(timeout, cond) {
		tb.Fatalf("%s: not within %s", what, timeout)
	}
}

// Until polls cond until it returns nil, and fails the test with cond's last
// error when timeout passes first: for conditions that can say what is still
// missing.
func Until(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	var last error
	if !Within(timeout, func() bool { last = cond(); return last == nil }) {
		tb.Fatalf("not within %s: %v", timeout, last)
	}
}

// Recv waits up to timeout for a value from ch and returns it; when none
// comes, it fails the test with "WHAT still blocked after TIMEOUT".
func Recv[T any](tb testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		tb.Fatalf("%s still blocked after %s", what, timeout)
		var zero T
		return zero
	}
}

// Blocked fails the test when ch delivers within grace: the one way to see a
// call that must stay blocked, so grace is short and the check can only miss
// a call that returns late, never fail one that blocks.
func Blocked[T any](tb testing.TB, ch <-chan T, grace time.Duration, what string) {
	tb.Helper()
	select {
	case v := <-ch:
		tb.Fatalf("%s returned %v, want it to block", what, v)
	case <-time.After(grace):
	}
}

// Closed reads c, dropping what arrives, until the other side closes it, and
// fails the test when c is still open after within.
func Closed(tb testing.TB, c net.Conn, within time.Duration) {
	tb.Helper()
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		tb.Fatal(err)
	}
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		tb.Fatalf("connection still open after %s, want the server to have closed it", within)
	}
}

// Log keeps everything written to it, for a test to read while a logger or a
// process goes on writing. The zero value is ready to use; its methods are
// safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never fails.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Logger returns a logger writing text lines of level and above to l.
func (l *Log) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: level}))
}

// LogTo returns a writer that passes each write, one log line, to tb.Log
// until the test's cleanups have run; after that it drops them, since a
// client's goroutines may still log once the test has ended, when tb.Log
// would panic. Call it before anything that logs registers its cleanup.
func LogTo(tb testing.TB) io.Writer {
	w := &testLog{tb: tb}
	tb.Cleanup(w.stop)
	return w
}

type testLog struct {
	mu      sync.Mutex
	tb      testing.TB
	stopped bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}

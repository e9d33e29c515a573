package loadgen

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

var errOdd = errors.New("odd call")

func TestRunFuncCounts(t *testing.T) {
	const workers = 4
	var calls, failed atomic.Int64
	var seen [workers]atomic.Bool
	fn := func(ctx context.Context, worker int, seq uint64) error {
		calls.Add(1)
		seen[worker].Store(true)
		if seq%4 == 1 {
			failed.Add(1)
			return errOdd
		}
		return nil
	}
	r, err := RunFunc(context.Background(), workers, 100*time.Millisecond, fn)
	if err != nil {
		t.Fatalf("RunFunc: %v", err)
	}
	if failed.Load() == 0 {
		t.Fatalf("no failing call was made")
	}
	if got, want := r.Requests, calls.Load(); got != want {
		t.Errorf("Requests = %d, want %d calls", got, want)
	}
	if got, want := r.Errors, failed.Load(); got != want {
		t.Errorf("Errors = %d, want %d", got, want)
	}
	if got, want := r.OK, calls.Load()-failed.Load(); got != want {
		t.Errorf("OK = %d, want %d", got, want)
	}
	if got, want := r.Latency.Count(), r.OK; got != want {
		t.Errorf("Latency.Count() = %d, want OK %d", got, want)
	}
	if !errors.Is(r.FirstError, errOdd) {
		t.Errorf("FirstError = %v, want %v", r.FirstError, errOdd)
	}
	if r.Status != nil {
		t.Errorf("Status = %v, want nil for RunFunc", r.Status)
	}
	if r.Duration < 100*time.Millisecond {
		t.Errorf("Duration = %v, want >= 100ms", r.Duration)
	}
	for w := range seen {
		if !seen[w].Load() {
			t.Errorf("worker %d never called", w)
		}
	}
}

func TestRunFuncCancel(t *testing.T) {
	var blocked atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fn := func(ctx context.Context, _ int, seq uint64) error {
		if seq < 3 {
			return nil
		}
		blocked.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	done := make(chan struct{})
	var r Result
	var err error
	go func() {
		defer close(done)
		r, err = RunFunc(ctx, 2, time.Hour, fn)
	}()
	testwait.Eventually(t, 5*time.Second, "both workers blocked", func() bool { return blocked.Load() == 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("RunFunc did not return within 5s of cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RunFunc error = %v, want context.Canceled", err)
	}
	if r.OK != 6 || r.Errors != 0 {
		t.Errorf("got OK %d Errors %d, want 6 and the aborted calls not counted", r.OK, r.Errors)
	}
}

func TestRunFuncWarmup(t *testing.T) {
	var calls atomic.Int64
	fn := func(context.Context, int, uint64) error {
		calls.Add(1)
		return nil
	}
	r, err := RunFunc(context.Background(), 2, 400*time.Millisecond, fn, Warmup(100*time.Millisecond))
	if err != nil {
		t.Fatalf("RunFunc: %v", err)
	}
	if r.Requests == 0 || r.Requests >= calls.Load() {
		t.Errorf("Requests = %d of %d calls, want > 0 and the warm-up excluded", r.Requests, calls.Load())
	}
}

func TestRunFuncBadArguments(t *testing.T) {
	fn := func(context.Context, int, uint64) error { return nil }
	tests := []struct {
		name    string
		workers int
		d       time.Duration
		fn      func(context.Context, int, uint64) error
	}{
		{"no workers", 0, time.Second, fn},
		{"negative duration", 1, -time.Second, fn},
		{"nil function", 1, time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := RunFunc(context.Background(), tt.workers, tt.d, tt.fn); !errors.Is(err, ErrBadLoad) {
				t.Errorf("got error %v, want %v", err, ErrBadLoad)
			}
		})
	}
}

// result builds a Result with n successful requests of latency lat over d.
func result(n int64, lat, d time.Duration) Result {
	r := Result{Requests: n, OK: n, Duration: d, Latency: new(Histogram), Status: map[int]int64{200: n}}
	for range n {
		r.Latency.Record(lat)
	}
	return r
}

func TestResultRateAndString(t *testing.T) {
	r := result(1000, 2*time.Millisecond, 2*time.Second)
	r.Requests += 5
	r.Errors = 2
	r.Status[503] = 3
	r.FirstError = errOdd
	if got, want := r.Rate(), 500.0; got != want {
		t.Errorf("Rate() = %v, want %v", got, want)
	}
	if got := (Result{}).Rate(); got != 0 {
		t.Errorf("empty Result Rate() = %v, want 0", got)
	}
	if got := (Result{}).Quantile(0.5); got != 0 {
		t.Errorf("empty Result Quantile(0.5) = %v, want 0", got)
	}
	s := r.String()
	for _, want := range []string{"2.00s", "1005 req", "1000 ok", "2 err", "500.0 ok/s", "p50 2.00ms", "status 200:1000 503:3", "odd call"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}
	if strings.Contains(s, "\n") {
		t.Errorf("String() = %q, want one line", s)
	}
	if got, want := Ratio(r, result(250, time.Millisecond, time.Second)), 2.0; got != want {
		t.Errorf("Ratio = %v, want %v", got, want)
	}
	if got := Ratio(r, Result{}); got != 0 {
		t.Errorf("Ratio against an empty baseline = %v, want 0", got)
	}
}

func TestFmtDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0ns"},
		{999, "999ns"},
		{1500, "1.50us"},
		{999_400, "999us"},
		{999_949, "1.00ms"},
		{99_960, "100us"},
		{9_996_000, "10.0ms"},
		{12_340_000, "12.3ms"},
		{999_500_000, "1.00s"},
		{1500 * time.Millisecond, "1.50s"},
	}
	for _, tt := range tests {
		if got := fmtDuration(tt.d); got != tt.want {
			t.Errorf("fmtDuration(%d) = %q, want %q", int64(tt.d), got, tt.want)
		}
	}
}

func TestTable(t *testing.T) {
	base := result(10000, time.Millisecond, time.Second)
	proxy := result(8000, 3*time.Millisecond, time.Second)
	proxy.Requests += 12
	rows := []Row{
		{Name: "baseline", Result: base},
		{Name: "kproxy acks=1", Result: proxy, RSS: 64 << 20, Ratios: map[string]float64{"vs baseline": Ratio(proxy, base), "a": 1}},
	}
	got := Table(rows)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("Table has %d lines, want 3:\n%s", len(lines), got)
	}
	for i, l := range lines {
		if len(l) != len(lines[0]) {
			t.Errorf("line %d is %d wide, want %d (aligned):\n%s", i, len(l), len(lines[0]), got)
		}
	}
	wantFields := [][]string{
		{"name", "req/s", "p50", "p99", "errors", "RSS", "MiB", "a", "vs", "baseline"},
		{"baseline", "10000", "1.00ms", "1.00ms", "0", "-", "-", "-"},
		{"kproxy", "acks=1", "8000", "3.00ms", "3.00ms", "12", "64.0", "1.00", "0.80"},
	}
	for i, want := range wantFields {
		if f := strings.Fields(lines[i]); strings.Join(f, " ") != strings.Join(want, " ") {
			t.Errorf("line %d fields = %q, want %q", i, f, want)
		}
	}
	if !strings.HasPrefix(lines[1], "baseline ") || !strings.HasSuffix(lines[1], " -") {
		t.Errorf("line 1 = %q, want name left-aligned and figures right-aligned", lines[1])
	}
}

package push

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/dispatch"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// hungServer accepts connections and reads requests, and never answers.
func hungServer(t *testing.T) (*rawServer, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	s := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			requests.Add(1)
		}
	})
	return s, &requests
}

// TestHungServerBesideHealthyOne: with the original module's
// timeouts (read_timeout_ms: 0, write and connect 100 ms, retries forever every
// 200 ms, expected_processing_time_ms 1000) and the default benching, one
// backend accepts requests and never answers while another answers. Workers
// pushing with per-key order, as ktransfer's, deliver every record of every key,
// each key's records in order.
func TestHungServerBesideHealthyOne(t *testing.T) {
	const workers, keys, perKey = 16, 64, 8
	hung, hungRequests := hungServer(t)
	var mu sync.Mutex
	delivered := map[string][]int{} // key -> sequence numbers, in arrival order
	healthy := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		seq, _ := strconv.Atoi(r.URL.Query().Get("seq"))
		mu.Lock()
		delivered[key] = append(delivered[key], seq)
		mu.Unlock()
	})
	var abandoned atomic.Int64
	var logs testwait.Log
	p, err := New(Config{
		Servers: []string{hung.addr, healthy.name}, URI: "/XXX/{#TOPIC}?key={#KEY}&seq={#TRANSID}",
		ReadTimeout: 0, WriteTimeout: 100 * time.Millisecond, ConnTimeout: 100 * time.Millisecond,
		MaxRetries: -1, RetryInterval: 200 * time.Millisecond,
		FailThreshold: 5, Cooldown: 5 * time.Second, Slow: time.Second,
	}, logs.Logger(slog.LevelDebug), Events{
		Attempt: func(_ string, _ int, err error, _ time.Duration) {
			if errors.Is(err, ErrAbandoned) {
				abandoned.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	// ktransfer's worker pool: a key always goes to the same worker, which
	// pushes its records one at a time, in order (serialize_by_key).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool := dispatch.New(workers, 64, true)
	defer pool.Close()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for seq := range perKey {
		for k := range keys {
			r := Record{Topic: "t", Key: fmt.Appendf(nil, "user%02d", k), Offset: int64(seq), Value: []byte{0xc0}}
			wg.Add(1)
			err := pool.Submit(ctx, r.Key, func() {
				defer wg.Done()
				if res := p.Push(ctx, r); res.Err != nil {
					failed.Add(1)
				}
			})
			if err != nil {
				wg.Done()
				t.Fatalf("submit: %v (the hung server got %d requests)", err, hungRequests.Load())
			}
		}
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d records not delivered within the test's bound (%v); the hung server got %d requests",
			n, ctx.Err(), hungRequests.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range keys {
		key := fmt.Sprintf("user%02d", k)
		var first []int
		for _, seq := range delivered[key] {
			if !slices.Contains(first, seq) {
				first = append(first, seq)
			}
		}
		if want := seq(0, perKey-1); !slices.Equal(first, want) {
			t.Errorf("key %s: first deliveries in order %v, want %v", key, first, want)
		}
	}
	if abandoned.Load() == 0 {
		t.Errorf("no attempt was abandoned, yet every record was delivered: the hung server got %d requests", hungRequests.Load())
	}
	// Once stalled, then benched, the hung server gets no new pushes but
	// the probes after each cooldown.
	if got := hungRequests.Load(); got > 2*workers {
		t.Errorf("the hung server got %d requests, want at most %d", got, 2*workers)
	}
	if !strings.Contains(logs.String(), `msg="push server stalled: no new pushes to it while another server answers"`) ||
		!strings.Contains(logs.String(), "server="+hung.addr) {
		t.Errorf("got log %q, want a warning naming the stalled server", logs.String())
	}
}

// TestSlowRecordNotAbandonedForever: a record every server takes long over is
// abandoned on the first server while the other is idle, then waited for on the
// other: the first server has left a request unanswered, so it is no healthy
// peer to prefer.
func TestSlowRecordNotAbandonedForever(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	}
	a, b := newBackend(t, slow), newBackend(t, slow)
	var r recorder
	p := newPusher(t, Config{Servers: []string{a.name, b.name}, MaxRetries: -1, RetryInterval: time.Millisecond}, r.events())
	p.stallAfter = 100 * time.Millisecond
	res := p.Push(context.Background(), rec)
	if res.Err != nil {
		t.Fatalf("got %+v, want delivered", res)
	}
	servers, _ := r.snapshot()
	if want := []string{a.name, b.name}; res.Attempts != 2 || !slices.Equal(servers, want) {
		t.Errorf("got %d attempts on %v, want 2 on %v (abandoned once, then waited for)", res.Attempts, servers, want)
	}
	if !errors.Is(r.errs[0], ErrAbandoned) {
		t.Errorf("got first attempt error %v, want ErrAbandoned", r.errs[0])
	}
}

// TestSingleServerNotWatched: with one server there is nowhere else to push, so
// a silent server is waited for as the timeouts say (here: until cancelled).
func TestSingleServerNotWatched(t *testing.T) {
	hung, requests := hungServer(t)
	p := newPusher(t, Config{Servers: []string{hung.addr}, Slow: time.Millisecond}, Events{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- p.Push(ctx, rec) }()
	testwait.Eventually(t, 5*time.Second, "one request", func() bool { return requests.Load() == 1 })
	select {
	case res := <-done:
		t.Fatalf("got %+v before cancelling, want the push to wait for the only server", res)
	case <-time.After(2 * minStallAfter):
	}
	cancel()
	if res := <-done; !errors.Is(res.Err, context.Canceled) || requests.Load() != 1 {
		t.Errorf("got %+v after %d requests, want context.Canceled after 1", res, requests.Load())
	}
}

// TestCheckStalls applies the stall rules to servers in set states.
func TestCheckStalls(t *testing.T) {
	const bound = time.Second
	type srv struct {
		flights []time.Duration // ages of the requests in progress
		answer  time.Duration   // age of the last answer; 0 = never
		owes    bool
		benched bool
	}
	tests := []struct {
		name          string
		servers       []srv
		wantStalled   []bool
		wantAbandoned [][]bool
	}{
		{"silent beside an idle one", []srv{{flights: []time.Duration{3 * bound, bound / 2}}, {}},
			[]bool{true, false}, [][]bool{{true, false}, nil}},
		{"silent beside one answering", []srv{{flights: []time.Duration{2 * bound}}, {flights: []time.Duration{bound / 2}, answer: bound / 10}},
			[]bool{true, false}, [][]bool{{true}, {false}}},
		{"slow request, but answering others", []srv{{flights: []time.Duration{5 * bound, bound / 10}, answer: bound / 2}, {}},
			[]bool{false, false}, [][]bool{{false, false}, nil}},
		{"within the bound", []srv{{flights: []time.Duration{bound - time.Millisecond}}, {}},
			[]bool{false, false}, [][]bool{{false}, nil}},
		{"the other owes an answer", []srv{{flights: []time.Duration{3 * bound}}, {owes: true}},
			[]bool{false, false}, [][]bool{{false}, nil}},
		{"the other is benched", []srv{{flights: []time.Duration{3 * bound}}, {benched: true}},
			[]bool{false, false}, [][]bool{{false}, nil}},
		{"both silent", []srv{{flights: []time.Duration{5 * bound}}, {flights: []time.Duration{2 * bound}}},
			[]bool{false, false}, [][]bool{{false}, {false}}},
		{"two silent, one healthy", []srv{{flights: []time.Duration{5 * bound}}, {flights: []time.Duration{2 * bound}}, {}},
			[]bool{true, true, false}, [][]bool{{true}, {true}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for i := range tt.servers {
				names = append(names, fmt.Sprintf("127.0.0.1:%d", 8000+i))
			}
			p := newPusher(t, Config{Servers: names, FailThreshold: 1, Cooldown: time.Hour}, Events{})
			// Times are taken since the epoch, which must precede them.
			p.epoch = time.Now().Add(-time.Hour)
			now := p.since(time.Now())
			var flights [][]*flight
			var aborted atomic.Int64
			for i, sv := range tt.servers {
				s := p.servers[i]
				var fs []*flight
				for _, age := range sv.flights {
					f := &flight{abort: func() { aborted.Add(1) }}
					s.enter(f, now-age, bound)
					fs = append(fs, f)
				}
				flights = append(flights, fs)
				if sv.answer > 0 {
					s.answered(now - sv.answer)
				}
				s.owes.Store(sv.owes)
				if sv.benched {
					s.until.Store(time.Now().Add(time.Hour).UnixNano())
				}
			}
			n := len(tt.servers)
			p.checkStalls(make([]time.Duration, n), make([]int, n))
			wantAborted := int64(0)
			for i, s := range p.servers {
				if got := s.stalled.Load(); got != tt.wantStalled[i] {
					t.Errorf("server %d: stalled %v, want %v", i, got, tt.wantStalled[i])
				}
				for j, f := range flights[i] {
					if got := f.abandoned.Load(); got != tt.wantAbandoned[i][j] {
						t.Errorf("server %d, request %d: abandoned %v, want %v", i, j, got, tt.wantAbandoned[i][j])
					}
					if tt.wantAbandoned[i][j] {
						wantAborted++
					}
				}
			}
			if got := aborted.Load(); got != wantAborted {
				t.Errorf("got %d aborts, want %d", got, wantAborted)
			}
			// A stalled server gets no new pushes.
			for idx := range uint64(2 * n) {
				if i, _ := p.pick(idx); tt.wantStalled[i] {
					t.Errorf("pick(%d) = stalled server %d", idx, i)
				}
			}
		})
	}
}

func TestPatienceDoubles(t *testing.T) {
	p := &Pusher{stallAfter: time.Second}
	for k, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := p.patience(k); got != want {
			t.Errorf("patience(%d) = %v, want %v", k, got, want)
		}
	}
	if got := p.patience(1000); got != time.Second<<16 {
		t.Errorf("patience(1000) = %v, want the cap %v", got, time.Second<<16)
	}
}

package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

var rec = Record{Topic: "orders", Partition: 3, Offset: 42, Key: []byte("k 1/&"), Value: []byte("\x81\xa6method\xa9TestReply"), Method: "TestReply"}

func TestRequest(t *testing.T) {
	const uri = "/XXX/{#TOPIC}/{#PARTITION}/{#METHOD}?key={#KEY}&transid={#TRANSID}&format=msgpack"
	const wantURI = "/XXX/orders/3/TestReply?key=k+1%2F%26&transid=42&format=msgpack"
	tests := []struct {
		name      string
		headers   []map[string]string
		wantHost  string // "" = the server's host:port
		wantType  string
		wantAgent string
		wantOther map[string]string
	}{
		{name: "defaults", wantType: "application/x-msgpack", wantAgent: "ktransfer"},
		{
			name:     "original headers, lower-cased keys",
			headers:  []map[string]string{{"host": "www.myhug.cn"}, {"x-trace": "abc"}, {"X-Multi": "1"}, {"x-multi": "2"}},
			wantHost: "www.myhug.cn", wantType: "application/x-msgpack", wantAgent: "ktransfer",
			wantOther: map[string]string{"X-Trace": "abc", "X-Multi": "1,2"},
		},
		{
			name:     "content type and agent overridden",
			headers:  []map[string]string{{"content-type": "application/json"}, {"User-Agent": "legacy/1"}},
			wantType: "application/json", wantAgent: "legacy/1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, nil)
			p := newPusher(t, Config{Servers: []string{b.name}, URI: uri, Headers: tt.headers}, Events{})
			res := p.Push(context.Background(), rec)
			if res.Err != nil || res.Status != 200 || res.Attempts != 1 || res.Server != b.name {
				t.Fatalf("got %+v, want delivered by %s with 200 in 1 attempt", res, b.name)
			}
			got := b.seen()
			if len(got) != 1 {
				t.Fatalf("got %d requests, want 1", len(got))
			}
			r := got[0]
			wantHost := tt.wantHost
			if wantHost == "" {
				wantHost = b.name
			}
			if r.Method != "POST" || r.URI != wantURI || r.Host != wantHost || !bytes.Equal(r.Body, rec.Value) {
				t.Errorf("got %s %s Host %s body %q, want POST %s Host %s body %q", r.Method, r.URI, r.Host, r.Body, wantURI, wantHost, rec.Value)
			}
			if got := r.Header.Values("Content-Type"); !slices.Equal(got, []string{tt.wantType}) {
				t.Errorf("got Content-Type %q, want [%q]", got, tt.wantType)
			}
			if got := r.Header.Get("User-Agent"); got != tt.wantAgent {
				t.Errorf("got User-Agent %q, want %q", got, tt.wantAgent)
			}
			if got := r.Header.Get("Content-Length"); got != fmt.Sprint(len(rec.Value)) {
				t.Errorf("got Content-Length %q, want %d", got, len(rec.Value))
			}
			for k, v := range tt.wantOther {
				if got := strings.Join(r.Header.Values(k), ","); got != v {
					t.Errorf("got %s %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestServerForms(t *testing.T) {
	b := newBackend(t, nil)
	tests := []struct {
		server, wantURI string
	}{
		{b.name, "/XXX/orders"},
		{"http://" + b.name, "/XXX/orders"},
		{"http://" + b.name + "/", "/XXX/orders"},
		{"http://" + b.name + "/base", "/base/XXX/orders"},
		{"http://" + b.name + "/base/v1/", "/base/v1/XXX/orders"},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			p := newPusher(t, Config{Servers: []string{tt.server}, URI: "/XXX/{#TOPIC}"}, Events{})
			n := len(b.seen())
			if res := p.Push(context.Background(), rec); res.Err != nil || res.Server != tt.server {
				t.Fatalf("got %+v, want delivered by %s", res, tt.server)
			}
			got := b.seen()[n:]
			if len(got) != 1 || got[0].URI != tt.wantURI || got[0].Host != b.name {
				t.Fatalf("got %+v, want one request for %s with Host %s", got, tt.wantURI, b.name)
			}
		})
	}
}

func TestHTTPS(t *testing.T) {
	var conns atomic.Int64
	var uris sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uris.Store(r.RequestURI, r.Host)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	p := newPusher(t, Config{
		Servers: []string{srv.URL + "/base"}, URI: "/t/{#TOPIC}",
		Headers: []map[string]string{{"Host": "backend.example"}},
		TLS:     &tls.Config{RootCAs: roots, ServerName: "example.com"},
	}, Events{})
	for range 3 {
		if res := p.Push(context.Background(), rec); res.Err != nil {
			t.Fatalf("got %+v, want delivered", res)
		}
	}
	if host, ok := uris.Load("/base/t/orders"); !ok || host != "backend.example" {
		t.Errorf("got host %v for /base/t/orders, want backend.example", host)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("got %d TLS connections for 3 pushes, want 1", n)
	}
}

func TestStatuses(t *testing.T) {
	tests := []struct {
		code      int
		delivered bool
	}{
		{200, true}, {201, true}, {202, true}, {204, true}, {299, true},
		{301, false}, {302, false}, {404, false}, {500, false}, {503, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.code/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.code)
				if tt.code != 204 {
					fmt.Fprint(w, "answer body")
				}
			})
			p := newPusher(t, Config{Servers: []string{b.name}}, Events{})
			res := p.Push(context.Background(), rec)
			if res.Status != tt.code || res.Attempts != 1 {
				t.Errorf("got status %d in %d attempts, want %d in 1", res.Status, res.Attempts, tt.code)
			}
			if tt.delivered {
				if res.Err != nil {
					t.Errorf("got error %v, want delivered", res.Err)
				}
				return
			}
			var se *StatusError
			if !errors.As(res.Err, &se) || se.Code != tt.code || se.Body != "answer body" {
				t.Errorf("got error %v, want StatusError %d with body \"answer body\"", res.Err, tt.code)
			}
			if n := b.requests.Load(); n != 1 {
				t.Errorf("got %d requests, want 1 (redirects are not followed)", n)
			}
		})
	}
}

func TestRetriesRotate(t *testing.T) {
	var backends []*backend
	var servers []string
	for range 3 {
		b := newBackend(t, status(500))
		backends = append(backends, b)
		servers = append(servers, b.name)
	}
	var r *recorder
	p := newPusher(t, Config{Servers: servers, MaxRetries: 5}, Events{
		Attempt: func(server string, status int, err error, took time.Duration) {
			r.events().Attempt(server, status, err, took)
		},
	})
	prev := -1
	for push := range 2 {
		r = &recorder{}
		res := p.Push(context.Background(), rec)
		if res.Attempts != 6 || res.Status != 500 || res.Permanent {
			t.Fatalf("push %d: got %+v, want 6 attempts ending in 500, not permanent", push, res)
		}
		got, _ := r.snapshot()
		first := slices.Index(servers, got[0])
		if prev >= 0 && first != (prev+1)%3 {
			t.Errorf("push %d started on server %d, push %d on %d; want the next one", push, first, push-1, prev)
		}
		prev = first
		for i, s := range got {
			if want := servers[(first+i)%3]; s != want {
				t.Errorf("push %d: attempt %d went to %s, want %s (got order %v)", push, i+1, s, want, got)
			}
		}
		if res.Server != got[5] {
			t.Errorf("got Result.Server %s, want the last attempt's %s", res.Server, got[5])
		}
	}
	for i, b := range backends {
		if n := b.requests.Load(); n != 4 {
			t.Errorf("backend %d got %d requests, want 4", i, n)
		}
	}
}

func TestMaxRetries(t *testing.T) {
	for _, tt := range []struct{ retries, attempts int }{{0, 1}, {1, 2}, {4, 5}} {
		t.Run(fmt.Sprint(tt.retries), func(t *testing.T) {
			b := newBackend(t, status(503))
			var r recorder
			p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: tt.retries}, r.events())
			res := p.Push(context.Background(), rec)
			if res.Attempts != tt.attempts || res.Status != 503 || res.Err == nil {
				t.Errorf("got %+v, want %d attempts failing with 503", res, tt.attempts)
			}
			if n := b.requests.Load(); n != int64(tt.attempts) {
				t.Errorf("got %d requests, want %d", n, tt.attempts)
			}
			if got := r.attempts; !slices.Equal(got, seq(1, tt.attempts-1)) {
				t.Errorf("got Retry attempts %v, want %v", got, seq(1, tt.attempts-1))
			}
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestRetryForever(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	b := newBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 20 {
			cancel()
		}
		w.WriteHeader(500)
	})
	p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: -1}, Events{})
	res := p.Push(ctx, rec)
	if !errors.Is(res.Err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", res.Err)
	}
	if res.Attempts < 19 || res.Attempts > 20 {
		t.Errorf("got %d attempts, want 19 or 20 (until cancelled)", res.Attempts)
	}
}

func TestRetryOnStatus(t *testing.T) {
	on := []StatusRange{{429, 429}, {500, 599}}
	tests := []struct {
		name      string
		retryOn   []StatusRange
		code      int
		attempts  int
		permanent bool
	}{
		{"429 listed", on, 429, 3, false},
		{"503 in range", on, 503, 3, false},
		{"400 not listed", on, 400, 1, true},
		{"404 not listed", on, 404, 1, true},
		{"400 with no list", nil, 400, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, status(tt.code))
			p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: 2, RetryOn: tt.retryOn}, Events{})
			res := p.Push(context.Background(), rec)
			if res.Attempts != tt.attempts || res.Permanent != tt.permanent || res.Status != tt.code {
				t.Errorf("got %d attempts, permanent %v, status %d; want %d, %v, %d", res.Attempts, res.Permanent, res.Status, tt.attempts, tt.permanent, tt.code)
			}
			var se *StatusError
			if !errors.As(res.Err, &se) || se.Code != tt.code {
				t.Errorf("got error %v, want StatusError %d", res.Err, tt.code)
			}
		})
	}
}

func TestRetryWaits(t *testing.T) {
	t.Run("fixed interval", func(t *testing.T) {
		b := newBackend(t, status(500))
		var r recorder
		p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: 4, RetryInterval: 2 * time.Millisecond}, r.events())
		p.Push(context.Background(), rec)
		_, waits := r.snapshot()
		want := []time.Duration{2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}
		if !slices.Equal(waits, want) {
			t.Errorf("got waits %v, want %v", waits, want)
		}
	})
	t.Run("exponential", func(t *testing.T) {
		b := newBackend(t, status(500))
		var r recorder
		const ri, ceil = time.Millisecond, 8 * time.Millisecond
		p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: 7, RetryInterval: ri, BackoffMax: ceil}, r.events())
		p.Push(context.Background(), rec)
		_, waits := r.snapshot()
		if len(waits) != 7 {
			t.Fatalf("got %d waits, want 7", len(waits))
		}
		for i, w := range waits {
			e := min(ri<<i, ceil)
			if lo := max(ri, e/2); w < lo || w > e {
				t.Errorf("wait before retry %d: got %v, want within [%v, %v]", i+1, w, lo, e)
			}
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{{"0", 0}, {"1", time.Second}} {
		t.Run(tt.header, func(t *testing.T) {
			var n atomic.Int64
			b := newBackend(t, func(w http.ResponseWriter, _ *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.header)
					w.WriteHeader(503)
				}
			})
			var r recorder
			p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: 3, RetryInterval: time.Hour}, r.events())
			res := p.Push(context.Background(), rec)
			_, waits := r.snapshot()
			if res.Err != nil || res.Attempts != 2 || !slices.Equal(waits, []time.Duration{tt.want}) {
				t.Errorf("got %+v and waits %v, want delivered in 2 attempts after one wait of %v", res, waits, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"100000", maxRetryAfter, true},
		{"99999999999999999999", 0, false},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{"Wednesday, 01-May-24 12:00:10 GMT", 10 * time.Second, true},
		{"soon", 0, false},
		{"-1", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReadTimeout(t *testing.T) {
	release := make(chan struct{})
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the backend's Close, which waits for handlers
	const timeout = 100 * time.Millisecond
	var r recorder
	var took time.Duration
	ev := r.events()
	ev.Attempt = func(_ string, _ int, _ error, d time.Duration) { took = d }
	p := newPusher(t, Config{Servers: []string{b.name}, ReadTimeout: timeout, ConnTimeout: time.Second, WriteTimeout: time.Second}, ev)
	res := p.Push(context.Background(), rec)
	if !errors.Is(res.Err, ErrTimeout) || !strings.Contains(res.Err.Error(), "read response") {
		t.Fatalf("got error %v, want a read timeout", res.Err)
	}
	if res.Status != 0 || res.Permanent {
		t.Errorf("got status %d permanent %v, want 0, false", res.Status, res.Permanent)
	}
	if took < timeout || took > 20*timeout {
		t.Errorf("attempt took %v, want about %v", took, timeout)
	}
}

func TestWriteTimeout(t *testing.T) {
	// A server that accepts and never reads: the request's body fills the
	// socket buffers and the write blocks.
	stop := make(chan struct{})
	s := newRawServer(t, func(c net.Conn) { <-stop })
	t.Cleanup(func() { close(stop) })
	p := newPusher(t, Config{Servers: []string{s.addr}, WriteTimeout: 100 * time.Millisecond}, Events{})
	r := rec
	r.Value = make([]byte, 64<<20)
	res := p.Push(context.Background(), r)
	if !errors.Is(res.Err, ErrTimeout) || !strings.Contains(res.Err.Error(), "write request") {
		t.Fatalf("got error %v, want a write timeout", res.Err)
	}
}

func TestConnTimeout(t *testing.T) {
	// A server that accepts and never speaks TLS: the handshake is part of
	// connecting and bounded by ConnTimeout.
	stop := make(chan struct{})
	s := newRawServer(t, func(c net.Conn) { <-stop })
	t.Cleanup(func() { close(stop) })
	p := newPusher(t, Config{Servers: []string{"https://" + s.addr}, ConnTimeout: 100 * time.Millisecond}, Events{})
	res := p.Push(context.Background(), rec)
	if !errors.Is(res.Err, ErrTimeout) || !strings.Contains(res.Err.Error(), "tls handshake") {
		t.Fatalf("got error %v, want a connect (TLS handshake) timeout", res.Err)
	}
}

func TestTransportErrorRetried(t *testing.T) {
	dead := testproc.FreeAddr(t)
	good := newBackend(t, nil)
	var r recorder
	p := newPusher(t, Config{Servers: []string{dead, good.name}, MaxRetries: 1, RetryOn: []StatusRange{{500, 599}}}, r.events())
	for i := range 2 {
		res := p.Push(context.Background(), rec)
		if res.Err != nil || res.Server != good.name {
			t.Fatalf("push %d: got %+v, want delivered by %s", i, res, good.name)
		}
	}
	servers, _ := r.snapshot()
	// Push 0 starts on the dead server and retries on the good one; push 1
	// starts on the good one.
	if want := []string{dead, good.name, good.name}; !slices.Equal(servers, want) {
		t.Errorf("got attempts on %v, want %v", servers, want)
	}
	if r.statuses[0] != 0 || r.errs[0] == nil || !strings.Contains(r.errs[0].Error(), "connect") {
		t.Errorf("got first attempt status %d error %v, want 0 and a connect error", r.statuses[0], r.errs[0])
	}

	p2 := newPusher(t, Config{Servers: []string{dead}, MaxRetries: 2, RetryOn: []StatusRange{{500, 599}}}, Events{})
	if res := p2.Push(context.Background(), rec); res.Attempts != 3 || res.Permanent || res.Status != 0 || res.Err == nil {
		t.Errorf("got %+v, want 3 failed attempts, not permanent", res)
	}
}

// fakeClock is the benching clock of a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestBenching(t *testing.T) {
	bad := newBackend(t, status(500))
	good := newBackend(t, nil)
	clock := &fakeClock{now: time.Unix(1000, 0)}
	var logs testwait.Log
	p, err := New(Config{
		Servers: []string{bad.name, good.name}, URI: "/x", MaxRetries: 1,
		FailThreshold: 2, Cooldown: 10 * time.Second,
	}, logs.Logger(slog.LevelDebug), Events{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.now = clock.Now
	push := func(n int) {
		t.Helper()
		for range n {
			if res := p.Push(context.Background(), rec); res.Err != nil {
				t.Fatalf("got %+v, want delivered", res)
			}
		}
	}
	check := func(step string, want int64) {
		t.Helper()
		if got := bad.requests.Load(); got != want {
			t.Errorf("%s: the failing server got %d requests in all, want %d", step, got, want)
		}
	}

	push(10) // pushes 0 and 2 fail on it, then it is benched
	check("after the threshold", 2)
	if !strings.Contains(logs.String(), "push server benched") {
		t.Errorf("got log %q, want a line about the bench", logs.String())
	}
	clock.Advance(9 * time.Second)
	push(10)
	check("within the cooldown", 2)
	clock.Advance(time.Second)
	push(10) // one probe, which fails and benches it again
	check("after the cooldown", 3)
	clock.Advance(5 * time.Second)
	push(10)
	check("within the second cooldown", 3)

	bad.set(nil) // recovers
	clock.Advance(5 * time.Second)
	push(2) // one of them starts on it: the probe, which succeeds
	check("probe after recovery", 4)
	push(10)
	check("back in rotation", 9)
	if !strings.Contains(logs.String(), "push server back in rotation") {
		t.Errorf("got log %q, want a line about the return", logs.String())
	}
}

func TestAllBenchedNeverStalls(t *testing.T) {
	a, b := newBackend(t, status(500)), newBackend(t, status(500))
	clock := &fakeClock{now: time.Unix(1000, 0)}
	var r recorder
	p := newPusher(t, Config{Servers: []string{a.name, b.name}, FailThreshold: 1, Cooldown: time.Hour}, r.events())
	p.now = clock.Now
	for i := range 6 {
		if res := p.Push(context.Background(), rec); res.Attempts != 1 || res.Status != 500 {
			t.Fatalf("push %d: got %+v, want one attempt answered 500", i, res)
		}
		clock.Advance(time.Second)
	}
	// Each failure benches the server again, so the one benched longest ago
	// alternates.
	servers, _ := r.snapshot()
	want := []string{a.name, b.name, a.name, b.name, a.name, b.name}
	if !slices.Equal(servers, want) {
		t.Errorf("got attempts on %v, want %v", servers, want)
	}
}

func TestPermanentFailureDoesNotBench(t *testing.T) {
	a, b := newBackend(t, status(400)), newBackend(t, nil)
	p := newPusher(t, Config{Servers: []string{a.name, b.name}, FailThreshold: 1, Cooldown: time.Hour, RetryOn: []StatusRange{{500, 599}}}, Events{})
	for range 6 {
		p.Push(context.Background(), rec)
	}
	if got := a.requests.Load(); got != 3 {
		t.Errorf("server answering 400 got %d of 6 pushes, want 3 (not benched)", got)
	}
}

func TestConcurrentPushes(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		// The body must be the one the URI was built for.
		if got := b2s(r); got != r.URL.Query().Get("key") {
			w.WriteHeader(400)
		}
	})
	p := newPusher(t, Config{Servers: []string{b.name}, URI: "/p?key={#KEY}", RetryOn: []StatusRange{{500, 599}}}, Events{})
	const workers, each = 64, 100
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				v := fmt.Sprintf("w%d-r%d-%s", w, i, strings.Repeat("x", i))
				res := p.Push(context.Background(), Record{Topic: "t", Key: []byte(v), Value: []byte(v)})
				if res.Err != nil {
					failed.Add(1)
					t.Errorf("worker %d push %d: %v", w, i, res.Err)
				}
			}
		})
	}
	wg.Wait()
	if got := b.requests.Load(); got != workers*each || failed.Load() != 0 {
		t.Errorf("got %d requests and %d failures, want %d and 0", got, failed.Load(), workers*each)
	}
	if got := b.conns.Load(); got > workers {
		t.Errorf("got %d connections for %d workers, want them reused", got, workers)
	}
}

func b2s(r *http.Request) string {
	var buf bytes.Buffer
	buf.ReadFrom(r.Body)
	return buf.String()
}

func TestCancel(t *testing.T) {
	t.Run("before the first attempt", func(t *testing.T) {
		b := newBackend(t, nil)
		p := newPusher(t, Config{Servers: []string{b.name}}, Events{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := p.Push(ctx, rec)
		if !errors.Is(res.Err, context.Canceled) || res.Attempts != 0 || b.requests.Load() != 0 {
			t.Errorf("got %+v after %d requests, want context.Canceled without a request", res, b.requests.Load())
		}
	})
	t.Run("while waiting to retry", func(t *testing.T) {
		b := newBackend(t, status(500))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: -1, RetryInterval: time.Hour}, Events{
			Retry: func(int, time.Duration) { cancel() },
		})
		done := make(chan Result)
		go func() { done <- p.Push(ctx, rec) }()
		select {
		case res := <-done:
			if !errors.Is(res.Err, context.Canceled) || res.Attempts != 1 || res.Status != 500 {
				t.Errorf("got %+v, want context.Canceled after 1 attempt answered 500", res)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Push did not return after cancel")
		}
	})
	t.Run("during an attempt without timeouts", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		var gone atomic.Bool
		b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-release:
			case <-r.Context().Done():
				gone.Store(true)
			}
		})
		t.Cleanup(func() { close(release) })
		p := newPusher(t, Config{Servers: []string{b.name}, MaxRetries: -1}, Events{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan Result)
		go func() { done <- p.Push(ctx, rec) }()
		<-entered
		cancel()
		select {
		case res := <-done:
			if !errors.Is(res.Err, context.Canceled) || res.Attempts != 0 {
				t.Errorf("got %+v, want context.Canceled and no attempt counted", res)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Push did not return after cancel")
		}
		// The spoilt connection is closed, which the server notices.
		testwait.Eventually(t, 5*time.Second, "the server seeing the spoilt connection closed", gone.Load)
	})
}

func TestLogs(t *testing.T) {
	b := newBackend(t, status(502))
	var logs testwait.Log
	p, err := New(Config{Servers: []string{b.name}, URI: "/x"}, logs.Logger(slog.LevelDebug).With("module", "m1"), Events{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	p.Push(context.Background(), rec)
	line := logs.String()
	for _, want := range []string{`level=WARN`, `msg="push attempt failed"`, "module=m1", "topic=orders", "partition=3", "offset=42",
		"server=" + b.name, "status=502", "attempt=1", `err="http status 502"`} {
		if !strings.Contains(line, want) {
			t.Errorf("got log %q, want it to contain %s", line, want)
		}
	}

	b.set(nil)
	logs = testwait.Log{}
	slow, err := New(Config{Servers: []string{b.name}, URI: "/x", Slow: time.Nanosecond}, logs.Logger(slog.LevelDebug), Events{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	slow.Push(context.Background(), rec)
	if got := logs.String(); !strings.Contains(got, `msg="push slower than expected"`) || !strings.Contains(got, "offset=42") {
		t.Errorf("got log %q, want a slow-push warning for offset 42", got)
	}
}

func TestNewErrors(t *testing.T) {
	ok := Config{Servers: []string{"127.0.0.1:80"}, URI: "/x"}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"no servers", func(c *Config) { c.Servers = nil }, []string{"servers"}},
		{"bad servers", func(c *Config) { c.Servers = []string{"nohost", "h:0", "ftp://h:1", "http://u@h:1", "http://h:1/?q=1"} },
			[]string{`"nohost"`, `"h:0"`, `"ftp://h:1"`, `"http://u@h:1"`, `"http://h:1/?q=1"`}},
		{"uri", func(c *Config) { c.URI = "x y" }, []string{"uri", "must start with /", "spaces"}},
		{"bare % in the uri's path", func(c *Config) { c.URI = "/a%2g/{#KEY}?q=%" }, []string{"uri", "%25"}},
		{"% before a placeholder", func(c *Config) { c.URI = "/a%{#PARTITION}" }, []string{"uri", "%25"}},
		{"headers", func(c *Config) {
			c.Headers = []map[string]string{{"Bad Name": "x"}, {"X-A": "a\r\nb"}, {"content-length": "1"}, {"Host": ""}}
		}, []string{`"Bad Name"`, "control characters", "Content-Length", "Host"}},
		{"negatives", func(c *Config) {
			c.ConnTimeout, c.ReadTimeout, c.MaxRetries, c.FailThreshold, c.MaxResponseBytes = -1, -1, -2, -1, -1
		}, []string{"conn_timeout", "read_timeout", "max_retries", "fail_threshold", "max_response_bytes"}},
		{"retry_on", func(c *Config) { c.RetryOn = []StatusRange{{600, 700}, {500, 400}} }, []string{"600-700", "500-400"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			_, err := New(c, nil, Events{})
			if err == nil {
				t.Fatalf("got no error, want one naming %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to mention %s", err, w)
				}
			}
		})
	}
	for _, uri := range []string{"/x", "/a%2Fb/{#KEY}", "/x?q=%&r={#KEY}"} {
		c := ok
		c.URI = uri
		if _, err := New(c, nil, Events{}); err != nil {
			t.Errorf("URI %q: got error %v for a valid config, want none", uri, err)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	b := newBackend(t, nil)
	p := newPusher(t, Config{Servers: []string{b.name}}, Events{})
	p.Push(context.Background(), rec)
	p.Close()
	p.Close()
	if res := p.Push(context.Background(), rec); res.Err != nil {
		t.Errorf("got %v after Close, want pushes to keep working", res.Err)
	}
}

package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// commitBody is the request the tests send for (worker, seq).
func commitBody(worker int, seq uint64) (string, []byte) {
	key := "k" + strconv.FormatUint(seq%1000, 10)
	b, err := MsgpackBody(200, key, seq)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("&key=%s&w=%d&s=%d", key, worker, seq), b
}

func TestRunHTTPCountsMatchServer(t *testing.T) {
	var served, bad atomic.Int64
	var firstBad atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		body, err := io.ReadAll(r.Body)
		q := r.URL.Query()
		worker, _ := strconv.Atoi(q.Get("w"))
		seq, _ := strconv.ParseUint(q.Get("s"), 10, 64)
		wantQuery, wantBody := commitBody(worker, seq)
		var problems []string
		if err != nil {
			problems = append(problems, "read body: "+err.Error())
		}
		if r.Method != http.MethodPost {
			problems = append(problems, "method "+r.Method)
		}
		if r.Proto != "HTTP/1.1" {
			problems = append(problems, "proto "+r.Proto)
		}
		if want := "/commit?topic=t" + wantQuery; r.RequestURI != want {
			problems = append(problems, fmt.Sprintf("request URI %q, want %q", r.RequestURI, want))
		}
		if !bytes.Equal(body, wantBody) || r.ContentLength != int64(len(wantBody)) {
			problems = append(problems, fmt.Sprintf("body %d bytes (Content-Length %d), want %d", len(body), r.ContentLength, len(wantBody)))
		}
		if got := r.Header.Get("Content-Type"); got != "application/x-msgpack" {
			problems = append(problems, "Content-Type "+got)
		}
		if got := r.Header.Values("X-Multi"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			problems = append(problems, fmt.Sprintf("X-Multi %q", got))
		}
		if r.Host != "kproxy.test" {
			problems = append(problems, "Host "+r.Host)
		}
		if len(problems) > 0 {
			bad.Add(1)
			firstBad.CompareAndSwap(nil, strings.Join(problems, "; "))
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"topic":"t","partition":0,"offset":1}`)
	}))
	t.Cleanup(srv.Close)

	target := HTTPTarget{
		URL: srv.URL + "/commit?topic=t",
		Header: http.Header{
			"Content-Type": {"application/x-msgpack"},
			"X-Multi":      {"a", "b"},
			"Host":         {"kproxy.test"},
		},
		Body: commitBody,
	}
	r, err := RunHTTP(context.Background(), target, 4, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("RunHTTP: %v", err)
	}
	if v := firstBad.Load(); v != nil {
		t.Errorf("%d requests malformed, first: %s", bad.Load(), v)
	}
	if r.Requests == 0 {
		t.Fatalf("got 0 requests, want some")
	}
	if got, want := r.Requests, served.Load(); got != want {
		t.Errorf("Requests = %d, server served %d", got, want)
	}
	if r.OK != r.Requests || r.Status[200] != r.Requests || r.Errors != 0 {
		t.Errorf("got OK %d, Status %v, Errors %d (%v), want all %d requests 200", r.OK, r.Status, r.Errors, r.FirstError, r.Requests)
	}
	if got, want := r.Latency.Count(), r.OK; got != want {
		t.Errorf("Latency.Count() = %d, want OK %d", got, want)
	}
	if r.Rate() <= 0 || r.Quantile(0.5) <= 0 || r.Quantile(0.99) < r.Quantile(0.5) {
		t.Errorf("got rate %v p50 %v p99 %v, want positive and ordered", r.Rate(), r.Quantile(0.5), r.Quantile(0.99))
	}
}

func TestRunHTTPGetWithoutBody(t *testing.T) {
	var served, bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.Method != http.MethodGet || r.ContentLength != 0 || r.RequestURI != "/" || len(r.TransferEncoding) > 0 {
			bad.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	r, err := RunHTTP(context.Background(), HTTPTarget{URL: srv.URL}, 2, 400*time.Millisecond)
	if err != nil {
		t.Fatalf("RunHTTP: %v", err)
	}
	if bad.Load() != 0 {
		t.Errorf("%d requests were not a plain GET / without body", bad.Load())
	}
	if r.Requests == 0 || r.Requests != served.Load() || r.OK != r.Requests {
		t.Errorf("got Requests %d OK %d, server served %d, want equal and > 0", r.Requests, r.OK, served.Load())
	}
}

func TestRunHTTPStatuses(t *testing.T) {
	codes := []int{200, 201, 503, 404}
	var mu sync.Mutex
	served := map[int]int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seq, _ := strconv.Atoi(r.URL.Query().Get("s"))
		code := codes[seq%len(codes)]
		mu.Lock()
		served[code]++
		mu.Unlock()
		w.WriteHeader(code)
		io.WriteString(w, `{"error":"x","code":"y"}`)
	}))
	t.Cleanup(srv.Close)
	target := HTTPTarget{
		URL:  srv.URL + "/commit",
		Body: func(_ int, seq uint64) (string, []byte) { return "?s=" + strconv.FormatUint(seq, 10), []byte("x") },
	}
	r, err := RunHTTP(context.Background(), target, 3, 400*time.Millisecond)
	if err != nil {
		t.Fatalf("RunHTTP: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, code := range codes {
		if served[code] == 0 {
			t.Errorf("server answered no %d, want some", code)
		}
		if got, want := r.Status[code], served[code]; got != want {
			t.Errorf("Status[%d] = %d, server sent %d", code, got, want)
		}
	}
	if got, want := r.OK, served[200]+served[201]; got != want {
		t.Errorf("OK = %d, want 2xx count %d", got, want)
	}
	if got, want := r.Latency.Count(), r.OK; got != want {
		t.Errorf("Latency.Count() = %d, want OK %d", got, want)
	}
	if got, want := r.Requests, served[200]+served[201]+served[503]+served[404]; got != want {
		t.Errorf("Requests = %d, want %d", got, want)
	}
	if r.Errors != 0 {
		t.Errorf("Errors = %d (%v), want 0: non-2xx responses are not errors", r.Errors, r.FirstError)
	}
	if got, want := r.Rate(), float64(r.OK)/r.Duration.Seconds(); got != want {
		t.Errorf("Rate() = %v, want OK/Duration %v", got, want)
	}
}

func TestRunHTTPErrors(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// With the body read, the server notices the client closing the
		// connection and cancels r.Context().
		io.Copy(io.Discard, r.Body)
		switch r.URL.Query().Get("do") {
		case "drop": // close without an answer
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		case "hang": // never answer; the client's timeout ends it
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	var sent, failing atomic.Int64
	target := HTTPTarget{
		URL: srv.URL,
		Body: func(_ int, seq uint64) (string, []byte) {
			sent.Add(1)
			switch {
			case seq%5 == 1:
				failing.Add(1)
				return "?do=drop", []byte("x")
			case seq%7 == 3:
				failing.Add(1)
				return "?do=hang", []byte("x")
			}
			return "?do=ok", []byte("x")
		},
		Timeout: 100 * time.Millisecond,
	}
	r, err := RunHTTP(context.Background(), target, 3, 500*time.Millisecond)
	if err != nil {
		t.Fatalf("RunHTTP: %v", err)
	}
	if failing.Load() == 0 {
		t.Fatalf("no failing request was sent")
	}
	if got, want := r.Errors, failing.Load(); got != want {
		t.Errorf("Errors = %d, want %d failing requests", got, want)
	}
	if got, want := r.Requests, sent.Load(); got != want {
		t.Errorf("Requests = %d, want %d sent", got, want)
	}
	if got, want := r.OK, sent.Load()-failing.Load(); got != want {
		t.Errorf("OK = %d, want %d", got, want)
	}
	if r.FirstError == nil {
		t.Errorf("FirstError = nil, want the first failure")
	}
}

func TestRunHTTPResponseFraming(t *testing.T) {
	tests := []struct {
		name          string
		perConn       int
		response      string
		closeConn     bool
		wantStatus    int
		wantReconnect bool
	}{
		{name: "content-length", response: cannedOK, wantStatus: 200},
		{name: "mixed-case headers", response: "HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\nconnection: Keep-Alive\r\n\r\nok", wantStatus: 200},
		{name: "chunked with extension and trailer", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", wantStatus: 200},
		{name: "interim 100 then 201", response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", wantStatus: 201},
		{name: "204 without length", response: "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", wantStatus: 204},
		{name: "http/1.0 keep-alive", response: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", wantStatus: 200},
		{name: "connection close header", response: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", closeConn: true, wantStatus: 200, wantReconnect: true},
		{name: "http/1.0 body to end of connection", response: "HTTP/1.0 200 OK\r\n\r\nhello", closeConn: true, wantStatus: 200, wantReconnect: true},
		{name: "silent server close every 3 responses", perConn: 3, response: cannedOK, wantStatus: 200, wantReconnect: true},
		{name: "silent server close every response", perConn: 1, response: cannedOK, wantStatus: 200, wantReconnect: true},
	}
	const conns = 2
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRawServer(t, tt.perConn, func(w *bufio.Writer, _ int64) bool {
				w.WriteString(tt.response)
				return tt.closeConn
			})
			r, err := RunHTTP(context.Background(), HTTPTarget{URL: srv.url("/")}, conns, 400*time.Millisecond)
			if err != nil {
				t.Fatalf("RunHTTP: %v", err)
			}
			if r.Errors != 0 {
				t.Errorf("Errors = %d (first: %v), want 0", r.Errors, r.FirstError)
			}
			if r.Requests == 0 {
				t.Fatalf("Requests = 0, want some")
			}
			if got, want := r.Requests, srv.answered.Load(); got != want {
				t.Errorf("Requests = %d, server answered %d", got, want)
			}
			if got, want := r.Status[tt.wantStatus], r.Requests; got != want {
				t.Errorf("Status[%d] = %d, want %d (Status %v)", tt.wantStatus, got, want, r.Status)
			}
			accepted := srv.accepted.Load()
			if tt.wantReconnect && accepted <= conns {
				t.Errorf("server accepted %d connections, want more than %d (reconnects)", accepted, conns)
			}
			if !tt.wantReconnect && accepted != conns {
				t.Errorf("server accepted %d connections, want %d (keep-alive)", accepted, conns)
			}
		})
	}
}

func TestRunHTTPBadResponses(t *testing.T) {
	tests := []struct {
		name     string
		response string
	}{
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"bad status code", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"},
		{"bad content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
		{"header without colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startRawServer(t, 0, func(w *bufio.Writer, _ int64) bool {
				w.WriteString(tt.response)
				return true
			})
			r, err := RunHTTP(context.Background(), HTTPTarget{URL: srv.url("/"), Timeout: time.Second}, 1, 400*time.Millisecond)
			if err != nil {
				t.Fatalf("RunHTTP: %v", err)
			}
			if r.Errors == 0 || r.Errors != r.Requests || r.OK != 0 {
				t.Errorf("got Requests %d OK %d Errors %d, want every request an error", r.Requests, r.OK, r.Errors)
			}
		})
	}
}

func TestRunHTTPCancel(t *testing.T) {
	var started atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		r   Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := RunHTTP(ctx, HTTPTarget{URL: srv.URL, Timeout: -1}, 3, time.Hour)
		done <- outcome{r, err}
	}()
	testwait.Eventually(t, 5*time.Second, "three requests started", func() bool { return started.Load() >= 3 })
	cancel()
	select {
	case o := <-done:
		if !errors.Is(o.err, context.Canceled) {
			t.Errorf("RunHTTP error = %v, want context.Canceled", o.err)
		}
		if o.r.Requests != 0 || o.r.Errors != 0 {
			t.Errorf("got Requests %d Errors %d, want aborted requests not counted", o.r.Requests, o.r.Errors)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("RunHTTP did not return within 5s of cancel")
	}

	_, err := RunHTTP(ctx, HTTPTarget{URL: srv.URL}, 1, time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("RunHTTP with a cancelled context: error = %v, want context.Canceled", err)
	}
}

func TestRunHTTPDurationAndWarmup(t *testing.T) {
	srv := startRawServer(t, 0, respondOK)
	// Long enough that requests start inside the measured window even on a
	// machine so busy that a worker stalls for a few hundred milliseconds.
	const d, warm = time.Second, 300 * time.Millisecond
	start := time.Now()
	r, err := RunHTTP(context.Background(), HTTPTarget{URL: srv.url("/")}, 2, d, Warmup(warm))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("RunHTTP: %v", err)
	}
	if r.Duration < d {
		t.Errorf("Duration = %v, want >= %v", r.Duration, d)
	}
	if elapsed < d+warm || elapsed > d+warm+5*time.Second {
		t.Errorf("RunHTTP took %v, want about %v", elapsed, d+warm)
	}
	if r.Requests == 0 || r.Requests >= srv.answered.Load() {
		t.Errorf("Requests = %d, server answered %d: want > 0 and warm-up requests excluded", r.Requests, srv.answered.Load())
	}
}

func TestRunHTTPDialError(t *testing.T) {
	_, err := RunHTTP(context.Background(), HTTPTarget{URL: "http://" + testproc.FreeAddr(t) + "/"}, 2, time.Second)
	if err == nil || !strings.Contains(err.Error(), "dial") {
		t.Errorf("RunHTTP against a closed port: error = %v, want a dial error", err)
	}
}

func TestRunHTTPBadArguments(t *testing.T) {
	ok := HTTPTarget{URL: "http://127.0.0.1:1/"}
	tests := []struct {
		name   string
		target HTTPTarget
		conns  int
		d      time.Duration
		opts   []Option
		want   error
	}{
		{"no conns", ok, 0, time.Second, nil, ErrBadLoad},
		{"zero duration", ok, 1, 0, nil, ErrBadLoad},
		{"negative warm-up", ok, 1, time.Second, []Option{Warmup(-time.Second)}, ErrBadLoad},
		{"https", HTTPTarget{URL: "https://127.0.0.1:1/"}, 1, time.Second, nil, ErrBadTarget},
		{"no host", HTTPTarget{URL: "http:///x"}, 1, time.Second, nil, ErrBadTarget},
		{"bad URL", HTTPTarget{URL: "http://[::1"}, 1, time.Second, nil, ErrBadTarget},
		{"bad method", HTTPTarget{URL: ok.URL, Method: "PO ST"}, 1, time.Second, nil, ErrBadTarget},
		{"content-length header", HTTPTarget{URL: ok.URL, Header: http.Header{"Content-Length": {"3"}}}, 1, time.Second, nil, ErrBadTarget},
		{"header value with CRLF", HTTPTarget{URL: ok.URL, Header: http.Header{"X-A": {"a\r\nB: c"}}}, 1, time.Second, nil, ErrBadTarget},
		{"bad header name", HTTPTarget{URL: ok.URL, Header: http.Header{"X A": {"a"}}}, 1, time.Second, nil, ErrBadTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RunHTTP(context.Background(), tt.target, tt.conns, tt.d, tt.opts...)
			if !errors.Is(err, tt.want) {
				t.Errorf("got error %v, want %v", err, tt.want)
			}
		})
	}
}

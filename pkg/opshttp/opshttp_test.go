package opshttp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newServer mounts the endpoints with ready on a test server closed at the end.
func newServer(t *testing.T, ready *Ready, reg *prometheus.Registry) *httptest.Server {
	t.Helper()
	if reg == nil {
		reg = NewRegistry()
	}
	mux := http.NewServeMux()
	Mount(mux, ready, reg)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// do sends method to url and returns the status, headers and body.
func do(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func ok(context.Context) error { return nil }

func TestHealthz(t *testing.T) {
	t.Parallel()
	// A failing readiness check must not affect liveness.
	var ready Ready
	ready.Add("kafka", func(context.Context) error { return errors.New("down") })
	srv := newServer(t, &ready, nil)

	status, hdr, body := do(t, http.MethodGet, srv.URL+"/healthz")
	if status != http.StatusOK {
		t.Errorf("status: got %d, want 200", status)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if cc := hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", cc)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if want := map[string]string{"status": "alive"}; !reflect.DeepEqual(got, want) {
		t.Errorf("body: got %v, want %v", got, want)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		checks     map[string]Check
		wantStatus int
		wantBody   map[string]any
	}{
		{
			name:       "no checks",
			wantStatus: http.StatusOK,
			wantBody:   map[string]any{"status": "ready"},
		},
		{
			name:       "all pass",
			checks:     map[string]Check{"kafka": ok, "zookeeper": ok},
			wantStatus: http.StatusOK,
			wantBody:   map[string]any{"status": "ready"},
		},
		{
			name: "one fails",
			checks: map[string]Check{
				"kafka":     ok,
				"zookeeper": func(context.Context) error { return errors.New("no session") },
			},
			wantStatus: http.StatusServiceUnavailable,
			wantBody: map[string]any{
				"status": "not ready",
				"reason": map[string]any{"zookeeper": "no session"},
			},
		},
		{
			name: "two fail",
			checks: map[string]Check{
				"kafka":     func(context.Context) error { return errors.New("no broker") },
				"zookeeper": func(context.Context) error { return errors.New("no session") },
				"disk":      ok,
			},
			wantStatus: http.StatusServiceUnavailable,
			wantBody: map[string]any{
				"status": "not ready",
				"reason": map[string]any{"kafka": "no broker", "zookeeper": "no session"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var ready Ready
			for name, c := range tt.checks {
				ready.Add(name, c)
			}
			srv := newServer(t, &ready, nil)
			status, hdr, body := do(t, http.MethodGet, srv.URL+"/readyz")
			if status != tt.wantStatus {
				t.Errorf("status: got %d, want %d", status, tt.wantStatus)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if !reflect.DeepEqual(got, tt.wantBody) {
				t.Errorf("body: got %v, want %v", got, tt.wantBody)
			}
		})
	}
}

func TestReadyAddReplaces(t *testing.T) {
	t.Parallel()
	var ready Ready
	ready.Add("kafka", func(context.Context) error { return errors.New("down") })
	ready.Add("kafka", ok)
	if got := ready.Run(context.Background(), time.Second); len(got) != 0 {
		t.Errorf("after replacing the failing check: got failures %v, want none", got)
	}
}

// TestReadyRunTimeout checks that a check blocking until its context ends is
// cancelled by the timeout, and that the checks share one deadline.
func TestReadyRunTimeout(t *testing.T) {
	t.Parallel()
	var ready Ready
	var mu sync.Mutex
	var ctxErrs []error
	block := func(ctx context.Context) error {
		<-ctx.Done()
		mu.Lock()
		ctxErrs = append(ctxErrs, ctx.Err())
		mu.Unlock()
		return ctx.Err()
	}
	ready.Add("a", block)
	ready.Add("b", block)
	ready.Add("c", ok)

	start := time.Now()
	got := ready.Run(context.Background(), 50*time.Millisecond)
	elapsed := time.Since(start)

	want := map[string]string{
		"a": context.DeadlineExceeded.Error(),
		"b": context.DeadlineExceeded.Error(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("failures: got %v, want %v", got, want)
	}
	if len(ctxErrs) != 2 || !errors.Is(ctxErrs[0], context.DeadlineExceeded) || !errors.Is(ctxErrs[1], context.DeadlineExceeded) {
		t.Errorf("check contexts ended with %v, want two deadline exceeded", ctxErrs)
	}
	// Generous bound: one shared 50 ms deadline, not one per check or none at all.
	if elapsed > 5*time.Second {
		t.Errorf("Run took %v, want about 50ms", elapsed)
	}
}

func TestReadyRunParentCancelled(t *testing.T) {
	t.Parallel()
	var ready Ready
	ready.Add("a", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := ready.Run(ctx, time.Hour)
	if want := map[string]string{"a": context.Canceled.Error()}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestReadyzTimeout checks that /readyz bounds a check that blocks until its
// context is done and reports it as not ready.
func TestReadyzTimeout(t *testing.T) {
	t.Parallel()
	var ready Ready
	cancelled := make(chan error, 1)
	ready.Add("kafka", func(ctx context.Context) error {
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	})
	srv := newServer(t, &ready, nil)

	start := time.Now()
	status, _, body := do(t, http.MethodGet, srv.URL+"/readyz")
	elapsed := time.Since(start)
	if status != http.StatusServiceUnavailable {
		t.Errorf("status: got %d, want 503", status)
	}
	if !strings.Contains(body, context.DeadlineExceeded.Error()) {
		t.Errorf("body: got %q, want it to name the deadline", body)
	}
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("check context ended with %v, want deadline exceeded", err)
		}
	default:
		t.Error("check returned without its context being done")
	}
	if elapsed < time.Second || elapsed > 10*time.Second {
		t.Errorf("/readyz took %v, want about the 2s check timeout", elapsed)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kproxy_test_requests_total", Help: "Test counter."})
	reg.MustRegister(c)
	c.Add(3)
	srv := newServer(t, &Ready{}, reg)

	status, hdr, body := do(t, http.MethodGet, srv.URL+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("status: got %d, want 200", status)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type: got %q, want text/plain...", ct)
	}
	for _, want := range []string{
		"kproxy_test_requests_total 3\n",
		"\ngo_goroutines ",
		"\ngo_memstats_alloc_bytes ",
		"\nprocess_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body: got no %q in\n%s", want, body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &Ready{}, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			t.Run(method+" "+path, func(t *testing.T) {
				t.Parallel()
				status, hdr, _ := do(t, method, srv.URL+path)
				if status != http.StatusMethodNotAllowed {
					t.Errorf("status: got %d, want 405", status)
				}
				if allow := hdr.Get("Allow"); !strings.Contains(allow, "GET") {
					t.Errorf("Allow: got %q, want it to list GET", allow)
				}
			})
		}
	}
}

func TestUnknownPath(t *testing.T) {
	t.Parallel()
	srv := newServer(t, &Ready{}, nil)
	if status, _, _ := do(t, http.MethodGet, srv.URL+"/nope"); status != http.StatusNotFound {
		t.Errorf("status: got %d, want 404", status)
	}
}

// Package opshttp is the HTTP serving every daemon shares: the operations endpoints
// /healthz (the process is alive), /readyz (its dependencies are reachable; 503 with
// a JSON reason otherwise) and /metrics (Prometheus text format), NewServer, the
// one constructor of the daemons' http.Servers, which bounds slow and oversized
// requests on every listener, and Listen, which moves a default address another
// process holds to a free port of the same host.
package opshttp

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable; a nil error means ready. Checks
// must be cheap and honour ctx: /readyz runs them on every request.
type Check func(ctx context.Context) error

// Ready is the set of named readiness checks. It is safe for concurrent use.
type Ready struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// Add registers check under name, replacing one of the same name.
func (r *Ready) Add(name string, check Check) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checks == nil {
		r.checks = map[string]Check{}
	}
	r.checks[name] = check
}

// Run runs every check with timeout and returns the failures by name.
func (r *Ready) Run(ctx context.Context, timeout time.Duration) map[string]string {
	r.mu.RLock()
	names := make([]string, 0, len(r.checks))
	for n := range r.checks {
		names = append(names, n)
	}
	checks := make([]Check, len(names))
	sort.Strings(names)
	for i, n := range names {
		checks[i] = r.checks[n]
	}
	r.mu.RUnlock()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	failed := map[string]string{}
	for i, c := range checks {
		if err := c(ctx); err != nil {
			failed[names[i]] = err.Error()
		}
	}
	return failed
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, the base of every daemon's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Mount adds /healthz, /readyz and /metrics to mux.
func Mount(mux *http.ServeMux, ready *Ready, reg *prometheus.Registry) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := ready.Run(r.Context(), 2*time.Second)
		if len(failed) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reason": failed})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Package web serves kmonitor's dashboard: one self-contained page (HTML, JavaScript
// and CSS embedded in the binary, nothing loaded from elsewhere) with a lag chart per
// module over the last hour and the status of each partition, refreshing itself from
// two JSON endpoints. It reads the monitor's view (monitor.View) and nothing else;
// the monitor knows nothing of it (kmonitor's main mounts it).
package web

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/monitor"
)

// MaxMinutes is the longest history /api/history returns, and its default.
const MaxMinutes = 60

// ContentSecurityPolicy is sent with every response: the page may load only its own
// script, style sheet and JSON, and nothing may frame it.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'none'; frame-ancestors 'none'"

var (
	//go:embed assets/index.html
	indexHTML []byte
	//go:embed assets/app.js
	appJS []byte
	//go:embed assets/app.css
	appCSS []byte
)

// Handler returns the dashboard, with its paths relative to where it is mounted:
//
//	GET /                     the page (app.js and app.css beside it)
//	GET /api/history?minutes  JSON {"cluster/module":[{"t","lag","seconds"}...]}, minutes in 1..60, default 60
//	GET /api/partitions       JSON [Row...], sorted by cluster, module, topic, partition
//
// Other paths answer 404, other methods 405. A bad minutes parameter answers 400
// with JSON {"error": reason}. v must not be nil; its methods are called from
// concurrent requests.
func Handler(v monitor.View) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", asset("index.html", "text/html; charset=utf-8", indexHTML))
	mux.Handle("GET /app.js", asset("app.js", "text/javascript; charset=utf-8", appJS))
	mux.Handle("GET /app.css", asset("app.css", "text/css; charset=utf-8", appCSS))
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, r *http.Request) {
		minutes, err := parseMinutes(r.URL.RawQuery)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, history(v.History(time.Duration(minutes)*time.Minute)))
	})
	mux.HandleFunc("GET /api/partitions", func(w http.ResponseWriter, _ *http.Request) {
		writeRows(w, rows(v.Partitions()))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

// asset serves one embedded file. Browsers revalidate it on every load (the binary
// may have been replaced) and get 304 while its ETag still matches.
func asset(name, contentType string, body []byte) http.Handler {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}

// parseMinutes reads the minutes parameter of a raw query: absent means
// MaxMinutes, anything but one integer in 1..MaxMinutes is an error.
func parseMinutes(rawQuery string) (int, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, fmt.Errorf("query %q: %w", rawQuery, err)
	}
	vs, ok := q["minutes"]
	switch {
	case !ok:
		return MaxMinutes, nil
	case len(vs) != 1:
		return 0, fmt.Errorf("minutes: given %d times, want once", len(vs))
	}
	m, err := strconv.Atoi(vs[0])
	if err != nil || m < 1 || m > MaxMinutes {
		return 0, fmt.Errorf("minutes: %q is not an integer in 1..%d", vs[0], MaxMinutes)
	}
	return m, nil
}

// history copies src for encoding: every module gets a list (never null) and
// non-finite seconds become 0, which encoding/json would otherwise refuse,
// failing the whole answer for one bad sample.
func history(src map[string][]monitor.Point) map[string][]monitor.Point {
	out := make(map[string][]monitor.Point, len(src))
	for k, pts := range src {
		c := make([]monitor.Point, len(pts))
		for i, p := range pts {
			p.Seconds = finite(p.Seconds)
			c[i] = p
		}
		out[k] = c
	}
	return out
}

// rows returns src sorted for display, with non-finite time lags as 0: src
// itself when it is so already (the usual case: tens of thousands of rows are
// not copied), else a copy.
func rows(src []monitor.PartitionLag) []monitor.PartitionLag {
	if slices.IsSortedFunc(src, compareRows) && !slices.ContainsFunc(src, func(r monitor.PartitionLag) bool { return finite(r.TimeLagSeconds) != r.TimeLagSeconds }) {
		return src
	}
	out := make([]monitor.PartitionLag, len(src))
	for i, r := range src {
		r.TimeLagSeconds = finite(r.TimeLagSeconds)
		out[i] = r
	}
	slices.SortFunc(out, compareRows)
	return out
}

func compareRows(a, b monitor.PartitionLag) int {
	return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Module, b.Module),
		cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// writeRows writes rows as a JSON array one row at a time, so an answer of
// tens of megabytes is never held whole. Each row holds what the page's table
// shows (appendRow).
func writeRows(w http.ResponseWriter, rows []monitor.PartitionLag) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteByte('[')
	var b []byte
	for i := range rows {
		if i > 0 {
			bw.WriteByte(',')
		}
		b = appendRow(b[:0], &rows[i])
		bw.Write(b)
	}
	bw.WriteString("]\n")
	bw.Flush()
}

// appendRow appends the JSON object of one table row: of r, the fields the page
// reads, in this order (the page's API since its first version):
//
//	{"cluster","module","topic","partition","lag","time_lag_seconds","status","stale","no_commit","out_of_range","owner"}
//
// Strings and the time lag are written by encoding/json, so they read back as
// the same values.
func appendRow(b []byte, r *monitor.PartitionLag) []byte {
	b = append(b, `{"cluster":`...)
	b = appendJSON(b, r.Cluster)
	b = append(b, `,"module":`...)
	b = appendJSON(b, r.Module)
	b = append(b, `,"topic":`...)
	b = appendJSON(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"lag":`...)
	b = strconv.AppendInt(b, r.Lag, 10)
	b = append(b, `,"time_lag_seconds":`...)
	b = appendJSON(b, finite(r.TimeLagSeconds))
	b = append(b, `,"status":`...)
	b = appendJSON(b, r.Status.String())
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, r.Stale)
	b = append(b, `,"no_commit":`...)
	b = strconv.AppendBool(b, r.NoCommit)
	b = append(b, `,"out_of_range":`...)
	b = strconv.AppendBool(b, r.OutOfRange)
	b = append(b, `,"owner":`...)
	b = appendJSON(b, r.Owner)
	return append(b, '}')
}

// appendJSON appends v as encoding/json writes it; v is a string or a finite
// number, which it never refuses.
func appendJSON(b []byte, v any) []byte {
	j, _ := json.Marshal(v)
	return append(b, j...)
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode answer: %v", err), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

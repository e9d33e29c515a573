package web

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/monitor"
)

// fakeSource is a monitor.View serving fixed data and records the durations History was asked for.
type fakeSource struct {
	hist map[string][]monitor.Point
	rows []monitor.PartitionLag

	mu    sync.Mutex
	asked []time.Duration
}

func (f *fakeSource) History(d time.Duration) map[string][]monitor.Point {
	f.mu.Lock()
	f.asked = append(f.asked, d)
	f.mu.Unlock()
	return f.hist
}

func (f *fakeSource) Partitions() []monitor.PartitionLag { return f.rows }

func (f *fakeSource) lastAsked() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		return 0
	}
	return f.asked[len(f.asked)-1]
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) answer {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return answer{rec.Code, rec.Result().Header, string(body)}
}

func TestAssetsServedWithTypeAndCSP(t *testing.T) {
	h := Handler(&fakeSource{})
	for _, tc := range []struct {
		path, contentType string
		body              []byte
	}{
		{"/", "text/html; charset=utf-8", indexHTML},
		{"/app.js", "text/javascript; charset=utf-8", appJS},
		{"/app.css", "text/css; charset=utf-8", appCSS},
	} {
		t.Run(tc.path, func(t *testing.T) {
			a := get(t, h, http.MethodGet, tc.path, nil)
			if a.status != http.StatusOK {
				t.Fatalf("got status %d, want 200", a.status)
			}
			for k, want := range map[string]string{
				"Content-Type":            tc.contentType,
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Cache-Control":           "no-cache",
			} {
				if got := a.header.Get(k); got != want {
					t.Errorf("got %s %q, want %q", k, got, want)
				}
			}
			if !bytes.Equal([]byte(a.body), tc.body) || len(tc.body) == 0 {
				t.Errorf("got %d bytes, want the %d embedded", len(a.body), len(tc.body))
			}

			etag := a.header.Get("ETag")
			again := get(t, h, http.MethodGet, tc.path, map[string]string{"If-None-Match": etag})
			if etag == "" || again.status != http.StatusNotModified {
				t.Errorf("revalidating with ETag %q: got status %d, want 304", etag, again.status)
			}
		})
	}
}

// TestCSPForbidsOtherOrigins checks the policy itself: everything defaults to the
// page's own origin and no directive widens it.
func TestCSPForbidsOtherOrigins(t *testing.T) {
	if !strings.HasPrefix(ContentSecurityPolicy, "default-src 'self';") {
		t.Errorf("got %q, want it to start with default-src 'self'", ContentSecurityPolicy)
	}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		for _, bad := range []string{"*", "http:", "https:", "data:", "'unsafe-inline'", "'unsafe-eval'"} {
			if strings.Contains(d, bad) {
				t.Errorf("directive %q allows %s", strings.TrimSpace(d), bad)
			}
		}
	}
}

// TestAssetsLoadNothingElsewhere keeps the page self-contained and within its CSP:
// no absolute URL in the embedded files but the SVG namespace, nothing inline the
// policy would block, nothing that evaluates strings.
func TestAssetsLoadNothingElsewhere(t *testing.T) {
	absolute := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	forbidden := map[string]*regexp.Regexp{
		"index.html": regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=|<script>|<script\s+(type=[^ >]*\s*)?>`),
		"app.js":     regexp.MustCompile(`eval\(|new Function|innerHTML|import\(|setAttribute\("style"`),
		"app.css":    regexp.MustCompile(`(?i)@import|url\(|@font-face`),
	}
	for name, body := range map[string][]byte{"index.html": indexHTML, "app.js": appJS, "app.css": appCSS} {
		for _, m := range absolute.FindAllString(string(body), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %q", name, m)
			}
		}
		if m := forbidden[name].FindString(string(body)); m != "" {
			t.Errorf("%s contains %q", name, m)
		}
	}
	for _, ref := range []string{`<script src="app.js" defer></script>`, `<link rel="stylesheet" href="app.css">`} {
		if !bytes.Contains(indexHTML, []byte(ref)) {
			t.Errorf("index.html lacks %s", ref)
		}
	}
}

func TestHistoryJSON(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := &fakeSource{hist: map[string][]monitor.Point{
		"c1/orders":  {{Time: t0, Lag: 5, Seconds: 1.5}, {Time: t0.Add(5 * time.Second), Lag: 0, Seconds: 0}},
		"c2/billing": {{Time: t0, Lag: 7, Seconds: math.NaN()}, {Time: t0.Add(time.Second), Lag: 8, Seconds: math.Inf(1)}},
		"c2/idle":    nil,
	}}
	a := get(t, Handler(src), http.MethodGet, "/api/history?minutes=15", nil)
	if a.status != http.StatusOK {
		t.Fatalf("got status %d (%s), want 200", a.status, a.body)
	}
	want := `{"c1/orders":[{"t":"2026-01-02T03:04:05Z","lag":5,"seconds":1.5},{"t":"2026-01-02T03:04:10Z","lag":0,"seconds":0}],` +
		`"c2/billing":[{"t":"2026-01-02T03:04:05Z","lag":7,"seconds":0},{"t":"2026-01-02T03:04:06Z","lag":8,"seconds":0}],` +
		`"c2/idle":[]}` + "\n"
	if a.body != want {
		t.Errorf("got  %s\nwant %s", a.body, want)
	}
	if got := a.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	if got := a.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("got Cache-Control %q, want no-store", got)
	}
	if got := src.lastAsked(); got != 15*time.Minute {
		t.Errorf("got History(%v), want History(15m)", got)
	}
	if got := src.hist["c2/billing"][0].Seconds; !math.IsNaN(got) {
		t.Errorf("got the source's sample changed to %v, want it left NaN", got)
	}
}

func TestPartitionsJSON(t *testing.T) {
	src := &fakeSource{rows: []monitor.PartitionLag{
		{Cluster: "c1", Module: "orders", Topic: "t", Partition: 10, Lag: 3, TimeLagSeconds: 2.5, Status: monitor.StatusWarn, Owner: "host-1"},
		{Cluster: "c1", Module: "orders", Topic: "t", Partition: 2, Status: monitor.StatusStop, NoCommit: true},
		{Cluster: "c0", Module: "zeta", Topic: "a", Partition: 0, Lag: 9, TimeLagSeconds: math.NaN(), Status: monitor.StatusStall, Stale: true, Owner: "h"},
		{Cluster: "c1", Module: "gone", Topic: "t", Partition: 0, Lag: 200, Status: monitor.StatusOutOfRange, OutOfRange: true, Owner: "h"},
	}}
	a := get(t, Handler(src), http.MethodGet, "/api/partitions", nil)
	if a.status != http.StatusOK {
		t.Fatalf("got status %d (%s), want 200", a.status, a.body)
	}
	want := `[{"cluster":"c0","module":"zeta","topic":"a","partition":0,"lag":9,"time_lag_seconds":0,"status":"STALL","stale":true,"no_commit":false,"out_of_range":false,"owner":"h"},` +
		`{"cluster":"c1","module":"gone","topic":"t","partition":0,"lag":200,"time_lag_seconds":0,"status":"OUT_OF_RANGE","stale":false,"no_commit":false,"out_of_range":true,"owner":"h"},` +
		`{"cluster":"c1","module":"orders","topic":"t","partition":2,"lag":0,"time_lag_seconds":0,"status":"STOP","stale":false,"no_commit":true,"out_of_range":false,"owner":""},` +
		`{"cluster":"c1","module":"orders","topic":"t","partition":10,"lag":3,"time_lag_seconds":2.5,"status":"WARN","stale":false,"no_commit":false,"out_of_range":false,"owner":"host-1"}]` + "\n"
	if a.body != want {
		t.Errorf("got  %s\nwant %s", a.body, want)
	}
	if src.rows[0].Partition != 10 {
		t.Errorf("got the source's rows reordered (first is partition %d), want them left alone", src.rows[0].Partition)
	}

	empty := get(t, Handler(&fakeSource{}), http.MethodGet, "/api/partitions", nil)
	if empty.body != "[]\n" {
		t.Errorf("no rows: got %q, want []", empty.body)
	}
	emptyHist := get(t, Handler(&fakeSource{}), http.MethodGet, "/api/history", nil)
	if emptyHist.body != "{}\n" {
		t.Errorf("no history: got %q, want {}", emptyHist.body)
	}
}

func TestMinutesParameter(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration // 0: 400
	}{
		{"", 60 * time.Minute},
		{"other=1", 60 * time.Minute},
		{"minutes=1", time.Minute},
		{"minutes=60", 60 * time.Minute},
		{"minutes=07", 7 * time.Minute},
		{"minutes=0", 0},
		{"minutes=61", 0},
		{"minutes=-5", 0},
		{"minutes=", 0},
		{"minutes=abc", 0},
		{"minutes=1.5", 0},
		{"minutes=+5%20", 0},
		{"minutes=99999999999999999999", 0},
		{"minutes=1&minutes=2", 0},
		{"minutes=%zz", 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			src := &fakeSource{}
			a := get(t, Handler(src), http.MethodGet, "/api/history?"+tc.query, nil)
			if tc.want == 0 {
				var e struct{ Error string }
				if a.status != http.StatusBadRequest {
					t.Fatalf("got status %d, want 400", a.status)
				}
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == "" {
					t.Errorf("got body %q (%v), want JSON with an error reason", a.body, err)
				}
				if len(src.asked) != 0 {
					t.Errorf("got History called with %v, want no call", src.asked)
				}
				return
			}
			if a.status != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", a.status, a.body)
			}
			if got := src.lastAsked(); got != tc.want {
				t.Errorf("got History(%v), want History(%v)", got, tc.want)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	h := Handler(&fakeSource{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/history", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/api/", http.StatusNotFound},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := get(t, h, tc.method, tc.path, nil)
			if a.status != tc.want {
				t.Errorf("got status %d, want %d", a.status, tc.want)
			}
			if got := a.header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("got CSP %q, want it on every answer", got)
			}
		})
	}
}

func FuzzMinutes(f *testing.F) {
	for _, s := range []string{"", "minutes=5", "minutes=60", "minutes=0", "minutes=x", "minutes=1&minutes=1", "minutes=%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := parseMinutes(raw)
		if err != nil {
			return
		}
		if m < 1 || m > MaxMinutes {
			t.Fatalf("parseMinutes(%q) = %d, want 1..%d or an error", raw, m, MaxMinutes)
		}
	})
}

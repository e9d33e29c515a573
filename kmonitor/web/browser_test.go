//go:build linux

package web

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/monitor"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

// The browser tests load the dashboard in headless Chromium. They need the browser,
// so they run only with BROWSER_TEST=1; DASHBOARD_SCREENSHOT=FILE keeps the
// screenshot.

// lineColour is the chart line's colour in the light theme (--line in app.css).
var lineColour = color.RGBA{0x1f, 0x6f, 0xd1, 0xff}

// browserSource is an hour of samples every 5 s for two modules (billing with a
// five-minute hole where kmonitor was down) and partitions in every status.
func browserSource() *fakeSource {
	end := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	hist := map[string][]monitor.Point{}
	for i := 0; i <= 720; i++ {
		at := end.Add(time.Duration(i-720) * 5 * time.Second)
		orders := 2500 + 1800*math.Sin(float64(i)/70) + float64(i)*4
		hist["prod/orders-push"] = append(hist["prod/orders-push"], monitor.Point{Time: at, Lag: int64(orders), Seconds: orders / 40})
		if i >= 400 && i < 460 {
			continue
		}
		billing := 0.0
		if i > 200 {
			billing = 90 * float64(min(i-200, 360))
			billing -= 60 * float64(max(0, i-560))
		}
		hist["prod/billing"] = append(hist["prod/billing"], monitor.Point{Time: at, Lag: int64(billing), Seconds: billing / 300})
	}
	return &fakeSource{hist: hist, rows: []monitor.PartitionLag{
		{Cluster: "prod", Module: "orders-push", Topic: "orders", Partition: 0, Lag: 1200, TimeLagSeconds: 31, Status: monitor.StatusOK, Owner: "push-a-1"},
		{Cluster: "prod", Module: "orders-push", Topic: "orders", Partition: 1, Lag: 2100, TimeLagSeconds: 95, Status: monitor.StatusWarn, Owner: "push-a-2"},
		{Cluster: "prod", Module: "orders-push", Topic: "orders", Partition: 2, Lag: 1900, TimeLagSeconds: 4000, Status: monitor.StatusStall, Owner: "push-b-1", Stale: true},
		{Cluster: "prod", Module: "billing", Topic: "invoices", Partition: 0, Status: monitor.StatusStop, NoCommit: true},
		{Cluster: "prod", Module: "billing", Topic: "invoices", Partition: 1, Lag: 22000, TimeLagSeconds: 72, Status: monitor.StatusRewind, Owner: "bill-1"},
		{Cluster: "prod", Module: "billing", Topic: "invoices", Partition: 2, Lag: 0, Status: monitor.StatusOK, Owner: "bill-2"},
	}}
}

func TestBrowserRendersDashboard(t *testing.T) {
	bin := testproc.Chromium(t, "BROWSER_TEST")
	src := browserSource()
	srv := httptest.NewServer(Handler(src))
	t.Cleanup(srv.Close)

	checkScreenshot(t, screenshot(t, bin, srv.URL+"/", "DASHBOARD_SCREENSHOT"))

	dom, _ := testproc.RunChromium(t, bin, srv.URL+"/", "--virtual-time-budget=5000", "--dump-dom")
	for _, want := range []string{`>prod / orders-push</h2>`, `>prod / billing</h2>`, `>Last updated `, `id="error" class="error" role="alert" hidden=""`} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %s", want)
		}
	}
	for _, r := range src.rows {
		row := rowHTML(t, dom, r)
		for _, want := range []string{`>` + r.Status.String() + `</span>`, `>` + r.Topic + `</td>`} {
			if !strings.Contains(row, want) {
				t.Errorf("row %s/%d: got %s, want it to contain %s", r.Module, r.Partition, row, want)
			}
		}
		if got, want := strings.Contains(row, ">stale</span>"), r.Stale; got != want {
			t.Errorf("row %s/%d: got stale marker %v, want %v", r.Module, r.Partition, got, want)
		}
		if got, want := strings.Contains(row, ">no commit yet</span>"), r.NoCommit; got != want {
			t.Errorf("row %s/%d: got no-commit marker %v, want %v", r.Module, r.Partition, got, want)
		}
	}
	// orders-push is one unbroken line; billing is two, split at its hole.
	if got := strings.Count(dom, `class="line"`); got != 3 {
		t.Errorf("got %d chart lines, want 3", got)
	}
}

// TestBrowserKeepsDataWhenUnreachable serves the page once, then fails every API
// call: the next refresh must show the error banner over the data already shown.
func TestBrowserKeepsDataWhenUnreachable(t *testing.T) {
	bin := testproc.Chromium(t, "BROWSER_TEST")
	h := Handler(browserSource())
	var histories atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/history" && histories.Add(1) > 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// Virtual time runs past the first 5 s refresh.
	dom, _ := testproc.RunChromium(t, bin, srv.URL+"/", "--virtual-time-budget=8000", "--dump-dom")
	if got := histories.Load(); got < 2 {
		t.Fatalf("got %d history requests, want a refresh after the first", got)
	}
	banner := regexp.MustCompile(`<div id="error" class="error" role="alert">([^<]*)</div>`).FindStringSubmatch(dom)
	if banner == nil {
		t.Fatalf("got no visible error banner in\n%s", dom)
	}
	for _, want := range []string{"Cannot reach kmonitor", "HTTP 503", "Showing data from"} {
		if !strings.Contains(banner[1], want) {
			t.Errorf("banner %q lacks %q", banner[1], want)
		}
	}
	for _, want := range []string{`>prod / orders-push</h2>`, `>prod / billing</h2>`, `data-partition="prod/billing/invoices/1"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("after the failed refresh the page lacks %s", want)
		}
	}
}

// oorColour is the OUT_OF_RANGE badge's background in the light theme
// (--oor-bg in app.css).
var oorColour = color.RGBA{0xa4, 0x0e, 0x26, 0xff}

// TestBrowserLongModuleName: a module name of 3,000 characters (anything a
// ZooKeeper client wrote) is cut on screen, whole in the title, and its
// partition table stays within the window: the status badges of its rows are
// drawn in the screenshot.
func TestBrowserLongModuleName(t *testing.T) {
	bin := testproc.Chromium(t, "BROWSER_TEST")
	long := strings.Repeat("m", 3000)
	end := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	var pts []monitor.Point
	for i := 0; i <= 60; i++ {
		pts = append(pts, monitor.Point{Time: end.Add(time.Duration(i-60) * time.Minute), Lag: int64(200 + i)})
	}
	src := &fakeSource{hist: map[string][]monitor.Point{"prod/" + long: pts}}
	for p := int32(0); p < 4; p++ {
		src.rows = append(src.rows, monitor.PartitionLag{Cluster: "prod", Module: long, Topic: "orders", Partition: p, Lag: 200,
			TimeLagSeconds: 3600, Status: monitor.StatusOutOfRange, OutOfRange: true, Owner: strings.Repeat("h", 500)})
	}
	srv := httptest.NewServer(Handler(src))
	t.Cleanup(srv.Close)

	img := screenshot(t, bin, srv.URL+"/", "DASHBOARD_LONG_SCREENSHOT")
	// Five badges of about 115 x 18 px: the module's in its header, always on
	// screen, and one per row, off screen when the table is pushed away.
	badge := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if near(color.RGBAModel.Convert(img.At(x, y)).(color.RGBA), oorColour, 12) {
				badge++
			}
		}
	}
	if badge < 5000 {
		t.Errorf("got %d pixels of the OUT_OF_RANGE badges' colour %v, want at least 5000: the partition table is off screen", badge, oorColour)
	}
	t.Logf("%d pixels of the OUT_OF_RANGE badges' colour", badge)

	dom, _ := testproc.RunChromium(t, bin, srv.URL+"/", "--virtual-time-budget=5000", "--dump-dom")
	if want := `title="prod / ` + long + `"`; !strings.Contains(dom, want) {
		t.Error("the heading does not carry the whole name in its title")
	}
	for p := range 4 {
		row := rowHTML(t, dom, src.rows[p])
		if !strings.Contains(row, ">offset out of range</span>") {
			t.Errorf("row %d: got %s, want the out-of-range note", p, row)
		}
	}
}

// screenshot loads url in Chromium and returns its screenshot, also written to
// the file the environment variable keep names, when set.
func screenshot(t *testing.T, bin, url, keep string) image.Image {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "screenshot.png")
	testproc.RunChromium(t, bin, url, "--virtual-time-budget=5000", "--screenshot="+shot)
	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if path := os.Getenv(keep); path != "" {
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Errorf("keep screenshot: %v", err)
		}
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	return img
}

// rowHTML returns the table row of r in dom.
func rowHTML(t *testing.T, dom string, r monitor.PartitionLag) string {
	t.Helper()
	key := fmt.Sprintf(`data-partition="%s/%s/%s/%d"`, r.Cluster, r.Module, r.Topic, r.Partition)
	i := strings.Index(dom, key)
	if i < 0 {
		t.Errorf("rendered page lacks the row %s", key)
		return ""
	}
	j := strings.Index(dom[i:], "</tr>")
	if j < 0 {
		return dom[i:]
	}
	return dom[i : i+j]
}

// checkScreenshot checks the page was drawn: the window's size, enough that is not
// background, and the chart lines in their colour.
func checkScreenshot(t *testing.T, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != 1200 || b.Dy() != 900 {
		t.Errorf("got a %dx%d screenshot, want 1200x900", b.Dx(), b.Dy())
	}
	counts := map[color.RGBA]int{}
	line := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			counts[c]++
			if near(c, lineColour, 12) {
				line++
			}
		}
	}
	background := 0
	for _, n := range counts {
		background = max(background, n)
	}
	total := b.Dx() * b.Dy()
	if drawn := total - background; drawn < total/20 {
		t.Errorf("got %d of %d pixels off the background colour, want at least 5%%", drawn, total)
	}
	// Two charts of about 480 px each, drawn 2 px wide.
	if line < 1000 {
		t.Errorf("got %d pixels in the chart line's colour %v, want at least 1000", line, lineColour)
	}
}

func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

//go:build linux

package pubsub

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

// TestBrowserShowsRecords loads a page (testdata/browser/index.html) in
// headless Chromium that opens the pubsub WebSocket with ?access_token=, lists
// the log's start and end and fetches every record, then shows them in a
// table. It runs with BROWSER_TEST=1; PUBSUB_SCREENSHOT=FILE keeps the
// screenshot.
func TestBrowserShowsRecords(t *testing.T) {
	bin := testproc.Chromium(t, "BROWSER_TEST")
	const token = "browser-token-0123456789"
	g := startGateway(t, Options{
		FetchMaxBytes: 300, // several fetches for the page
		Authorize:     func(r *http.Request) bool { return r.URL.Query().Get("access_token") == token },
	})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	base := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i, item := range []string{"espresso", "flat white", "croissant", "cortado", "pain au chocolat", "chai latte", "lemon tart", "americano"} {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("table-%d", i%3+1)),
			Value: []byte(fmt.Sprintf(`{"order":%d,"item":"%s","qty":%d}`, 1001+i, item, i%4+1)), Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	g.produce(t, recs[:3])
	g.produce(t, recs[3:], kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerLinger(100*time.Millisecond))

	page, err := os.ReadFile(filepath.Join("testdata", "browser", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/pubsub", g.h)
	// The page's load waits for /hold until it has shown every record (see
	// index.html); Chromium captures it once loaded.
	released := make(chan struct{}, 1)
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-released:
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		select {
		case released <- struct{}{}:
		default:
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'")
		_, _ = w.Write(page)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	url := srv.URL + "/?topic=" + topic + "&partition=0&token=" + token

	dom, _ := testproc.RunChromium(t, bin, url, "--dump-dom")
	if !strings.Contains(dom, `<p id="status" class="done">done: 8 records, offsets 0 to 7</p>`) {
		t.Errorf("the page did not finish; its status: %s", between(dom, `<p id="status"`, "</p>"))
	}
	for i, r := range recs {
		row := between(dom, fmt.Sprintf(`data-offset="%d"`, i), "</tr>")
		for _, want := range []string{
			`>` + fmt.Sprint(i) + `</td>`,
			`>` + r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z") + `</td>`,
			`>` + string(r.Key) + `</td>`,
			`>` + strings.ReplaceAll(string(r.Value), `"`, "&quot;") + `</td>`,
		} {
			if !strings.Contains(row, want) && !strings.Contains(row, strings.ReplaceAll(want, "&quot;", `"`)) {
				t.Errorf("row of offset %d: got %q, want it to contain %s", i, row, want)
			}
		}
	}
	if n := strings.Count(dom, `<tr class="record"`); n != len(recs) {
		t.Errorf("got %d record rows, want %d", n, len(recs))
	}

	shot := filepath.Join(t.TempDir(), "pubsub.png")
	testproc.RunChromium(t, bin, url, "--screenshot="+shot)
	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if keep := os.Getenv("PUBSUB_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, raw, 0o644); err != nil {
			t.Errorf("keep screenshot: %v", err)
		}
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	// The offset cells are shaded (#ddf4ff): one band per record row.
	offsetCell := color.RGBA{0xdd, 0xf4, 0xff, 0xff}
	b := img.Bounds()
	shaded := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == offsetCell {
				shaded++
			}
		}
	}
	// Eight cells of roughly 60x25 px.
	if shaded < len(recs)*500 {
		t.Errorf("got %d pixels of the offset cells' colour, want at least %d (a row per record)", shaded, len(recs)*500)
	}
}

// between returns the part of s from the first from up to the next to.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	j := strings.Index(s[i:], to)
	if j < 0 {
		return s[i:]
	}
	return s[i : i+j]
}

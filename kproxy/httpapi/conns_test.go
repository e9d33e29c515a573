package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// TestMaxConnections checks the connection bound of port: at max_connections a
// new connection closes the longest idle keep-alive connection, and when none
// is idle it is refused at once, while clients within the bound are served.
func TestMaxConnections(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.MaxConnections = 4
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	testwait.Eventually(t, 5*time.Second, "/readyz 200", func() bool { return do(t, "GET", r.url+"/readyz", nil, nil).status == 200 })
	http.DefaultClient.CloseIdleConnections()
	testwait.Eventually(t, 5*time.Second, "kproxy_connections 0", func() bool { return metric(t, r, "kproxy_connections") == 0 })

	// Four clients in the middle of sending a request: no connection is idle.
	busy := make([]net.Conn, cfg.MaxConnections)
	for i := range busy {
		busy[i] = rawConn(t, r.url)
		send(t, busy[i], commitHead+"Content-Length: 5\r\n")
	}
	testwait.Eventually(t, 5*time.Second, "kproxy_connections 4", func() bool { return metric(t, r, "kproxy_connections") == 4 })
	extra := rawConn(t, r.url)
	testwait.Closed(t, extra, 5*time.Second)
	if got := metric(t, r, "kproxy_connections_refused_total"); got != 1 {
		t.Errorf("got kproxy_connections_refused_total %v, want 1", got)
	}
	// A client within the bound finishes its request and is served.
	send(t, busy[0], "\r\nvalue")
	br := bufio.NewReader(busy[0])
	if _, a := readAnswer(t, busy[0], br); a.status != http.StatusOK {
		t.Fatalf("client within max_connections: got %d %q, want 200", a.status, a.Code)
	}

	// busy[0] is now idle between requests: the next client takes its place.
	testwait.Eventually(t, 5*time.Second, "one idle connection", func() bool { return len(r.srv.conns.idleList()) == 1 })
	if a := post(t, r.url, "topic="+testTopic, []byte("newcomer")); a.status != http.StatusOK {
		t.Fatalf("client while an idle connection can make room: got %d %q, want 200", a.status, a.Code)
	}
	testwait.Closed(t, busy[0], 5*time.Second)
	if got := metric(t, r, "kproxy_connections_evicted_total"); got != 1 {
		t.Errorf("got kproxy_connections_evicted_total %v, want 1", got)
	}
	if got := metric(t, r, "kproxy_connections"); got > 4 {
		t.Errorf("got %v connections open, want at most max_connections 4", got)
	}
	if end := endOffset(t, brokers, testTopic); end != 2 {
		t.Errorf("got end offset %d, want 2", end)
	}
}

// idleList returns the idle connections, longest idle first.
func (l *connLimiter) idleList() []*limitedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*limitedConn
	for c := l.idleHead; c != nil; c = c.next {
		out = append(out, c)
	}
	return out
}

// TestConnLimiterEvictsLongestIdle drives the limiter directly: idle
// connections are closed oldest first, and a connection that turned active
// again is not a candidate.
func TestConnLimiterEvictsLongestIdle(t *testing.T) {
	l := newConnLimiter(3, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	conns := make([]*limitedConn, 3)
	for i := range conns {
		if !l.admit() {
			t.Fatalf("connection %d refused below the limit", i)
		}
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		conns[i] = &limitedConn{Conn: a, l: l, counted: true}
	}
	if l.admit() {
		t.Fatal("fourth connection admitted with none idle")
	}
	l.connState(conns[1], http.StateIdle)
	l.connState(conns[0], http.StateIdle)
	l.connState(conns[2], http.StateIdle)
	l.connState(conns[1], http.StateActive) // a new request arrived on it
	if !l.admit() {
		t.Fatal("refused although connections were idle")
	}
	if got := l.idleList(); len(got) != 1 || got[0] != conns[2] {
		t.Fatalf("after one eviction: idle list %v, want only the third connection", got)
	}
	if _, err := conns[0].Conn.Write([]byte("x")); err == nil {
		t.Error("the longest idle connection is still open, want it closed")
	}
	// Its later Close (by net/http) must not free the slot the newcomer took.
	conns[0].Close()
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	if open != 3 {
		t.Errorf("got %d connections counted, want 3", open)
	}
}

// failingListener fails every Accept with err.
type failingListener struct {
	net.Listener
	err error
}

func (f failingListener) Accept() (net.Conn, error) { return nil, f.err }

// TestAcceptErrorsLoggedAtWarning checks that an accept error (here: out of file
// descriptors) is logged at warning level and counted.
func TestAcceptErrorsLoggedAtWarning(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := newConnLimiter(10, log, prometheus.NewRegistry())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: errors.New("accept4: too many open files")}
	if _, err := l.listener(failingListener{ln, emfile}).Accept(); err == nil {
		t.Fatal("got no error")
	}
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "too many open files") {
		t.Errorf("got log %q, want a warning with the accept error", out)
	}
	if got := testutil.ToFloat64(l.acceptErrs); got != 1 {
		t.Errorf("got kproxy_accept_errors_total %v, want 1", got)
	}
}

// TestChunkedRequestClosesConnection sends a request with both Content-Length
// and Transfer-Encoding: chunked and a second request behind it: the first is
// answered with Connection: close and the second is never read. A chunked
// request without a Content-Length keeps its connection.
func TestChunkedRequestClosesConnection(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	conn := rawConn(t, r.url)
	send(t, conn, commitHead+"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"+
		"POST /commit?topic="+testTopic+" HTTP/1.1\r\nHost: kproxy\r\nContent-Length: 6\r\n\r\nsecond")
	br := bufio.NewReader(conn)
	resp, a := readAnswer(t, conn, br)
	if a.status != http.StatusOK || !resp.Close {
		t.Fatalf("got %d with close %v, want 200 and Connection: close", a.status, resp.Close)
	}
	testwait.Closed(t, conn, 5*time.Second)
	if end := endOffset(t, brokers, testTopic); end != 1 {
		t.Errorf("got end offset %d, want 1: the request behind must not be served", end)
	}
	// A request with Content-Length alone keeps its connection.
	conn = rawConn(t, r.url)
	send(t, conn, commitHead+"Content-Length: 5\r\n\r\nplain")
	if resp, a := readAnswer(t, conn, bufio.NewReader(conn)); a.status != http.StatusOK || resp.Close {
		t.Errorf("Content-Length only: got %d with close %v, want 200 kept alive", a.status, resp.Close)
	}
	// So does a chunked request alone, on /commit and on /batch, with a
	// trailer section: the requests behind it are served on the connection.
	conn = rawConn(t, r.url)
	br = bufio.NewReader(conn)
	send(t, conn, commitHead+"Transfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\nX-Trailer: 1\r\n\r\n"+
		"POST /batch?topic="+testTopic+" HTTP/1.1\r\nHost: kproxy\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n\x92\x81\xa5value\x01\r\n8\r\n\x81\xa5value\x02\r\n0\r\n\r\n"+
		commitHead+"Content-Length: 5\r\n\r\nthree")
	for i, what := range []string{"chunked /commit", "chunked /batch", "the request behind them"} {
		if resp, a := readAnswer(t, conn, br); a.status != http.StatusOK || resp.Close {
			t.Fatalf("%s (answer %d): got %d with close %v, want 200 kept alive", what, i+1, a.status, resp.Close)
		}
	}
	if end := endOffset(t, brokers, testTopic); end != 6 {
		t.Errorf("got end offset %d, want 6: 1 and 1 before, then 1, 2 and 1 on the kept connection", end)
	}
}

package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// commitReq is a raw POST /commit of body with extra header lines.
func commitReq(proto, query, extra, body string) string {
	return fmt.Sprintf("POST /commit?topic=%s%s %s\r\nHost: kproxy\r\n%sContent-Length: %d\r\n\r\n%s",
		testTopic, query, proto, extra, len(body), body)
}

// TestPipelinedRequests sends requests back to back without waiting: the
// answers come in request order, refusals and commits mixed, and a request
// for another path behind them is served by net/http after them on the same
// connection, which then keeps serving.
func TestPipelinedRequests(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	conn := rawConn(t, r.url)
	var sb strings.Builder
	for i := 0; i < 6; i++ {
		if i == 3 {
			// Refused, with no body left unread: the connection stays.
			sb.WriteString(commitReq("HTTP/1.1", "", "", ""))
			continue
		}
		sb.WriteString(commitReq("HTTP/1.1", fmt.Sprintf("&key=k%d", i), "", fmt.Sprintf("value-%d", i)))
	}
	sb.WriteString("GET /healthz HTTP/1.1\r\nHost: kproxy\r\n\r\n")
	sb.WriteString(commitReq("HTTP/1.1", "", "", "after"))
	send(t, conn, sb.String())
	br := bufio.NewReader(conn)
	var offsets []int64
	for i := 0; i < 6; i++ {
		resp, a := readAnswer(t, conn, br)
		if i == 3 {
			if a.status != 400 || a.Code != "empty_body" || resp.Close {
				t.Fatalf("answer %d: got %d %q close %v, want 400 empty_body kept alive", i, a.status, a.Code, resp.Close)
			}
			continue
		}
		if a.status != 200 {
			t.Fatalf("answer %d: got %d %q (%s), want 200", i, a.status, a.Code, a.Error)
		}
		offsets = append(offsets, a.Offset)
	}
	for i := 1; i < len(offsets); i++ {
		if offsets[i] != offsets[i-1]+1 {
			t.Fatalf("got offsets %v, want the answers in request order", offsets)
		}
	}
	if resp, _ := readAnswer(t, conn, br); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /healthz behind the commits: got %d %q, want net/http's 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, a := readAnswer(t, conn, br); a.status != 200 || a.Offset != offsets[len(offsets)-1]+1 {
		t.Fatalf("commit after the hand-over: got %d offset %d, want 200 at %d", a.status, a.Offset, offsets[len(offsets)-1]+1)
	}
	if end := endOffset(t, brokers, testTopic); end != 6 {
		t.Errorf("got end offset %d, want 6", end)
	}
}

// TestExpectContinue: a client that waits for 100 Continue gets it when the
// request is admitted, and sends its body then; a refused one gets its answer
// instead, and its connection is closed.
func TestExpectContinue(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ValidateMsgpack = false
	r := start(t, cfg)

	conn := rawConn(t, r.url)
	br := bufio.NewReader(conn)
	send(t, conn, "POST /commit?topic="+testTopic+" HTTP/1.1\r\nHost: kproxy\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q (%v), want HTTP/1.1 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("got %q after the interim status line, want the empty line", blank)
	}
	send(t, conn, "body")
	if resp, a := readAnswer(t, conn, br); a.status != 200 || resp.Close {
		t.Fatalf("got %d close %v, want 200 kept alive", a.status, resp.Close)
	}

	conn = rawConn(t, r.url)
	br = bufio.NewReader(conn)
	send(t, conn, "POST /commit?topic=a/b HTTP/1.1\r\nHost: kproxy\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, a := readAnswer(t, conn, br)
	if a.status != 400 || a.Code != "invalid_topic" || !resp.Close {
		t.Fatalf("refused: got %d %q close %v, want 400 invalid_topic with Connection: close", a.status, a.Code, resp.Close)
	}
	testwait.Closed(t, conn, 5*time.Second)
}

// TestHTTP10 checks HTTP/1.0 clients: the answer speaks HTTP/1.0, a
// connection is kept only when the client asks (and the answer says so).
func TestHTTP10(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ValidateMsgpack = false
	r := start(t, cfg)

	conn := rawConn(t, r.url)
	br := bufio.NewReader(conn)
	for i := 0; i < 2; i++ {
		send(t, conn, commitReq("HTTP/1.0", "", "Connection: keep-alive\r\n", "kept"))
		resp, a := readAnswer(t, conn, br)
		if a.status != 200 || resp.ProtoMinor != 0 || resp.Header.Get("Connection") != "keep-alive" || resp.Close {
			t.Fatalf("keep-alive request %d: got %d %s Connection %q, want 200 HTTP/1.0 keep-alive",
				i, a.status, resp.Proto, resp.Header.Get("Connection"))
		}
	}
	conn = rawConn(t, r.url)
	br = bufio.NewReader(conn)
	send(t, conn, commitReq("HTTP/1.0", "", "", "once"))
	if resp, a := readAnswer(t, conn, br); a.status != 200 || resp.ProtoMinor != 0 || !resp.Close {
		t.Fatalf("plain HTTP/1.0: got %d %s close %v, want 200 HTTP/1.0 closed", a.status, resp.Proto, resp.Close)
	}
	testwait.Closed(t, conn, 5*time.Second)
}

// TestHandOverToNetHTTP sends what the loop leaves to net/http — a head larger
// than its buffer, a malformed head, an HTTP/2 preface — and checks net/http's
// answers: the large one is served, the others refused as before.
func TestHandOverToNetHTTP(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"head beyond the loop's buffer", commitReq("HTTP/1.1", "", "X-Big: "+strings.Repeat("b", 6000)+"\r\n", "big head"), 200},
		{"space before the colon", "POST /commit?topic=" + testTopic + " HTTP/1.1\r\nHost: kproxy\r\nContent-Length : 1\r\n\r\nx", 400},
		{"HTTP/1.1 without Host", "POST /commit?topic=" + testTopic + " HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 400},
		{"both framings", "POST /commit?topic=" + testTopic + " HTTP/1.1\r\nHost: k\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400}, // http.ServeMux's answer to "*"
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawConn(t, r.url)
			send(t, conn, tc.req)
			if resp, _ := readAnswer(t, conn, bufio.NewReader(conn)); resp.StatusCode != tc.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

// TestHandleMountsWebSocket mounts a WebSocket handler with Handle, as the
// gateways are mounted, and talks to it: the upgrade reaches the handler and
// its hijacked connection works, beside commits on other connections.
func TestHandleMountsWebSocket(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	upgrader := websocket.Upgrader{}
	r := startWith(t, cfg, func(s *Server) {
		s.Handle("/echo", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			ws, err := upgrader.Upgrade(w, req, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			for {
				kind, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if err := ws.WriteMessage(kind, append([]byte("echo "), msg...)); err != nil {
					return
				}
			}
		}))
	})
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.url, "http")+"/echo", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer ws.Close()
	for i := 0; i < 3; i++ {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := ws.ReadMessage()
		if err != nil || string(msg) != fmt.Sprintf("echo %d", i) {
			t.Fatalf("got %q (%v), want echo %d", msg, err, i)
		}
		if a := post(t, r.url, "topic="+testTopic, body(t, "m", i)); a.status != 200 {
			t.Fatalf("commit beside the WebSocket: got %d", a.status)
		}
	}
}

// TestSlowReaderStallsNoOne: a client sends batches and never reads the
// answers, until its socket is full and the loop has answers it cannot
// write; meanwhile other clients' commits (answered by the same Kafka
// client's callbacks) get their 200s, as answers are written by writes that
// never wait for a client, and the slow client is disconnected once
// write_timeout_ms passed, its batches' memory and slots given back.
func TestSlowReaderStallsNoOne(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ValidateMsgpack = false
	// Longer than produce_timeout_ms (2 s here): a Kafka client's callback
	// stuck writing to the slow client would turn the other commits into 504s.
	cfg.WriteTimeoutMs = 5000
	cfg.MaxRequestSizeBytes = 4 << 20
	cfg.MaxBatchRecords = 40000
	cfg.MaxBufferedRecords = 1 << 20
	r := start(t, cfg)

	slow, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	if tc, ok := slow.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	// Answers of 40,000 records of about 30 bytes each: 8 of them are more
	// than the sockets' buffers hold.
	raw, _ := encodeBatch(t, func() []batchElem {
		elems := make([]batchElem, 40000)
		for i := range elems {
			elems[i] = batchElem{key: "k", value: []byte{0x01}}
		}
		return elems
	}())
	req := fmt.Sprintf("POST /batch?topic=%s HTTP/1.1\r\nHost: kproxy\r\nContent-Length: %d\r\n\r\n", testTopic, len(raw)) + string(raw)
	go func() {
		for i := 0; i < 8; i++ {
			if _, err := io.WriteString(slow, req); err != nil {
				return
			}
		}
	}()
	testwait.Eventually(t, 60*time.Second, "a connection stuck writing", func() bool { return r.srv.stuckWriting(200 * time.Millisecond) })
	for i := 0; i < 3; i++ {
		if a := post(t, r.url, "topic="+testTopic, []byte("fast")); a.status != 200 {
			t.Fatalf("commit %d beside the slow reader: got %d %q, want 200 while the slow client's answer waits", i, a.status, a.Code)
		}
	}
	// kproxy closes the slow connection (the kernel may still be handing
	// the client what it had taken): none is left open.
	http.DefaultClient.CloseIdleConnections()
	testwait.Eventually(t, 20*time.Second, "kproxy_connections 0", func() bool { return metric(t, r, "kproxy_connections") == 0 })
	// The batches held for answers that were never written are released.
	testwait.Eventually(t, 10*time.Second, "kproxy_body_memory_bytes and kproxy_inflight_requests 0", func() bool {
		return metric(t, r, "kproxy_body_memory_bytes") == 0 && metric(t, r, "kproxy_inflight_requests") == 0
	})
}

// stuckWriting reports whether a connection of the loop has had a write under
// way, with answers waiting, for d.
func (s *Server) stuckWriting(d time.Duration) bool {
	stuck := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.fast {
			c.mu.Lock()
			w := c.writing && len(c.queue) > 1
			c.mu.Unlock()
			if w {
				return true
			}
		}
		return false
	}
	if !stuck() {
		return false
	}
	time.Sleep(d)
	return stuck()
}

// TestLoopAnswersAsNetHTTP sends each request twice: as it is, served by the
// loop, and with a header that makes its head larger than the loop's buffer,
// so that net/http serves it with the same handler. Both must give the same
// status, code and connection fate.
func TestLoopAnswersAsNetHTTP(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic, "audit-log"))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.MaxRequestSizeBytes = 1000
	cfg.MaxBatchRecords = 2
	cfg.Topics.Deny = []string{"audit-.*"}
	cfg.Auth.Tokens = []string{"0123456789abcdef-one"}
	r := start(t, cfg)
	good := string(body(t, "m", 5))
	batch, _ := encodeBatch(t, []batchElem{{key: "k", value: []byte(good)}})
	tooMany, _ := encodeBatch(t, []batchElem{{value: []byte{1}}, {value: []byte{2}}, {value: []byte{3}}})
	auth := "Authorization: Bearer 0123456789abcdef-one\r\n"
	type tc struct{ name, path, query, extra, body string }
	cases := []tc{
		{"ok", "/commit", "topic=" + testTopic, auth, good},
		{"no token", "/commit", "topic=" + testTopic, "", good},
		{"wrong token", "/commit", "topic=" + testTopic, "Authorization: Bearer nope-nope-nope-nope\r\n", good},
		{"no topic", "/commit", "key=k", auth, good},
		{"illegal topic", "/commit", "topic=a%2Fb", auth, good},
		{"bad key escape", "/commit", "topic=" + testTopic + "&key=%zz", auth, good},
		{"bad acks", "/commit", "topic=" + testTopic + "&acks=2", auth, good},
		{"empty body", "/commit", "topic=" + testTopic, auth, ""},
		{"not msgpack", "/commit", "topic=" + testTopic, auth, "\xc1"},
		{"denied topic", "/commit", "topic=audit-log", auth, good},
		{"unknown topic", "/commit", "topic=nope", auth, good},
		{"too large", "/commit", "topic=" + testTopic, auth, strings.Repeat("x", 1001)},
		{"denied topic, too large", "/commit", "topic=audit-log", auth, strings.Repeat("x", 1001)},
		{"bad record header", "/commit", "topic=" + testTopic, auth + "X-Kafka-Header-: v\r\n", good},
		{"record headers", "/commit", "topic=" + testTopic, auth + "Traceparent: 00-1-2-01\r\nX-Kafka-Header-A: b\r\n", good},
		{"batch", "/batch", "topic=" + testTopic, auth, string(batch)},
		{"malformed batch", "/batch", "topic=" + testTopic, auth, good},
		{"too many records", "/batch", "topic=" + testTopic, auth, string(tooMany)},
		{"batch, empty body", "/batch", "topic=" + testTopic, auth, ""},
		{"batch, denied topic", "/batch", "topic=audit-log", auth, string(batch)},
		{"batch, no token", "/batch", "topic=" + testTopic, "", string(batch)},
		{"connection close", "/commit", "topic=" + testTopic, auth + "Connection: close\r\n", good},
	}
	pad := "X-Padding: " + strings.Repeat("p", readBufSize) + "\r\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]string
			for i, extra := range []string{tc.extra, tc.extra + pad} {
				conn := rawConn(t, r.url)
				send(t, conn, fmt.Sprintf("POST %s?%s HTTP/1.1\r\nHost: kproxy\r\n%sContent-Length: %d\r\n\r\n%s",
					tc.path, tc.query, extra, len(tc.body), tc.body))
				resp, a := readAnswer(t, conn, bufio.NewReader(conn))
				got[i] = fmt.Sprintf("%d %q close=%v retry-after=%q www-authenticate=%q", resp.StatusCode, a.Code, resp.Close,
					resp.Header.Get("Retry-After"), resp.Header.Get("WWW-Authenticate"))
			}
			if got[0] != got[1] {
				t.Errorf("loop: %s; net/http: %s", got[0], got[1])
			}
		})
	}
}

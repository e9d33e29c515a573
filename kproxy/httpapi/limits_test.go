package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// rawConn opens a TCP connection to the proxy at base, closed when the test ends,
// for requests net/http's client would not send.
func rawConn(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes s to c.
func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readAnswer reads one response from br within 5s and returns it with its body.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, answer) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &a) // 431 and other net/http answers are plain text
	return resp, a
}

// TestListenerBoundsSlowAndLargeRequests checks the bounds of the listener with
// short timeouts: read_header_timeout_ms, idle_timeout_ms, max_header_bytes and
// max_request_size_bytes on a chunked body, which only counting bytes as they
// arrive can catch. read_timeout_ms is long here, so each bound is seen alone.
func TestListenerBoundsSlowAndLargeRequests(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ReadHeaderTimeoutMs = 200
	cfg.ReadTimeoutMs = 60000
	cfg.IdleTimeoutMs = 300
	cfg.MaxHeaderBytes = 1024
	cfg.MaxRequestSizeBytes = 100
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	const within = 5 * time.Second

	// The group returns when its parallel subtests are done.
	t.Run("bounds", func(t *testing.T) {
		t.Run("half a header then a stall is disconnected", func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, r.url)
			send(t, c, commitHead+"Content-Type: applicat")
			testwait.Closed(t, c, within)
		})

		t.Run("idle keep-alive connection is closed", func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, r.url)
			send(t, c, "GET /healthz HTTP/1.1\r\nHost: kproxy\r\n\r\n")
			resp, _ := readAnswer(t, c, bufio.NewReader(c))
			if resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("got status %d with close %v, want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
			}
			testwait.Closed(t, c, within)
		})

		t.Run("header over max_header_bytes gets 431", func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, r.url)
			// net/http reads 4 KiB beyond MaxHeaderBytes before it gives up.
			send(t, c, commitHead+"X-Big: "+strings.Repeat("a", 8<<10)+"\r\n\r\n")
			resp, _ := readAnswer(t, c, bufio.NewReader(c))
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("got status %d, want 431", resp.StatusCode)
			}
		})

		t.Run("chunked body over the limit gets 413 while it is sent", func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, r.url)
			// 60 + 60 bytes and no final chunk: the body never ends, so the answer
			// (read within 5s, read_timeout_ms is a minute) must come from counting.
			chunk := strings.Repeat("z", 60)
			send(t, c, commitHead+"Transfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n", 60, chunk, 60, chunk))
			resp, a := readAnswer(t, c, bufio.NewReader(c))
			if a.status != http.StatusRequestEntityTooLarge || a.Code != "body_too_large" {
				t.Errorf("got %d %q, want 413 body_too_large", a.status, a.Code)
			}
			if !resp.Close {
				t.Error("got a kept-alive connection, want Connection: close after a refused body")
			}
		})

		t.Run("chunked body at the limit is written", func(t *testing.T) {
			t.Parallel()
			c := rawConn(t, r.url)
			send(t, c, commitHead+"Transfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 100, strings.Repeat("y", 100)))
			_, a := readAnswer(t, c, bufio.NewReader(c))
			if a.status != http.StatusOK {
				t.Errorf("got %d %q, want 200", a.status, a.Error)
			}
		})
	})
	if end := endOffset(t, brokers, testTopic); end != 1 {
		t.Errorf("got end offset %d, want 1: only the body at the limit may be written", end)
	}
}

// TestReadTimeoutCutsStalledBody checks read_timeout_ms: a body that stops
// arriving gets 400, and a chunked body over the limit that stops arriving has its
// connection closed, not held open.
func TestReadTimeoutCutsStalledBody(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ReadTimeoutMs = 300
	cfg.MaxRequestSizeBytes = 100
	cfg.ValidateMsgpack = false
	r := start(t, cfg)

	t.Run("declared length, half sent", func(t *testing.T) {
		c := rawConn(t, r.url)
		send(t, c, commitHead+"Content-Length: 10\r\n\r\nhalf")
		_, a := readAnswer(t, c, bufio.NewReader(c))
		if a.status != http.StatusBadRequest || a.Code != "body_read_error" {
			t.Errorf("got %d %q, want 400 body_read_error", a.status, a.Code)
		}
	})
	t.Run("chunked over the limit, never finished", func(t *testing.T) {
		c := rawConn(t, r.url)
		send(t, c, commitHead+"Transfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n", 200, strings.Repeat("z", 200)))
		_, a := readAnswer(t, c, bufio.NewReader(c))
		if a.status != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d %q, want 413", a.status, a.Code)
		}
		testwait.Closed(t, c, 5*time.Second)
	})
	if end := endOffset(t, brokers, testTopic); end != 0 {
		t.Errorf("got end offset %d, want 0", end)
	}
}

// commitHead is the start of a raw POST /commit request, before its last headers.
const commitHead = "POST /commit?topic=" + testTopic + " HTTP/1.1\r\nHost: kproxy\r\n"

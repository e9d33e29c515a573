package push

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// scripted answers every request on a connection with the next of answers
// (cycling), and closes the connection after an answer ending in "\x00close".
func scripted(answers ...string) func(c net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			if _, err := readRequest(br); err != nil {
				return
			}
			a := answers[i%len(answers)]
			a, closeAfter := strings.CutSuffix(a, "\x00close")
			if _, err := c.Write([]byte(a)); err != nil || closeAfter {
				return
			}
		}
	}
}

func TestResponseFraming(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", 3*readBufSize) + "\r\n"
	tests := []struct {
		name      string
		answer    string
		cfg       Config
		status    int
		body      string // StatusError body, for failures
		wantConns int64  // connections used for three pushes
		// Unsolicited events for three pushes: bytes beyond the answer
		// on a connection that would have been kept.
		unsolicited int64
	}{
		{name: "content-length", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, wantConns: 1},
		{name: "no reason phrase", answer: "HTTP/1.1 204\r\n\r\n", status: 204, wantConns: 1},
		{name: "chunked with trailer", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", status: 200, wantConns: 1},
		{name: "chunked failure", answer: "HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\noops\r\n0\r\n\r\n", status: 500, body: "oops", wantConns: 1},
		{name: "interim 100 and 103", answer: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, wantConns: 1},
		{name: "overlong header skipped", answer: "HTTP/1.1 200 OK\r\n" + long + "Content-Length: 2\r\n\r\nok", status: 200, wantConns: 1},
		{name: "lower-case framing headers", answer: "HTTP/1.1 503 Busy\r\ncontent-length: 4\r\nconnection: keep-alive\r\n\r\nbusy", status: 503, body: "busy", wantConns: 1},
		{name: "HTTP/1.0 keep-alive", answer: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", status: 200, wantConns: 1},
		{name: "HTTP/1.0 without keep-alive", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok\x00close", status: 200, wantConns: 3},
		{name: "body to the end of the connection", answer: "HTTP/1.0 200 OK\r\n\r\nwhatever\x00close", status: 200, wantConns: 3},
		{name: "connection close", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n\x00close", status: 200, wantConns: 3},
		{name: "body over the limit", answer: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("b", 100),
			cfg: Config{MaxResponseBytes: 10}, status: 200, wantConns: 3},
		{name: "chunked over the limit", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + strings.Repeat("b", 100) + "\r\n0\r\n\r\n",
			cfg: Config{MaxResponseBytes: 10}, status: 200, wantConns: 3},
		{name: "extra bytes after the answer", answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\ngarbage", status: 200, wantConns: 3, unsolicited: 3},
		{name: "retry-after on failure", answer: "HTTP/1.1 429 Slow Down\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n", status: 429, wantConns: 1},
		// The server closes after each answer without saying so: the next
		// request finds the connection dead and goes out on a new one within
		// the same attempt.
		{name: "server closes idle connection", answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\x00close", status: 200, wantConns: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, scripted(tt.answer))
			cfg := tt.cfg
			cfg.Servers, cfg.URI, cfg.ReadTimeout = []string{s.addr}, "/x", 5*time.Second
			var ev counting
			p := newPusher(t, cfg, ev.events())
			for i := range 3 {
				res := p.Push(context.Background(), rec)
				if res.Status != tt.status || res.Attempts != 1 {
					t.Fatalf("push %d: got %+v, want status %d in 1 attempt", i, res, tt.status)
				}
				if tt.status/100 == 2 && res.Err != nil {
					t.Fatalf("push %d: got error %v, want delivered", i, res.Err)
				}
				var se *StatusError
				if tt.status/100 != 2 && (!errors.As(res.Err, &se) || se.Body != tt.body) {
					t.Fatalf("push %d: got error %v, want StatusError with body %q", i, res.Err, tt.body)
				}
				if strings.HasSuffix(tt.answer, "\x00close") {
					// Let the server's close arrive before the next push,
					// which then meets a closed connection.
					want := int64(i + 1)
					testwait.Eventually(t, 5*time.Second, fmt.Sprintf("%d requests served and the server done with connection %d", want, i), func() bool { return s.count.Load() == want && serverDone(s, i) })
				}
			}
			if got := s.count.Load(); got != tt.wantConns {
				t.Errorf("got %d connections for 3 pushes, want %d", got, tt.wantConns)
			}
			if got := ev.n.Load(); got != tt.unsolicited {
				t.Errorf("got %d Unsolicited events for 3 pushes, want %d", got, tt.unsolicited)
			}
		})
	}
}

// serverDone reports whether the server has let go of its connection number i
// (closing it is its last step, so a closed connection's Write fails).
func serverDone(s *rawServer, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.conns) {
		return false
	}
	s.conns[i].SetWriteDeadline(time.Now().Add(time.Millisecond))
	_, err := s.conns[i].Write(nil)
	return errors.Is(err, net.ErrClosed)
}

func TestBadResponses(t *testing.T) {
	tests := []struct {
		name, answer, want string
	}{
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", "malformed"},
		{"http/2 preface", "HTTP/2 200\r\n\r\n", "malformed"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed"},
		{"bad header", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed"},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"},
		{"cut in the head", "HTTP/1.1 200 OK\r\nContent-Len\x00close", "unexpected EOF"},
		{"closed without answer", "\x00close", "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawServer(t, scripted(tt.answer))
			p := newPusher(t, Config{Servers: []string{s.addr}, MaxRetries: 1, ReadTimeout: 5 * time.Second}, Events{})
			res := p.Push(context.Background(), rec)
			if res.Err == nil || !strings.Contains(res.Err.Error(), tt.want) {
				t.Errorf("got error %v, want one mentioning %q", res.Err, tt.want)
			}
			if res.Attempts != 2 || res.Permanent || res.Status != 0 {
				t.Errorf("got %d attempts, permanent %v, status %d; want 2, false, 0 (retryable)", res.Attempts, res.Permanent, res.Status)
			}
		})
	}
}

func TestBodyStallAfterStatus(t *testing.T) {
	// The status has arrived, so the record is delivered; the connection whose
	// body never completes is dropped.
	stop := make(chan struct{})
	s := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nx"))
		<-stop
	})
	t.Cleanup(func() { close(stop) })
	p := newPusher(t, Config{Servers: []string{s.addr}, ReadTimeout: 100 * time.Millisecond}, Events{})
	res := p.Push(context.Background(), rec)
	if res.Err != nil || res.Status != 200 {
		t.Fatalf("got %+v, want delivered with 200", res)
	}
	p.Push(context.Background(), rec)
	if got := s.count.Load(); got != 2 {
		t.Errorf("got %d connections for 2 pushes, want 2 (the stalled one dropped)", got)
	}
}

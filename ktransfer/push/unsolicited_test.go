package push

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const (
	answer200 = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	answer500 = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
)

// counting counts Unsolicited events.
type counting struct{ n atomic.Int64 }

func (c *counting) events() Events {
	return Events{Unsolicited: func(string) { c.n.Add(1) }}
}

// soleIdle returns the one idle connection of p's first server.
func soleIdle(t *testing.T, p *Pusher) *conn {
	t.Helper()
	s := p.servers[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle) != 1 {
		t.Fatalf("got %d idle connections, want 1", len(s.idle))
	}
	return s.idle[0]
}

// waiting reports whether bytes wait in c's socket.
func waiting(c *conn) bool {
	c.nc.SetReadDeadline(time.Time{})
	return c.peek.state() == sockData
}

// TestUnsolicitedAnswerIsNoAcknowledgement is a record lost to a stray answer: the
// backend answers a record 200, then writes a second 200 nobody asked for on the
// same connection, then answers the next record 500. The next record must fail.
func TestUnsolicitedAnswerIsNoAcknowledgement(t *testing.T) {
	var requests atomic.Int64
	strayWritten := make(chan struct{})
	s := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			if requests.Add(1) == 1 {
				c.Write([]byte(answer200))
				// Late, as a framework writing twice would.
				time.Sleep(10 * time.Millisecond)
				c.Write([]byte(answer200))
				close(strayWritten)
				continue
			}
			c.Write([]byte(answer500))
		}
	})
	var logs testwait.Log
	var ev counting
	p, err := New(Config{Servers: []string{s.addr}, URI: "/x"}, logs.Logger(slog.LevelDebug), ev.events())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	first := rec
	first.Offset = 41
	if res := p.Push(context.Background(), first); res.Err != nil || res.Status != 200 {
		t.Fatalf("first record: got %+v, want delivered", res)
	}
	<-strayWritten
	idle := soleIdle(t, p)
	testwait.Eventually(t, 5*time.Second, "the idle connection waiting", func() bool { return waiting(idle) })

	res := p.Push(context.Background(), rec)
	if res.Err == nil || res.Status != 500 || res.Attempts != 1 {
		t.Fatalf("next record: got %+v, want it failed with the backend's 500 (not acknowledged by the stray 200)", res)
	}
	if got := requests.Load(); got != 2 {
		t.Errorf("backend got %d requests, want 2", got)
	}
	if got := s.count.Load(); got != 2 {
		t.Errorf("got %d connections, want 2 (the one with the stray answer dropped)", got)
	}
	if got := ev.n.Load(); got != 1 {
		t.Errorf("got %d Unsolicited events, want 1", got)
	}
	for _, want := range []string{`msg="unsolicited response from push server: connection closed"`, "server=" + s.addr,
		`seen="idle connection"`, "last_answered_offset=41", `start="HTTP/1.1 200 OK..Content-Length: 0....`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("got log %q, want it to contain %s", logs.String(), want)
		}
	}
}

// TestUnsolicitedAfterTakingTheConnection: the stray answer arrives after the
// attempt took the idle connection and before its request is written. The
// check right before the write still finds it.
func TestUnsolicitedAfterTakingTheConnection(t *testing.T) {
	var requests atomic.Int64
	s := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := readRequest(br); err != nil {
				return
			}
			if requests.Add(1) == 1 {
				c.Write([]byte(answer200))
			} else {
				c.Write([]byte(answer500))
			}
		}
	})
	var ev counting
	p := newPusher(t, Config{Servers: []string{s.addr}}, ev.events())
	if res := p.Push(context.Background(), rec); res.Err != nil {
		t.Fatalf("first record: got %+v, want delivered", res)
	}
	var took atomic.Int64
	p.beforeExchange = func(c *conn) {
		if !c.reused || took.Add(1) != 1 {
			return
		}
		s.mu.Lock()
		server := s.conns[0]
		s.mu.Unlock()
		server.Write([]byte(answer200))
		testwait.Eventually(t, 5*time.Second, "the connection waiting", func() bool { return waiting(c) })
	}
	res := p.Push(context.Background(), rec)
	if res.Err == nil || res.Status != 500 {
		t.Fatalf("next record: got %+v, want it failed with the backend's 500", res)
	}
	if took.Load() == 0 || ev.n.Load() != 1 {
		t.Errorf("got %d reused connections taken and %d Unsolicited events, want 1 and 1", took.Load(), ev.n.Load())
	}
}

// TestAnswerBeforeTheRequestIsComplete: the stray answer arrives while a large
// record is still being written. A 2xx that came before the server could have
// the whole record is not a delivery.
func TestAnswerBeforeTheRequestIsComplete(t *testing.T) {
	s := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		// Read the head only, answer, then take the body.
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		c.Write([]byte(answer200))
		br.WriteTo(devNull{})
	})
	p := newPusher(t, Config{Servers: []string{s.addr}}, Events{})
	r := rec
	// Far more than the socket buffers hold: the write waits for the server,
	// which answers before it reads the body.
	r.Value = make([]byte, 64<<20)
	res := p.Push(context.Background(), r)
	if !errors.Is(res.Err, errEarlyAnswer) || res.Status != 0 || res.Permanent {
		t.Fatalf("got %+v, want a retryable failure for an answer before the request was complete", res)
	}
}

type devNull struct{}

func (devNull) Write(b []byte) (int, error) { return len(b), nil }

// TestIdleChecksOverTLS: over TLS, a stray answer is found on the idle
// connection as over plain TCP, while a server closing its idle connection
// (close_notify, then EOF) only makes the next request go out on a new one.
func TestIdleChecksOverTLS(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cert := ts.TLS.Certificates
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()

	for _, tt := range []struct {
		name       string
		after      string // what the server does after its first answer
		wantStatus int
		wantEvents int64
	}{
		{"stray answer", "stray", 500, 1},
		{"idle close", "close", 500, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int64
			after := make(chan struct{})
			s := newRawServer(t, func(c net.Conn) {
				tc := tls.Server(c, &tls.Config{Certificates: cert})
				defer tc.Close()
				br := bufio.NewReader(tc)
				for {
					if _, err := readRequest(br); err != nil {
						return
					}
					if requests.Add(1) > 1 {
						tc.Write([]byte(answer500))
						continue
					}
					tc.Write([]byte(answer200))
					if tt.after == "close" {
						tc.Close()
						close(after)
						return
					}
					tc.Write([]byte(answer200))
					close(after)
				}
			})
			var ev counting
			p := newPusher(t, Config{Servers: []string{"https://" + s.addr}, TLS: &tls.Config{RootCAs: roots, ServerName: "example.com"}}, ev.events())
			if res := p.Push(context.Background(), rec); res.Err != nil {
				t.Fatalf("first record: got %+v, want delivered", res)
			}
			<-after
			// The stray answer may sit in the socket or, read with the
			// first answer, inside the TLS connection: the connection's
			// own check sees both (and what it reads stays buffered).
			idle := soleIdle(t, p)
			testwait.Eventually(t, 5*time.Second, "the idle connection no longer silent", func() bool { return idle.idleState() != idleSilent })
			res := p.Push(context.Background(), rec)
			if res.Status != tt.wantStatus || res.Attempts != 1 {
				t.Fatalf("next record: got %+v, want status %d in 1 attempt", res, tt.wantStatus)
			}
			if got := ev.n.Load(); got != tt.wantEvents {
				t.Errorf("got %d Unsolicited events, want %d", got, tt.wantEvents)
			}
			if got := s.count.Load(); got != 2 {
				t.Errorf("got %d connections, want 2", got)
			}
		})
	}
}

// TestIdle408IsAClose: a 408 on an idle connection is the server saying it
// closes it (some servers do so on their idle timeout), not a stray answer.
func TestIdle408IsAClose(t *testing.T) {
	var requests atomic.Int64
	idleTimeout := make(chan struct{})
	s := newRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		if requests.Add(1) == 1 {
			c.Write([]byte(answer200))
			<-idleTimeout
			c.Write([]byte("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
			return
		}
		c.Write([]byte(answer500))
	})
	var ev counting
	p := newPusher(t, Config{Servers: []string{s.addr}}, ev.events())
	if res := p.Push(context.Background(), rec); res.Err != nil {
		t.Fatalf("first record: got %+v, want delivered", res)
	}
	close(idleTimeout)
	idle := soleIdle(t, p)
	testwait.Eventually(t, 5*time.Second, "the idle connection no longer silent", func() bool { return idle.idleState() != idleSilent })
	if res := p.Push(context.Background(), rec); res.Status != 500 || res.Attempts != 1 {
		t.Fatalf("next record: got %+v, want the backend's 500 from a new connection", res)
	}
	if got := ev.n.Load(); got != 0 {
		t.Errorf("got %d Unsolicited events, want 0", got)
	}
}

// TestSilentIdleConnectionReused: the check does not cost a connection that
// stayed silent (TestHTTPS shows the same over TLS).
func TestSilentIdleConnectionReused(t *testing.T) {
	s := newRawServer(t, scripted(answer200))
	var ev counting
	p := newPusher(t, Config{Servers: []string{s.addr}}, ev.events())
	for i := range 5 {
		if res := p.Push(context.Background(), rec); res.Err != nil {
			t.Fatalf("push %d: got %+v, want delivered", i, res)
		}
	}
	if got := s.count.Load(); got != 1 || ev.n.Load() != 0 {
		t.Errorf("got %d connections and %d Unsolicited events for 5 pushes, want 1 and 0", got, ev.n.Load())
	}
}

package opshttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

func TestNewServerAppliesLimits(t *testing.T) {
	t.Parallel()
	h := http.NotFoundHandler()
	tests := []struct {
		name string
		lim  Limits
		want Limits // the server's fields, by the same names
	}{
		{"defaults", DefaultLimits(), Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}},
		{"header bound lowered to a shorter read bound", Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 100 * time.Millisecond},
			Limits{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, MaxHeaderBytes: DefaultMaxHeaderBytes}},
		{"no header bound takes the read bound", Limits{ReadTimeout: time.Second},
			Limits{ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, MaxHeaderBytes: DefaultMaxHeaderBytes}},
		{"zero is no limit, header size defaults", Limits{},
			Limits{MaxHeaderBytes: DefaultMaxHeaderBytes}},
		{"explicit header size", Limits{MaxHeaderBytes: 1024, IdleTimeout: time.Second},
			Limits{MaxHeaderBytes: 1024, IdleTimeout: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := NewServer("127.0.0.1:1", h, tt.lim)
			if srv.Addr != "127.0.0.1:1" {
				t.Errorf("got Addr %q, want 127.0.0.1:1", srv.Addr)
			}
			if srv.Handler == nil {
				t.Error("got no Handler, want h")
			}
			got := Limits{ReadHeaderTimeout: srv.ReadHeaderTimeout, ReadTimeout: srv.ReadTimeout, WriteTimeout: srv.WriteTimeout,
				IdleTimeout: srv.IdleTimeout, MaxHeaderBytes: srv.MaxHeaderBytes}
			if got != tt.want {
				t.Errorf("got server limits %+v, want %+v", got, tt.want)
			}
		})
	}
}

// serveLimited serves a small handler through NewServer on a loopback port until
// the test ends and returns the address.
func serveLimited(t *testing.T, lim Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	Mount(mux, &Ready{}, NewRegistry())
	srv := NewServer(ln.Addr().String(), mux, lim)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// dial opens a raw connection closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewServerBoundsSlowAndLargeRequests(t *testing.T) {
	t.Parallel()
	const short = 200 * time.Millisecond
	addr := serveLimited(t, Limits{ReadHeaderTimeout: short, ReadTimeout: time.Minute, IdleTimeout: short, MaxHeaderBytes: 1024})

	t.Run("half a header then a stall is disconnected", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ops\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		testwait.Closed(t, c, 5*time.Second)
	})

	t.Run("idle keep-alive connection is closed", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("got status %d with close %v, want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
		}
		testwait.Closed(t, c, 5*time.Second)
	})

	t.Run("header over the bound gets 431", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		// net/http reads 4 KiB beyond MaxHeaderBytes before it gives up.
		req := "GET /healthz HTTP/1.1\r\nHost: ops\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("read answer: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("got status %d, want 431", resp.StatusCode)
		}
	})
}

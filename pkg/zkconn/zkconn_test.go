package zkconn_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// lines is a slog destination that hands each line to the test, dropping
// lines nobody waits for.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default:
	}
	return len(p), nil
}

// TestGrantedTimeout: Granted is the server's answer, not the request: the
// test server clamps sessions to 1..60 s.
func TestGrantedTimeout(t *testing.T) {
	t.Parallel()
	z := testcluster.StartZooKeeper(t)
	for _, tc := range []struct{ requested, want time.Duration }{
		{time.Second, time.Second},
		{4 * time.Second, 4 * time.Second},
		{120 * time.Second, 60 * time.Second},
	} {
		var events []zk.State
		var mu sync.Mutex
		c, err := zkconn.Connect([]string{z.Addr}, zkconn.Options{SessionTimeout: tc.requested, OnEvent: func(ev zk.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Type == zk.EventSession {
				events = append(events, ev.State)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Granted(); got != tc.requested {
			t.Errorf("before the session: got Granted %v, want the requested %v", got, tc.requested)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = c.WaitSession(ctx)
		cancel()
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		if got := c.Granted(); got != tc.want {
			t.Errorf("requested %v: got Granted %v, want %v", tc.requested, got, tc.want)
		}
		if s := c.Silent(); s < 0 || s >= tc.want {
			t.Errorf("right after the handshake: got Silent %v, want below the session timeout %v", s, tc.want)
		}
		if _, _, err := c.Get("/"); err != nil {
			t.Errorf("read through the client: %v", err)
		}
		c.Close()
		mu.Lock()
		if !slices.Contains(events, zk.StateHasSession) {
			t.Errorf("OnEvent got session states %v, want %v among them", events, zk.StateHasSession)
		}
		mu.Unlock()
	}
}

// TestNoServer: the client's own complaints go to the logger at debug level,
// WaitSession ends with its context, and Dial gives up after its timeout.
func TestNoServer(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:" + strconv.Itoa(testproc.FreePort(t)) // nothing listens there
	logs := make(lines, 64)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := zkconn.Connect([]string{addr}, zkconn.Options{SessionTimeout: 2 * time.Second, ConnectTimeout: 100 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.WaitSession(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitSession: got %v, want the context's deadline", err)
	}
	if c.HasSession() {
		t.Error("HasSession: got true without a server")
	}
	select {
	case line := <-logs:
		if !strings.Contains(line, "level=DEBUG") || !strings.Contains(line, "failed to connect to "+addr) {
			t.Errorf("got log line %q, want the client's connection failure at debug level", line)
		}
	case <-time.After(10 * time.Second):
		t.Error("got no log line, want the client's connection failures")
	}

	_, err = zkconn.Dial(context.Background(), []string{addr}, 300*time.Millisecond, zkconn.Options{})
	if want := "connect to ZooKeeper [" + addr + "]: no session within 300ms"; err == nil || err.Error() != want {
		t.Errorf("Dial: got %v, want %q", err, want)
	}
	if _, err := zkconn.Connect(nil, zkconn.Options{}); err == nil {
		t.Error("Connect without hosts: got no error")
	}
}

// TestDial: a session within the timeout is a usable client.
func TestDial(t *testing.T) {
	t.Parallel()
	z := testcluster.StartZooKeeper(t)
	c, err := zkconn.Dial(context.Background(), []string{z.Addr}, 10*time.Second, zkconn.Options{SessionTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.HasSession() {
		t.Fatalf("got state %v, want a session", c.State())
	}
	if _, err := c.Create("/dial", []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if data, _, err := c.Get("/dial"); err != nil || string(data) != "x" {
		t.Errorf("got %q, %v, want \"x\"", data, err)
	}
}

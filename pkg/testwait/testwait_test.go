package testwait

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	var n atomic.Int32
	if !Within(5*time.Second, func() bool { return n.Add(1) == 3 }) {
		t.Fatal("got false, want true once the condition holds")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("got %d checks, want 3 (none after the condition held)", got)
	}
	n.Store(0)
	if Within(30*time.Millisecond, func() bool { n.Add(1); return false }) {
		t.Fatal("got true for a condition that never holds")
	}
	if n.Load() < 2 {
		t.Errorf("got %d checks in 30 ms, want the condition polled and checked at the deadline", n.Load())
	}
}

// recorder is a testing.TB that records a failure instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestEventuallyFailsNamingWhat(t *testing.T) {
	r := &recorder{TB: t}
	Eventually(r, 20*time.Millisecond, "the moon", func() bool { return false })
	if want := "the moon: not within 20ms"; r.failed != want {
		t.Errorf("got failure %q, want %q", r.failed, want)
	}
	r = &recorder{TB: t}
	Eventually(r, time.Second, "the sun", func() bool { return true })
	if r.failed != "" {
		t.Errorf("got failure %q for a condition that holds", r.failed)
	}
}

func TestUntilFailsWithLastError(t *testing.T) {
	r := &recorder{TB: t}
	var n int
	Until(r, 20*time.Millisecond, func() error {
		n++
		return &missing{n}
	})
	if want := fmt.Sprintf("missing %d", n); !strings.HasSuffix(r.failed, want) {
		t.Errorf("got failure %q, want it to end with the last error %q", r.failed, want)
	}
	if n < 2 {
		t.Errorf("got %d checks, want several", n)
	}
}

type missing struct{ n int }

func (m *missing) Error() string { return fmt.Sprintf("missing %d", m.n) }

func TestRecvAndBlocked(t *testing.T) {
	ch := make(chan error, 1)
	ch <- errors.New("done")
	if err := Recv(t, ch, time.Second, "the call"); err == nil || err.Error() != "done" {
		t.Errorf("Recv: got %v, want the value sent", err)
	}
	r := &recorder{TB: t}
	Recv(r, ch, 10*time.Millisecond, "the call")
	if want := "the call still blocked after 10ms"; r.failed != want {
		t.Errorf("Recv of a silent channel: got failure %q, want %q", r.failed, want)
	}
	r = &recorder{TB: t}
	Blocked(r, ch, 10*time.Millisecond, "the call")
	if r.failed != "" {
		t.Errorf("Blocked on a silent channel: got failure %q", r.failed)
	}
	ch <- errors.New("early")
	Blocked(r, ch, time.Second, "the call")
	if want := "the call returned early, want it to block"; r.failed != want {
		t.Errorf("Blocked on a channel that delivers: got failure %q, want %q", r.failed, want)
	}
}

func TestClosed(t *testing.T) {
	server, client := net.Pipe()
	go func() {
		_, _ = io.WriteString(server, "bye")
		server.Close()
	}()
	Closed(t, client, 5*time.Second)

	server, client = net.Pipe()
	defer server.Close()
	r := &recorder{TB: t}
	Closed(r, client, 10*time.Millisecond)
	if want := "connection still open after 10ms, want the server to have closed it"; r.failed != want {
		t.Errorf("an open connection: got failure %q, want %q", r.failed, want)
	}
}

func TestLog(t *testing.T) {
	var l Log
	log := l.Logger(slog.LevelDebug)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { log.Debug("line", "i", i) })
	}
	wg.Wait()
	if got := strings.Count(l.String(), "level=DEBUG msg=line"); got != 8 {
		t.Errorf("got %d lines, want 8:\n%s", got, l.String())
	}
}

// TestLogTo: lines reach the test's log while it runs and are dropped, not
// passed to a finished test, after its cleanups.
func TestLogTo(t *testing.T) {
	var w io.Writer
	t.Run("inner", func(t *testing.T) {
		w = LogTo(t)
		if n, err := io.WriteString(w, "during the test\n"); n != 16 || err != nil {
			t.Errorf("got %d, %v, want 16, nil", n, err)
		}
	})
	if n, err := io.WriteString(w, "after the test\n"); n != 15 || err != nil {
		t.Errorf("after the test: got %d, %v, want 15, nil and no panic", n, err)
	}
}

// TestNotInBinaries: no command of the module contains a test-support
// package (named test* or *test: testcluster, testproc, testwait, testpki,
// wsgatetest) or the testing package.
func TestNotInBinaries(t *testing.T) {
	const module = "github.com/kafka-http-wrapper/kafka-http-wrapper/"
	out, err := exec.Command("go", "list", "-f", "{{.Name}} {{.ImportPath}} {{join .Deps \" \"}}", module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	isSupport := func(p string) bool {
		rest, ok := strings.CutPrefix(p, module)
		if !ok {
			return p == "testing"
		}
		name := rest[strings.LastIndex(rest, "/")+1:]
		return strings.HasPrefix(name, "test") || strings.HasSuffix(name, "test")
	}
	var commands, support []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if isSupport(f[1]) {
			support = append(support, strings.TrimPrefix(f[1], module))
		}
		if f[0] != "main" {
			continue
		}
		commands = append(commands, strings.TrimPrefix(f[1], module))
		if len(f) < 12 {
			t.Errorf("%s: got %d dependencies, want its whole list", f[1], len(f)-2)
		}
		for _, dep := range f[2:] {
			if isSupport(dep) {
				t.Errorf("the %s binary contains %s", strings.TrimPrefix(f[1], module), dep)
			}
		}
	}
	for _, want := range []string{"kproxy", "ktransfer", "kmonitor", "scripts/devbroker", "scripts/demobackend"} {
		if !slices.Contains(commands, want) {
			t.Errorf("commands %v lack %s", commands, want)
		}
	}
	for _, want := range []string{"pkg/testcluster", "pkg/testproc", "pkg/testwait", "kproxy/proxy/testpki", "kproxy/wsgate/wsgatetest"} {
		if !slices.Contains(support, want) {
			t.Errorf("test-support packages found %v lack %s", support, want)
		}
	}
}

package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// journal records what the components of a test did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// recorded returns a component named name that writes its stages to j; with
// serve, it has a Serve that waits for its context.
func recorded(j *journal, name string, serve bool) Component {
	c := Component{
		Name: name,
		Drain: func(ctx context.Context) error {
			if ctx.Err() != nil {
				j.add(name + " drain with an ended context")
			}
			j.add(name + " drain")
			return nil
		},
		Close: func() { j.add(name + " close") },
	}
	if serve {
		c.Serve = func(ctx context.Context) error {
			<-ctx.Done()
			j.add(name + " stopped serving")
			return nil
		}
	}
	return c
}

// running is a Run in a goroutine of the test.
type running struct {
	done chan struct{} // closed when Run returned
	err  error         // what Run returned, once done is closed
}

// runAsync runs r until the test cancels or ends.
func runAsync(t *testing.T, r *Runner) (context.CancelFunc, *running) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rn := &running{done: make(chan struct{})}
	go func() {
		defer close(rn.done)
		rn.err = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rn.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of the end of the test")
		}
	})
	return cancel, rn
}

func waitRun(t *testing.T, rn *running) error {
	t.Helper()
	testwait.Recv(t, rn.done, 10*time.Second, "Run")
	return rn.err
}

// TestRunnerStopOrder: each component stops at its turn, in the order of
// adding (Serve's context, then Drain), the later ones serving meanwhile, and
// the Close functions run in reverse order.
func TestRunnerStopOrder(t *testing.T) {
	var j journal
	var logs bytes.Buffer
	r := NewRunner(slog.New(slog.NewTextHandler(&logs, nil)), time.Minute)
	r.Add(recorded(&j, "front", true))
	r.Add(Component{Name: "flush", Drain: func(context.Context) error {
		j.add("flush drain")
		return nil
	}})
	r.Add(recorded(&j, "ops", true))
	r.Add(recorded(&j, "clients", false))
	cancel, done := runAsync(t, r)
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	want := []string{
		"front stopped serving", "front drain", "flush drain", "ops stopped serving", "ops drain", "clients drain",
		"clients close", "ops close", "front close",
	}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(logs.String(), "msg=drained") || !strings.Contains(logs.String(), "ok=true") {
		t.Errorf("log: got %q, want the drained line with ok=true", logs.String())
	}
	r.Close()
	if got := j.list(); len(got) != len(want) {
		t.Errorf("a second Close ran the Close functions again: %q", got[len(want):])
	}
}

// TestRunnerFirstErrorStops: a Serve that fails stops the others as a
// cancelled context would, and its error is Run's.
func TestRunnerFirstErrorStops(t *testing.T) {
	var j journal
	var logs bytes.Buffer
	failure := errors.New("accept: too many open files")
	fail := make(chan struct{})
	r := NewRunner(slog.New(slog.NewTextHandler(&logs, nil)), time.Minute)
	r.Add(recorded(&j, "front", true))
	r.Add(Component{Name: "ops", Serve: func(ctx context.Context) error {
		<-fail
		return failure
	}, Drain: func(context.Context) error { return errors.New("ops drain failed") }})
	r.Add(recorded(&j, "modules", true))
	_, done := runAsync(t, r)
	close(fail)
	err := waitRun(t, done)
	if !errors.Is(err, failure) || !strings.Contains(err.Error(), "ops drain failed") {
		t.Errorf("Run: got %v, want the Serve's and the Drain's errors", err)
	}
	want := []string{"front stopped serving", "front drain", "modules stopped serving", "modules drain", "modules close", "front close"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	for _, line := range []string{`msg="a component failed: stopping" component=ops err="accept: too many open files"`, "ok=false"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log: got %q, want it to contain %q", logs.String(), line)
		}
	}
}

// TestRunnerAllFinished: when every Serve returned nil, the components stop
// without the context ending.
func TestRunnerAllFinished(t *testing.T) {
	var j journal
	r := NewRunner(nil, time.Minute)
	r.Add(Component{Name: "job", Serve: func(context.Context) error { return nil }, Close: func() { j.add("job close") }})
	r.Add(recorded(&j, "clients", false))
	_, done := runAsync(t, r)
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	if got, want := j.list(), []string{"clients drain", "clients close", "job close"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRunnerDeadline: a Serve that does not return within the shutdown
// timeout is given up with an error naming it; the Drains after it get an
// ended context, and every Close runs.
func TestRunnerDeadline(t *testing.T) {
	var j journal
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	r := NewRunner(nil, 50*time.Millisecond)
	r.Add(Component{Name: "modules", Serve: func(context.Context) error {
		<-release
		return nil
	}, Close: func() { j.add("modules close") }})
	r.Add(recorded(&j, "ops", false))
	cancel, done := runAsync(t, r)
	cancel()
	err := waitRun(t, done)
	if err == nil || err.Error() != "modules did not drain within shutdown_timeout 50ms" {
		t.Errorf("Run: got %v, want modules did not drain within shutdown_timeout 50ms", err)
	}
	want := []string{"ops drain with an ended context", "ops drain", "ops close", "modules close"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRunnerReload: Reload runs every hook, in order, and returns and logs
// the failures with the component's name.
func TestRunnerReload(t *testing.T) {
	var j journal
	var logs bytes.Buffer
	r := NewRunner(slog.New(slog.NewTextHandler(&logs, nil)), time.Minute)
	r.Add(Component{Name: "tls", Reload: func() error {
		j.add("tls")
		return errors.New("tls.cert_file: no such file")
	}})
	r.Add(Component{Name: "plain"})
	r.Add(Component{Name: "rules", Reload: func() error {
		j.add("rules")
		return nil
	}})
	err := r.Reload()
	if err == nil || err.Error() != "tls: tls.cert_file: no such file" {
		t.Errorf("Reload: got %v, want tls: tls.cert_file: no such file", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"tls", "rules"}) {
		t.Errorf("hooks ran: got %q, want tls then rules", got)
	}
	want := `level=WARN msg="reload failed: the previous settings stay in use" component=tls err="tls.cert_file: no such file"`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log: got %q, want it to contain %q", logs.String(), want)
	}
}

// TestHTTPServerComponent: the component answers until its turn to stop, lets
// a request in progress finish, then no longer accepts connections.
func TestHTTPServerComponent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inside := make(chan struct{})
	finish := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/slow" {
			close(inside)
			<-finish
		}
		io.WriteString(w, "ok")
	})}
	r := NewRunner(nil, time.Minute)
	r.Add(HTTPServer("ops", srv, ln))
	cancel, done := runAsync(t, r)
	url := "http://" + ln.Addr().String()
	resp, err := http.Get(url + "/fast")
	if err != nil {
		t.Fatalf("GET while serving: %v", err)
	}
	resp.Body.Close()

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-inside
	cancel()
	// The drain has begun once the listener refuses connections; the
	// request in progress must still be answered, not cut by Close.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections 10s after the stop began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-done.done:
		t.Fatalf("Run returned %v with a request in progress, want it to wait", done.err)
	default:
	}
	close(finish)
	if got := <-slow; got != "ok" {
		t.Errorf("request in progress at the stop: got %q, want ok", got)
	}
	if err := waitRun(t, done); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener still accepts connections after Run returned")
	}
}

// TestHTTPServerComponentFails: an error of the server's Serve is the
// component's, with its name.
func TestHTTPServerComponentFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	r := NewRunner(nil, time.Minute)
	r.Add(HTTPServer("ops server", &http.Server{}, ln))
	_, done := runAsync(t, r)
	err = waitRun(t, done)
	if err == nil || !strings.HasPrefix(err.Error(), "ops server: ") || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run: got %v, want an error starting with \"ops server: \" wrapping net.ErrClosed", err)
	}
}

// TestWorkers: the workers run until their component's drain, which waits for
// each to finish its work; one that does not finish in time is given up with
// an error naming the component, and Close calls closeFn after the workers'
// context ended.
func TestWorkers(t *testing.T) {
	var j journal
	started := make(chan struct{}, 2)
	work := func(name string, finish time.Duration) func(context.Context) {
		return func(ctx context.Context) {
			started <- struct{}{}
			<-ctx.Done()
			time.Sleep(finish)
			j.add(name + " finished")
		}
	}
	r := NewRunner(nil, time.Minute)
	r.Add(Workers("modules", func() { j.add("modules close") }, work("a", 0), work("b", 50*time.Millisecond)))
	r.Add(recorded(&j, "ops", false))
	cancel, done := runAsync(t, r)
	testwait.Recv(t, started, 10*time.Second, "first worker")
	testwait.Recv(t, started, 10*time.Second, "second worker")
	if got := j.list(); len(got) != 0 {
		t.Fatalf("before the stop: got %q, want the workers still running", got)
	}
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run: got %v, want nil", err)
	}
	got := j.list()
	if len(got) != 5 || !slices.Contains(got[:2], "a finished") || !slices.Contains(got[:2], "b finished") ||
		!slices.Equal(got[2:], []string{"ops drain", "ops close", "modules close"}) {
		t.Errorf("got %q, want both workers finished, then ops drained, then the closes", got)
	}

	// A worker that outlasts shutdown_timeout.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	r = NewRunner(nil, 50*time.Millisecond)
	r.Add(Workers("clusters", nil, func(context.Context) { <-release }))
	cancel, done = runAsync(t, r)
	cancel()
	if err := waitRun(t, done); err == nil || err.Error() != "clusters did not drain within shutdown_timeout" {
		t.Errorf("Run: got %v, want clusters did not drain within shutdown_timeout", err)
	}
}

package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestStartSignalWait(t *testing.T) {
	p := Start(t, "/bin/sh", "-c", `trap 'echo got term; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	if !p.WaitOutput("ready", 5*time.Second) {
		t.Fatalf("no ready line: %q", p.Output())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(5 * time.Second); code != 3 {
		t.Errorf("got exit code %d, want 3", code)
	}
	if !strings.Contains(p.Output(), "got term") {
		t.Errorf("output %q lacks the trap's line", p.Output())
	}
	if p.Running() || p.ExitStatus() != "exit status 3" {
		t.Errorf("got running %v, %q, want exited with exit status 3", p.Running(), p.ExitStatus())
	}
}

func TestKillEndsTheGroup(t *testing.T) {
	p := Start(t, "/bin/sh", "-c", `sleep 60 & echo child $!; wait`)
	child, err := strconv.Atoi(p.Announced(t, "child ", 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	p.Kill() // twice is fine
	if !testwait.Within(5*time.Second, func() bool { return syscall.Kill(child, 0) != nil }) {
		t.Fatalf("child %d of the killed process is still alive", child)
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p := Start(t, "/bin/sh", "-c", `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	p.Announced(t, "ready", 5*time.Second)
	if code := p.Stop(200 * time.Millisecond); code != -1 {
		t.Errorf("got exit code %d, want -1 (killed)", code)
	}
	if p.Running() {
		t.Error("still running after Stop")
	}
}

func TestStartWith(t *testing.T) {
	log := filepath.Join(t.TempDir(), "x.log")
	p := StartWith(t, Options{Name: "x", Env: []string{"TESTPROC_VALUE=42"}, LogFile: log, StopGrace: 5 * time.Second},
		"/bin/sh", "-c", `echo "value $TESTPROC_VALUE"; echo "in the log" > "$0"; while :; do sleep 0.05; done`, log)
	if got := p.Announced(t, "value ", 5*time.Second); got != "42" {
		t.Errorf("got the environment's value %q, want 42", got)
	}
	Await(t, 5*time.Second, "the log line", func() bool { return strings.Contains(p.Logs(), "in the log") }, p)
	if p.Name() != "x" || !strings.HasPrefix(p.Logs(), "value 42\n") {
		t.Errorf("got name %q, logs %q, want x and the output before the log", p.Name(), p.Logs())
	}
}

// recorder is a testing.TB that records a failure instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// TestAwaitFailsWhenAProcessExits: a wait for a process does not go on until
// its timeout once the process is gone, and says so with its output.
func TestAwaitFailsWhenAProcessExits(t *testing.T) {
	p := Start(t, "/bin/sh", "-c", `echo last words; exit 7`)
	r := &recorder{TB: t}
	start := time.Now()
	Await(r, time.Minute, "a miracle", func() bool { return false }, p)
	if !strings.Contains(r.failed, "exited (exit status 7) before a miracle") || !strings.Contains(r.failed, "last words") {
		t.Errorf("got failure %q, want the exit, what was awaited and the output", r.failed)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Errorf("Await took %v for a process that exited at once, want it to stop waiting", waited)
	}
	r = &recorder{TB: t}
	Until(r, 50*time.Millisecond, func() error { return errors.New("still 3 to go") })
	if !strings.Contains(r.failed, "still 3 to go: not within 50ms") {
		t.Errorf("Until: got failure %q, want the last error", r.failed)
	}
	r = &recorder{TB: t}
	p.MustRun(r)
	if !strings.Contains(r.failed, "exited (exit status 7)") {
		t.Errorf("MustRun: got failure %q, want the exit", r.failed)
	}
}

func TestBuildOnce(t *testing.T) {
	a := Build(t, "../../scripts/demobackend")
	b := Build(t, "../../scripts/demobackend")
	if a != b {
		t.Errorf("built twice: %s and %s", a, b)
	}
	if st, err := os.Stat(a); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("binary %s: %v", a, err)
	}
}

func TestPorts(t *testing.T) {
	if FreePort(t) <= 0 {
		t.Error("no free port")
	}
	free := FreeAddr(t)
	if c, err := net.Dial("tcp", free); err == nil {
		c.Close()
		t.Errorf("FreeAddr %s: got a connection, want refused", free)
	}
	taken := TakenAddr(t)
	if ln, err := net.Listen("tcp", taken); err == nil {
		ln.Close()
		t.Errorf("TakenAddr %s: got a listener, want the address in use", taken)
	}
}

// Package testproc runs the daemons as a user would, for black-box tests and
// benchmarks: it builds a command's binary once per test binary, finds free
// ports for it, starts it in its own process group with its output captured,
// waits for the line it announces itself with or for a condition while it
// runs, signals and stops it, waits for its exit code, and kills it — by PID,
// also when the test fails — when the test ends. A failure shows what the
// process printed and the end of its log file.
//
// A package using Build must call Main from its TestMain so the binaries are
// removed afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(testproc.Main(m)) }
package testproc

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// logTail is how much of a process's log file a failure shows.
const logTail = 16 << 10

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{} // package -> binary
)

// Main runs the tests and removes the binaries Build made; it returns the exit code.
func Main(m *testing.M) int {
	code := m.Run()
	buildMu.Lock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	buildMu.Unlock()
	return code
}

// Build compiles the Go package pkg (a path such as "." or "../scripts/devbroker",
// relative to the test's directory) once per test binary and returns the binary.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "testproc-")
		if err != nil {
			tb.Fatal(err)
		}
		buildDir = dir
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(buildDir, fmt.Sprintf("%d-%s", len(built), filepath.Base(abs)))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns an address of 127.0.0.1 (host:port) that nothing listened
// on a moment ago: for a server the test starts, or one a client must find
// absent.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
}

// TakenAddr returns an address of 127.0.0.1 that a listener of the test holds
// until the test ends, never accepting a connection: a port already in use.
func TakenAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// Options are how StartWith runs a process; the zero value is Start's.
type Options struct {
	// Name names the process in failure messages; default the binary's
	// file name.
	Name string
	// Env is added to the test's environment (NAME=value entries).
	Env []string
	// LogFile is a file the process writes its log to: Logs includes it,
	// failure messages its end.
	LogFile string
	// StopGrace, when above zero, makes the end of the test stop the process
	// as Stop(StopGrace) does, SIGTERM first; by default it is killed at once.
	StopGrace time.Duration
}

// Proc is a started process. Its methods are safe for concurrent use.
type Proc struct {
	cmd    *exec.Cmd
	opts   Options
	out    testwait.Log
	exited chan struct{}
}

// Start runs bin with args in its own process group, capturing stdout and stderr.
// The process (and its group) is killed with SIGKILL when the test ends, unless it
// has exited already.
func Start(tb testing.TB, bin string, args ...string) *Proc {
	tb.Helper()
	return StartWith(tb, Options{}, bin, args...)
}

// StartWith is Start with opts. On Linux the kernel kills the process should
// the test binary die without running its cleanups.
func StartWith(tb testing.TB, opts Options, bin string, args ...string) *Proc {
	tb.Helper()
	if opts.Name == "" {
		opts.Name = filepath.Base(bin)
	}
	p := &Proc{opts: opts, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	if len(opts.Env) > 0 {
		p.cmd.Env = append(os.Environ(), opts.Env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	if opts.StopGrace > 0 {
		tb.Cleanup(func() { p.Stop(opts.StopGrace) })
	} else {
		tb.Cleanup(p.Kill)
	}
	return p
}

// Name returns the name of the process in failure messages.
func (p *Proc) Name() string { return p.opts.Name }

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Logs returns what the process printed so far, then, when it has a
// LogFile, that file's content so far.
func (p *Proc) Logs() string {
	if p.opts.LogFile == "" {
		return p.Output()
	}
	b, err := os.ReadFile(p.opts.LogFile)
	if err != nil {
		return p.Output() + fmt.Sprintf("(%v)\n", err)
	}
	return p.Output() + string(b)
}

// failureLogs is what a failure shows of the process: its output and the end
// of its log file, which may be long.
func (p *Proc) failureLogs() string {
	if p.opts.LogFile == "" {
		return p.Output()
	}
	return p.Output() + fmt.Sprintf("--- %s (end) ---\n%s", p.opts.LogFile, fileTail(p.opts.LogFile, logTail))
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the exit and returns the exit code, or -1 when the
// process is still running (or was ended by a signal).
func (p *Proc) Wait(timeout time.Duration) int {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}

// ExitStatus returns how the process ended ("exit status 1", "signal:
// killed"), or "running".
func (p *Proc) ExitStatus() string {
	if p.Running() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// Stop sends SIGTERM to the process and waits up to grace for its exit code;
// a process still running then is killed with its group, and Stop returns -1.
// Stopping a process that has exited returns its exit code.
func (p *Proc) Stop(grace time.Duration) int {
	_ = p.Signal(syscall.SIGTERM) // fails only when the process is gone
	if code := p.Wait(grace); code != -1 || !p.Running() {
		return code
	}
	p.Kill()
	return -1
}

// Kill sends SIGKILL to the process group and waits for the exit. Safe to call
// more than once.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// MustRun fails the test, showing the process's logs, when it has exited.
func (p *Proc) MustRun(tb testing.TB) {
	tb.Helper()
	if !p.Running() {
		tb.Fatalf("%s exited (%s)\n%s", p.opts.Name, p.ExitStatus(), p.failureLogs())
	}
}

// WaitOutput waits up to timeout until the output contains s.
func (p *Proc) WaitOutput(s string, timeout time.Duration) bool {
	return testwait.Within(timeout, func() bool { return strings.Contains(p.Output(), s) })
}

// Announced waits up to timeout for a whole line of output that starts with
// prefix, such as "devbroker listening on ", and returns the rest of that
// line. It fails the test when the process exits first or timeout passes.
func (p *Proc) Announced(tb testing.TB, prefix string, timeout time.Duration) string {
	tb.Helper()
	var rest string
	Await(tb, timeout, fmt.Sprintf("line %q...", prefix), func() bool {
		for line := range strings.Lines(p.Output()) {
			if r, ok := strings.CutPrefix(line, prefix); ok && strings.HasSuffix(r, "\n") {
				rest = strings.TrimSpace(r)
				return true
			}
		}
		return false
	}, p)
	return rest
}

// Await polls cond until it holds while procs run. It fails the test, showing
// the logs of every one of procs, when one of them exits first or timeout
// passes: a wait for a process to serve cannot pass because it died, nor
// last until the timeout when it did.
func Await(tb testing.TB, timeout time.Duration, what string, cond func() bool, procs ...*Proc) {
	tb.Helper()
	await(tb, timeout, func() string { return what }, cond, procs)
}

// Until is Await for a condition that says what is still missing: it polls
// cond until it returns nil, and a failure names cond's last error.
func Until(tb testing.TB, timeout time.Duration, cond func() error, procs ...*Proc) {
	tb.Helper()
	var last error
	await(tb, timeout, func() string { return fmt.Sprint(last) }, func() bool { last = cond(); return last == nil }, procs)
}

func await(tb testing.TB, timeout time.Duration, what func() string, cond func() bool, procs []*Proc) {
	tb.Helper()
	var gone *Proc
	ok := testwait.Within(timeout, func() bool {
		if cond() {
			return true
		}
		for _, p := range procs {
			if !p.Running() {
				gone = p
				return true
			}
		}
		return false
	})
	if ok && gone == nil {
		return
	}
	var logs strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&logs, "=== %s (pid %d, %s)\n%s\n", p.opts.Name, p.PID(), p.ExitStatus(), p.failureLogs())
	}
	if gone != nil {
		tb.Fatalf("%s exited (%s) before %s\n%s", gone.opts.Name, gone.ExitStatus(), what(), logs.String())
	} else {
		tb.Fatalf("%s: not within %s\n%s", what(), timeout, logs.String())
	}
}

// fileTail returns the last n bytes of the file at path, or why it cannot.
func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)\n", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return fmt.Sprintf("(%v)\n", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(%v)\n", err)
	}
	return string(b)
}

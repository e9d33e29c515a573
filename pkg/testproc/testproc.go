// Package testproc runs the daemons as a user would, for black-box tests and
// benchmarks: it builds a command's binary once per test binary, starts it in its
// own process group with its output captured, signals it, waits for its exit code,
// and kills it — by PID, also when the test fails — when the test ends.
//
// A package using Build must call Main from its TestMain so the binaries are
// removed afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(testproc.Main(m)) }
package testproc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

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

// Proc is a started process.
type Proc struct {
	cmd    *exec.Cmd
	out    lockedBuffer
	exited chan struct{}
}

// Start runs bin with args in its own process group, capturing stdout and stderr.
// The process (and its group) is killed with SIGKILL when the test ends, unless it
// has exited already.
func Start(tb testing.TB, bin string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(p.Kill)
	return p
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the exit and returns the exit code, or -1 when the
// process is still running.
func (p *Proc) Wait(timeout time.Duration) int {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
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

// WaitOutput waits up to timeout until the output contains s.
func (p *Proc) WaitOutput(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine exec starts and a
// reading test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

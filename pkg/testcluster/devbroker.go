package testcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// devBrokerPackage is the command StartDevBroker builds.
const devBrokerPackage = "github.com/kafka-http-wrapper/kafka-http-wrapper/scripts/devbroker"

// devBrokerAnnounce starts the line devbroker prints once it accepts
// connections, followed by its address.
const devBrokerAnnounce = "devbroker listening on "

// StartDevBroker builds scripts/devbroker and runs it as a child process with
// args, for tests and benchmarks that need Kafka in a process of its own (so
// that its CPU time and memory can be read apart from the test's). It listens
// on a free port of 127.0.0.1 unless args contain -listen (the last -listen
// wins). StartDevBroker waits until the broker announces its address and
// returns that address (host:port, comma-separated with -brokers above 1)
// and the process ID.
//
// When the test ends the broker is stopped, also when the test fails:
// SIGTERM, then SIGKILL if it has not exited after 10 s. On Linux the kernel
// kills it should the test binary die without cleaning up. Its output goes to
// a file in t.TempDir, whose end is included in failure messages. It fails
// the test when the go command is missing, the build fails or the broker does
// not announce itself within 30 s.
func StartDevBroker(tb testing.TB, args ...string) (addr string, pid int) {
	tb.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("testcluster: devbroker: find the go command: %v", err)
	}
	// TempDir's removal is registered before the stop below, so it runs
	// after the process is gone.
	dir := tb.TempDir()
	bin := filepath.Join(dir, "devbroker")
	if out, err := exec.Command(gobin, "build", "-o", bin, devBrokerPackage).CombinedOutput(); err != nil {
		tb.Fatalf("testcluster: go build %s: %v\n%s", devBrokerPackage, err, out)
	}

	outPath := filepath.Join(dir, "devbroker.out")
	out, err := os.Create(outPath)
	if err != nil {
		tb.Fatalf("testcluster: devbroker: %v", err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(bin, append([]string{"-listen", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("testcluster: start devbroker: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	tb.Cleanup(func() {
		signalGroup(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stopGrace):
			signalGroup(cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	deadline := time.Now().Add(startTimeout)
	for {
		data, _ := os.ReadFile(outPath)
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, devBrokerAnnounce); ok && strings.HasSuffix(rest, "\n") {
				return strings.TrimSpace(rest), cmd.Process.Pid
			}
		}
		select {
		case <-done:
			tb.Fatalf("testcluster: devbroker %v exited (%v) before announcing its address\n--- %s ---\n%s", args, waitErr, outPath, data)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testcluster: devbroker %v did not announce its address within %s\n--- %s ---\n%s", args, startTimeout, outPath, data)
		}
	}
}

package wsgatetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// LookPath finds a command a test needs or fails it saying how to install it
// (hint, such as "apt-get install -y nodejs npm").
func LookPath(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v); install it: %s", name, err, hint)
	}
	return p
}

// NodeClient copies files (package.json and package-lock.json among them)
// from the directory from into a new temporary directory, installs the
// packages the lock file pins there with `npm ci`, and returns the directory.
// The test is skipped when the npm registry cannot be reached, and fails on
// any other npm error.
func NodeClient(t testing.TB, from string, files ...string) string {
	t.Helper()
	npm := LookPath(t, "npm", "apt-get install -y nodejs npm")
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := Run(t, dir, 5*time.Minute, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"); err != nil {
		if unreachable(out) {
			t.Skipf("npm registry unreachable, the Node client cannot be installed: %v\n%s", err, out)
		}
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return dir
}

// Run runs a command in dir in its own process group, killed when it outlives
// timeout or the test, and returns its stdout (stderr too on failure).
func Run(t testing.TB, dir string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if err := cmd.Wait(); err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

// unreachable reports whether npm's output says the registry could not be
// reached (rather than, say, a broken lock file).
func unreachable(out []byte) bool {
	for _, s := range []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "network request"} {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

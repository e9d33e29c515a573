package testproc

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Chromium returns the path of Debian's chromium for a browser test. Browser tests
// are opt-in: unless the environment variable optIn is "1" the test is skipped;
// when it is set and chromium is missing, the test fails with the install hint.
func Chromium(tb testing.TB, optIn string) string {
	tb.Helper()
	if os.Getenv(optIn) != "1" {
		tb.Skipf("browser test: set %s=1 to run it (needs chromium; make browser-test does both)", optIn)
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		tb.Fatalf("browser test: chromium not found (%v); install it with `apt-get install -y chromium`", err)
	}
	return bin
}

// RunChromium runs headless Chromium (1200x900) on url with extra flags such as
// --screenshot=FILE or --dump-dom and returns its output. Only 127.0.0.1 resolves,
// so nothing leaves the machine. Chromium and its helpers share one process group,
// killed on cleanup. The test fails on script errors and on anything the page's
// Content-Security-Policy refused.
func RunChromium(tb testing.TB, bin, url string, flags ...string) (stdout, stderr string) {
	tb.Helper()
	home := tb.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--disable-breakpad", "--no-pings",
		"--disable-domain-reliability", "--disable-client-side-phishing-detection",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--enable-logging=stderr", "--v=0", "--lang=en-US",
		"--user-data-dir=" + filepath.Join(home, "profile"),
		"--window-size=1200,900",
	}
	args = append(append(args, flags...), url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home, "LANG=en_US.UTF-8", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	pid := cmd.Process.Pid
	tb.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("chromium %s: %v\n%s", strings.Join(flags, " "), err, errOut.String())
	}
	for _, line := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(line, "CONSOLE") && (strings.Contains(line, "Uncaught") || strings.Contains(line, "Refused to") || strings.Contains(line, "Content Security Policy")) {
			tb.Errorf("page console: %s", line)
		}
	}
	return out.String(), errOut.String()
}

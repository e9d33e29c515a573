package testproc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
}

func TestKillEndsTheGroup(t *testing.T) {
	p := Start(t, "/bin/sh", "-c", `sleep 60 & echo child $!; wait`)
	if !p.WaitOutput("child ", 5*time.Second) {
		t.Fatal("no child line")
	}
	var child int
	for _, f := range strings.Fields(p.Output()) {
		if n, err := strconv.Atoi(f); err == nil {
			child = n
		}
	}
	p.Kill()
	p.Kill() // twice is fine
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the killed process is still alive", child)
		}
		time.Sleep(20 * time.Millisecond)
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
	if FreePort(t) <= 0 {
		t.Error("no free port")
	}
}

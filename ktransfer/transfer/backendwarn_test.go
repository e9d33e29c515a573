package transfer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackendWarnings(t *testing.T) {
	two := []string{"127.0.0.1:8001", "127.0.0.1:8002"}
	tests := []struct {
		name    string
		servers []string
		readMs  int
		warn    bool
	}{
		{"several backends, no read timeout", two, 0, true},
		{"several backends, a read timeout", two, 3000, false},
		{"one backend, no read timeout", two[:1], 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ModuleDefaults()
			m.Name, m.Topic, m.BackendServers, m.Protocol.ReadTimeoutMs = "orders", "t", tt.servers, tt.readMs
			got := backendWarnings([]Module{m})
			if !tt.warn {
				if len(got) != 0 {
					t.Errorf("got warnings %q, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got warnings %q, want one", got)
			}
			for _, want := range []string{"orders.yaml: protocol.read_timeout_ms: 0", "2 backend_servers", "expected_processing_time_ms (1000 ms"} {
				if !strings.Contains(got[0], want) {
					t.Errorf("got warning %q, want it to contain %q", got[0], want)
				}
			}
		})
	}
}

// TestCheckWarnsAboutOriginalModule runs `ktransfer -t` on the original files,
// whose module lists four backends with read_timeout_ms: 0: the check passes,
// and warns.
func TestCheckWarnsAboutOriginalModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The original main file enables two modules (one name misspelt); both
	// are the original module file.
	copyFile := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("../../testdata/original/ktransfer.yaml", "conf/ktransfer.yaml")
	for _, m := range []string{"test_mdoule_1", "test_module_2"} {
		copyFile("../../testdata/original/modules/test_module_1.yaml", "conf/modules/"+m+".yaml")
	}
	bin := filepath.Join(t.TempDir(), "ktransfer")
	if out, err := exec.Command("go", "build", "-o", bin, "../").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-t", "-f", "conf/ktransfer.yaml")
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ktransfer -t: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "configuration conf/ktransfer.yaml is valid") {
		t.Errorf("got stdout %q, want the file reported valid", stdout.String())
	}
	for _, m := range []string{"test_mdoule_1", "test_module_2"} {
		want := "warning: " + m + ".yaml: protocol.read_timeout_ms: 0 (no timeout) with 4 backend_servers"
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("got stderr %q, want a line starting %q", stderr.String(), want)
		}
	}
}

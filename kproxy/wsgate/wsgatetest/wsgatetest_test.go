package wsgatetest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotInKproxy: kproxy's binary contains neither this package nor the
// testing package.
func TestNotInKproxy(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages in kproxy, want its dependencies:\n%s", len(deps), out)
	}
	for _, p := range deps {
		if strings.HasSuffix(p, "/wsgatetest") || p == "testing" {
			t.Errorf("kproxy's binary contains %s", p)
		}
	}
}

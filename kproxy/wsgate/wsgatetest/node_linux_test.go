package wsgatetest

import (
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	sh := LookPath(t, "sh", "apt-get install -y dash")
	out, err := Run(t, t.TempDir(), time.Minute, sh, "-c", "echo out; echo err >&2")
	if err != nil || string(out) != "out\n" {
		t.Errorf("success: got %q, %v, want stdout only", out, err)
	}
	out, err = Run(t, t.TempDir(), time.Minute, sh, "-c", "echo out; echo err >&2; exit 3")
	if err == nil || string(out) != "out\nerr\n" {
		t.Errorf("failure: got %q, %v, want an error with stdout and stderr", out, err)
	}
	// A command that outlives its time is killed, its children with it.
	out, err = Run(t, t.TempDir(), 100*time.Millisecond, sh, "-c", "sleep 60 & sleep 60")
	if err == nil {
		t.Errorf("timeout: got %q and no error, want the command killed", out)
	}
}

func TestUnreachable(t *testing.T) {
	for out, want := range map[string]bool{
		"npm error code ENOTFOUND\nnpm error network request to https://registry.npmjs.org/ws failed": true,
		"npm error code EAI_AGAIN":  true,
		"npm error code ECONNRESET": true,
		"npm error code EUSAGE\nnpm error `npm ci` can only install packages when your package.json and package-lock.json are in sync": false,
	} {
		if got := unreachable([]byte(out)); got != want {
			t.Errorf("%q: got %v, want %v", strings.SplitN(out, "\n", 2)[0], got, want)
		}
	}
}

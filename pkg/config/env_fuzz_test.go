package config

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzEnvOverride sets arbitrary environment overrides for an integer, a
// duration, a boolean and a list key, and checks each against the standard
// library's reading of the trimmed text: a value it reads replaces the file's,
// anything else is a problem naming the key and leaves no half-read value
// behind; an empty variable counts as unset.
func FuzzEnvOverride(f *testing.F) {
	f.Add("9000", "250ms", "true", "x:1, y:2")
	f.Add(" 42 ", "1h2m", "0", ",,a,")
	f.Add("", "", "", "")
	f.Add("1e3", "-1s", "yes", " ")
	f.Add("99999999999999999999", "5", "T", "a")
	f.Add("0x10", "1.5s", "FALSE", "[a, b]")
	path := filepath.Join(f.TempDir(), "env.yaml")
	if err := os.WriteFile(path, []byte("port: 1\nwait: 2s\ninner: {enabled: false}\nhosts: [file:1]\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, port, wait, enabled, hosts string) {
		for _, v := range []string{port, wait, enabled, hosts} {
			if strings.ContainsRune(v, 0) {
				return // not representable in the environment
			}
		}
		t.Setenv("FUZZENV_PORT", port)
		t.Setenv("FUZZENV_WAIT", wait)
		t.Setenv("FUZZENV_INNER_ENABLED", enabled)
		t.Setenv("FUZZENV_HOSTS", hosts)
		file, err := Open(path, "FUZZENV")
		if err != nil {
			t.Fatal(err)
		}
		var s sample
		file.Decode("", &s)
		var msg string
		if err := file.Err(); err != nil {
			msg = err.Error()
		}
		// check compares one key with the standard library's reading.
		check := func(key, env string, ok bool, got, want, fromFile any) {
			t.Helper()
			switch {
			case env == "":
				if got != fromFile {
					t.Fatalf("%s: empty override gives %v, want the file's %v", key, got, fromFile)
				}
			case ok:
				if got != want {
					t.Fatalf("%s=%q gives %v, want %v", key, env, got, want)
				}
				if strings.Contains(msg, "env.yaml: "+key+":") {
					t.Fatalf("%s=%q is valid, but reported: %s", key, env, msg)
				}
			default:
				if !strings.Contains(msg, "env.yaml: "+key+":") {
					t.Fatalf("%s=%q is invalid, but not reported (got %v, problems %q)", key, env, got, msg)
				}
			}
		}
		n, err := strconv.ParseInt(strings.TrimSpace(port), 10, strconv.IntSize)
		check("port", port, err == nil, s.Port, int(n), 1)
		d, err := time.ParseDuration(strings.TrimSpace(wait))
		check("wait", wait, err == nil && d >= 0, s.Wait, d, 2*time.Second)
		b, err := strconv.ParseBool(strings.TrimSpace(enabled))
		check("inner.enabled", enabled, err == nil, s.Inner.Enabled, b, false)

		var want []string
		for _, h := range strings.Split(hosts, ",") {
			if h = strings.TrimSpace(h); h != "" {
				want = append(want, h)
			}
		}
		switch {
		case hosts == "":
			want = []string{"file:1"}
		case want == nil:
			want = []string{}
		}
		if !slices.Equal(s.Hosts, want) || (s.Hosts == nil) != (want == nil) {
			t.Fatalf("hosts=%q gives %q, want %q", hosts, s.Hosts, want)
		}
	})
}

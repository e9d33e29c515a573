// Package conf_test checks what `make install` puts on a host: the binaries, the
// example configurations, the systemd units and the logrotate file, each with
// the tool that will read it there (the daemons' -t, systemd-analyze, logrotate).
package conf_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const user = "kafka-http-wrapper"

// install runs `make install` into a temporary prefix and returns it. DESTDIR=/
// installs to the real paths under the prefix (so the units name binaries that
// exist) without creating the system user on this machine.
func install(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"make", "systemd-analyze", "systemd-sysusers", "logrotate", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: run `make test`, which installs it (%v)", tool, err)
		}
	}
	prefix := t.TempDir()
	makeInstall(t, prefix)
	return prefix
}

func makeInstall(t *testing.T, prefix string) {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "install",
		"BIN="+filepath.Join(prefix, "build"),
		"PREFIX="+prefix, "SYSCONFDIR="+filepath.Join(prefix, "etc"), "DESTDIR=/")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
}

func TestInstall(t *testing.T) {
	prefix := install(t)
	confDir := filepath.Join(prefix, "etc", "kafka-http-wrapper")
	unitDir := filepath.Join(prefix, "lib", "systemd", "system")

	t.Run("binaries check their installed configuration", func(t *testing.T) {
		for _, d := range []string{"kproxy", "ktransfer", "kmonitor"} {
			cfg := filepath.Join(confDir, d+".yaml")
			out, err := exec.Command(filepath.Join(prefix, "bin", d), "-t", "-f", cfg).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "is valid") {
				t.Errorf("%s -t -f %s: %v\n%s", d, cfg, err, out)
			}
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "log_dir: /var/log/kafka-http-wrapper") {
				t.Errorf("%s: log_dir is not the log directory logrotate rotates", cfg)
			}
			if d == "ktransfer" && strings.Contains("\n"+string(b), "\nops_listen:") {
				t.Errorf("%s: ops_listen is set, so a second ktransfer@ process of the host cannot start", cfg)
			}
		}
	})

	units := []string{"kproxy.service", "kmonitor.service", "ktransfer@.service"}
	t.Run("systemd-analyze verify", func(t *testing.T) {
		var paths []string
		for _, u := range units {
			paths = append(paths, filepath.Join(unitDir, u))
		}
		// verify exits 0 on unknown keys and other warnings: any output is a finding.
		out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		// The sandboxing keeps every unit's exposure low (systemd's scale: 0 best, 100 worst).
		out, err = exec.Command("systemd-analyze", append([]string{"security", "--offline=yes", "--threshold=20"}, paths...)...).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
		}
	})

	t.Run("units", func(t *testing.T) {
		for _, u := range units {
			b, err := os.ReadFile(filepath.Join(unitDir, u))
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			for _, want := range []string{
				"User=" + user,
				"Restart=on-failure",
				"LimitNOFILE=",
				"ExecReload=/bin/kill -HUP $MAINPID",
				"ExecStart=" + filepath.Join(prefix, "bin") + "/",
				"ProtectSystem=strict",
				"NoNewPrivileges=yes",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("%s: no %q", u, want)
				}
			}
			if strings.Contains(s, "@BINDIR@") || strings.Contains(s, "@CONFDIR@") {
				t.Errorf("%s: a placeholder was not substituted", u)
			}
		}
	})

	t.Run("logrotate -d", func(t *testing.T) {
		// logrotate resolves the su user through /etc/passwd: make one holding the
		// installed sysusers entry and show it to logrotate alone, in a private mount
		// namespace, so this machine's users stay as they are.
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		sysusers := filepath.Join(prefix, "lib", "sysusers.d", "kafka-http-wrapper.conf")
		if out, err := exec.Command("systemd-sysusers", "--root="+root, sysusers).CombinedOutput(); err != nil {
			t.Fatalf("systemd-sysusers: %v\n%s", err, out)
		}
		conf := filepath.Join(prefix, "etc", "logrotate.d", "kafka-http-wrapper")
		state := filepath.Join(root, "logrotate.state")
		script := `mount --bind "$1/etc/passwd" /etc/passwd && mount --bind "$1/etc/group" /etc/group && exec logrotate -d -s "$2" "$3"`
		out, err := exec.Command("unshare", "-m", "sh", "-c", script, "sh", root, state, conf).CombinedOutput()
		if err != nil || strings.Contains(string(out), "error:") {
			t.Fatalf("logrotate -d %s: %v\n%s", conf, err, out)
		}
		for _, want := range []string{"/var/log/kafka-http-wrapper/*.log", "/var/log/kafka-http-wrapper/*/*.log", "switching euid"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("logrotate -d: no %q in\n%s", want, out)
			}
		}
		b, _ := os.ReadFile(conf)
		if !strings.Contains(string(b), "--signal=HUP") {
			t.Errorf("%s: postrotate does not send SIGHUP", conf)
		}
	})

	t.Run("a second install keeps edited configuration", func(t *testing.T) {
		cfg := filepath.Join(confDir, "kproxy.yaml")
		edited := []byte("# edited by the operator\nport: 6000\n")
		if err := os.WriteFile(cfg, edited, 0o644); err != nil {
			t.Fatal(err)
		}
		makeInstall(t, prefix)
		got, _ := os.ReadFile(cfg)
		if !bytes.Equal(got, edited) {
			t.Errorf("make install overwrote %s: got %q", cfg, got)
		}
	})
}

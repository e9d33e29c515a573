package zkconn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

func TestCheckNodeName(t *testing.T) {
	for _, ok := range []string{"a", "test_module_1", "host-1-ab12", "a b", "é", "a:b", "zookeeper", "..a", "a.."} {
		if err := CheckNodeName(ok); err != nil {
			t.Errorf("CheckNodeName(%q): got %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/", "a\x00b", "a\x01", "a\x7f", "a\u0085", "a\ue000", "a\U0001F600", "a\ufff0", "a\xff"} {
		if err := CheckNodeName(bad); err == nil {
			t.Errorf("CheckNodeName(%q): got nil, want an error", bad)
		}
	}
}

func TestCheckChroot(t *testing.T) {
	for _, ok := range []string{"", "/", "/mq/test_cluster", "mq/x/", "//a//b"} {
		if err := CheckChroot(ok); err != nil {
			t.Errorf("CheckChroot(%q): got %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"/a/../b", "/./a", "/a/\x01", "/a\U0001F600"} {
		if err := CheckChroot(bad); err == nil {
			t.Errorf("CheckChroot(%q): got nil, want an error", bad)
		}
	}
}

// daemonKeys are the ZooKeeper keys of the three daemons' files.
var daemonKeys = []struct {
	daemon string
	keys   Settings // the keys only
}{
	{"kproxy", Settings{HostsKey: "zk_hosts", ChrootKey: "zk_chroot", SessionTimeoutKey: "zk_timeout_ms"}},
	{"ktransfer", Settings{HostsKey: "zk_hosts", ChrootKey: "zk_chroot", SessionTimeoutKey: "zk_timeout_ms"}},
	{"kmonitor", Settings{HostsKey: "prod.zk_hosts", ChrootKey: "prod.chroot", SessionTimeoutKey: "prod.zk_session_timeout_ms",
		ConnectTimeoutKey: "prod.zk_connect_timeout_ms"}},
}

// check runs Settings.Check for the values of s under the keys of d, in a file
// named d.yaml, and returns the problems reported, one per line.
func check(t *testing.T, keys, s Settings, daemon string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), daemon+".yaml")
	if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := config.Open(p, "")
	if err != nil {
		t.Fatal(err)
	}
	s.HostsKey, s.ChrootKey, s.SessionTimeoutKey, s.ConnectTimeoutKey = keys.HostsKey, keys.ChrootKey, keys.SessionTimeoutKey, keys.ConnectTimeoutKey
	s.Check(f)
	if err := f.Err(); err != nil {
		return strings.Split(err.Error(), "\n")
	}
	return nil
}

// TestSettingsCheck: one rule per setting for every daemon, under the daemon's
// own key, in the form FILE: KEY: VALUE RULE.
func TestSettingsCheck(t *testing.T) {
	good := Settings{Hosts: []string{"127.0.0.1:2181", "[::1]:2181", "zk-1.example:2181"}, Chroot: "/mq/test_cluster",
		SessionTimeoutMs: 6000, ConnectTimeoutMs: 1000}
	for _, d := range daemonKeys {
		t.Run(d.daemon, func(t *testing.T) {
			if got := check(t, d.keys, good, d.daemon); got != nil {
				t.Errorf("good settings: got %q, want no problem", got)
			}
			for _, s := range []Settings{
				{SessionTimeoutMs: MinSessionTimeoutMs, ConnectTimeoutMs: MinConnectTimeoutMs},
				{Chroot: "", SessionTimeoutMs: MaxSessionTimeoutMs, ConnectTimeoutMs: MaxConnectTimeoutMs},
				{Chroot: "mq/x/", SessionTimeoutMs: 3000, ConnectTimeoutMs: 1000},
			} {
				if got := check(t, d.keys, s, d.daemon); got != nil {
					t.Errorf("%+v: got %q, want no problem", s, got)
				}
			}

			bad := Settings{Hosts: []string{"localhost", "h:0", "h:2181"}, Chroot: "/mq/../x", SessionTimeoutMs: 100, ConnectTimeoutMs: 5}
			file, k := d.daemon+".yaml: ", d.keys
			want := []string{
				file + k.ChrootKey + `: "/mq/../x" has the part "..", which is not a ZooKeeper node name ("." and ".." are not allowed)`,
				file + k.HostsKey + `: "localhost" is not HOST:PORT`,
				file + k.HostsKey + `: "h:0" is not HOST:PORT (the port must be a number in 1..65535)`,
				file + k.SessionTimeoutKey + `: 100 is not in 1000..600000`,
			}
			if k.ConnectTimeoutKey != "" {
				want = append(want, file+k.ConnectTimeoutKey+`: 5 is not in 10..600000`)
			}
			got := check(t, d.keys, bad, d.daemon)
			for _, w := range want {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("got %q, want a line %q", got, w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("got %d problems %q, want %d", len(got), got, len(want))
			}
		})
	}
}

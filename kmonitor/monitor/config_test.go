package monitor

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// TestOriginalFileAccepted loads the original kmonitor's file unchanged and checks
// every key keeps its meaning.
func TestOriginalFileAccepted(t *testing.T) {
	c, err := LoadConfig("../../testdata/original/kmonitor.yaml")
	if err != nil {
		t.Fatalf("original kmonitor.yaml: %v", err)
	}
	want := Defaults()
	want.Base.Dir, want.Base.Level = "./log", 4
	want.Base.Clusters = []string{"test_cluster", "common_cluster"}
	want.HTTP.Port, want.HTTP.ReadTimeoutMs, want.HTTP.WriteTimeoutMs = 55325, 100, 100
	for _, cl := range []struct {
		name, chroot, prefix string
	}{{"test_cluster", "/mq/test_cluster", "10.1."}, {"common_cluster", "/mq/common_cluster", "10.2."}} {
		cc := ClusterDefaults()
		cc.Name, cc.Chroot = cl.name, cl.chroot
		cc.ZKConnectTimeoutMs, cc.ZKSessionTimeoutMs = 1000, 6000
		cc.ZKHosts = nil
		for i := 1; i <= 5; i++ {
			cc.ZKHosts = append(cc.ZKHosts, cl.prefix+string(rune('0'+i))+".1:2181")
		}
		want.Clusters = append(want.Clusters, cc)
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if got := c.PollInterval(c.Clusters[0]); got != 5*time.Second {
		t.Errorf("poll interval: got %v, want 5s", got)
	}
	if got := c.Addr(); got != ":55325" {
		t.Errorf("address: got %q, want :55325", got)
	}
}

// TestExampleFileShowsEveryKeyWithItsDefault keeps conf/kmonitor.yaml honest: it
// sets every key of base, http_server and of a cluster section, each to its
// default (the cluster list and ZooKeeper hosts aside, which have none).
func TestExampleFileShowsEveryKeyWithItsDefault(t *testing.T) {
	const path = "../../conf/kmonitor.yaml"
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	want := Defaults()
	want.Base.Clusters = c.Base.Clusters
	if len(c.Clusters) != 1 {
		t.Fatalf("got %d clusters, want 1", len(c.Clusters))
	}
	cc := ClusterDefaults()
	cc.Name, cc.ZKHosts = c.Clusters[0].Name, c.Clusters[0].ZKHosts
	want.Clusters = []ClusterConfig{cc}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example differs from the defaults:\ngot  %+v\nwant %+v", c, want)
	}
	for _, tc := range []struct {
		section string
		dst     any
	}{{"", Config{}}, {c.Clusters[0].Name, ClusterConfig{}}} {
		unset, err := config.Unset(path, tc.section, tc.dst)
		if err != nil || len(unset) > 0 {
			t.Errorf("%s does not show keys %v (%v)", path, unset, err)
		}
	}
}

func TestPollIntervalOverride(t *testing.T) {
	c := Defaults()
	c.Base.PollIntervalMs = 2000
	for _, tt := range []struct {
		own  int
		want time.Duration
	}{{0, 2 * time.Second}, {300, 300 * time.Millisecond}} {
		if got := c.PollInterval(ClusterConfig{PollIntervalMs: tt.own}); got != tt.want {
			t.Errorf("own %d: got %v, want %v", tt.own, got, tt.want)
		}
	}
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no clusters", "base: {log_level: 4}\n", []string{"kmonitor.yaml: base.clusters: is required"}},
		{"unlisted section and typos", `
base:
  clusters: [a]
  poll_intervall_ms: 100
a:
  zk_hosts: [127.0.0.1:2181]
  zk_host: [x]
b:
  zk_hosts: [127.0.0.1:2181]
`, []string{
			"kmonitor.yaml: a.zk_host: unknown key",
			"kmonitor.yaml: b.zk_hosts: unknown key",
			"kmonitor.yaml: base.poll_intervall_ms: unknown key",
		}},
		{"everything wrong", `
base:
  clusters: [a, a, base, c, "x.y"]
  log_format: xml
  poll_interval_ms: 0
  status_window: 1
  shutdown_timeout: soon
http_server:
  port: 70000
  read_timeout_ms: -1
a:
  chroot: mq/../x
  zk_hosts: [localhost]
  zk_session_timeout_ms: 10
  broker_hosts: [nohost]
  kafka: {sasl: {mechanism: GSSAPI}}
  poll_interval_ms: 5
`, []string{
			`kmonitor.yaml: a.broker_hosts: "nohost" is not HOST:PORT`,
			`kmonitor.yaml: a.chroot: "mq/../x" has the part "..", which is not a ZooKeeper node name ("." and ".." are not allowed)`,
			`kmonitor.yaml: a.kafka.sasl.mechanism: "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`,
			`kmonitor.yaml: a.poll_interval_ms: 5 is not in 10..3600000`,
			`kmonitor.yaml: a.zk_hosts: "localhost" is not HOST:PORT`,
			`kmonitor.yaml: a.zk_session_timeout_ms: 10 is not in 1000..600000`,
			`kmonitor.yaml: base.clusters: "a" is listed twice`,
			`kmonitor.yaml: base.clusters: "base" is a reserved section name`,
			`kmonitor.yaml: base.clusters: "x.y" is not a valid section name`,
			`kmonitor.yaml: base.log_format: "xml" is not one of text, json`,
			`kmonitor.yaml: base.poll_interval_ms: 0 is not in 10..3600000`,
			`kmonitor.yaml: base.shutdown_timeout: "soon" is not a duration`,
			`kmonitor.yaml: base.status_window: 1 is not in 2..1000`,
			`kmonitor.yaml: c: cluster "c" is listed in base.clusters but has no section`,
			`kmonitor.yaml: c.zk_hosts: is required`,
			`kmonitor.yaml: http_server.port: 70000 is not in 1..65535`,
			`kmonitor.yaml: http_server.read_timeout_ms: -1 is less than 0`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kmonitor.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// TestEnvironmentOverridesClusterKey shows a cluster section's key can be set
// from the environment.
func TestEnvironmentOverridesClusterKey(t *testing.T) {
	t.Setenv("KMONITOR_TEST_CLUSTER_BROKER_HOSTS", "127.0.0.1:9092,127.0.0.1:9093")
	c, err := LoadConfig("../../conf/kmonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Clusters[0].BrokerHosts, []string{"127.0.0.1:9092", "127.0.0.1:9093"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestChrootRule: the chroot follows the rule of every daemon
// (zkconn.CheckChroot): node names between slashes, the leading slash optional.
func TestChrootRule(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kmonitor.yaml")
	yaml := "base: {clusters: [a]}\na: {chroot: mq/test_cluster/, zk_hosts: [127.0.0.1:2181]}\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("got %v, want the file accepted", err)
	}
	if got := zkconsumers.New(c.Clusters[0].Chroot).Consumers(); got != "/mq/test_cluster/consumers" {
		t.Errorf("got consumers at %s, want /mq/test_cluster/consumers", got)
	}
}

package transfer

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// originalTree copies the original main file and module file into a directory laid
// out as the original installation: conf/ktransfer.yaml, conf/modules/NAME.yaml.
func originalTree(t *testing.T, modules ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile("../../testdata/original/ktransfer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../testdata/original/modules/test_module_1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "conf/ktransfer.yaml"), main, 0o644)
	for _, m := range modules {
		os.WriteFile(filepath.Join(dir, "conf/modules", m+".yaml"), mod, 0o644)
	}
	return filepath.Join(dir, "conf/ktransfer.yaml")
}

func TestOriginalFilesAccepted(t *testing.T) {
	path := originalTree(t, "test_mdoule_1", "test_module_2")
	// The original ran from its install directory: ./conf/modules.
	t.Chdir(filepath.Dir(filepath.Dir(path)))
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("original files: %v", err)
	}
	if c.ZKChroot != "/mq/test_cluster" || c.ZKTimeoutMs != 3000 || len(c.ZKHosts) != 5 || c.Dir != "./log" || c.Level != 4 {
		t.Errorf("main file decoded wrongly: %+v", c)
	}
	if len(c.Modules) != 2 || c.Modules[0].Name != "test_mdoule_1" {
		t.Fatalf("got modules %+v", c.Modules)
	}
	m := c.Modules[1]
	want := ModuleDefaults()
	want.Name = "test_module_2"
	want.Topic = "test_topic"
	want.Methods = []string{"TestUserName", "TestReply"}
	want.Protocol = Protocol{Name: "http", URI: "/XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&format=msgpack",
		Headers: []map[string]string{{"host": "www.myhug.cn"}}, ReadTimeoutMs: 0, WriteTimeoutMs: 100, ConnTimeoutMs: 100}
	want.WorkerNum, want.WindowSize, want.MaxRetryTimes, want.FailRetryIntervalMs = 100, 200, -1, 200
	want.BackendServers = []string{"10.1.2.1:80", "10.1.2.2:80", "10.1.2.3:80", "10.1.2.4:80"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("module decoded wrongly:\ngot  %+v\nwant %+v", m, want)
	}
}

// TestMisspeltModuleReported is the original's own typo: module_enabled names a
// module that has no file.
func TestMisspeltModuleReported(t *testing.T) {
	path := originalTree(t, "test_module_1", "test_module_2")
	t.Chdir(filepath.Dir(filepath.Dir(path)))
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), `ktransfer.yaml: module_enabled: "test_mdoule_1" has no module file`) {
		t.Errorf("got %v, want the misspelt module named", err)
	}
}

func TestModuleDirRelativeToMainFile(t *testing.T) {
	path := originalTree(t, "test_mdoule_1", "test_module_2")
	// From elsewhere, ./conf/modules is resolved next to the main file's directory.
	os.MkdirAll(filepath.Join(filepath.Dir(path), "conf"), 0o755)
	os.Rename(filepath.Join(filepath.Dir(path), "modules"), filepath.Join(filepath.Dir(path), "conf/modules"))
	t.Chdir(t.TempDir())
	if _, err := LoadConfig(path); err != nil {
		t.Errorf("got %v", err)
	}
}

func TestInvalidModule(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(p, []byte(`
topic: ""
protocol: {name: grpc, uri: "x", headers: [{A: 1, B: 2}]}
worker_num: 0
window_size: 0
max_retry_times: -2
backend_servers: [nohost]
retry_on_status: [429, "500-599", "600", "x"]
on_malformed: explode
initial_offset: latest
windw_size: 3
`), 0o644)
	_, err := LoadModule(p)
	if err == nil {
		t.Fatal("got no error")
	}
	for _, want := range []string{
		`m.yaml: topic: is required`,
		`m.yaml: protocol.name: "grpc" is not one of http`,
		`m.yaml: protocol.uri: "x" must start with /`,
		`m.yaml: protocol.headers: entry 1 must be one "Name: value" pair, has 2`,
		`m.yaml: worker_num: 0 is not in 1..10000`,
		`m.yaml: window_size: 0 is not in 1..1000000`,
		`m.yaml: max_retry_times: -2 is less than -1`,
		`m.yaml: backend_servers: "nohost" is not HOST:PORT`,
		`m.yaml: retry_on_status: "600" is not a status`,
		`"x" is not a status`,
		`m.yaml: on_malformed: "explode" is not one of skip, push, dead_letter`,
		`m.yaml: initial_offset: "latest" is not one of oldest, newest`,
		`m.yaml: windw_size: unknown key`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q; got:\n%v", want, err)
		}
	}
}

func TestCommitInterval(t *testing.T) {
	for _, tc := range []struct {
		ms, sec int
		want    time.Duration
	}{{0, 0, time.Second}, {0, 5, 5 * time.Second}, {250, 5, 250 * time.Millisecond}} {
		m := Module{CommitIntervalMs: tc.ms, ZKOffsetUpdateIntervalSec: tc.sec}
		if got := m.CommitInterval(); got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc, got, tc.want)
		}
	}
}

func TestParseStatusRanges(t *testing.T) {
	got, err := ParseStatusRanges([]string{"408", " 429 ", "500-599"})
	want := []push.StatusRange{{Lo: 408, Hi: 408}, {Lo: 429, Hi: 429}, {Lo: 500, Hi: 599}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
	if _, err := ParseStatusRanges([]string{"599-500"}); err == nil {
		t.Error("reversed range: got no error")
	}
}

// TestExampleFilesShowEveryKey keeps conf/ktransfer.yaml and conf/modules/example.yaml
// complete and at their defaults.
func TestExampleFilesShowEveryKey(t *testing.T) {
	for _, tc := range []struct {
		path string
		dst  any
	}{
		{"../../conf/ktransfer.yaml", Config{}},
		{"../../conf/modules/example.yaml", Module{}},
	} {
		unset, err := config.Unset(tc.path, "", tc.dst)
		if err != nil || len(unset) > 0 {
			t.Errorf("%s does not show keys %v (%v)", tc.path, unset, err)
		}
	}
	m, err := LoadModule("../../conf/modules/example.yaml")
	if err != nil {
		t.Fatalf("example module: %v", err)
	}
	d := ModuleDefaults()
	if m.WorkerNum != d.WorkerNum || m.WindowSize != d.WindowSize || m.OnMalformed != d.OnMalformed || m.ReleaseTimeoutMs != d.ReleaseTimeoutMs {
		t.Errorf("example module differs from the defaults: %+v", m)
	}
}

// zkAuthTree writes a main file and one module file "m" in a temporary
// directory: the given zk_auth lines (YAML, may be empty) are appended to each.
func zkAuthTree(t *testing.T, mainAuth, moduleAuth string) string {
	t.Helper()
	dir := t.TempDir()
	main := "zk_hosts: [127.0.0.1:2181]\nmodule_conf_dir: " + dir + "\nmodule_enabled: [m]\n" + mainAuth
	mod := "topic: events\nbackend_servers: [127.0.0.1:8080]\n" + moduleAuth
	if err := os.WriteFile(filepath.Join(dir, "ktransfer.yaml"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "ktransfer.yaml")
}

func TestZKAuthConfig(t *testing.T) {
	const secret = "hunter2-not-shown"
	tests := []struct {
		name       string
		mainAuth   string
		moduleAuth string
		env        map[string]string
		wantMain   fleet.Auth
		wantModule fleet.Auth
		wantErrs   []string // each must appear; none means valid
	}{
		{name: "off by default"},
		{name: "empty strings are off", mainAuth: "zk_auth: {user: \"\", password: \"\"}\n"},
		{
			name:     "main credential",
			mainAuth: "zk_auth: {user: alice, password: " + secret + "}\n",
			wantMain: fleet.Auth{User: "alice", Password: secret},
		},
		{
			name:       "module credential",
			moduleAuth: "zk_auth:\n  user: bob\n  password: \"" + secret + "\"\n",
			wantModule: fleet.Auth{User: "bob", Password: secret},
		},
		{
			name:     "password from the environment",
			mainAuth: "zk_auth: {user: alice}\n",
			env:      map[string]string{"KTRANSFER_ZK_AUTH_PASSWORD": secret},
			wantMain: fleet.Auth{User: "alice", Password: secret},
		},
		{
			name:     "main user without password",
			mainAuth: "zk_auth: {user: alice}\n",
			wantErrs: []string{"ktransfer.yaml: zk_auth.password: is required when zk_auth.user is set"},
		},
		{
			name:     "main password without user",
			mainAuth: "zk_auth: {password: " + secret + "}\n",
			wantErrs: []string{"ktransfer.yaml: zk_auth.user: is required when zk_auth.password is set"},
		},
		{
			name:     "colon in the main user",
			mainAuth: "zk_auth: {user: \"al:ice\", password: " + secret + "}\n",
			wantErrs: []string{`ktransfer.yaml: zk_auth.user: "al:ice" must not contain ':'`},
		},
		{
			name:       "module user without password, colon",
			moduleAuth: "zk_auth: {user: \"b:ob\"}\n",
			wantErrs: []string{
				"m.yaml: zk_auth.password: is required when zk_auth.user is set",
				`m.yaml: zk_auth.user: "b:ob" must not contain ':'`,
			},
		},
		{
			name:       "module password without user",
			moduleAuth: "zk_auth: {password: " + secret + "}\n",
			wantErrs:   []string{"m.yaml: zk_auth.user: is required when zk_auth.password is set"},
		},
		{
			name:       "misspelt keys",
			mainAuth:   "zk_auth: {usr: alice, password: " + secret + "}\n",
			moduleAuth: "zk_auth: {user: bob, passwd: " + secret + "}\n",
			wantErrs: []string{
				"ktransfer.yaml: zk_auth.usr: unknown key",
				"ktransfer.yaml: zk_auth.user: is required when zk_auth.password is set",
				"m.yaml: zk_auth.passwd: unknown key",
				"m.yaml: zk_auth.password: is required when zk_auth.user is set",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := LoadConfig(zkAuthTree(t, tc.mainAuth, tc.moduleAuth))
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				if c.ZKAuth != tc.wantMain {
					t.Errorf("zk_auth: got user %q, password set %v; want user %q, password set %v", c.ZKAuth.User, c.ZKAuth.Password != "", tc.wantMain.User, tc.wantMain.Password != "")
				}
				if len(c.Modules) != 1 || c.Modules[0].ZKAuth != tc.wantModule {
					t.Errorf("module zk_auth: got %v, want %v", c.Modules, tc.wantModule)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tc.wantErrs)
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q; got:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password:\n%v", err)
			}
		})
	}
}

func TestZKAuthFor(t *testing.T) {
	mainAuth := fleet.Auth{User: "alice", Password: "a"}
	modAuth := fleet.Auth{User: "bob", Password: "b"}
	tests := []struct {
		name      string
		main, mod fleet.Auth
		want      fleet.Auth
	}{
		{"neither", fleet.Auth{}, fleet.Auth{}, fleet.Auth{}},
		{"main only", mainAuth, fleet.Auth{}, mainAuth},
		{"module only", fleet.Auth{}, modAuth, modAuth},
		{"module overrides main", mainAuth, modAuth, modAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{ZKAuth: tc.main}
			if got := c.ZKAuthFor(Module{ZKAuth: tc.mod}); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestConfigDumpHidesZKPassword: printing the loaded configuration, as a failed
// test or a debugging session may, does not show the ZooKeeper password.
func TestConfigDumpHidesZKPassword(t *testing.T) {
	const secret = "s3cret-zk-password"
	c, err := LoadConfig(zkAuthTree(t, "zk_auth: {user: alice, password: "+secret+"}\n", "zk_auth: {user: bob, password: "+secret+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(out, secret) {
			t.Errorf("got %s, which shows the password", out)
		}
		if !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
			t.Errorf("got %s, want the users alice and bob named", out)
		}
	}
}

// ruleTree writes a valid main file enabling module enabled (whose file holds a
// valid module plus moduleExtra) with mainExtra appended; it returns the main
// file's path.
func ruleTree(t *testing.T, mainExtra, enabled, moduleExtra string) string {
	t.Helper()
	dir := t.TempDir()
	main := "module_conf_dir: " + dir + "\nmodule_enabled: [\"" + enabled + "\"]\n" + mainExtra
	if !strings.Contains(mainExtra, "zk_hosts") {
		main += "zk_hosts: [127.0.0.1:2181]\n"
	}
	mod := "backend_servers: [127.0.0.1:8080]\n" + moduleExtra
	if !strings.Contains(moduleExtra, "topic") {
		mod += "topic: events\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "ktransfer.yaml"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(enabled, '/') {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(enabled)), 0o755)
	}
	if err := os.WriteFile(filepath.Join(dir, enabled+".yaml"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "ktransfer.yaml")
}

// TestRunTimeRules: every setting the running code would refuse (a ZooKeeper
// node name, a chroot, a listen address, a topic, a key in another case) fails
// the check, naming the file, the key, the value and the rule; what the running
// code accepts passes.
func TestRunTimeRules(t *testing.T) {
	tests := []struct {
		name              string
		main, enabled, mo string
		want              string // "" means valid
	}{
		{"instance id with a slash", "instance_id: a/b\n", "m", "", `ktransfer.yaml: instance_id: "a/b" must not contain '/'`},
		{"instance id ..", "instance_id: \"..\"\n", "m", "", `ktransfer.yaml: instance_id: ".." is not a ZooKeeper node name`},
		{"instance id with a control character", "instance_id: \"a\\x01\"\n", "m", "", `ktransfer.yaml: instance_id: "a\x01" contains U+0001`},
		{"instance id", "instance_id: host-1.example-42\n", "m", "", ""},
		{"chroot with ..", "zk_chroot: /mq/../x\n", "m", "", `ktransfer.yaml: zk_chroot: "/mq/../x" has the part ".."`},
		{"chroot with a trailing slash", "zk_chroot: /mq/test_cluster/\n", "m", "", ""},
		{"ops_listen without port", "ops_listen: localhost\n", "m", "", `ktransfer.yaml: ops_listen: "localhost" is not HOST:PORT`},
		{"ops_listen port out of range", "ops_listen: 127.0.0.1:70000\n", "m", "", `ktransfer.yaml: ops_listen: "127.0.0.1:70000" has port "70000", not a number in 0..65535`},
		{"ops_listen on every interface", "ops_listen: \":5040\"\n", "m", "", ""},
		{"zk_hosts port not a number", "zk_hosts: [zk:abc]\n", "m", "", `ktransfer.yaml: zk_hosts: "zk:abc" is not HOST:PORT`},
		{"broker without host", "broker_hosts: [\":9092\"]\n", "m", "", `ktransfer.yaml: broker_hosts: ":9092" is not HOST:PORT`},
		{"module name with a slash", "", "sub/m", "", `ktransfer.yaml: module_enabled: "sub/m" must not contain '/'`},
		{"topic with a space", "", "m", "topic: bad topic\n", `m.yaml: topic: "bad topic" is not a Kafka topic name`},
		{"topic ..", "", "m", "topic: \"..\"\n", `m.yaml: topic: ".." is not a Kafka topic name`},
		{"dead-letter topic with a slash", "", "m", "dead_letter_topic: a/b\n", `m.yaml: dead_letter_topic: "a/b" is not a Kafka topic name`},
		{"offset_reset", "", "m", "offset_reset: latest\n", `m.yaml: offset_reset: "latest" is not one of oldest, newest`},
		{"offset_reset newest", "", "m", "offset_reset: newest\n", ""},
		{"module key in another case", "", "m", "topiC: events\n", `m.yaml: topiC: unknown key (keys are written in lower case: topic)`},
		{"nested module key in another case", "", "m", "protocol:\n  URI: /x\n", `m.yaml: protocol.URI: unknown key (keys are written in lower case: protocol.uri)`},
		{"main key in another case", "Zk_Timeout_Ms: 3000\n", "m", "", `ktransfer.yaml: Zk_Timeout_Ms: unknown key (keys are written in lower case: zk_timeout_ms)`},
		{"header names keep their case", "", "m", "protocol:\n  headers:\n    - X-Trace: \"1\"\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(ruleTree(t, tc.main, tc.enabled, tc.mo))
			if tc.want == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestOpsListenFixed: ops_listen counts as set when the file or the environment
// sets it, even to the default address.
func TestOpsListenFixed(t *testing.T) {
	for _, tc := range []struct {
		name, main string
		env        string
		want       bool
	}{
		{"unset", "", "", false},
		{"in the file", "ops_listen: 127.0.0.1:5040\n", "", true},
		{"in the environment", "", "127.0.0.1:5041", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("KTRANSFER_OPS_LISTEN", tc.env)
			}
			c, err := LoadConfig(ruleTree(t, tc.main, "m", ""))
			if err != nil {
				t.Fatal(err)
			}
			if c.OpsListenFixed != tc.want {
				t.Errorf("got OpsListenFixed %v, want %v", c.OpsListenFixed, tc.want)
			}
		})
	}
}

// TestForwardHeadersConfig: forward_headers defaults to the W3C trace headers,
// an empty list turns forwarding off, and a name that would frame the request is
// refused by -t.
func TestForwardHeadersConfig(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  []string
		err   string
	}{
		{"", []string{"traceparent", "tracestate"}, ""},
		{"forward_headers: []\n", []string{}, ""},
		{"forward_headers: [x-request-id]\n", []string{"x-request-id"}, ""},
		{"forward_headers: [Content-Length]\n", nil, "forward_headers"},
	} {
		cfg, err := LoadConfig(ruleTree(t, "", "m", tc.extra))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error naming %s", tc.extra, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if got := cfg.Modules[0].ForwardHeaders; strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%q: got %v, want %v", tc.extra, got, tc.want)
		}
	}
}

// TestOffsetStoreConfig: offset_store kafka needs no ZooKeeper and requires
// broker_hosts; its keys have their defaults and bounds; zookeeper, the
// default, still requires zk_hosts.
func TestOffsetStoreConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		main string // zk_hosts is added only when this names it
		want string // "" means valid
	}{
		{"kafka without ZooKeeper", "offset_store: kafka\nbroker_hosts: [127.0.0.1:9092]\nzk_hosts: []\n", ""},
		{"kafka with zk_hosts for the import", "offset_store: kafka\nbroker_hosts: [127.0.0.1:9092]\n", ""},
		{"kafka without broker_hosts", "offset_store: kafka\nzk_hosts: []\n",
			"ktransfer.yaml: broker_hosts: is required with offset_store: kafka (brokers are not discovered through ZooKeeper then)"},
		{"zookeeper without zk_hosts", "broker_hosts: [127.0.0.1:9092]\nzk_hosts: []\n", "ktransfer.yaml: zk_hosts: is required"},
		{"unknown store", "offset_store: etcd\n", `ktransfer.yaml: offset_store: "etcd" is not one of zookeeper, kafka`},
		{"session timeout too short", "offset_store: kafka\nbroker_hosts: [127.0.0.1:9092]\ngroup_session_timeout_ms: 999\n",
			"ktransfer.yaml: group_session_timeout_ms: 999 is not in 1000..1800000"},
		{"unknown protocol", "offset_store: kafka\nbroker_hosts: [127.0.0.1:9092]\ngroup_protocol: eager\n",
			`ktransfer.yaml: group_protocol: "eager" is not one of auto, consumer, classic`},
		{"protocol pinned", "offset_store: kafka\nbroker_hosts: [127.0.0.1:9092]\ngroup_protocol: classic\ngroup_session_timeout_ms: 6000\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(ruleTree(t, tc.main, "m", ""))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				if c.OffsetStore != StoreKafka {
					t.Errorf("offset_store: got %q, want kafka", c.OffsetStore)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// The original file, unchanged, keeps ZooKeeper with the new keys' defaults.
	c, err := LoadConfig(ruleTree(t, "", "m", ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.OffsetStore != StoreZooKeeper || c.GroupSessionTimeoutMs != 10000 || c.GroupProtocol != "auto" {
		t.Errorf("defaults: offset_store %q, group_session_timeout_ms %d, group_protocol %q; want zookeeper, 10000, auto",
			c.OffsetStore, c.GroupSessionTimeoutMs, c.GroupProtocol)
	}
}

package main

// Black-box test of the original deployment: several ktransfer processes on one
// host, started from the original README's files, unchanged but for the
// addresses of ZooKeeper and the backends.

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// opsLine is how a process logs where its operations endpoints listen.
var opsLine = regexp.MustCompile(`msg="operations endpoints" .*instance=(\S+) addr=(\S+)`)

// opsAddrOf returns the operations address process pid logged in the shared log.
func opsAddrOf(logText string, pid int) (string, bool) {
	for _, m := range opsLine.FindAllStringSubmatch(logText, -1) {
		if strings.Contains(m[1], "-"+strconv.Itoa(pid)+"-") {
			return m[2], true
		}
	}
	return "", false
}

// TestTwoProcessesOneHostOriginalFiles starts two ktransfer processes on one host
// from the original ktransfer.yaml and module file (no ops_listen, no new key;
// brokers found in ZooKeeper as the original did): both run, each serving
// /status where it logged; after a SIGKILL of one the other pushes everything;
// SIGTERM ends it with exit code 0.
func TestTwoProcessesOneHostOriginalFiles(t *testing.T) {
	const (
		topic      = "test_topic"
		chroot     = "/mq/test_cluster"
		partitions = 4
		keys       = 40
		perKey     = 40
	)
	modules := []string{"test_mdoule_1", "test_module_2"} // module_enabled of the original file
	bin := testproc.Build(t, ".")
	kafka := testcluster.Kafka(t, kfake.SeedTopics(partitions, topic))
	broker := testcluster.Brokers(kafka)[0]
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)
	bhost, bport, _ := net.SplitHostPort(broker)
	mkNode(t, conn, zkconsumers.New(chroot).BrokerIDs()+"/0", fmt.Sprintf(`{"host":%q,"port":%s,"version":4,"endpoints":["PLAINTEXT://%s"]}`, bhost, bport, broker))

	// One backend per module, so each module's deliveries are counted apart.
	sinks := map[string]*sink{}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf", "modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, m := range modules {
		s := &sink{delay: 3 * time.Millisecond, rng: rand.New(rand.NewSource(int64(i))), hosts: map[string]int{}}
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		sinks[m] = s
		mod := rewrite(t, "../testdata/original/modules/test_module_1.yaml", map[string][]string{
			"backend_servers": {"- " + strings.TrimPrefix(srv.URL, "http://")},
		})
		if err := os.WriteFile(filepath.Join(dir, "conf", "modules", m+".yaml"), []byte(mod), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	main := rewrite(t, "../testdata/original/ktransfer.yaml", map[string][]string{"zk_hosts": {"- " + z.Addr}})
	if err := os.WriteFile(filepath.Join(dir, "conf", "ktransfer.yaml"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ops_listen", "broker_hosts", "instance_id"} {
		if strings.Contains(main, k) {
			t.Fatalf("the main file has %s; the original has no such key:\n%s", k, main)
		}
	}
	// The original ran from its install directory: ./log, ./conf/modules.
	t.Chdir(dir)
	if out, err := exec.Command(bin, "-t", "-f", "conf/ktransfer.yaml").CombinedOutput(); err != nil {
		t.Fatalf("-t: %v\n%s", err, out)
	}
	logs := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "log", "ktransfer.log"))
		return string(b)
	}
	procs := map[string]*testproc.Proc{}
	for _, name := range []string{"a", "b"} {
		procs[name] = testproc.StartWith(t, testproc.Options{Name: name, LogFile: filepath.Join(dir, "log", "ktransfer.log")}, bin, "-f", "conf/ktransfer.yaml")
	}
	a, b := procs["a"], procs["b"]

	addrs := map[string]string{}
	testwait.Eventually(t, 30*time.Second, "both processes logged their operations address", func() bool {
		for name, p := range procs {
			if addr, ok := opsAddrOf(logs(), p.PID()); ok {
				addrs[name] = addr
			}
		}
		return len(addrs) == 2
	})
	if addrs["a"] == addrs["b"] {
		t.Fatalf("both processes logged %s", addrs["a"])
	}
	if !strings.Contains(logs(), "operations endpoints on a free port instead") {
		t.Errorf("no notice that the default ops address was taken:\n%s", logs())
	}
	for name, p := range procs {
		if code := p.Wait(0); code != -1 {
			t.Fatalf("%s exited with code %d:\n%s", name, code, logs())
		}
		st, err := getStatus("http://" + addrs[name] + "/status")
		if err != nil {
			t.Fatalf("%s: /status at the logged %s: %v", name, addrs[name], err)
		}
		if st.OpsListen != addrs[name] || st.PID != p.PID() || len(st.Modules) != 2 {
			t.Errorf("%s: /status %+v, want ops_listen %s, pid %d and both modules", name, st, addrs[name], p.PID())
		}
		// The registration names the address too, beside Kafka's fields.
		var data []byte
		testwait.Eventually(t, 10*time.Second, name+" registered", func() bool {
			data, _, err = conn.Get(zkconsumers.New(chroot).ID(modules[0], st.Instance))
			return err == nil
		})
		if !strings.Contains(string(data), `"ops_listen":"`+addrs[name]+`"`) || !strings.Contains(string(data), `"subscription":{"test_topic":1}`) {
			t.Errorf("%s: registration %s, want Kafka's fields and ops_listen %s", name, data, addrs[name])
		}
	}
	testwait.Eventually(t, 30*time.Second, "each process owns two partitions of each module", func() bool {
		for _, name := range []string{"a", "b"} {
			st, err := getStatus("http://" + addrs[name] + "/status")
			if err != nil {
				return false
			}
			for _, m := range modules {
				if len(st.Modules[m].Partitions) != 2 {
					return false
				}
			}
		}
		return true
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		var recs []*kgo.Record
		for s := from; s < to; s++ {
			for k := 0; k < keys; k++ {
				key := fmt.Sprintf("user%02d", k)
				v, _ := msgpack.Marshal(map[string]any{"method": []string{"TestUserName", "TestReply"}[s%2], "key": key, "seq": s})
				recs = append(recs, &kgo.Record{Key: []byte(key), Value: v})
			}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, perKey/2)
	testwait.Eventually(t, 30*time.Second, "pushing", func() bool { return len(sinks[modules[0]].snapshot()) >= keys*perKey/8 })
	a.Kill() // SIGKILL
	produce(perKey/2, perKey)

	want := keys * perKey
	for _, m := range modules {
		s := sinks[m]
		waitDistinct(t, s, want, 60*time.Second, b)
		checkKeyOrder(t, "module "+m+", ", s.snapshot())
		t.Logf("module %s: %d records, %d deliveries", m, want, len(s.snapshot()))
	}
	if code := b.Wait(0); code != -1 {
		t.Fatalf("b exited (code %d):\n%s", code, logs())
	}
	b.Signal(syscall.SIGTERM)
	if code := b.Wait(40 * time.Second); code != 0 {
		t.Errorf("b: exit code %d after SIGTERM, want 0\n%s", code, logs())
	}
}

// mkNode creates p with data, and its missing parents, as open persistent nodes.
func mkNode(t *testing.T, conn *zk.Conn, p, data string) {
	t.Helper()
	if p == "/" {
		return
	}
	mkNode(t, conn, path.Dir(p), "")
	if _, err := conn.Create(p, []byte(data), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("create %s: %v", p, err)
	}
}

// TestSettingsThatCannotRun: what the running code would refuse fails -t and the
// start alike, naming the key, the value and the rule (instance_id "a/b" named
// a node below ids/ and used to leave every module idle behind one log line);
// an ops_listen that was set and is taken stops the start with exit code 1.
func TestSettingsThatCannotRun(t *testing.T) {
	bin := testproc.Build(t, ".")
	z := testcluster.StartZooKeeper(t)
	dir := t.TempDir()
	modDir := filepath.Join(dir, "modules")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := rewrite(t, "../testdata/original/modules/test_module_1.yaml", map[string][]string{"backend_servers": {"- 127.0.0.1:1"}})
	if err := os.WriteFile(filepath.Join(modDir, "test_module_1.yaml"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	busy := testproc.TakenAddr(t)
	write := func(name string, extra map[string][]string) string {
		values := map[string][]string{
			"log_dir":         {`"-"`},
			"zk_hosts":        {"- " + z.Addr},
			"module_conf_dir": {modDir},
			"module_enabled":  {"- test_module_1"},
			"broker_hosts":    {"[127.0.0.1:1]"},
		}
		for k, v := range extra {
			values[k] = v
		}
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(rewrite(t, "../testdata/original/ktransfer.yaml", values)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) (int, string) {
		p := testproc.Start(t, bin, args...)
		code := p.Wait(30 * time.Second)
		if code == -1 {
			t.Fatalf("ktransfer %v still runs after 30s:\n%s", args, p.Output())
		}
		return code, p.Output()
	}

	bad := write("slash", map[string][]string{"instance_id": {`"a/b"`}})
	const rule = `slash.yaml: instance_id: "a/b" must not contain '/'`
	if code, out := run("-t", "-f", bad); code != 1 || !strings.Contains(out, rule) {
		t.Errorf("-t: exit code %d, output:\n%s\nwant 1 and %q", code, out, rule)
	}
	if code, out := run("-f", bad); code != 1 || !strings.Contains(out, rule) {
		t.Errorf("start: exit code %d, output:\n%s\nwant 1 and %q", code, out, rule)
	}

	taken := write("taken", map[string][]string{"ops_listen": {busy}})
	if code, out := run("-t", "-f", taken); code != 0 {
		t.Errorf("-t of a file whose ops_listen is only taken: exit code %d, want 0\n%s", code, out)
	}
	code, out := run("-f", taken)
	if want := "ops_listen " + busy; code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "address already in use") {
		t.Errorf("start with ops_listen taken: exit code %d, output:\n%s\nwant 1 and %q with the address in use", code, out, want)
	}
}

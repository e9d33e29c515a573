package main

// Black-box test of the fleet: real ktransfer processes, started from
// configuration files in the original format, push a topic to a backend that fails
// a share of requests while one process is killed with SIGKILL and restarted.

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

func TestMain(m *testing.M) { os.Exit(testproc.Main(m)) }

// rewrite replaces the values of top-level keys (and their list items) in an
// original file, keeping every other line as it is.
func rewrite(t *testing.T, src string, values map[string][]string) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	skipping := false
	for _, line := range strings.Split(string(raw), "\n") {
		if skipping && strings.HasPrefix(line, " - ") {
			continue
		}
		skipping = false
		key, _, _ := strings.Cut(line, ":")
		if v, ok := values[key]; ok && !strings.HasPrefix(line, " ") {
			if len(v) == 1 && !strings.HasPrefix(v[0], "- ") {
				out = append(out, key+": "+v[0])
			} else {
				out = append(out, key+":")
				for _, item := range v {
					out = append(out, " "+item)
				}
			}
			skipping = true // the original value's list items, if any
			delete(values, key)
			continue
		}
		out = append(out, line)
	}
	for k, v := range values { // new keys
		out = append(out, k+": "+strings.Join(v, ""))
	}
	return strings.Join(out, "\n") + "\n"
}

// startProc runs ktransfer -f cfg as process name, whose Logs include
// logDir/ktransfer.log.
func startProc(t *testing.T, name, cfg, logDir string) *testproc.Proc {
	t.Helper()
	return testproc.StartWith(t, testproc.Options{Name: name, LogFile: filepath.Join(logDir, "ktransfer.log")}, testproc.Build(t, "."), "-f", cfg)
}

// sink is the backend: it fails a share of requests and records the successful
// deliveries in arrival order.
type sink struct {
	delay     time.Duration // per request, so the kill lands mid-stream
	mu        sync.Mutex
	delivered []string // "key/seq" of every 2xx answer
	requests  int
	rng       *rand.Rand
	failShare float64
	hosts     map[string]int
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var v struct {
		Key string `msgpack:"key"`
		Seq int    `msgpack:"seq"`
	}
	if err := msgpack.NewDecoder(r.Body).Decode(&v); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.hosts[r.Host]++
	if r.URL.Query().Get("key") != v.Key {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if s.rng.Float64() < s.failShare {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.delivered = append(s.delivered, v.Key+"/"+strconv.Itoa(v.Seq))
	w.WriteHeader(http.StatusOK)
}

func (s *sink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.delivered...)
}

func TestFleetSurvivesSIGKILL(t *testing.T) {
	const (
		topic      = "test_topic"
		module     = "test_module_1"
		partitions = 4
		keys       = 40
		perKey     = 50
	)
	kafka := testcluster.Kafka(t, kfake.SeedTopics(partitions, topic))
	brokers := testcluster.Brokers(kafka)
	z := testcluster.StartZooKeeper(t)
	be := &sink{delay: 5 * time.Millisecond, rng: rand.New(rand.NewSource(1)), failShare: 0.2, hosts: map[string]int{}}
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	modDir := filepath.Join(dir, "conf", "modules")
	os.MkdirAll(modDir, 0o755)
	mod := rewrite(t, "../testdata/original/modules/test_module_1.yaml", map[string][]string{
		"backend_servers":        {"- " + strings.TrimPrefix(srv.URL, "http://")},
		"fail_retry_interval_ms": {"20"},
		"commit_interval_ms":     {"200"},
	})
	os.WriteFile(filepath.Join(modDir, module+".yaml"), []byte(mod), 0o644)

	cfgs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		logDir := filepath.Join(dir, "log-"+name)
		cfg := rewrite(t, "../testdata/original/ktransfer.yaml", map[string][]string{
			"log_dir":         {logDir},
			"zk_timeout_ms":   {"2000"},
			"zk_hosts":        {"- " + z.Addr},
			"module_conf_dir": {modDir},
			"module_enabled":  {"- " + module},
			"broker_hosts":    {"[" + strings.Join(brokers, ",") + "]"},
			"ops_listen":      {fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))},
		})
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(cfg), 0o644)
		cfgs[name] = path
	}
	out, err := exec.Command(testproc.Build(t, "."), "-t", "-f", cfgs["a"]).CombinedOutput()
	if err != nil {
		t.Fatalf("-t: %v %s", err, out)
	}
	a := startProc(t, "a", cfgs["a"], filepath.Join(dir, "log-a"))
	b := startProc(t, "b", cfgs["b"], filepath.Join(dir, "log-b"))

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		var recs []*kgo.Record
		for s := from; s < to; s++ {
			for k := 0; k < keys; k++ {
				key := fmt.Sprintf("user%02d", k)
				method := []string{"TestUserName", "TestReply"}[s%2]
				v, _ := msgpack.Marshal(map[string]any{"topic": topic, "method": method, "key": key, "seq": s, "data": "payload"})
				recs = append(recs, &kgo.Record{Key: []byte(key), Value: v})
			}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 2*perKey/3)
	// Kill a mid-stream: some records delivered, many still to push.
	waitDeliveries(t, be, keys*perKey/5, a, b)
	a.Kill() // SIGKILL
	atKill := len(be.snapshot())
	produce(2*perKey/3, perKey)
	time.Sleep(time.Second)
	a = startProc(t, "a2", cfgs["a"], filepath.Join(dir, "log-a"))
	t.Logf("SIGKILL after %d of %d deliveries", atKill, keys*perKey)
	if atKill >= keys*perKey*2/3 {
		t.Fatalf("the kill came after the first records were all delivered (%d): not mid-stream", atKill)
	}

	want := keys * perKey
	waitDistinct(t, be, want, 60*time.Second, a, b)
	delivered := be.snapshot()
	checkKeyOrder(t, "", delivered)
	dups := len(delivered) - want
	// A crash re-pushes at most what was done after the last commit: bounded by
	// the window of every partition the dead process owned.
	if bound := partitions * 200; dups > bound {
		t.Errorf("got %d duplicate deliveries, want at most %d", dups, bound)
	}
	be.mu.Lock()
	t.Logf("records %d, successful deliveries %d (duplicates %d), requests %d, Host headers %v", want, len(delivered), dups, be.requests, be.hosts)
	if be.hosts["www.myhug.cn"] != be.requests {
		t.Errorf("Host header: got %v, want every request to www.myhug.cn", be.hosts)
	}
	be.mu.Unlock()

	waitOffsetsAtEnd(t, z, cl, "/mq/test_cluster", module, topic, partitions)

	// A clean shutdown exits 0.
	stopAll(t, a, b)
}

// waitDeliveries waits up to 30 s until s has had n successful deliveries
// while procs run.
func waitDeliveries(t *testing.T, s *sink, n int, procs ...*testproc.Proc) {
	t.Helper()
	testproc.Await(t, 30*time.Second, fmt.Sprintf("%d deliveries", n), func() bool { return len(s.snapshot()) >= n }, procs...)
}

// waitDistinct waits until s has delivered want distinct records while procs
// run, failing the test with how many it has and their logs.
func waitDistinct(t *testing.T, s *sink, want int, timeout time.Duration, procs ...*testproc.Proc) {
	t.Helper()
	testproc.Until(t, timeout, func() error {
		got := map[string]bool{}
		for _, d := range s.snapshot() {
			got[d] = true
		}
		if len(got) != want {
			return fmt.Errorf("delivered %d distinct records of %d", len(got), want)
		}
		return nil
	}, procs...)
}

// checkKeyOrder fails the test unless the first delivery of each key's records
// came in seq order, starting at 0. what names the deliveries in messages.
func checkKeyOrder(t *testing.T, what string, delivered []string) {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]int{}
	for _, d := range delivered {
		if seen[d] {
			continue
		}
		seen[d] = true
		key, seqStr, _ := strings.Cut(d, "/")
		seq, _ := strconv.Atoi(seqStr)
		prev, ok := last[key]
		if !ok {
			prev = -1
		}
		if seq != prev+1 {
			t.Fatalf("%skey %s: first delivery of seq %d after seq %d", what, key, seq, prev)
		}
		last[key] = seq
	}
}

// waitOffsetsAtEnd waits until the module's offsets in ZooKeeper equal the log
// end of every partition.
func waitOffsetsAtEnd(t *testing.T, z *testcluster.ZooKeeper, cl *kgo.Client, chroot, module, topic string, partitions int32) {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	conn := z.Conn(t)
	layout := zkconsumers.New(chroot)
	testwait.Until(t, 20*time.Second, func() error {
		for p := int32(0); p < partitions; p++ {
			end, _ := ends.Lookup(topic, p)
			data, _, err := conn.Get(layout.Offset(module, topic, p))
			if off, _ := zkconsumers.DecodeOffset(data); err != nil || off != end.Offset {
				return fmt.Errorf("partition %d: offset in ZooKeeper %s (%v), log end %d", p, data, err, end.Offset)
			}
		}
		return nil
	})
}

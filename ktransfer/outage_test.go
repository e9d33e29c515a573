package main

// Black-box tests of a ZooKeeper outage: the real server stopped long enough for
// ktransfer to fence itself, then started again, while records flow at a steady
// rate. A process that takes back its own partitions resumes from its own
// progress (at most worker_num records pushed again); one whose partitions were
// pushed by another process meanwhile starts from the offset node.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/transfer"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const (
	outageTopic      = "test_topic"
	outageModule     = "test_module_1"
	outageChroot     = "/mq/test_cluster"
	outagePartitions = 4
	outageKeys       = 40
	outageWorkers    = 16
)

// outageRig is Kafka, ZooKeeper, a backend and the files of ktransfer processes.
type outageRig struct {
	kafka   *kfake.Cluster
	brokers []string
	zk      *testcluster.ZooKeeper
	be      *sink
	dir     string
	modDir  string
	keyedLoad
}

// keyedLoad produces the black-box tests' records: keys user00.., each key's
// values numbered from 0 (seq), methods of the original module file.
type keyedLoad struct {
	cl   *kgo.Client
	keys int

	mu   sync.Mutex
	seqs map[string]int // next seq per key
}

func newOutageRig(t *testing.T) *outageRig {
	t.Helper()
	r := &outageRig{keyedLoad: keyedLoad{keys: outageKeys, seqs: map[string]int{}}}
	r.kafka = testcluster.Kafka(t, kfake.SeedTopics(outagePartitions, outageTopic))
	r.brokers = testcluster.Brokers(r.kafka)
	r.zk = testcluster.StartZooKeeper(t)
	r.be = &sink{delay: 2 * time.Millisecond, rng: rand.New(rand.NewSource(1)), hosts: map[string]int{}}
	srv := httptest.NewServer(r.be)
	t.Cleanup(srv.Close)
	r.dir = t.TempDir()
	r.modDir = filepath.Join(r.dir, "conf", "modules")
	if err := os.MkdirAll(r.modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := rewrite(t, "../testdata/original/modules/test_module_1.yaml", map[string][]string{
		"backend_servers":        {"- " + strings.TrimPrefix(srv.URL, "http://")},
		"worker_num":             {strconv.Itoa(outageWorkers)},
		"fail_retry_interval_ms": {"20"},
	})
	if err := os.WriteFile(filepath.Join(r.modDir, outageModule+".yaml"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.DefaultProduceTopic(outageTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r.cl = cl
	return r
}

// config writes the main file of process name, reaching ZooKeeper at zkAddr.
func (r *outageRig) config(t *testing.T, name, zkAddr string) string {
	t.Helper()
	cfg := rewrite(t, "../testdata/original/ktransfer.yaml", map[string][]string{
		"log_dir":         {filepath.Join(r.dir, "log-"+name)},
		"zk_timeout_ms":   {"3000"},
		"zk_hosts":        {"- " + zkAddr},
		"module_conf_dir": {r.modDir},
		"module_enabled":  {"- " + outageModule},
		"broker_hosts":    {"[" + strings.Join(r.brokers, ",") + "]"},
		"ops_listen":      {fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))},
	})
	path := filepath.Join(r.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (r *outageRig) start(t *testing.T, name, zkAddr string) *testproc.Proc {
	t.Helper()
	return startProc(t, name, r.config(t, name, zkAddr), filepath.Join(r.dir, "log-"+name))
}

// produce writes n records spread over the keys, each key's values numbered.
func (l *keyedLoad) produce(t *testing.T, n int) {
	t.Helper()
	methods := []string{"TestUserName", "TestReply"}
	recs := make([]*kgo.Record, 0, n)
	l.mu.Lock()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("user%02d", rand.Intn(l.keys))
		seq := l.seqs[key]
		l.seqs[key] = seq + 1
		v, _ := msgpack.Marshal(map[string]any{"method": methods[seq%2], "key": key, "seq": seq})
		recs = append(recs, &kgo.Record{Key: []byte(key), Value: v})
	}
	l.mu.Unlock()
	if err := l.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Error(err)
	}
}

// flow produces rate records per second in steps of 10 ms until stop is closed.
func (l *keyedLoad) flow(t *testing.T, rate int, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				l.produce(t, rate/100)
			}
		}
	}()
	return done
}

// total returns the number of records produced.
func (l *keyedLoad) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seqs {
		n += s
	}
	return n
}

// waitDelivered waits until every produced record was delivered, checks that each
// key's first deliveries came in order and that the offsets in ZooKeeper reach
// the log end, and returns the number of duplicate deliveries.
func (r *outageRig) waitDelivered(t *testing.T, procs ...*testproc.Proc) int {
	t.Helper()
	want := r.total()
	waitDistinct(t, r.be, want, 60*time.Second, procs...)
	delivered := r.be.snapshot()
	checkKeyOrder(t, "", delivered)
	waitOffsetsAtEnd(t, r.zk, r.cl, outageChroot, outageModule, outageTopic, outagePartitions)
	return len(delivered) - want
}

// stopAll sends SIGTERM to every process and wants exit code 0.
func stopAll(t *testing.T, procs ...*testproc.Proc) {
	t.Helper()
	for _, p := range procs {
		p.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		switch code := p.Wait(40 * time.Second); code {
		case 0:
		case -1:
			t.Errorf("%s did not exit after SIGTERM", p.Name())
		default:
			t.Errorf("%s: exit code %d after SIGTERM\n%s", p.Name(), code, p.Logs())
		}
	}
}

// waitLog waits until the process's output or log file contains s.
func waitLog(t *testing.T, p *testproc.Proc, s string, timeout time.Duration) {
	t.Helper()
	testproc.Await(t, timeout, fmt.Sprintf("%q in the log of %s", s, p.Name()), func() bool { return strings.Contains(p.Logs(), s) }, p)
}

// TestZooKeeperOutageResumesOwnProgress stops the ZooKeeper server for twice the
// session timeout under one ktransfer process pushing 500 records/s. The process
// fences itself, takes its partitions back when the server is back, and resumes
// where it was: the backend sees at most worker_num records twice.
func TestZooKeeperOutageResumesOwnProgress(t *testing.T) {
	r := newOutageRig(t)
	a := r.start(t, "a", r.zk.Addr)
	stop := make(chan struct{})
	flowing := r.flow(t, 500, stop)
	waitDeliveries(t, r.be, 500, a)

	r.zk.Stop()
	waitLog(t, a, "fenced", 10*time.Second)
	time.Sleep(6 * time.Second)
	r.zk.Start(t)
	time.Sleep(5 * time.Second) // records keep flowing after the repair
	close(stop)
	<-flowing
	if code := a.Wait(0); code != -1 {
		t.Fatalf("a exited (code %d) during the outage:\n%s", code, a.Logs())
	}

	dups := r.waitDelivered(t, a)
	// One fence for the outage; on a loaded machine a stalled process may fence
	// itself again, and each fence may re-push what was in flight.
	fences := strings.Count(a.Logs(), "fenced: every partition lease is revoked")
	t.Logf("ZooKeeper outage: %d records, %d duplicate deliveries after %d fence(s) (worker_num %d)", r.total(), dups, fences, outageWorkers)
	if fences < 1 || dups > fences*outageWorkers {
		t.Errorf("got %d duplicate deliveries after %d fence(s), want at most worker_num %d per fence\n%s", dups, fences, outageWorkers, a.Logs())
	}
	if !strings.Contains(a.Logs(), "taking the partition back where this process was before it was fenced") {
		t.Errorf("a did not say it resumed from its own progress:\n%s", a.Logs())
	}
	stopAll(t, a)
}

// TestFencedProcessStartsFromNodeAfterTakeover cuts one of two processes off
// ZooKeeper while records flow: it fences itself, the other takes its partitions
// over and pushes them, and when the first comes back and takes its share again
// it starts from the offset nodes the other wrote, not from its own progress.
func TestFencedProcessStartsFromNodeAfterTakeover(t *testing.T) {
	r := newOutageRig(t)
	px := testcluster.NewProxy(t, r.zk.Addr)
	a := r.start(t, "a", px.Addr())
	b := r.start(t, "b", r.zk.Addr)
	stop := make(chan struct{})
	flowing := r.flow(t, 500, stop)
	bStatus := statusURL(t, r.dir, "b")
	testwait.Eventually(t, 30*time.Second, "both processes own two partitions", func() bool {
		return len(ownedOf(t, bStatus)) == 2 && len(ownedOf(t, statusURL(t, r.dir, "a"))) == 2
	})
	waitDeliveries(t, r.be, 500, a, b)

	px.Cut()
	waitLog(t, a, "fenced", 10*time.Second)
	testwait.Eventually(t, 30*time.Second, "b owns every partition", func() bool { return len(ownedOf(t, bStatus)) == outagePartitions })
	time.Sleep(3 * time.Second) // b pushes a's partitions and commits them
	px.Heal()
	testwait.Eventually(t, 30*time.Second, "a owns two partitions again", func() bool { return len(ownedOf(t, statusURL(t, r.dir, "a"))) == 2 })
	time.Sleep(3 * time.Second)
	close(stop)
	<-flowing

	dups := r.waitDelivered(t, a, b)
	t.Logf("fenced process, partitions pushed by another meanwhile: %d records, %d duplicate deliveries", r.total(), dups)
	logs := a.Logs()
	if !strings.Contains(logs, "changed since this process was fenced") {
		t.Errorf("a's log does not say it started from the offset node another process wrote:\n%s", logs)
	}
	if strings.Contains(logs, "taking the partition back where this process was") {
		t.Errorf("a resumed from its own progress although b wrote the offset nodes meanwhile:\n%s", logs)
	}
	stopAll(t, a, b)
}

// statusURL returns the /status URL of process name, from its main file's
// ops_listen.
func statusURL(t *testing.T, dir, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "ops_listen: "); ok {
			return "http://" + strings.TrimSpace(v) + "/status"
		}
	}
	t.Fatalf("%s.yaml has no ops_listen", name)
	return ""
}

// ownedOf returns the partitions of outageModule the process at url pushes, none
// when it does not answer.
func ownedOf(t *testing.T, url string) []int32 {
	t.Helper()
	st, err := getStatus(url)
	if err != nil {
		return nil
	}
	var ps []int32
	for _, p := range st.Modules[outageModule].Partitions {
		ps = append(ps, p.Partition)
	}
	return ps
}

// getStatus reads a process's /status.
func getStatus(url string) (transfer.Status, error) {
	var st transfer.Status
	resp, err := http.Get(url)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

package main

// Black-box tests of offset_store kafka: real ktransfer processes, started from
// the original files with the new keys, share a module through a Kafka
// consumer group, with no ZooKeeper process anywhere. One is killed with
// SIGKILL, one is frozen with SIGSTOP past its session timeout.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/commitmeta"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const (
	kTopic      = "test_topic"
	kModule     = "test_module_1"
	kPartitions = 4
	kKeys       = 40
	kWorkers    = 8
	kWindow     = 200 // window_size of the original module file
)

// kafkaRig is kfake, a backend and the files of ktransfer processes in Kafka
// mode. kfake lets group sessions go down to 500 ms and has consumer-protocol
// members heartbeat every 250 ms (it applies the broker's interval, not the
// group's).
type kafkaRig struct {
	kafka   *kfake.Cluster
	brokers []string
	be      *trackSink
	srv     *httptest.Server
	dir     string
	keyedLoad
}

func newKafkaRig(t *testing.T) *kafkaRig {
	t.Helper()
	r := &kafkaRig{keyedLoad: keyedLoad{keys: kKeys, seqs: map[string]int{}}, dir: t.TempDir()}
	r.kafka = testcluster.Kafka(t, kfake.SeedTopics(kPartitions, kTopic),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "250"}))
	r.brokers = testcluster.Brokers(r.kafka)
	r.be = &trackSink{delay: 3 * time.Millisecond, rng: rand.New(rand.NewSource(1))}
	r.srv = httptest.NewServer(r.be)
	t.Cleanup(r.srv.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.DefaultProduceTopic(kTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r.cl = cl
	return r
}

// config writes process name's main file — the original one with
// offset_store kafka, no zk_hosts and its own instance_id — and its module
// file, the original one pushing to the backend under /name.
func (r *kafkaRig) config(t *testing.T, name string, extra map[string][]string) string {
	t.Helper()
	modDir := filepath.Join(r.dir, "modules-"+name)
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := rewrite(t, "../testdata/original/modules/test_module_1.yaml", map[string][]string{
		"backend_servers":        {"- " + r.srv.URL + "/" + name},
		"worker_num":             {strconv.Itoa(kWorkers)},
		"fail_retry_interval_ms": {"20"},
		"commit_interval_ms":     {"200"},
	})
	if err := os.WriteFile(filepath.Join(modDir, kModule+".yaml"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	values := map[string][]string{
		"log_dir":                  {filepath.Join(r.dir, "log-"+name)},
		"log_format":               {"json"},
		"zk_hosts":                 {"[]"},
		"module_conf_dir":          {modDir},
		"module_enabled":           {"- " + kModule},
		"broker_hosts":             {"[" + strings.Join(r.brokers, ",") + "]"},
		"ops_listen":               {fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))},
		"instance_id":              {name},
		"offset_store":             {"kafka"},
		"group_session_timeout_ms": {"3000"},
	}
	for k, v := range extra {
		values[k] = v
	}
	path := filepath.Join(r.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(rewrite(t, "../testdata/original/ktransfer.yaml", values)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (r *kafkaRig) start(t *testing.T, name string, extra map[string][]string) *testproc.Proc {
	t.Helper()
	return startProc(t, name, r.config(t, name, extra), filepath.Join(r.dir, "log-"+name))
}

// waitDelivered waits until every produced record was delivered, checks that
// each key's first deliveries came in order, that the group's offsets reach
// the log end as an independent reader (franz-go's admin client) sees them,
// and returns the number of duplicate deliveries.
func (r *kafkaRig) waitDelivered(t *testing.T, procs ...*testproc.Proc) int {
	t.Helper()
	want := r.total()
	testproc.Until(t, 60*time.Second, func() error {
		if got := r.be.distinct(); got < want {
			return fmt.Errorf("delivered %d distinct records of %d", got, want)
		}
		return nil
	}, procs...)
	ds := r.be.snapshot()
	var order []string
	for _, d := range ds {
		order = append(order, d.key+"/"+strconv.Itoa(d.seq))
	}
	checkKeyOrder(t, "", order)
	r.waitGroupAtEnd(t)
	return len(ds) - want
}

// groupView is the module's group as Kafka's own tools show it
// (kafka-consumer-groups.sh --describe --members --offsets), read with
// franz-go's admin client: the members with their client ids (under either
// protocol), and each partition's committed offset, metadata and log end.
type groupView struct {
	members []string // client ids, sorted
	commits map[int32]kadm.OffsetResponse
	ends    map[int32]int64
}

func readGroup(t *testing.T, cl *kgo.Client) (groupView, error) {
	t.Helper()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	v := groupView{commits: map[int32]kadm.OffsetResponse{}, ends: map[int32]int64{}}
	if gs, err := adm.DescribeConsumerGroups(ctx, kModule); err == nil {
		for _, m := range gs[kModule].Members {
			v.members = append(v.members, m.ClientID)
		}
	}
	if gs, err := adm.DescribeGroups(ctx, kModule); err == nil {
		for _, m := range gs[kModule].Members {
			v.members = append(v.members, m.ClientID)
		}
	}
	slices.Sort(v.members)
	os, err := adm.FetchOffsets(ctx, kModule)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return v, nil // no group: no offsets
	}
	if err != nil {
		return v, err
	}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == kTopic && o.Err == nil {
			v.commits[o.Partition] = o
		}
	})
	ends, err := adm.ListEndOffsets(ctx, kTopic)
	if err != nil {
		return v, err
	}
	ends.Each(func(o kadm.ListedOffset) { v.ends[o.Partition] = o.Offset })
	return v, nil
}

// waitGroupAtEnd waits until the module's group has, for every partition, a
// committed offset at the log end, as an independent reader sees it.
func (r *kafkaRig) waitGroupAtEnd(t *testing.T) groupView {
	t.Helper()
	var v groupView
	testwait.Eventually(t, 20*time.Second, "the group's offsets at the log end", func() bool {
		var err error
		if v, err = readGroup(t, r.cl); err != nil || len(v.ends) != kPartitions {
			return false
		}
		for p, end := range v.ends {
			if c, ok := v.commits[p]; !ok || c.At != end {
				return false
			}
		}
		return true
	})
	return v
}

// trackSink is the backend: it fails a share of requests (failShare) and
// records every successful delivery with the process that made it (the first
// path segment, /NAME/...) and when it arrived.
type trackSink struct {
	delay     time.Duration
	failShare float64
	mu        sync.Mutex
	rng       *rand.Rand
	got       []trackDelivery
	seen      map[string]bool
}

type trackDelivery struct {
	key      string
	seq      int
	instance string
	at       time.Time
}

func (s *trackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	var v struct {
		Key string `msgpack:"key"`
		Seq int    `msgpack:"seq"`
	}
	if err := msgpack.NewDecoder(r.Body).Decode(&v); err != nil || r.URL.Query().Get("key") != v.Key {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	instance, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.Float64() < s.failShare {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[v.Key+"/"+strconv.Itoa(v.Seq)] = true
	s.got = append(s.got, trackDelivery{key: v.Key, seq: v.Seq, instance: instance, at: at})
	w.WriteHeader(http.StatusOK)
}

func (s *trackSink) snapshot() []trackDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]trackDelivery(nil), s.got...)
}

func (s *trackSink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *trackSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// metric returns the value of the series line starting with name{labels} on
// the process's /metrics, -1 when absent.
func metric(t *testing.T, statusURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(statusURL, "/status") + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestKafkaFleetSurvivesSIGKILL: two processes share the module through its
// Kafka group while the backend fails a share of the requests; one gets
// SIGKILL mid-stream and is not restarted: the other takes every partition
// and pushes every record, each key in order, duplicates bounded by what the
// dead process did after its last commit. Kafka's tools see the group: its
// member (named by its instance id) and its offsets at the log end.
func TestKafkaFleetSurvivesSIGKILL(t *testing.T) {
	r := newKafkaRig(t)
	r.be.failShare = 0.2
	cfgA := r.config(t, "a", nil)
	if out, err := runCmd(testproc.Build(t, "."), "-t", "-f", cfgA); err != nil || !strings.Contains(out, "is valid") {
		t.Fatalf("-t of a file with offset_store kafka and no zk_hosts: %v\n%s", err, out)
	}
	a := startProc(t, "a", cfgA, filepath.Join(r.dir, "log-a"))
	b := r.start(t, "b", nil)
	bStatus := statusURL(t, r.dir, "b")
	testwait.Eventually(t, 30*time.Second, "both processes own two partitions", func() bool {
		return len(ownedOf(t, bStatus)) == 2 && len(ownedOf(t, statusURL(t, r.dir, "a"))) == 2
	})
	r.produce(t, 1200)
	testwait.Eventually(t, 30*time.Second, "pushing", func() bool { return r.be.count() >= 300 })
	a.Kill()
	atKill := r.be.count()
	r.produce(t, 800)
	if atKill >= 1200 {
		t.Fatalf("the kill came after the first records were all delivered (%d): not mid-stream", atKill)
	}
	testwait.Eventually(t, 30*time.Second, "b owns every partition", func() bool { return len(ownedOf(t, bStatus)) == kPartitions })
	dups := r.waitDelivered(t, b)
	t.Logf("SIGKILL after %d of %d deliveries; records %d, duplicates %d", atKill, r.total(), r.total(), dups)
	// A crash re-pushes at most what was done after the last commit: bounded
	// by the window of every partition the dead process owned.
	if bound := 2 * kWindow; dups > bound {
		t.Errorf("got %d duplicate deliveries, want at most %d", dups, bound)
	}
	g := r.waitGroupAtEnd(t)
	if fmt.Sprint(g.members) != "[b]" {
		t.Errorf("group members as Kafka's tools see them: %v, want one, client id b (its instance_id)", g.members)
	}
	for p, c := range g.commits {
		if m, err := commitmeta.Decode(c.Metadata); err != nil || (m.Instance != "a" && m.Instance != "b") {
			t.Errorf("partition %d: commit metadata %q (%v), want an instance's", p, c.Metadata, err)
		}
		t.Logf("independent reader: partition %d committed %d of log end %d, metadata %s", p, c.At, g.ends[p], c.Metadata)
	}
	st, err := getStatus(bStatus)
	if err != nil || st.OffsetStore != "kafka" || st.Session != "" {
		t.Errorf("/status of b: offset_store %q, zookeeper_session %q (%v); want kafka and none", st.OffsetStore, st.Session, err)
	}
	stopAll(t, b)
}

// TestKafkaFrozenProcessFenced freezes one of two processes with SIGSTOP
// while records flow, past its group session timeout: the other takes its
// partitions and pushes them. When the frozen process resumes, it pushes
// nothing and commits nothing until the coordinator gives it partitions
// again; no committed offset ever moves backwards; no record is lost.
func TestKafkaFrozenProcessFenced(t *testing.T) {
	r := newKafkaRig(t)
	a := r.start(t, "a", nil)
	b := r.start(t, "b", nil)
	aStatus, bStatus := statusURL(t, r.dir, "a"), statusURL(t, r.dir, "b")
	testproc.Until(t, 30*time.Second, func() error {
		if len(ownedOf(t, bStatus)) == 2 && len(ownedOf(t, aStatus)) == 2 {
			return nil
		}
		sa, _ := getStatus(aStatus)
		sb, _ := getStatus(bStatus)
		return fmt.Errorf("not spread: a %+v\nb %+v", sa.Modules, sb.Modules)
	}, a, b)
	stop := make(chan struct{})
	flowing := r.flow(t, 400, stop)
	testwait.Eventually(t, 20*time.Second, "pushing", func() bool { return r.be.count() >= 400 })
	watch := watchOffsets(t, r.cl)

	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	testwait.Eventually(t, 30*time.Second, "b owns every partition", func() bool { return len(ownedOf(t, bStatus)) == kPartitions })
	t.Logf("b took over %v after the SIGSTOP", time.Since(frozenAt).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // b pushes a's partitions and commits them
	resumedAt := time.Now()
	if err := a.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 30*time.Second, "a owns two partitions again", func() bool { return len(ownedOf(t, aStatus)) == 2 })
	time.Sleep(2 * time.Second)
	close(stop)
	<-flowing

	dups := r.waitDelivered(t, a, b)
	obs := watch.stop()
	if code := a.Wait(0); code != -1 {
		t.Fatalf("a exited (code %d):\n%s", code, a.Logs())
	}

	// Once resumed, a fenced itself (its session had expired) and pushed
	// nothing until the coordinator assigned it partitions again.
	assignedAt, ok := firstLogAfter(t, a, "partitions assigned by the group coordinator", resumedAt)
	if !ok {
		t.Fatalf("a logged no assignment after it resumed:\n%s", a.Logs())
	}
	late := 0
	for _, d := range r.be.snapshot() {
		if d.instance == "a" && d.at.After(resumedAt) && d.at.Before(assignedAt) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("a pushed %d records after it resumed and before it was assigned partitions again (%v later)", late, assignedAt.Sub(resumedAt))
	}
	if n := metric(t, aStatus, `ktransfer_fenced_total{module="test_module_1"}`); n < 1 {
		t.Errorf("ktransfer_fenced_total of a: %v, want at least 1\n%s", n, a.Logs())
	}
	// No offset moved backwards, and no commit of a's first membership landed
	// after it resumed.
	for p, seq := range obs {
		for i := 1; i < len(seq); i++ {
			if seq[i].at < seq[i-1].at {
				t.Errorf("partition %d: committed offset moved back from %d to %d (commits %q then %q)", p, seq[i-1].at, seq[i].at, seq[i-1].meta, seq[i].meta)
			}
		}
		for _, o := range seq {
			m, err := commitmeta.Decode(o.meta)
			if err == nil && m.Instance == "a" && o.seen.After(resumedAt) && m.Time.Before(assignedAt) && m.Time.After(frozenAt) {
				t.Errorf("partition %d: a commit of a from its lost membership landed after it resumed: %q (offset %d, seen %s; resumed %s assigned %s)", p, o.meta, o.at, o.seen.Format("05.000"), resumedAt.Format("05.000"), assignedAt.Format("05.000"))
			}
		}
	}
	t.Logf("SIGSTOP for %v (group session 3s): %d records, %d duplicate deliveries, a assigned again %v after SIGCONT, %d offset observations",
		resumedAt.Sub(frozenAt).Round(time.Millisecond), r.total(), dups, assignedAt.Sub(resumedAt).Round(time.Millisecond), countObs(obs))
	stopAll(t, a, b)
}

// offsetObs is one reading of a partition's committed offset.
type offsetObs struct {
	at   int64
	meta string
	seen time.Time
}

type offsetWatch struct {
	done chan struct{}
	out  chan map[int32][]offsetObs
}

// watchOffsets reads the module's group offsets every 20 ms until stop,
// keeping every change.
func watchOffsets(t *testing.T, cl *kgo.Client) *offsetWatch {
	w := &offsetWatch{done: make(chan struct{}), out: make(chan map[int32][]offsetObs, 1)}
	adm := kadm.NewClient(cl)
	go func() {
		obs := map[int32][]offsetObs{}
		for {
			select {
			case <-w.done:
				w.out <- obs
				return
			case <-time.After(20 * time.Millisecond):
			}
			os, err := adm.FetchOffsets(context.Background(), kModule)
			if err != nil {
				continue
			}
			now := time.Now()
			os.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil || o.Topic != kTopic {
					return
				}
				seq := obs[o.Partition]
				if n := len(seq); n > 0 && seq[n-1].at == o.At && seq[n-1].meta == o.Metadata {
					return
				}
				obs[o.Partition] = append(seq, offsetObs{at: o.At, meta: o.Metadata, seen: now})
			})
		}
	}()
	return w
}

func (w *offsetWatch) stop() map[int32][]offsetObs {
	close(w.done)
	return <-w.out
}

func countObs(obs map[int32][]offsetObs) int {
	n := 0
	for _, s := range obs {
		n += len(s)
	}
	return n
}

// firstLogAfter returns the time of the first JSON log line of p with message
// msg logged after t0.
func firstLogAfter(t *testing.T, p *testproc.Proc, msg string, t0 time.Time) (time.Time, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != msg {
			continue
		}
		if line.Time.After(t0) {
			return line.Time, true
		}
	}
	return time.Time{}, false
}

func runCmd(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

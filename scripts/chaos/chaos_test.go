package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

var duration = flag.Duration("duration", 0, "length of the load phase of each variant of TestChaos; 0 runs the short form (one round of faults, about 75 s of load)")

const (
	chaosTopic  = "chaos"
	chaosModule = "chaos"
	chroot      = "/chaos"
	partitions  = 8
	windowSize  = 100
	transfers   = 3
	// zkPassword is the module's ZooKeeper digest credential: the run keeps
	// ACLs on, so credentials must survive every reconnect.
	zkPassword = "chaos-secret"
	// monitorPoll is kmonitor's poll_interval_ms.
	monitorPoll = time.Second
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testproc.Main(m))
}

// store is where a variant of the run keeps the module's offsets and shares its
// partitions: ktransfer's offset_store and kmonitor's offset_source.
type store string

const (
	// storeZooKeeper is the original layout in ZooKeeper, with the module's
	// ZooKeeper ACL on; its faults include a ZooKeeper restart.
	storeZooKeeper store = "zookeeper"
	// storeKafka makes the module a Kafka consumer group; no ZooKeeper
	// process runs at all.
	storeKafka store = "kafka"
)

// TestChaos runs the whole pipeline under a schedule of faults and proves that
// nothing acknowledged was lost (see the package comment), once per offset
// store: TestChaos/zookeeper, TestChaos/kafka.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes minutes")
	}
	for _, st := range []store{storeZooKeeper, storeKafka} {
		t.Run(string(st), func(t *testing.T) { runChaos(t, st) })
	}
}

// runChaos is one variant of the run, with the module's offsets in st.
func runChaos(t *testing.T, st store) {
	s := startSystem(t, st)

	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	ld := newLoad(s.kproxyURL, 8, 32, 200)
	loadDone := make(chan struct{})
	loadStart := time.Now()
	go func() {
		defer close(loadDone)
		ld.run(ctx)
	}()

	faults := s.runSchedule(t, loadStart, *duration, ld, loadDone)
	stopLoad()
	<-loadDone
	loadEnd := time.Now()

	r := s.drain(t, ld)
	r.store = st
	r.start = loadStart
	r.loadTime = loadEnd.Sub(loadStart)
	r.faults = faults
	r.wantFaults = len(s.schedule(t, ld))
	r.report(os.Stdout)
	r.check(t)
	if st == storeZooKeeper {
		s.checkACL(t)
	}
}

// checkACL proves that a ZooKeeper client without the module's credential can
// read its offsets but not move them.
func (s *system) checkACL(t *testing.T) {
	t.Helper()
	conn := s.zk.Conn(t)
	p := zkconsumers.New(chroot).Offset(chaosModule, chaosTopic, 0)
	if _, _, err := conn.Get(p); err != nil {
		t.Errorf("read %s without credentials: %v", p, err)
	}
	if _, err := conn.Set(p, zkconsumers.EncodeOffset(0), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("set %s without credentials: got %v, want %v", p, err, zk.ErrNoAuth)
	}
}

// system is every process of the pipeline plus the backend, with what it takes
// to stop and start each again.
type system struct {
	dir   string
	store store

	zk *testcluster.ZooKeeper // nil with storeKafka

	brokerBin, brokerAddr, brokerData string
	broker                            *testproc.Proc

	kproxyURL string
	kproxy    *testproc.Proc

	transferBin string
	transferCfg [transfers]string
	transferOps [transfers]string
	transfer    [transfers]*testproc.Proc

	kmonitorURL string
	kmonitor    *testproc.Proc

	be *backend

	probe *probe
}

// startSystem starts every process of the variant with the module's offsets in
// st; with storeKafka no ZooKeeper process is started.
func startSystem(t *testing.T, st store) *system {
	t.Helper()
	s := &system{dir: t.TempDir(), store: st}
	bins := map[string]string{}
	for _, pkg := range []string{"kproxy", "ktransfer", "kmonitor", "scripts/devbroker"} {
		bins[pkg] = testproc.Build(t, "../../"+pkg)
	}
	if st == storeZooKeeper {
		s.zk = testcluster.StartZooKeeper(t)
	}

	s.brokerBin = bins["scripts/devbroker"]
	s.brokerAddr = fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))
	s.brokerData = filepath.Join(s.dir, "kafka")
	s.startBroker(t)
	s.probe = s.newProbe(t)

	var err error
	s.be, err = newBackend(backendFaults{
		fail: 0.05, drop: 0.02, stall: 0.01, slow: 0.02,
		stallFor: 1500 * time.Millisecond, slowFor: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.be.close)

	kproxyPort := testproc.FreePort(t)
	s.kproxyURL = fmt.Sprintf("http://127.0.0.1:%d", kproxyPort)
	cfg := s.write(t, "kproxy.yaml", fmt.Sprintf(`log_dir: %s
log_level: 4
port: %d
listen_address: 127.0.0.1
broker_hosts:
  - %s
produce_timeout_ms: 5000
`, s.logDir("kproxy"), kproxyPort, s.brokerAddr))
	s.kproxy = testproc.StartWith(t, testproc.Options{Name: "kproxy"}, bins["kproxy"], "-f", cfg)
	waitReady(t, s.kproxy, s.kproxyURL+"/readyz")

	modDir := filepath.Join(s.dir, "modules")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.write(t, "modules/"+chaosModule+".yaml", fmt.Sprintf(`topic: %s
protocol:
  name: http
  uri: /chaos?key={#KEY}&p={#PARTITION}&o={#TRANSID}
  read_timeout_ms: 1000
  write_timeout_ms: 1000
  conn_timeout_ms: 500
worker_num: 16
window_size: %d
max_retry_times: -1
fail_retry_interval_ms: 100
fail_retry_backoff_max_ms: 1000
backend_servers:
  - %s
commit_interval_ms: 500
server_cooldown_ms: 1000
`, chaosTopic, windowSize, s.be.addr))
	s.transferBin = bins["ktransfer"]
	for i := range transfers {
		s.transferOps[i] = fmt.Sprintf("http://127.0.0.1:%d", testproc.FreePort(t))
		s.transferCfg[i] = s.write(t, fmt.Sprintf("ktransfer%d.yaml", i), fmt.Sprintf(`log_dir: %s
log_level: 4
%smodule_conf_dir: %s
module_enabled:
  - %s
broker_hosts:
  - %s
ops_listen: %s
instance_id: ktransfer%d
shutdown_timeout: 10s
`, s.logDir(fmt.Sprintf("ktransfer%d", i)), s.transferStoreKeys(), modDir, chaosModule, s.brokerAddr,
			strings.TrimPrefix(s.transferOps[i], "http://"), i))
		s.startTransfer(t, i)
	}

	kmonPort := testproc.FreePort(t)
	s.kmonitorURL = fmt.Sprintf("http://127.0.0.1:%d", kmonPort)
	cfg = s.write(t, "kmonitor.yaml", fmt.Sprintf(`base:
  log_dir: %s
  log_level: 4
  clusters:
    - chaos
  poll_interval_ms: %d
http_server:
  port: %d
  listen_address: 127.0.0.1
chaos:
%s  broker_hosts:
    - %s
`, s.logDir("kmonitor"), monitorPoll.Milliseconds(), kmonPort, s.monitorStoreKeys(), s.brokerAddr))
	s.kmonitor = testproc.StartWith(t, testproc.Options{Name: "kmonitor"}, bins["kmonitor"], "-f", cfg)
	waitReady(t, s.kmonitor, s.kmonitorURL+"/readyz")
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs(t)
		}
	})
	return s
}

// sessionTimeout is how long a silent ktransfer process keeps its partitions:
// zk_timeout_ms or group_session_timeout_ms.
const sessionTimeout = 4 * time.Second

// transferStoreKeys are the lines of ktransfer's main file that choose its
// offset store. With ZooKeeper the module's nodes carry its ACL (zk_auth), so
// the credential must survive every reconnect; with Kafka, no zk_hosts at all.
func (s *system) transferStoreKeys() string {
	if s.store == storeKafka {
		return fmt.Sprintf("offset_store: kafka\ngroup_session_timeout_ms: %d\n", sessionTimeout.Milliseconds())
	}
	return fmt.Sprintf(`zk_chroot: %s
zk_timeout_ms: %d
zk_fail_retry_interval_ms: 200
zk_hosts:
  - %s
zk_auth:
  user: chaos
  password: %s
`, chroot, sessionTimeout.Milliseconds(), s.zk.Addr, zkPassword)
}

// monitorStoreKeys are the lines of kmonitor's cluster section that choose its
// offset source.
func (s *system) monitorStoreKeys() string {
	if s.store == storeKafka {
		return "  offset_source: kafka\n"
	}
	return fmt.Sprintf(`  chroot: %s
  zk_session_timeout_ms: %d
  zk_hosts:
    - %s
`, chroot, sessionTimeout.Milliseconds(), s.zk.Addr)
}

func (s *system) write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (s *system) logDir(name string) string { return filepath.Join(s.dir, "log", name) }

// startBroker starts the dev broker on its data dir. It does not create topics
// a client asks for: the topic comes back after its deletion only when the
// recreation fault creates it (kproxy asks for auto-creation by default, and
// any metadata request in the moment between the deletion and the creation
// would otherwise create it first).
func (s *system) startBroker(t *testing.T) {
	t.Helper()
	s.broker = testproc.StartWith(t, testproc.Options{Name: "devbroker"}, s.brokerBin, "-listen", s.brokerAddr, "-data-dir", s.brokerData,
		"-topics", chaosTopic, "-partitions", fmt.Sprint(partitions), "-auto-create=false")
	s.broker.Announced(t, testcluster.DevBrokerAnnounce, 30*time.Second)
}

func (s *system) startTransfer(t *testing.T, i int) {
	t.Helper()
	s.transfer[i] = testproc.StartWith(t, testproc.Options{Name: fmt.Sprintf("ktransfer%d", i)}, s.transferBin, "-f", s.transferCfg[i])
	waitReady(t, s.transfer[i], s.transferOps[i]+"/healthz")
}

// waitReady polls url until it answers 200, for at most 30 s, while p runs.
func waitReady(t *testing.T, p *testproc.Proc, url string) {
	t.Helper()
	testproc.Await(t, 30*time.Second, url+" 200", func() bool {
		code, _ := get(url)
		return code == http.StatusOK
	}, p)
}

func get(url string) (int, []byte) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// dumpLogs prints the end of every daemon's log, for a failed run.
func (s *system) dumpLogs(t *testing.T) {
	logs := map[string]string{"kproxy": "kproxy.log", "kmonitor": "kmonitor.log"}
	for i := range transfers {
		logs[fmt.Sprintf("ktransfer%d", i)] = "ktransfer.log"
	}
	for name, file := range logs {
		b, _ := os.ReadFile(filepath.Join(s.logDir(name), file))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("---- %s (last %d lines)\n%s", name, min(len(lines), 40), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	t.Logf("---- devbroker\n%s", tail(s.broker.Output(), 20))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// faultRecord is one injected fault: when it began and when the system was
// whole again (for a SIGKILL that is the kill itself: the fleet must recover
// without the process; for a topic recreation, the topic's creation).
type faultRecord struct {
	name     string
	kind     string // name without the instance: the row of the per-type table
	injected time.Time
	repaired time.Time
	// outage is true for a fault during which nothing can be delivered.
	// monitorLag is the module's total lag in kmonitor's /delay just before
	// the repair (-1: unreadable); for a topic recreation, the highest seen
	// while a committed offset stood above the new log end.
	outage     bool
	monitorLag int64
	recreated  *recreation // the topic recreation's own findings
}

// fault is one step of a round of faults.
type fault struct {
	wait   time.Duration // the pause before it
	inject func(round int) faultRecord
}

// schedule is a round of faults of the variant: SIGKILL of a ktransfer
// process (another each round), a dev broker restart, a ZooKeeper restart (not
// with storeKafka: no ZooKeeper runs), the topic recreated, a backend outage.
func (s *system) schedule(t *testing.T, ld *load) []fault {
	t.Helper()
	const gap = 10 * time.Second // between faults, so each recovery is seen on its own
	out := []fault{
		{gap, func(round int) faultRecord {
			i := round % transfers
			f := faultRecord{name: fmt.Sprintf("SIGKILL ktransfer%d", i), kind: "SIGKILL ktransfer", injected: time.Now()}
			s.transfer[i].Kill()
			f.repaired = f.injected
			time.Sleep(5 * time.Second)
			f.monitorLag = s.monitorLag()
			s.startTransfer(t, i)
			return f
		}},
		{gap, func(int) faultRecord {
			if err := s.broker.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := s.broker.Wait(30 * time.Second); code != 0 {
				t.Fatalf("dev broker: exit code %d after SIGTERM\n%s", code, s.broker.Output())
			}
			f := faultRecord{name: "dev broker restart", kind: "dev broker restart", injected: time.Now()}
			time.Sleep(2 * time.Second)
			f.monitorLag = s.monitorLag()
			s.startBroker(t)
			f.repaired = time.Now()
			return f
		}},
	}
	if s.store == storeZooKeeper {
		out = append(out, fault{gap, func(int) faultRecord {
			f := faultRecord{name: "ZooKeeper restart", kind: "ZooKeeper restart", injected: time.Now()}
			s.zk.Stop()
			time.Sleep(3 * time.Second)
			f.monitorLag = s.monitorLag()
			s.zk.Start(t)
			f.repaired = time.Now()
			return f
		}})
	}
	return append(out,
		// The topic recreation first waits until the pipeline has caught up,
		// which sees the previous fault's recovery through.
		fault{gap / 2, func(int) faultRecord { return s.recreateTopic(t, ld) }},
		fault{gap, func(int) faultRecord {
			f := faultRecord{name: "backend outage 5 s", kind: "backend outage 5 s", injected: time.Now(), outage: true}
			s.be.down()
			time.Sleep(5 * time.Second)
			f.monitorLag = s.monitorLag()
			if err := s.be.up(); err != nil {
				t.Fatal(err)
			}
			f.repaired = time.Now()
			return f
		}},
	)
}

// runSchedule injects the schedule's faults in rounds until the load phase of
// length d has passed (d = 0: one round, then 10 s of load). It runs on the
// test goroutine because starting processes may fail the test.
func (s *system) runSchedule(t *testing.T, start time.Time, d time.Duration, ld *load, loadDone <-chan struct{}) []faultRecord {
	t.Helper()
	const tail = 10 * time.Second // of load after the last fault of a short run
	steps := s.schedule(t, ld)
	var out []faultRecord
	// A topic recreation's watch goes on while the schedule moves on; it
	// ends before the next fault and before the run's checks.
	joinWatch := func() {
		if n := len(out); n > 0 && out[n-1].recreated != nil {
			out[n-1].monitorLag = out[n-1].recreated.wait()
		}
	}
	for round := 0; ; round++ {
		for _, step := range steps {
			if d > 0 && time.Since(start)+step.wait+20*time.Second > d {
				time.Sleep(max(0, d-time.Since(start)))
				joinWatch()
				return out
			}
			time.Sleep(step.wait)
			joinWatch()
			select {
			case <-loadDone:
				t.Fatal("the load generator stopped early")
			default:
			}
			f := step.inject(round)
			t.Logf("%6.1fs %s (down %.1fs)", f.injected.Sub(start).Seconds(), f.name, f.repaired.Sub(f.injected).Seconds())
			out = append(out, f)
		}
		if d == 0 {
			time.Sleep(tail)
			joinWatch()
			return out
		}
	}
}

// monitorLag returns the module's total lag in kmonitor's /delay, -1 when it
// cannot be read.
func (s *system) monitorLag() int64 {
	delay, err := moduleDelay(s.kmonitorURL)
	if err != nil {
		return -1
	}
	var sum int64
	for _, lag := range delay {
		sum += lag
	}
	return sum
}

// moduleDelay reads the chaos module's partitions from kmonitor's /delay.
func moduleDelay(base string) (map[string]int64, error) {
	code, body := get(base + "/delay?cluster=chaos")
	if code != http.StatusOK {
		return nil, fmt.Errorf("kmonitor /delay: status %d", code)
	}
	var delay map[string]map[string]map[string]int64
	if err := json.Unmarshal(body, &delay); err != nil {
		return nil, fmt.Errorf("kmonitor /delay %s: %w", body, err)
	}
	return delay["chaos"][chaosModule], nil
}

// drain waits until the pipeline has caught up — every acknowledged record
// delivered, committed offsets at the log end, kmonitor at lag 0 and OK — or a
// deadline passes, and returns what it saw.
func (s *system) drain(t *testing.T, ld *load) *result {
	t.Helper()
	r := &result{}
	r.acks, r.attempts, r.failures = ld.snapshot()
	r.gen = ld.gen.Load()
	deadline := time.Now().Add(2 * time.Minute)
	drainStart := time.Now()
	for {
		r.deliveries, r.bad = s.be.snapshot()
		r.backend = backendCounts{s.be.requests.Load(), s.be.failed.Load(), s.be.dropped.Load(), s.be.stalled.Load(), s.be.slow.Load()}
		r.analyse()
		r.waiting = nil
		s.probe.offsets(r)
		r.readMonitor(s.kmonitorURL)
		r.waiting = append(r.waiting, r.pending()...)
		if len(r.waiting) == 0 {
			r.drainTime = time.Since(drainStart)
			return r
		}
		if time.Now().After(deadline) {
			r.drainTime = time.Since(drainStart)
			t.Errorf("the pipeline did not catch up within 2 minutes of the load's end:\n  %s", strings.Join(r.waiting[:min(len(r.waiting), 20)], "\n  "))
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readMonitor reads kmonitor's /lag and /delay rows of the chaos module.
func (r *result) readMonitor(base string) {
	r.monitor, r.delay = nil, nil
	rows, err := monitorRows(base)
	if err != nil {
		r.waiting = append(r.waiting, err.Error())
		return
	}
	r.monitor = map[int32]string{}
	for p, row := range rows {
		committed := "none"
		if row.Committed != nil {
			committed = fmt.Sprint(*row.Committed)
		}
		r.monitor[p] = fmt.Sprintf("lag %d committed %s status %s stale %t", row.Lag, committed, row.Status, row.Stale)
	}
	delay, err := moduleDelay(base)
	if err != nil {
		r.waiting = append(r.waiting, err.Error())
		return
	}
	r.delay = delay
}

// lagRow is a partition's row in kmonitor's /lag.
type lagRow struct {
	Module    string `json:"module"`
	Partition int32  `json:"partition"`
	Lag       int64  `json:"lag"`
	Committed *int64 `json:"committed"`
	LogEnd    *int64 `json:"log_end"`
	Stale     bool   `json:"stale"`
	Status    string `json:"status"`
}

// monitorRows reads the chaos module's rows of kmonitor's /lag, by partition.
func monitorRows(base string) (map[int32]lagRow, error) {
	code, body := get(base + "/lag")
	if code != http.StatusOK {
		return nil, fmt.Errorf("kmonitor /lag: status %d", code)
	}
	var rows []lagRow
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("kmonitor /lag: %w", err)
	}
	out := map[int32]lagRow{}
	for _, row := range rows {
		if row.Module == chaosModule {
			out[row.Partition] = row
		}
	}
	return out, nil
}

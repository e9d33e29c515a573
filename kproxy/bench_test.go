//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/httpapi"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

// The load every run applies.
const (
	benchTopic      = "bench"
	benchPartitions = 8
	benchConns      = 64
	benchBodySize   = 200
	benchKeys       = 1000
	benchWarmup     = 2 * time.Second
	defaultDuration = 10 * time.Second
)

// ceilingEnv switches the test binary into the HTTP ceiling server (see
// init); its value is the kproxy.yaml whose server settings to use.
const ceilingEnv = "BENCH_CEILING_CONFIG" // not KPROXY_*: kproxy's loader refuses unknown overrides

// ceilingAnnounce starts the line the ceiling server prints on stdout once it
// accepts connections, followed by the address.
const ceilingAnnounce = "ceiling listening on "

// startTimeout bounds the wait for a child process to serve; stopGrace is
// how long a child gets between SIGTERM and SIGKILL; requestTimeout bounds
// the benchmark's own single requests (the profile's extra to its length).
const (
	startTimeout   = 30 * time.Second
	stopGrace      = 10 * time.Second
	requestTimeout = 10 * time.Second
)

// init turns the test binary into the HTTP ceiling server (see runCeiling)
// when the benchmark re-executes it with ceilingEnv set, before any test
// machinery starts. Re-executing keeps the ceiling beside the benchmark
// without a second build, lets it read kproxy.yaml with kproxy's own loader,
// and makes the child's PID the server's own, so its RSS can be read (with
// `go run` it would be the go command's). It is an init function rather
// than TestMain because blackbox_test.go in this package has the TestMain.
func init() {
	if path := os.Getenv(ceilingEnv); path != "" {
		if err := runCeiling(path); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// report prints to standard output: go test cuts a benchmark's log after a
// few lines, and the table must be seen whole.
func report(format string, args ...any) {
	fmt.Printf(format, args...)
}

// benchDuration returns BENCH_DURATION, default defaultDuration.
func benchDuration(b *testing.B) time.Duration {
	s := os.Getenv("BENCH_DURATION")
	if s == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("BENCH_DURATION=%q: want a positive duration such as 10s", s)
	}
	return d
}

// benchWorkload is the pre-built request mix: the i-th request of a run (counted
// over all workers) uses key "k"+i%benchKeys and a msgpack body naming that
// key, so consecutive requests go to varying partitions.
type benchWorkload struct {
	keys    [][]byte
	queries []string // "&key=kN", appended to the target URL
	bodies  [][]byte
}

func newBenchWorkload() (*benchWorkload, error) {
	wl := &benchWorkload{
		keys:    make([][]byte, benchKeys),
		queries: make([]string, benchKeys),
		bodies:  make([][]byte, benchKeys),
	}
	for i := range benchKeys {
		key := "k" + strconv.Itoa(i)
		body, err := loadgen.MsgpackBody(benchBodySize, key, uint64(i))
		if err != nil {
			return nil, fmt.Errorf("build body %d: %w", i, err)
		}
		wl.keys[i], wl.queries[i], wl.bodies[i] = []byte(key), "&key="+key, body
	}
	return wl, nil
}

// index returns the slot of request seq of worker: with every worker at the
// same pace, request seq of worker w is request seq*benchConns+w overall.
func (wl *benchWorkload) index(worker int, seq uint64) int {
	return int((seq*benchConns + uint64(worker)) % benchKeys)
}

// processCPU is the CPU time a process has used so far.
type processCPU struct {
	name string
	used time.Duration
}

// cpuTimes returns the CPU time used by the benchmark process and each child.
func (r *benchRig) cpuTimes(b *testing.B) []processCPU {
	b.Helper()
	out := make([]processCPU, 0, 1+len(r.children))
	self, err := loadgen.CPUTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	out = append(out, processCPU{"benchmark", self})
	for _, p := range r.children {
		used, err := loadgen.CPUTime(p.PID())
		if err != nil {
			// Most likely the process is gone: say so, with its output.
			select {
			case <-p.Exited():
			case <-time.After(time.Second):
			}
			p.MustRun(b)
			b.Fatalf("%s: %v", p.Name(), err)
		}
		out = append(out, processCPU{p.Name(), used})
	}
	return out
}

// benchRig is what the benchmark runs against: the broker, kproxy and the
// ceiling server as child processes, and a franz-go client of the broker
// for the direct baseline and the offset checks.
type benchRig struct {
	children              []*testproc.Proc // broker, kproxy, ceiling
	kproxy, ceiling       *testproc.Proc
	kproxyURL, ceilingURL string
	client                *kgo.Client
	admin                 *kadm.Client
}

// startBenchRig builds the binaries and starts every process, each stopped in
// b.Cleanup; it returns once all of them serve.
func startBenchRig(b *testing.B) *benchRig {
	b.Helper()
	r, cfgPath := startKproxyRig(b, "")
	self, err := os.Executable()
	if err != nil {
		b.Fatalf("find the test binary: %v", err)
	}
	r.ceiling = testproc.StartWith(b, testproc.Options{Name: "ceiling", Env: []string{ceilingEnv + "=" + cfgPath}, StopGrace: stopGrace}, self)
	r.ceilingURL = "http://" + r.ceiling.Announced(b, ceilingAnnounce, startTimeout)
	r.children = append(r.children, r.ceiling)

	// One request each before any load: both answer with the same shape.
	for _, base := range []string{r.kproxyURL, r.ceilingURL} {
		if err := commitOnce(base); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// startKproxyRig builds the binaries and starts the broker and kproxy, with
// extraYAML appended to the benchmark's kproxy.yaml, each stopped in
// b.Cleanup, and the direct client; it returns once kproxy is ready, with
// the configuration file of the run.
func startKproxyRig(b *testing.B, extraYAML string) (r *benchRig, cfgPath string) {
	b.Helper()
	dir := b.TempDir()
	brokerAddr, broker := testcluster.StartDevBroker(b,
		"-topics", benchTopic, "-partitions", strconv.Itoa(benchPartitions), "-log-level", "error")

	port := testproc.FreePort(b)
	cfgPath = filepath.Join(dir, "kproxy.yaml")
	if err := writeBenchConfig(cfgPath, port, brokerAddr, dir, extraYAML); err != nil {
		b.Fatal(err)
	}
	cfg, err := proxy.LoadConfig(cfgPath)
	if err != nil {
		b.Fatalf("the benchmark's kproxy.yaml: %v", err)
	}
	if extra := os.Getenv("BENCH_KPROXY_CONFIG"); extra != "" {
		// Keys to try, for kproxy alone: the no-op server keeps the file's.
		kpPath := filepath.Join(dir, "kproxy-extra.yaml")
		yaml, _ := os.ReadFile(cfgPath)
		if err := os.WriteFile(kpPath, append(yaml, "\n"+extra+"\n"...), 0o644); err != nil {
			b.Fatal(err)
		}
		cfgPath = kpPath
	}
	kproxyBin := os.Getenv("BENCH_KPROXY")
	if kproxyBin == "" {
		kproxyBin = testproc.Build(b, ".")
	}

	r = &benchRig{kproxyURL: "http://" + net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.Port))}
	r.kproxy = testproc.StartWith(b, testproc.Options{Name: "kproxy", LogFile: filepath.Join(cfg.Dir, "kproxy.log"), StopGrace: stopGrace}, kproxyBin, "-f", cfgPath)
	testproc.Await(b, startTimeout, "GET /readyz 200", func() bool {
		status, _, _ := fetch(r.kproxyURL+"/readyz", requestTimeout)
		return status == http.StatusOK
	}, r.kproxy)
	r.children = []*testproc.Proc{broker, r.kproxy}

	r.client, err = directClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.client.Close)
	r.admin = kadm.NewClient(r.client)
	return r, cfgPath
}

// writeBenchConfig writes the benchmark's kproxy.yaml: the keys and values
// of the original kproxy.yaml (testdata/original/kproxy.yaml) except for the
// addresses, log_dir and log_level, then the new keys the benchmark needs,
// then extra.
func writeBenchConfig(path string, port int, broker, logDir string, extra ...string) error {
	yaml := fmt.Sprintf(`# kproxy.yaml of BenchmarkLoad
log_dir: %q
log_level: 2
port: %d
read_timeout_ms: 100
write_timeout_ms: 100
req_pool_size: 10240
producer_num: 1
max_request_size_bytes: 10485760
broker_hosts:
 - %q

listen_address: 127.0.0.1
pprof: true
`, logDir, port, broker) + strings.Join(extra, "")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return fmt.Errorf("write kproxy.yaml: %w", err)
	}
	return nil
}

// directClient returns the franz-go client of the direct baseline, set up as
// kproxy sets up its acks=1 client: same connection options, partitioner,
// linger and compression (none, kproxy's default; franz-go's is snappy).
func directClient(cfg proxy.Config) (*kgo.Client, error) {
	opts, err := kafkaconn.Options(cfg.BrokerHosts, cfg.Kafka, nil)
	if err != nil {
		return nil, err
	}
	part, err := partition.Lookup(cfg.Partitioner)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.RecordPartitioner(partition.Kgo(part)),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(time.Duration(cfg.LingerMs)*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("create the direct client: %w", err)
	}
	return cl, nil
}

// topicRecords returns the sum of the end offsets of the topic's partitions.
func (r *benchRig) topicRecords(ctx context.Context) (int64, error) {
	offsets, err := r.admin.ListEndOffsets(ctx, benchTopic)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("list end offsets of %s: %w", benchTopic, err)
	}
	var n int64
	parts := 0
	offsets.Each(func(o kadm.ListedOffset) {
		n += o.Offset
		parts++
	})
	if parts != benchPartitions {
		return 0, fmt.Errorf("topic %s: got %d partitions, want %d", benchTopic, parts, benchPartitions)
	}
	return n, nil
}

// cpuProfile saves a CPU profile of kproxy over most of d as dir/name.
func (r *benchRig) cpuProfile(dir, name string, d time.Duration) error {
	seconds := max(1, int((d-500*time.Millisecond)/time.Second))
	url := r.kproxyURL + "/debug/pprof/profile?seconds=" + strconv.Itoa(seconds)
	status, body, err := fetch(url, time.Duration(seconds)*time.Second+requestTimeout)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d: %s", status, body)
	}
	if err != nil {
		return fmt.Errorf("CPU profile: GET %s: %w", url, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	return nil
}

// fetch GETs url within timeout and returns the status and body.
func fetch(url string, timeout time.Duration) (int, []byte, error) {
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// commitAnswer is the JSON of a successful /commit; the pointers tell a
// missing field from a zero.
type commitAnswer struct {
	Topic     *string `json:"topic"`
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
}

// commitOnce POSTs one record of the workload to base and checks the answer
// is a 200 with exactly kproxy's success fields.
func commitOnce(base string) error {
	body, err := loadgen.MsgpackBody(benchBodySize, "k0", 0)
	if err != nil {
		return err
	}
	url := base + "/commit?topic=" + benchTopic + "&acks=1&key=k0"
	resp, err := (&http.Client{Timeout: requestTimeout}).Post(url, "application/x-msgpack", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("POST %s: read answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: got status %d (%s), want 200", url, resp.StatusCode, raw)
	}
	var a commitAnswer
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return fmt.Errorf("POST %s: answer %s: %w", url, raw, err)
	}
	if a.Topic == nil || a.Partition == nil || a.Offset == nil || *a.Topic != benchTopic {
		return fmt.Errorf(`POST %s: got answer %s, want {"topic":%q,"partition":P,"offset":O}`, url, raw, benchTopic)
	}
	return nil
}

// peakRSS returns the peak RSS of p, failing the benchmark when it cannot
// be read.
func peakRSS(b *testing.B, p *testproc.Proc) int64 {
	b.Helper()
	rss, err := loadgen.PeakRSS(p.PID())
	if err != nil {
		b.Fatalf("peak RSS of %s: %v", p.Name(), err)
	}
	return rss
}

// renderTargets renders the targets as aligned lines ending in PASS or MISS.
func renderTargets(ts []benchTarget) string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	for _, t := range ts {
		verdict := "MISS"
		if t.met {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.name, t.want, t.got, verdict)
	}
	w.Flush()
	return sb.String()
}

// runCeiling is the HTTP ceiling: a net/http server configured as kproxy
// configures its own (httpapi.HTTPServer) from the kproxy.yaml at cfgPath, whose /commit reads
// the body and answers kproxy's success JSON without going near Kafka. It
// listens on a free loopback port, prints ceilingAnnounce and the address,
// and serves until SIGTERM or SIGINT.
func runCeiling(cfgPath string) error {
	cfg, err := proxy.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := httpapi.HTTPServer(cfg, ceilingHandler())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("%s%s\n", ceilingAnnounce, ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// ceilingHandler serves POST /commit by reading the body and answering
// {"topic":T,"partition":0,"offset":O} with O counting up.
func ceilingHandler() http.Handler {
	var offset atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /commit", func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength <= 0 {
			http.Error(w, "want a body with Content-Length", http.StatusBadRequest)
			return
		}
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		answer := fmt.Appendf(nil, `{"topic":%q,"partition":0,"offset":%d}`+"\n", r.URL.Query().Get("topic"), offset.Add(1)-1)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = w.Write(answer)
	})
	return mux
}

func TestBenchConfigLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kproxy.yaml")
	if err := writeBenchConfig(path, 15030, "127.0.0.1:19092", "/tmp/kproxy-logs"); err != nil {
		t.Fatal(err)
	}
	cfg, err := proxy.LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	want := proxy.Defaults()
	want.Port, want.BrokerHosts, want.Dir, want.Level = 15030, []string{"127.0.0.1:19092"}, "/tmp/kproxy-logs", 2
	want.ReadTimeoutMs, want.WriteTimeoutMs, want.MaxRequestSizeBytes = 100, 100, 10<<20
	want.ListenAddress, want.Pprof = "127.0.0.1", true
	if got, want := fmt.Sprintf("%+v", cfg), fmt.Sprintf("%+v", want); got != want {
		t.Errorf("got config\n%s\nwant\n%s", got, want)
	}
}

func TestCeilingAnswersLikeKproxy(t *testing.T) {
	srv := httptest.NewServer(ceilingHandler())
	t.Cleanup(srv.Close)
	for i := range 2 {
		if err := commitOnce(srv.URL); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	status, _, err := fetch(srv.URL+"/commit?topic="+benchTopic, requestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusMethodNotAllowed {
		t.Errorf("GET /commit: got status %d, want %d", status, http.StatusMethodNotAllowed)
	}
}

func TestWorkload(t *testing.T) {
	wl, err := newBenchWorkload()
	if err != nil {
		t.Fatal(err)
	}
	// Every run starts with all workers at seq 0: the first requests overall
	// must already spread over every key.
	rounds := uint64((benchKeys + benchConns - 1) / benchConns)
	seen := map[int]bool{}
	for seq := range rounds {
		for w := range benchConns {
			seen[wl.index(w, seq)] = true
		}
	}
	if len(seen) != benchKeys {
		t.Errorf("first %d rounds use %d keys, want %d", rounds, len(seen), benchKeys)
	}
	for i := range benchKeys {
		key := "k" + strconv.Itoa(i)
		if got := string(wl.keys[i]); got != key {
			t.Fatalf("key %d: got %q, want %q", i, got, key)
		}
		if got, want := wl.queries[i], "&key="+key; got != want {
			t.Fatalf("query %d: got %q, want %q", i, got, want)
		}
		if got := len(wl.bodies[i]); got != benchBodySize {
			t.Fatalf("body %d: got %d bytes, want %d", i, got, benchBodySize)
		}
		if err := envelope.Validate(wl.bodies[i]); err != nil {
			t.Fatalf("body %d: got %v, want a well-formed msgpack value", i, err)
		}
	}
}

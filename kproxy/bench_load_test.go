//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
)

// Settings of BenchmarkLoad beyond the load every run applies.
const (
	batchRecords  = 100 // records of a /batch request
	batchBodies   = 10  // different /batch bodies, used in turn
	defaultRounds = 2
	wrkThreads    = 2
)

// BenchmarkLoad is the kproxy load benchmark of `make bench`:
//
//	go test -run '^$' -bench BenchmarkLoad -benchtime 1x -timeout 30m -v ./kproxy/
//
// It builds kproxy and scripts/devbroker and starts the broker (kfake, in
// memory, topic "bench" with 8 partitions), kproxy (from a kproxy.yaml of the
// original file's keys) and a no-op net/http server, each as its own process
// on loopback. Two load generators drive them in turn, each with 64
// keep-alive connections, 200-byte msgpack bodies and 1,000 keys: wrk (the
// Debian package; 2 threads, a Lua script with the requests made up front)
// and pkg/loadgen. Each generator runs, in rounds that alternate between
// them so that a change in the machine's load touches every row alike:
//
//   - the no-op server: net/http with kproxy's settings answering /commit with
//     kproxy's success JSON without Kafka (runCeiling): the ceiling;
//   - kproxy POST /commit at acks=1 and acks=-1;
//   - kproxy POST /batch of 100 records (acks=1);
//   - the direct client: 64 goroutines calling franz-go ProduceSync (acks=1)
//     in the benchmark process, the same in both tables.
//
// For each it prints req/s, records/s, p50 and p99 of the successful
// requests, the CPU time each process (kproxy, the broker, the no-op server,
// the direct client's process) spent per request, read from /proc/PID/stat,
// kproxy's peak RSS, and the ratios to the no-op server measured in the same
// run (of CPU: kproxy's per record against the no-op server's per request); then the targets, PASS or MISS (reported, never failed). Losing an
// acknowledged record fails the benchmark: after each kproxy run the topic
// must have grown by at least the records kproxy answered 200 for.
//
// Environment:
//
//	BENCH_DURATION   measured time of each row per generator (default 10s),
//	                 split over the rounds; each row has a 2 s warm-up first
//	BENCH_ROUNDS     rounds (default 2)
//	BENCH_GENERATORS "wrk,loadgen" (default), or one of them
//	BENCH_PROFILE    directory: CPU and allocation profiles of kproxy taken
//	                 during the first wrk round at acks=1
//	BENCH_ROWS       rows to run, by the first word after "kproxy" or the
//	                 row's first word: "no-op,acks=1,acks=-1,/batch,direct"
//	                 (default all; the no-op server always runs)
//	BENCH_KPROXY     a kproxy binary to run instead of the one built, to
//	                 measure another version with the same harness
//	BENCH_KPROXY_CONFIG  lines appended to kproxy's configuration (not the
//	                 no-op server's), such as "linger_ms: 0"
func BenchmarkLoad(b *testing.B) {
	d := benchDuration(b)
	rounds := benchRounds(b)
	gens := benchGenerators(b)
	wl, err := newBenchWorkload()
	if err != nil {
		b.Fatal(err)
	}
	r := startBenchRig(b)
	scenarios, err := r.scenarios(wl)
	if err != nil {
		b.Fatal(err)
	}
	scenarios = pickRows(b, scenarios)
	report("BenchmarkLoad: %d connections (direct client: goroutines), %d-byte msgpack bodies, %d keys, /batch of %d; "+
		"%s per row and generator in %d rounds, each row warmed up for %s first\n",
		benchConns, benchBodySize, benchKeys, batchRecords, d, rounds, benchWarmup)

	stats := map[string]map[string]*rowStats{} // generator -> scenario -> stats
	for _, g := range gens {
		stats[g.name()] = map[string]*rowStats{}
	}
	per := d / time.Duration(rounds)
	for round := 1; round <= rounds; round++ {
		for _, g := range gens {
			for _, sc := range scenarios {
				st := stats[g.name()][sc.name]
				if st == nil {
					st = &rowStats{cpu: map[string]time.Duration{}}
					stats[g.name()][sc.name] = st
					if _, err := r.runOnce(b, g, sc, benchWarmup, nil); err != nil {
						b.Fatalf("%s %s warm-up: %v", g.name(), sc.name, err)
					}
				}
				profile := os.Getenv("BENCH_PROFILE") != "" && round == 1 && g.name() == "wrk" && sc.name == "kproxy /commit acks=1"
				res, err := r.runOnce(b, g, sc, per, func() error {
					if profile {
						return r.profiles(os.Getenv("BENCH_PROFILE"), per)
					}
					return nil
				})
				if err != nil {
					b.Fatalf("%s %s: %v", g.name(), sc.name, err)
				}
				st.add(res)
				report("%-8s round %d %-24s %s\n", g.name(), round, sc.name, res)
			}
		}
	}
	peak := peakRSS(b, r.kproxy)
	r.kproxy.MustRun(b)
	r.ceiling.MustRun(b)
	for _, g := range gens {
		rows := stats[g.name()]
		for _, sc := range scenarios {
			if sc.process == "kproxy" {
				rows[sc.name].rss = peak
			}
		}
		report("\n%s\n%s", g.title(), renderRows(scenarios, rows))
		report("\ntargets with %s (reported, not enforced):\n%s", g.name(), renderTargets(targets(rows, peak)))
		noop := rows[scenarios[0].name]
		if acks1 := rows["kproxy /commit acks=1"]; acks1 != nil {
			b.ReportMetric(acks1.rate()/noop.rate(), g.name()+"-acks1-vs-noop-req/s")
			b.ReportMetric(acks1.cpuPer("kproxy")/noop.cpuPer("ceiling"), g.name()+"-acks1-vs-noop-cpu")
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "kproxy-peak-RSS-MiB")
}

// pickRows returns the rows BENCH_ROWS asks for, the no-op server first.
func pickRows(b *testing.B, all []*scenario) []*scenario {
	s := os.Getenv("BENCH_ROWS")
	if s == "" {
		return all
	}
	out := all[:1:1]
	for _, sc := range all[1:] {
		words := strings.Fields(sc.name)
		key := words[0]
		if key == "kproxy" {
			key = words[len(words)-1]
			if words[1] == "/batch" {
				key = "/batch"
			}
		}
		for _, want := range strings.Split(s, ",") {
			if strings.TrimSpace(want) == key {
				out = append(out, sc)
			}
		}
	}
	if len(out) == 1 {
		b.Fatalf("BENCH_ROWS=%q names no row: use no-op,acks=1,acks=-1,/batch,direct", s)
	}
	return out
}

// benchRounds returns BENCH_ROUNDS, default defaultRounds.
func benchRounds(b *testing.B) int {
	s := os.Getenv("BENCH_ROUNDS")
	if s == "" {
		return defaultRounds
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("BENCH_ROUNDS=%q: want a positive number", s)
	}
	return n
}

// benchGenerators returns the generators BENCH_GENERATORS names.
func benchGenerators(b *testing.B) []generator {
	s := os.Getenv("BENCH_GENERATORS")
	if s == "" {
		s = "wrk,loadgen"
	}
	var out []generator
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "wrk":
			path, err := exec.LookPath("wrk")
			if err != nil {
				b.Fatal("wrk is not installed: run `make bench` (it installs it) or `apt-get install -y wrk`")
			}
			out = append(out, &wrkGenerator{path: path, dir: b.TempDir()})
		case "loadgen":
			out = append(out, loadgenGenerator{})
		default:
			b.Fatalf("BENCH_GENERATORS=%q: want wrk, loadgen or both, comma-separated", s)
		}
	}
	return out
}

// scenario is one row of the table: what is asked of whom.
type scenario struct {
	name    string
	process string // the serving child: "kproxy", "ceiling", or "" for the direct client
	url     string // base URL and path with the fixed query; "" for the direct client
	records int    // records per request
	queries []string
	bodies  [][]byte // request i uses queries[i] and bodies[i]
}

// scenarios returns the rows in table order; the first is the no-op server.
func (r *benchRig) scenarios(wl *benchWorkload) ([]*scenario, error) {
	batches := make([][]byte, batchBodies)
	for i := range batches {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		if err := enc.EncodeArrayLen(batchRecords); err != nil {
			return nil, err
		}
		for j := 0; j < batchRecords; j++ {
			k := (i*batchRecords + j) % benchKeys
			if err := enc.EncodeMapLen(2); err != nil {
				return nil, err
			}
			_ = enc.EncodeString("key")
			_ = enc.EncodeBytes(wl.keys[k])
			_ = enc.EncodeString("value")
			buf.Write(wl.bodies[k])
		}
		batches[i] = buf.Bytes()
	}
	commit := func(name, process, base, acks string) *scenario {
		return &scenario{name: name, process: process, url: base + "/commit?topic=" + benchTopic + "&acks=" + acks,
			records: 1, queries: wl.queries, bodies: wl.bodies}
	}
	return []*scenario{
		commit("no-op net/http server", "ceiling", r.ceilingURL, "1"),
		commit("kproxy /commit acks=1", "kproxy", r.kproxyURL, "1"),
		commit("kproxy /commit acks=-1", "kproxy", r.kproxyURL, "-1"),
		{name: fmt.Sprintf("kproxy /batch of %d", batchRecords), process: "kproxy",
			url: r.kproxyURL + "/batch?topic=" + benchTopic + "&acks=1", records: batchRecords,
			queries: make([]string, batchBodies), bodies: batches},
		{name: "direct franz-go client", records: 1},
	}, nil
}

// runOnce runs sc with g for d, with during alongside, and returns what it
// measured. For kproxy it checks that the topic grew by at least the records
// kproxy answered 200 for.
func (r *benchRig) runOnce(b *testing.B, g generator, sc *scenario, d time.Duration, during func() error) (runResult, error) {
	ctx := b.Context()
	var before int64
	var err error
	if sc.process == "kproxy" {
		if before, err = r.topicRecords(ctx); err != nil {
			return runResult{}, err
		}
	}
	errc := make(chan error, 1)
	go func() {
		if during == nil {
			errc <- nil
			return
		}
		errc <- during()
	}()
	cpu0 := r.cpuTimes(b)
	var res runResult
	if sc.process == "" {
		res, err = r.runDirect(ctx, d)
	} else {
		res, err = g.run(ctx, sc, d)
	}
	cpu1 := r.cpuTimes(b)
	if perr := <-errc; perr != nil {
		b.Errorf("%s %s: %v", g.name(), sc.name, perr)
	}
	if err != nil {
		return res, err
	}
	res.records = res.ok * int64(sc.records)
	res.cpu = map[string]time.Duration{}
	for i := range cpu1 {
		res.cpu[cpu1[i].name] = cpu1[i].used - cpu0[i].used
	}
	if res.ok == 0 {
		return res, fmt.Errorf("no request succeeded: %s", res)
	}
	if sc.process == "kproxy" {
		after, err := r.topicRecords(ctx)
		if err != nil {
			return res, err
		}
		if after-before < res.records {
			b.Fatalf("%s %s: the topic grew by %d records, kproxy acknowledged %d: acknowledged records were lost",
				g.name(), sc.name, after-before, res.records)
		}
	}
	return res, nil
}

// runDirect is the direct client's run: benchConns goroutines producing the
// workload's records with ProduceSync.
func (r *benchRig) runDirect(ctx context.Context, d time.Duration) (runResult, error) {
	wl, err := newBenchWorkload()
	if err != nil {
		return runResult{}, err
	}
	res, err := loadgen.RunFunc(ctx, benchConns, d, func(ctx context.Context, worker int, seq uint64) error {
		i := wl.index(worker, seq)
		return r.client.ProduceSync(ctx, &kgo.Record{Topic: benchTopic, Key: wl.keys[i], Value: wl.bodies[i]}).FirstErr()
	})
	return fromLoadgen(res, res.OK), err
}

// runResult is what one run measured.
type runResult struct {
	requests, ok, errors, records int64 // ok: answers 200 (calls without error for the direct client)
	d                             time.Duration
	lat                           *loadgen.Histogram // pkg/loadgen's latencies, nil for wrk
	p50, p99                      time.Duration
	cpu                           map[string]time.Duration // per process, over the run
}

func fromLoadgen(res loadgen.Result, ok int64) runResult {
	return runResult{requests: res.Requests, ok: ok, errors: res.Requests - ok, d: res.Duration,
		lat: res.Latency, p50: res.Quantile(0.5), p99: res.Quantile(0.99)}
}

func (r runResult) String() string {
	var cpu []string
	for _, name := range []string{"kproxy", "devbroker", "ceiling", "benchmark"} {
		if v, ok := r.cpu[name]; ok && r.ok > 0 {
			cpu = append(cpu, fmt.Sprintf("%s %.1fus", name, float64(v.Microseconds())/float64(r.ok)))
		}
	}
	return fmt.Sprintf("%8.0f req/s %9.0f records/s p50 %-8s p99 %-8s %d failed; CPU per request: %s",
		float64(r.ok)/r.d.Seconds(), float64(r.records)/r.d.Seconds(), r.p50.Round(10*time.Microsecond),
		r.p99.Round(10*time.Microsecond), r.errors, strings.Join(cpu, ", "))
}

// rowStats adds up a row's runs.
type rowStats struct {
	ok, records, failed int64
	d                   time.Duration
	lat                 *loadgen.Histogram
	p50s, p99s          []time.Duration
	cpu                 map[string]time.Duration
	rss                 int64
}

func (s *rowStats) add(r runResult) {
	s.ok += r.ok
	s.records += r.records
	s.failed += r.errors
	s.d += r.d
	if r.lat != nil {
		if s.lat == nil {
			s.lat = &loadgen.Histogram{}
		}
		s.lat.Merge(r.lat)
	}
	s.p50s, s.p99s = append(s.p50s, r.p50), append(s.p99s, r.p99)
	for k, v := range r.cpu {
		s.cpu[k] += v
	}
}

func (s *rowStats) rate() float64       { return float64(s.ok) / s.d.Seconds() }
func (s *rowStats) recordRate() float64 { return float64(s.records) / s.d.Seconds() }
func (s *rowStats) cpuPer(p string) float64 {
	if s.ok == 0 {
		return 0
	}
	return float64(s.cpu[p].Microseconds()) / float64(s.ok)
}

// quantiles returns p50 and p99: from the merged histogram, or, for wrk,
// which reports quantiles per run, the median p50 and the largest p99.
func (s *rowStats) quantiles() (p50, p99 time.Duration) {
	if s.lat != nil {
		return s.lat.Quantile(0.5), s.lat.Quantile(0.99)
	}
	p50s := append([]time.Duration(nil), s.p50s...)
	for i := range p50s {
		for j := i + 1; j < len(p50s); j++ {
			if p50s[j] < p50s[i] {
				p50s[i], p50s[j] = p50s[j], p50s[i]
			}
		}
	}
	for _, v := range s.p99s {
		p99 = max(p99, v)
	}
	return p50s[len(p50s)/2], p99
}

// renderRows renders the table of a generator's rows.
func renderRows(scenarios []*scenario, rows map[string]*rowStats) string {
	noop := rows[scenarios[0].name]
	width := 0
	for _, sc := range scenarios {
		width = max(width, len(sc.name))
	}
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, strings.Repeat(" ", width)+"\treq/s\trecords/s\tp50\tp99\tCPU/req kproxy\tbroker\tno-op\tclient\tRSS MiB\treq/s vs no-op\trecords/s vs no-op\tCPU/record vs no-op\t")
	us := func(v float64) string {
		if v < 0.05 {
			// Nothing, or what an idle process spends (health probes).
			return "-"
		}
		return fmt.Sprintf("%.1fus", v)
	}
	for _, sc := range scenarios {
		st := rows[sc.name]
		p50, p99 := st.quantiles()
		client := 0.0
		if sc.process == "" {
			client = st.cpuPer("benchmark")
		}
		rss, cpuRatio := "-", "-"
		if st.rss > 0 {
			rss = fmt.Sprintf("%.1f", float64(st.rss)/(1<<20))
		}
		if sc.process == "kproxy" {
			// Per record: a batch's CPU is for its records together.
			cpuRatio = fmt.Sprintf("%.3g", st.cpuPer("kproxy")/float64(sc.records)/noop.cpuPer("ceiling"))
		}
		fmt.Fprintf(w, "%-*s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t\n", width, sc.name, st.rate(), st.recordRate(),
			p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), us(st.cpuPer("kproxy")), us(st.cpuPer("devbroker")),
			us(st.cpuPer("ceiling")), us(client), rss, st.rate()/noop.rate(), st.recordRate()/noop.rate(), cpuRatio)
	}
	w.Flush()
	return sb.String()
}

// Targets of the load benchmark; a miss is reported, not failed.
const (
	targetCeilingRatio = 0.6  // kproxy acks=1 req/s against the no-op server
	targetCPURatio     = 1.35 // kproxy acks=1 CPU per request against the no-op server
	goalCPURatio       = 1.2
	targetBatchRatio   = 2.0 // records/s of /batch of 100 against the no-op server's req/s
	targetP99          = 25 * time.Millisecond
	targetRSS          = 100_000_000 // bytes (100 MB)
)

// benchTarget is one line of the targets report.
type benchTarget struct {
	name, want, got string
	met             bool
}

// targets returns the targets of one generator's rows (of those that ran).
func targets(rows map[string]*rowStats, peak int64) []benchTarget {
	noop := rows["no-op net/http server"]
	acks1, acksAll := rows["kproxy /commit acks=1"], rows["kproxy /commit acks=-1"]
	batch := rows[fmt.Sprintf("kproxy /batch of %d", batchRecords)]
	var out []benchTarget
	if acks1 != nil {
		cpu := acks1.cpuPer("kproxy") / noop.cpuPer("ceiling")
		ratio := acks1.rate() / noop.rate()
		out = append(out,
			benchTarget{"kproxy acks=1 CPU per request vs no-op", fmt.Sprintf("<= %.2f (goal %.1f)", targetCPURatio, goalCPURatio), fmt.Sprintf("%.2f", cpu), cpu <= targetCPURatio},
			benchTarget{"kproxy acks=1 req/s vs no-op", fmt.Sprintf(">= %.2f", targetCeilingRatio), fmt.Sprintf("%.2f", ratio), ratio >= targetCeilingRatio})
	}
	if batch != nil {
		batchRatio := batch.recordRate() / noop.rate()
		out = append(out, benchTarget{"kproxy /batch records/s vs no-op req/s", fmt.Sprintf(">= %.1f", targetBatchRatio), fmt.Sprintf("%.2f", batchRatio), batchRatio >= targetBatchRatio})
	}
	for _, row := range []struct {
		name string
		st   *rowStats
	}{{"kproxy acks=1 p99", acks1}, {"kproxy acks=-1 p99", acksAll}} {
		if row.st == nil {
			continue
		}
		_, p99 := row.st.quantiles()
		out = append(out, benchTarget{row.name, "< " + targetP99.String(), p99.Round(10 * time.Microsecond).String(), p99 < targetP99})
	}
	return append(out, benchTarget{"kproxy peak RSS", fmt.Sprintf("< %d MB", targetRSS/1_000_000),
		fmt.Sprintf("%.1f MB", float64(peak)/1e6), peak < targetRSS})
}

// profiles saves a CPU profile of kproxy over most of d, then an allocation
// profile, in dir.
func (r *benchRig) profiles(dir string, d time.Duration) error {
	if err := r.cpuProfile(dir, "kproxy-acks1.cpu.pprof", d); err != nil {
		return err
	}
	status, body, err := fetch(r.kproxyURL+"/debug/pprof/allocs", requestTimeout)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "kproxy-acks1.allocs.pprof"), body, 0o644)
}

// generator is a load generator for the HTTP rows.
type generator interface {
	name() string
	title() string
	run(ctx context.Context, sc *scenario, d time.Duration) (runResult, error)
}

// loadgenGenerator drives HTTP rows with pkg/loadgen.
type loadgenGenerator struct{}

func (loadgenGenerator) name() string { return "loadgen" }
func (loadgenGenerator) title() string {
	return fmt.Sprintf("with pkg/loadgen (%d connections, in the benchmark process):", benchConns)
}

func (loadgenGenerator) run(ctx context.Context, sc *scenario, d time.Duration) (runResult, error) {
	target := loadgen.HTTPTarget{
		URL:    sc.url,
		Header: http.Header{"Content-Type": {"application/x-msgpack"}},
		Body: func(worker int, seq uint64) (string, []byte) {
			i := int((seq*benchConns + uint64(worker)) % uint64(len(sc.bodies)))
			return sc.queries[i], sc.bodies[i]
		},
	}
	res, err := loadgen.RunHTTP(ctx, target, benchConns, d)
	return fromLoadgen(res, res.Status[http.StatusOK]), err
}

// wrkGenerator drives HTTP rows with wrk and a Lua script per row, written
// once into dir.
type wrkGenerator struct {
	path, dir string
	scripts   map[string]string
}

func (g *wrkGenerator) name() string { return "wrk" }
func (g *wrkGenerator) title() string {
	return fmt.Sprintf("with wrk (%d threads, %d connections, in its own process; the direct client as with loadgen):", wrkThreads, benchConns)
}

// wrkResult is the line the scripts' done function prints.
var wrkResult = regexp.MustCompile(`RESULT requests=(\d+) non2xx=(\d+) errors=(\d+) ok=(-?\d+) p50=(\d+) p99=(\d+) duration_us=(\d+)`)

func (g *wrkGenerator) run(ctx context.Context, sc *scenario, d time.Duration) (runResult, error) {
	script, err := g.script(sc)
	if err != nil {
		return runResult{}, err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, g.path, "-t", strconv.Itoa(wrkThreads), "-c", strconv.Itoa(benchConns),
		"-d", strconv.Itoa(secs)+"s", "-s", script, sc.url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return runResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := wrkResult.FindSubmatch(out)
	if m == nil {
		return runResult{}, fmt.Errorf("wrk printed no result line:\n%s", out)
	}
	n := make([]int64, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.ParseInt(string(m[i]), 10, 64)
	}
	res := runResult{requests: n[1] + n[3], errors: n[2] + n[3], ok: n[1] - n[2],
		p50: time.Duration(n[5]) * time.Microsecond, p99: time.Duration(n[6]) * time.Microsecond,
		d: time.Duration(n[7]) * time.Microsecond}
	if n[4] >= 0 {
		// The script counted answers 200 itself (a /batch may get 207).
		res.ok = n[4]
		res.errors = res.requests - res.ok
	}
	return res, nil
}

// script returns the Lua script of sc: the requests made up front, sent in
// turn from a random start on each connection's thread; a /batch script
// counts answers 200 (wrk counts every status below 400 as a success).
func (g *wrkGenerator) script(sc *scenario) (string, error) {
	if p, ok := g.scripts[sc.name]; ok {
		return p, nil
	}
	var sb strings.Builder
	sb.WriteString("local bodies = {\n")
	for _, body := range sc.bodies {
		sb.WriteString(luaString(body))
		sb.WriteString(",\n")
	}
	sb.WriteString("}\nlocal queries = {\n")
	for _, q := range sc.queries {
		sb.WriteString(luaString([]byte(q)))
		sb.WriteString(",\n")
	}
	countOK := sc.records > 1
	fmt.Fprintf(&sb, `}
local reqs = {}
local n = 0
local threads = {}
ok = 0
setup = function(thread) table.insert(threads, thread) end
init = function(args)
  local path = wrk.path
  for i = 1, #bodies do
    reqs[i] = wrk.format("POST", path .. queries[i], {["Content-Type"] = "application/x-msgpack"}, bodies[i])
  end
  n = math.random(#reqs) - 1
end
request = function()
  n = n %% #reqs + 1
  return reqs[n]
end
`)
	if countOK {
		sb.WriteString("response = function(status, headers, body) if status == 200 then ok = ok + 1 end end\n")
	}
	fmt.Fprintf(&sb, `done = function(summary, latency, requests)
  local total = %s
  if %v then for _, t in ipairs(threads) do total = total + t:get("ok") end end
  io.write(string.format("RESULT requests=%%d non2xx=%%d errors=%%d ok=%%d p50=%%d p99=%%d duration_us=%%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    total, latency:percentile(50), latency:percentile(99), summary.duration))
end
`, map[bool]string{true: "0", false: "-1"}[countOK], countOK)
	if g.scripts == nil {
		g.scripts = map[string]string{}
	}
	p := filepath.Join(g.dir, fmt.Sprintf("row%d.lua", len(g.scripts)))
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		return "", err
	}
	g.scripts[sc.name] = p
	return p, nil
}

// luaString returns b as a Lua string literal of decimal escapes.
func luaString(b []byte) string {
	var sb strings.Builder
	sb.Grow(4*len(b) + 2)
	sb.WriteByte('"')
	for _, c := range b {
		sb.WriteByte('\\')
		sb.WriteString(strconv.Itoa(int(c)))
	}
	sb.WriteByte('"')
	return sb.String()
}

// TestWrkScripts runs wrk with the scripts of a /commit and a /batch row for a
// second against a server that counts the requests and checks their bodies:
// the scripts are valid Lua, send the rows' requests, and their result lines
// parse.
func TestWrkScripts(t *testing.T) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk is not installed: run `make test` (it installs it) or `apt-get install -y wrk`")
	}
	wl, err := newBenchWorkload()
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	var bad atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := envelope.Validate(body); err != nil {
			bad.Store(fmt.Sprintf("%s: %v", r.URL, err))
		}
		if r.URL.Query().Get("topic") != benchTopic {
			bad.Store("no topic: " + r.URL.String())
		}
		got.Add(1)
		if r.URL.Path == "/batch" && got.Load()%2 == 0 {
			w.WriteHeader(http.StatusMultiStatus)
		}
	}))
	t.Cleanup(srv.Close)
	rig := &benchRig{kproxyURL: srv.URL, ceilingURL: srv.URL}
	scenarios, err := rig.scenarios(wl)
	if err != nil {
		t.Fatal(err)
	}
	g := &wrkGenerator{path: path, dir: t.TempDir()}
	for _, sc := range scenarios[1:4:4] {
		got.Store(0)
		res, err := g.run(context.Background(), sc, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		if res.requests == 0 || res.requests > got.Load() || res.ok <= 0 || res.d <= 0 {
			t.Errorf("%s: got %+v after %d requests served, want requests counted and some ok", sc.name, res, got.Load())
		}
		if sc.records > 1 && res.ok >= res.requests {
			t.Errorf("%s: %d ok of %d with every other answer 207, want the 207 not counted", sc.name, res.ok, res.requests)
		}
	}
	if v := bad.Load(); v != nil {
		t.Errorf("a request of the scripts: %v", v)
	}
}

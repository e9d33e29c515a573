//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/transfer"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// The load of every run. benchWorkers is both ktransfer's worker_num and the
// ceiling's connection count, so both drive the backend equally hard.
const (
	benchTopic          = "bench"
	benchModule         = "bench"       // the module of the runs with offset_store zookeeper
	benchModuleKafka    = "bench-kafka" // and its Kafka group with offset_store kafka
	benchChroot         = "/bench"
	benchPartitions     = 8
	benchKeys           = 1000
	benchBodySize       = 200
	benchWorkers        = 64
	benchWindow         = 1000
	benchCommitInterval = time.Second
	benchSessionTimeout = 3 * time.Second      // zk_timeout_ms, group_session_timeout_ms of the failover's processes
	benchTrickleEvery   = 5 * time.Millisecond // 200 records/s during the failover
	benchDefaultRecords = 200_000
	benchDefaultCeiling = 10 * time.Second
	benchCeilingWarmup  = time.Second
)

// The targets of the issue; a miss is reported, not failed.
const (
	benchTargetRatio    = 0.5
	benchTargetFailover = benchSessionTimeout + 2*time.Second
)

// benchStore is an offset store the benchmark runs ktransfer with.
type benchStore struct {
	name   string // offset_store
	module string // its module, a group of its own in each store
	// procs names the processes of the throughput run and of the failover,
	// one letter each (the sender in the URI of their pushes).
	throughput, failA, failB string
}

var (
	benchZK    = benchStore{name: "zookeeper", module: benchModule, throughput: "t", failA: "a", failB: "b"}
	benchKafka = benchStore{name: "kafka", module: benchModuleKafka, throughput: "k", failA: "c", failB: "d"}
)

// benchStall is how long the pre-filled records may go without a new
// delivery before the run fails; benchWait bounds the other waits (fleet
// balanced, failover, offsets committed); benchStopGrace is how long a
// ktransfer process gets between SIGTERM and SIGKILL.
const (
	benchStall     = 30 * time.Second
	benchWait      = 60 * time.Second
	benchStopGrace = 40 * time.Second
)

// benchBusyMachine is the CPU, in cores, that other processes on the machine
// may use during a measurement before the benchmark warns that its rates
// depend on them.
const benchBusyMachine = 0.2

// BenchmarkTransfer is the ktransfer benchmark of `make bench`:
//
//	go test -run '^$' -bench BenchmarkTransfer -benchtime 1x -timeout 30m -v ./ktransfer/
//
// It builds ktransfer and starts, on loopback, a dev broker
// (testcluster.StartDevBroker, its own process) with topic "bench" of 8
// partitions, a real ZooKeeper, and an HTTP backend in the benchmark process
// (see benchBackend). The measurements run for both offset stores side by
// side: offset_store zookeeper (module "bench", offsets and owners in
// ZooKeeper) and offset_store kafka (module "bench-kafka", a Kafka consumer
// group, no ZooKeeper):
//
//  1. Throughput: the topic is filled with BENCH_RECORDS records (200-byte
//     msgpack values over 1,000 keys, each key's values numbered 0, 1, ...)
//     before one ktransfer process (worker_num 64, window_size 1000,
//     serialize_by_key, commit_interval_ms 1000) starts, once per store, each
//     pushing every record. Records per second = records / time from the
//     first to the last first delivery, as the backend timestamps them.
//     Every record must arrive, each key's first deliveries in order, and the
//     store's offsets must reach the log end; otherwise the benchmark fails.
//  2. Ceiling: pkg/loadgen posts the same bodies to the same backend over 64
//     connections for BENCH_DURATION, once before and once after the
//     throughput runs: what the backend takes with nothing in between.
//     ktransfer is compared with the higher of the two.
//  3. Failover, per store: two ktransfer processes (zk_timeout_ms or
//     group_session_timeout_ms 3000) push a trickle of 200 records/s; the
//     owner of partition 0 (its owner node, or the group's assignment as the
//     coordinator describes it) gets SIGKILL, and the time until the other
//     process's first push of a partition-0 record is measured.
//
// It prints, on standard output, a table (loadgen.Table) of the ceilings and
// ktransfer in each store with ktransfer's peak RSS, the CPU time per record
// of every process, the failover times and a PASS/MISS line per target; the
// figures are also reported as benchmark metrics. Each measurement also says
// how the machine's CPUs were spent meanwhile: on a shared machine, other
// processes skew the records/s ratio, so the ratio at equal CPU (the inverse
// ratio of the CPU time all the benchmark's processes spent per request and
// per record) is printed beside it. Misses of the targets do not fail the
// benchmark. It runs once whatever b.N is.
//
// Environment:
//
//	BENCH_RECORDS   records pre-filled for the throughput runs (default 200000)
//	BENCH_DURATION  measured time of each ceiling run (default 10s), after a 1 s warm-up
func BenchmarkTransfer(b *testing.B) {
	records := benchEnvInt(b, "BENCH_RECORDS", benchDefaultRecords)
	ceilingTime := benchEnvDuration(b, "BENCH_DURATION", benchDefaultCeiling)
	r := startBenchRig(b)
	benchPrintf("BenchmarkTransfer: %d records of %d-byte msgpack values over %d keys, %d partitions; "+
		"ktransfer worker_num %d, window_size %d; ceiling: %d connections for %s\n",
		records, benchBodySize, benchKeys, benchPartitions, benchWorkers, benchWindow, benchWorkers, ceilingTime)

	began := time.Now()
	r.produce(b, 0, records)
	benchPrintf("pre-fill: %d records produced in %s\n", records, time.Since(began).Round(time.Millisecond))

	// The ceiling runs before and after ktransfer, and ktransfer is compared
	// with the higher: on a shared machine one run can be slowed down, which
	// would flatter the ratio.
	before := r.measureCeiling(b, "ceiling before", ceilingTime)
	tp := r.measureThroughput(b, records, benchZK)
	tpKafka := r.measureThroughput(b, records, benchKafka)
	after := r.measureCeiling(b, "ceiling after", ceilingTime)
	ceiling := before
	if after.res.Rate() > before.res.Rate() {
		ceiling = after
	}
	fo := r.measureFailover(b, records, benchZK)
	foKafka := r.measureFailover(b, records+fo.produced, benchKafka)

	kt := loadgen.Result{Requests: int64(tp.records), OK: int64(tp.records), Duration: tp.span}
	ktKafka := loadgen.Result{Requests: int64(tpKafka.records), OK: int64(tpKafka.records), Duration: tpKafka.span}
	ratio := loadgen.Ratio(kt, ceiling.res)
	ratioKafka := loadgen.Ratio(ktKafka, ceiling.res)
	// Both runs are bound by the same CPUs, so at equal CPU their rates
	// would compare as the inverse of their CPU time per item, whatever
	// other processes take from the machine meanwhile.
	cpuRatio := ceiling.perRequest().Seconds() / tp.perRecord().Seconds()
	cpuRatioKafka := ceiling.perRequest().Seconds() / tpKafka.perRecord().Seconds()
	benchPrintf("\n%s(ktransfer: records pushed per second from the first to the last first delivery, as the backend "+
		"timestamps them; its p50/p99 are not measured and show 0; compared with the higher ceiling. RSS: peak, VmHWM.)\n",
		loadgen.Table([]loadgen.Row{
			{Name: fmt.Sprintf("backend ceiling before (loadgen, %d conns)", benchWorkers), Result: before.res},
			{Name: fmt.Sprintf("backend ceiling after (loadgen, %d conns)", benchWorkers), Result: after.res},
			{Name: fmt.Sprintf("ktransfer, offset_store zookeeper (%d workers)", benchWorkers), Result: kt, RSS: tp.rss,
				Ratios: map[string]float64{"vs ceiling": ratio}},
			{Name: fmt.Sprintf("ktransfer, offset_store kafka (%d workers)", benchWorkers), Result: ktKafka, RSS: tpKafka.rss,
				Ratios: map[string]float64{"vs ceiling": ratioKafka, "vs zookeeper": loadgen.Ratio(ktKafka, kt)}},
		}))
	for _, x := range []struct {
		store string
		tp    benchThroughputResult
		ratio float64
	}{{"zookeeper", tp, cpuRatio}, {"kafka", tpKafka, cpuRatioKafka}} {
		benchPrintf("CPU time of all the benchmark's processes: %.1fus per request of the %s, %.1fus per record pushed by ktransfer with offset_store %s: "+
			"at equal CPU ktransfer would reach %.2f of the ceiling\n",
			float64(ceiling.perRequest().Nanoseconds())/1e3, ceiling.name, float64(x.tp.perRecord().Nanoseconds())/1e3, x.store, x.ratio)
	}
	benchPrintf("failover (SIGKILL of the owner of partition 0 to the other process's first push of it, session timeout %s): "+
		"offset_store zookeeper %s, offset_store kafka %s\n", benchSessionTimeout,
		fo.elapsed.Round(time.Millisecond), foKafka.elapsed.Round(time.Millisecond))
	if others := max(before.usage.others, tp.usage.others, tpKafka.usage.others, after.usage.others); others >= benchBusyMachine {
		benchPrintf("WARNING: other processes used up to %.2f cores during the measurements: the records/s ratio "+
			"depends on them; the ratio at equal CPU does not\n", others)
	}
	benchPrintf("\ntargets (reported, not enforced):\n")
	benchTarget("ktransfer records/s vs backend ceiling (zookeeper)", fmt.Sprintf(">= %.2f", benchTargetRatio),
		fmt.Sprintf("%.2f", ratio), ratio >= benchTargetRatio)
	benchTarget("ktransfer records/s vs backend ceiling (kafka)", fmt.Sprintf(">= %.2f", benchTargetRatio),
		fmt.Sprintf("%.2f", ratioKafka), ratioKafka >= benchTargetRatio)
	benchTarget("failover: SIGKILL to the successor's first push (zookeeper)", "<= "+benchTargetFailover.String(),
		fo.elapsed.Round(time.Millisecond).String(), fo.elapsed <= benchTargetFailover)
	benchTarget("failover: SIGKILL to the successor's first push (kafka)", "<= "+benchTargetFailover.String(),
		foKafka.elapsed.Round(time.Millisecond).String(), foKafka.elapsed <= benchTargetFailover)

	b.ReportMetric(ceiling.res.Rate(), "ceiling-req/s")
	b.ReportMetric(kt.Rate(), "ktransfer-records/s")
	b.ReportMetric(ratio, "vs-ceiling")
	b.ReportMetric(cpuRatio, "vs-ceiling-at-equal-cpu")
	b.ReportMetric(float64(tp.rss)/(1<<20), "ktransfer-peak-RSS-MiB")
	b.ReportMetric(float64(tp.cpu.Microseconds())/float64(tp.records), "ktransfer-cpu-us/record")
	b.ReportMetric(fo.elapsed.Seconds(), "failover-s")
	b.ReportMetric(ktKafka.Rate(), "kafka-records/s")
	b.ReportMetric(ratioKafka, "kafka-vs-ceiling")
	b.ReportMetric(loadgen.Ratio(ktKafka, kt), "kafka-vs-zookeeper")
	b.ReportMetric(float64(tpKafka.rss)/(1<<20), "kafka-peak-RSS-MiB")
	b.ReportMetric(foKafka.elapsed.Seconds(), "kafka-failover-s")
}

// benchPrintf prints to standard output: go test cuts a benchmark's log
// after a few lines, and the table must be seen whole.
func benchPrintf(format string, args ...any) {
	fmt.Printf(format, args...)
}

// benchTarget prints one line of the targets report.
func benchTarget(name, want, got string, met bool) {
	verdict := "MISS"
	if met {
		verdict = "PASS"
	}
	benchPrintf("  %-62s %-8s %-8s %s\n", name, want, got, verdict)
}

// benchEnvInt returns the positive integer in environment variable name, or
// def when it is not set.
func benchEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// benchEnvDuration returns the positive duration in environment variable
// name, or def when it is not set.
func benchEnvDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration such as 10s", name, s)
	}
	return d
}

// benchRig is what the benchmark runs against.
type benchRig struct {
	dir        string
	bin        string // the ktransfer binary
	brokerAddr string
	broker     *testproc.Proc
	zk         *testcluster.ZooKeeper
	zconn      *zk.Conn
	backend    *benchBackend
	client     *kgo.Client // producer of the records
	admin      *kadm.Client
}

// startBenchRig builds ktransfer and starts the broker, ZooKeeper and the
// backend, each stopped when the benchmark ends.
func startBenchRig(b *testing.B) *benchRig {
	b.Helper()
	r := &benchRig{dir: b.TempDir(), bin: testproc.Build(b, ".")}
	r.brokerAddr, r.broker = testcluster.StartDevBroker(b,
		"-topics", benchTopic, "-partitions", strconv.Itoa(benchPartitions), "-log-level", "error")
	r.zk = testcluster.StartZooKeeper(b)
	r.zconn = r.zk.Conn(b)
	r.backend = startBenchBackend(b)

	var err error
	r.client, err = kgo.NewClient(
		kgo.SeedBrokers(r.brokerAddr),
		kgo.DefaultProduceTopic(benchTopic),
		// As kproxy produces by default; franz-go's own default is snappy.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		b.Fatalf("Kafka client: %v", err)
	}
	b.Cleanup(r.client.Close)
	r.admin = kadm.NewClient(r.client)
	return r
}

// benchRecord returns record i of the workload: key "k"+i%benchKeys, whose
// value is the (i/benchKeys)-th of that key. Records of one key land in one
// partition in this order, so per key, seq order is offset order.
func benchRecord(i int) (*kgo.Record, error) {
	key := "k" + strconv.Itoa(i%benchKeys)
	value, err := loadgen.MsgpackBody(benchBodySize, key, uint64(i/benchKeys))
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Key: []byte(key), Value: value}, nil
}

// produce writes records from to to-1 of the workload and waits until Kafka
// has all of them.
func (r *benchRig) produce(b *testing.B, from, to int) {
	b.Helper()
	ctx := b.Context()
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := from; i < to; i++ {
		rec, err := benchRecord(i)
		if err != nil {
			b.Fatal(err)
		}
		r.client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil && failed.Add(1) == 1 {
				firstErr.Store(err)
			}
		})
	}
	if err := r.client.Flush(ctx); err != nil {
		b.Fatalf("produce: flush: %v", err)
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("produce: %d of %d records failed, the first with: %v", n, to-from, firstErr.Load())
	}
}

// trickle produces records from, from+1, ... one every benchTrickleEvery
// until the returned stop is called; stop returns the number produced and
// fails the benchmark if any produce failed. Calling stop again does
// nothing more.
func (r *benchRig) trickle(b *testing.B, from int) (stop func() int) {
	ctx, cancel := context.WithCancel(b.Context())
	var failed atomic.Int64
	var wg sync.WaitGroup
	n := 0
	wg.Go(func() {
		tick := time.NewTicker(benchTrickleEvery)
		defer tick.Stop()
		for ; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rec, err := benchRecord(from + n)
			if err != nil {
				failed.Add(1)
				return
			}
			r.client.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
				}
			})
		}
	})
	var once sync.Once
	return func() int {
		once.Do(func() {
			cancel()
			wg.Wait()
			if f := failed.Load(); f > 0 {
				b.Errorf("trickle: %d records failed to produce", f)
			}
		})
		return n
	}
}

// benchCeiling is what a ceiling run measured.
type benchCeiling struct {
	name  string
	res   loadgen.Result
	cpu   time.Duration // of all the benchmark's processes
	usage benchUsage
}

// perRequest returns the CPU time of the benchmark's processes per request.
func (c benchCeiling) perRequest() time.Duration { return c.cpu / time.Duration(c.res.OK) }

// measureCeiling runs loadgen against the backend with the workload's
// bodies and returns the measured run, printed as name. It fails the
// benchmark unless every request got a 200.
func (r *benchRig) measureCeiling(b *testing.B, name string, d time.Duration) benchCeiling {
	b.Helper()
	bodies := make([][]byte, benchKeys)
	for i := range bodies {
		rec, err := benchRecord(i)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = rec.Value
	}
	target := loadgen.HTTPTarget{
		URL:    r.backend.url + "/push?p=0&o=0&s=c",
		Header: http.Header{"Content-Type": {"application/x-msgpack"}},
		Body: func(worker int, seq uint64) (string, []byte) {
			return "", bodies[(seq*benchWorkers+uint64(worker))%benchKeys]
		},
	}
	// A warm-up run of its own rather than loadgen.Warmup, so that the CPU
	// time of the measured run is that of the requests it counts.
	if _, err := loadgen.RunHTTP(b.Context(), target, benchWorkers, benchCeilingWarmup); err != nil {
		b.Fatalf("%s: warm-up: %v", name, err)
	}
	m0, servers0, self0 := benchMachineNow(b), r.cpuOfServers(b), benchCPU(b, os.Getpid())
	res, err := loadgen.RunHTTP(b.Context(), target, benchWorkers, d)
	self := benchCPU(b, os.Getpid()) - self0
	c := benchCeiling{name: name, res: res, cpu: r.cpuOfServers(b) - servers0 + self}
	c.usage = benchMachineNow(b).since(m0, c.cpu)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	benchPrintf("%s: %s\n", name, res)
	if res.OK == 0 || res.OK != res.Requests {
		b.Fatalf("%s: got %s, want only 200 answers", name, res)
	}
	r.backend.mustBeClean(b)
	benchPrintf("%s: CPU per request %.1fus (benchmark process: generator and backend); %s\n",
		name, float64(self.Microseconds())/float64(res.OK), c.usage)
	r.backend.reset()
	return c
}

// benchThroughputResult is what the throughput run measured.
type benchThroughputResult struct {
	records int
	span    time.Duration // first to last first delivery
	rss     int64         // ktransfer's peak RSS
	cpu     time.Duration // ktransfer's CPU time until all was delivered, start-up included
	cpuAll  time.Duration // all the benchmark's processes, from ktransfer's start
	usage   benchUsage
}

// perRecord returns the CPU time of the benchmark's processes per record.
func (t benchThroughputResult) perRecord() time.Duration {
	return t.cpuAll / time.Duration(t.records)
}

// measureThroughput runs one ktransfer process of store over the pre-filled
// records 0..records-1 and checks what the backend received and what the
// store holds.
func (r *benchRig) measureThroughput(b *testing.B, records int, store benchStore) benchThroughputResult {
	b.Helper()
	rest := []benchCPUReading{{"devbroker", r.broker.PID()}, {"backend (benchmark process)", os.Getpid()}}
	if store == benchZK {
		rest = append(rest, benchCPUReading{"ZooKeeper", r.zk.PID()})
	}
	before := make([]time.Duration, len(rest))
	for i, o := range rest {
		before[i] = benchCPU(b, o.pid)
	}
	m0 := benchMachineNow(b)
	started := time.Now()
	// ktransfer's default session timeout: a shorter one makes a pause of
	// the machine (a busy VM) fence the process in the middle of the run.
	session := time.Duration(transfer.Defaults().ZKTimeoutMs) * time.Millisecond
	if store == benchKafka {
		session = time.Duration(transfer.Defaults().GroupSessionTimeoutMs) * time.Millisecond
	}
	p := r.startKtransfer(b, store.throughput, session, store)

	ledger := newBenchLedger(records)
	seen, progressed := 0, time.Now()
	for ledger.distinct < records {
		time.Sleep(50 * time.Millisecond)
		fresh := r.backend.since(seen)
		seen += len(fresh)
		if err := ledger.add(fresh); err != nil {
			b.Fatalf("throughput: %v", err)
		}
		if len(fresh) > 0 {
			progressed = time.Now()
		}
		p.MustRun(b)
		if time.Since(progressed) > benchStall {
			b.Fatalf("throughput: no delivery for %s; %d of %d records delivered (%d deliveries); backend: %s\n%s",
				benchStall, ledger.distinct, records, ledger.deliveries, r.backend.problems(), p.Logs())
		}
	}
	m1 := benchMachineNow(b)
	res := benchThroughputResult{records: records, span: ledger.last - ledger.first, cpu: benchCPU(b, p.PID())}
	var err error
	if res.rss, err = loadgen.PeakRSS(p.PID()); err != nil {
		b.Fatalf("peak RSS of ktransfer: %v", err)
	}
	var cpu strings.Builder
	total := res.cpu
	fmt.Fprintf(&cpu, "ktransfer %.1fus (start-up included)", float64(res.cpu.Microseconds())/float64(records))
	for i, o := range rest {
		used := benchCPU(b, o.pid) - before[i]
		total += used
		fmt.Fprintf(&cpu, ", %s %.1fus", o.name, float64(used.Microseconds())/float64(records))
	}
	r.backend.mustBeClean(b)
	benchPrintf("ktransfer (offset_store %s): %d records in %s from the first to the last delivery (%.0f records/s), "+
		"%.0f records/s from 10%% to 90%% of them; first push %s after the process started; "+
		"%d deliveries (%d duplicates), each key's first deliveries in order\n",
		store.name, records, res.span.Round(time.Millisecond), float64(records)/res.span.Seconds(), ledger.steadyRate(),
		ledger.firstAt(r.backend).Sub(started).Round(time.Millisecond), ledger.deliveries, ledger.deliveries-records)
	res.cpuAll, res.usage = total, m1.since(m0, total)
	benchPrintf("ktransfer (offset_store %s): CPU per record: %s; from its start to the last delivery, %s\n", store.name, cpu.String(), res.usage)

	r.awaitCommitted(b, p, store)
	p.stop(b)
	r.backend.reset()
	return res
}

// benchCPUReading names a process whose CPU time the throughput run reports
// besides ktransfer's.
type benchCPUReading struct {
	name string
	pid  int
}

// cpuOfServers returns the CPU time the broker and ZooKeeper have used so
// far.
func (r *benchRig) cpuOfServers(b *testing.B) time.Duration {
	b.Helper()
	return benchCPU(b, r.broker.PID()) + benchCPU(b, r.zk.PID())
}

// awaitCommitted waits until the store's offset of every partition (the
// offset node, or the group's committed offset) is the partition's log end.
func (r *benchRig) awaitCommitted(b *testing.B, p *benchProc, store benchStore) {
	b.Helper()
	ends, err := r.admin.ListEndOffsets(b.Context(), benchTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatalf("list end offsets: %v", err)
	}
	layout := zkconsumers.New(benchChroot)
	testproc.Until(b, benchWait, func() error {
		var lag []string
		var group kadm.OffsetResponses
		if store == benchKafka {
			if group, err = r.admin.FetchOffsets(b.Context(), store.module); err != nil {
				return fmt.Errorf("offsets in %s: %w", store.name, err)
			}
		}
		for part := range int32(benchPartitions) {
			end, _ := ends.Lookup(benchTopic, part)
			if store == benchKafka {
				o, ok := group.Lookup(benchTopic, part)
				if !ok || o.Err != nil || o.At != end.Offset {
					lag = append(lag, fmt.Sprintf("partition %d: %d (%v), log end %d", part, o.At, o.Err, end.Offset))
				}
				continue
			}
			data, _, err := r.zconn.Get(layout.Offset(store.module, benchTopic, part))
			off, derr := zkconsumers.DecodeOffset(data)
			if err != nil || derr != nil || off != end.Offset {
				lag = append(lag, fmt.Sprintf("partition %d: %q (%v), log end %d", part, data, errors.Join(err, derr), end.Offset))
			}
		}
		if len(lag) > 0 {
			return fmt.Errorf("offsets in %s: %s", store.name, strings.Join(lag, "; "))
		}
		return nil
	}, p.Proc)
	benchPrintf("ktransfer (offset_store %s): offsets reached the log end of all %d partitions\n", store.name, benchPartitions)
}

// benchFailoverResult is what the failover run measured.
type benchFailoverResult struct {
	elapsed  time.Duration // SIGKILL to the successor's first push of partition 0
	produced int           // records the trickle produced
}

// measureFailover runs two ktransfer processes of store over a trickle of
// records from record first on, kills the owner of partition 0 and measures
// the time until the other one pushes a partition-0 record.
func (r *benchRig) measureFailover(b *testing.B, first int, store benchStore) benchFailoverResult {
	b.Helper()
	stopTrickle := r.trickle(b, first)
	defer stopTrickle()
	procs := map[string]*benchProc{}
	for _, name := range []string{store.failA, store.failB} {
		p := r.startKtransfer(b, name, benchSessionTimeout, store)
		procs[p.id] = p
	}
	idA, idB := "bench-"+store.failA, "bench-"+store.failB
	alive := []*testproc.Proc{procs[idA].Proc, procs[idB].Proc}

	// Balanced: every partition owned, half by each process.
	var owners map[int32]string
	testproc.Await(b, benchWait, "both processes owning half of the partitions", func() bool {
		owners = r.owners(b, store)
		count := map[string]int{}
		for _, id := range owners {
			count[id]++
		}
		return len(owners) == benchPartitions && count[idA] == benchPartitions/2 && count[idB] == benchPartitions/2
	}, alive...)
	victim := procs[owners[0]]
	survivor := procs[idA]
	if victim == survivor {
		survivor = procs[idB]
	}
	// Steady: the victim is pushing partition 0.
	mark := r.backend.now()
	testproc.Await(b, benchWait, victim.id+" pushing partition 0", func() bool {
		return r.backend.firstPush(0, victim.sender, mark) != nil
	}, alive...)

	killed := r.backend.now()
	victim.Kill()
	var next *benchDelivery
	testproc.Await(b, benchWait+benchSessionTimeout, survivor.id+" pushing partition 0 after the kill", func() bool {
		next = r.backend.firstPush(0, survivor.sender, killed)
		return next != nil
	}, survivor.Proc)
	res := benchFailoverResult{elapsed: next.at - killed}
	res.produced = stopTrickle()
	r.backend.mustBeClean(b)
	benchPrintf("failover (offset_store %s): %d records produced at %s intervals; SIGKILL to %s (owner of partition 0); "+
		"%s pushed partition 0 (offset %d) %s later (session timeout %s)\n",
		store.name, res.produced, benchTrickleEvery, victim.id, survivor.id, next.offset, res.elapsed.Round(time.Millisecond), benchSessionTimeout)
	survivor.stop(b)
	return res
}

// owners returns, for every partition that has one, the instance id of its
// owner: the owner node's data, or the client id (ktransfer's instance id) of
// the group member the coordinator assigned it to.
func (r *benchRig) owners(b *testing.B, store benchStore) map[int32]string {
	b.Helper()
	out := map[int32]string{}
	if store == benchKafka {
		gs, err := r.admin.DescribeConsumerGroups(b.Context(), store.module)
		if err == nil {
			for _, m := range gs[store.module].Members {
				// The module's only topic; the describe may name it by id
				// alone, which kadm leaves unresolved.
				for _, ps := range m.Assignment {
					for part := range ps {
						out[part] = m.ClientID
					}
				}
			}
		}
		if classic, err := r.admin.DescribeGroups(b.Context(), store.module); err == nil {
			for _, m := range classic[store.module].Members {
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range a.Topics {
						if t.Topic == benchTopic {
							for _, part := range t.Partitions {
								out[part] = m.ClientID
							}
						}
					}
				}
			}
		}
		return out
	}
	layout := zkconsumers.New(benchChroot)
	for part := range int32(benchPartitions) {
		data, _, err := r.zconn.Get(layout.Owner(store.module, benchTopic, part))
		switch {
		case errors.Is(err, zk.ErrNoNode):
		case err != nil:
			b.Fatalf("read the owner of partition %d: %v", part, err)
		default:
			out[part] = string(data)
		}
	}
	return out
}

// benchConfig writes the main file and module file of ktransfer process name
// under dir/name and returns the main file's path. The process is instance
// "bench-"+name and marks its pushes with s=name in the URI, so the backend
// knows who pushed what. sessionTimeout is its zk_timeout_ms, or with store
// benchKafka its group_session_timeout_ms (and it has no zk_hosts then).
func benchConfig(dir, name string, sessionTimeout time.Duration, store benchStore, zkAddr, brokerAddr, backendAddr string) (string, error) {
	base := filepath.Join(dir, name)
	modDir := filepath.Join(base, "modules")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return "", fmt.Errorf("ktransfer config: %w", err)
	}
	storeKeys := fmt.Sprintf("zk_timeout_ms: %d\nzk_hosts:\n  - %q\n", sessionTimeout.Milliseconds(), zkAddr)
	if store == benchKafka {
		storeKeys = fmt.Sprintf("offset_store: kafka\ngroup_session_timeout_ms: %d\nzk_hosts: []\n", sessionTimeout.Milliseconds())
	}
	mainFile := fmt.Sprintf(`# ktransfer.yaml of BenchmarkTransfer
log_dir: %q
log_level: 2
zk_chroot: %s
%smodule_conf_dir: %q
module_enabled:
  - %s
broker_hosts:
  - %q
ops_listen: 127.0.0.1:0
instance_id: bench-%s
`, base, benchChroot, storeKeys, modDir, store.module, brokerAddr, name)
	module := fmt.Sprintf(`# module of BenchmarkTransfer
topic: %s
protocol:
  name: http
  uri: /push?p={#PARTITION}&o={#TRANSID}&s=%s
worker_num: %d
window_size: %d
serialize_by_key: true
commit_interval_ms: %d
backend_servers:
  - %q
`, benchTopic, name, benchWorkers, benchWindow, benchCommitInterval.Milliseconds(), backendAddr)
	path := filepath.Join(base, "ktransfer.yaml")
	if err := os.WriteFile(path, []byte(mainFile), 0o644); err != nil {
		return "", fmt.Errorf("ktransfer config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(modDir, store.module+".yaml"), []byte(module), 0o644); err != nil {
		return "", fmt.Errorf("ktransfer config: %w", err)
	}
	return path, nil
}

// benchProc is a ktransfer process of the benchmark; its Logs include
// ktransfer.log.
type benchProc struct {
	*testproc.Proc
	id     string // instance_id
	sender byte   // s= in the URI of its pushes
}

// startKtransfer writes the configuration of process name (see benchConfig),
// checks it loads, starts the process and registers its kill in b.Cleanup.
func (r *benchRig) startKtransfer(b *testing.B, name string, sessionTimeout time.Duration, store benchStore) *benchProc {
	b.Helper()
	path, err := benchConfig(r.dir, name, sessionTimeout, store, r.zk.Addr, r.brokerAddr, r.backend.addr)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := transfer.LoadConfig(path); err != nil {
		b.Fatalf("the benchmark's ktransfer.yaml: %v", err)
	}
	id := "bench-" + name
	opts := testproc.Options{Name: id, LogFile: filepath.Join(r.dir, name, "ktransfer.log")}
	return &benchProc{Proc: testproc.StartWith(b, opts, r.bin, "-f", path), id: id, sender: name[0]}
}

// stop shuts the process down with SIGTERM and fails the benchmark unless it
// exits 0 within benchStopGrace (it is killed then).
func (p *benchProc) stop(b *testing.B) {
	b.Helper()
	if code := p.Stop(benchStopGrace); code != 0 {
		b.Errorf("%s: got %s after SIGTERM, want exit status 0 within %s\n%s", p.id, p.ExitStatus(), benchStopGrace, p.Logs())
	}
}

// benchCPU returns the CPU time of process pid, failing the benchmark when it
// cannot be read.
func benchCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	d, err := loadgen.CPUTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchMachine is the CPU time of the whole machine so far by kind, from
// the cpu line of /proc/stat, in USER_HZ ticks (1/100 s).
type benchMachine struct {
	at                 time.Time
	busy, idle, stolen int64
}

// benchMachineNow reads /proc/stat, failing the benchmark when it cannot.
func benchMachineNow(b *testing.B) benchMachine {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("machine CPU time: %v", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is in user and nice already.
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("machine CPU time: /proc/stat: unexpected first line %q", line)
	}
	m := benchMachine{at: time.Now()}
	for i, s := range f[1:9] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("machine CPU time: /proc/stat: %v", err)
		}
		switch i {
		case 3, 4: // idle, iowait
			m.idle += n
		case 7:
			m.stolen += n
		default:
			m.busy += n
		}
	}
	return m
}

// benchUsage is how a machine's CPUs were spent over an interval, in cores.
type benchUsage struct {
	cpus   float64 // all of them
	ours   float64 // by the benchmark's processes
	others float64 // by other processes
	idle   float64
	stolen float64 // by the hypervisor
}

func (u benchUsage) String() string {
	return fmt.Sprintf("machine (%.1f CPUs): the benchmark's processes %.2f cores, other processes %.2f, idle %.2f, stolen %.2f",
		u.cpus, u.ours, u.others, u.idle, u.stolen)
}

// since returns how the machine's CPUs were spent between m0 and m, given
// the CPU time the benchmark's processes used meanwhile. On a shared
// machine, other processes explain a slow run.
func (m benchMachine) since(m0 benchMachine, ours time.Duration) benchUsage {
	wall := m.at.Sub(m0.at).Seconds()
	cores := func(ticks int64) float64 { return float64(ticks) / 100 / wall }
	u := benchUsage{ours: ours.Seconds() / wall, idle: cores(m.idle - m0.idle), stolen: cores(m.stolen - m0.stolen)}
	busy := cores(m.busy - m0.busy)
	u.cpus = busy + u.idle + u.stolen
	u.others = max(busy-u.ours, 0)
	return u
}

// benchDelivery is one request the backend answered with 200: the record's
// key number and seq from the value, its partition and offset and the
// pushing process from the URI, and when it arrived.
type benchDelivery struct {
	at        time.Duration // since the backend started
	offset    int64
	key, seq  int32
	partition int32
	sender    byte
}

// benchBackend is the HTTP backend of all three measurements: a net/http
// server on loopback that decodes each msgpack value, answers 200 and
// appends the delivery to an in-memory log, in arrival order. It runs in the
// benchmark process, which does nothing else while ktransfer pushes (the
// records are produced before it starts), so that the checks read the log
// directly and the process's CPU time is the backend's. The ceiling's
// generator runs in the same process and pays the same for every request,
// so the backend costs the same in both.
type benchBackend struct {
	addr, url string
	epoch     time.Time
	bad       atomic.Int64 // requests answered 400
	badFirst  atomic.Value // string: the first 400's reason

	mu  sync.Mutex
	log []benchDelivery
}

// startBenchBackend serves on a free loopback port until the benchmark ends.
func startBenchBackend(b testing.TB) *benchBackend {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("backend: listen: %v", err)
	}
	be := &benchBackend{addr: ln.Addr().String(), epoch: time.Now()}
	be.url = "http://" + be.addr
	srv := &http.Server{Handler: be, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return be
}

// benchValue is what the backend reads of a value (loadgen.MsgpackBody):
// the key "kN" and the data, which starts with the seq and ':'.
type benchValue struct {
	Key  string `msgpack:"key"`
	Data []byte `msgpack:"data"`
}

// ServeHTTP takes POST /push?p=PARTITION&o=OFFSET&s=SENDER with a value as
// built by benchRecord.
func (be *benchBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, err := parseBenchDelivery(r)
	if err != nil {
		if be.bad.Add(1) == 1 {
			be.badFirst.Store(fmt.Sprintf("%s %s: %v", r.Method, r.URL, err))
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	be.mu.Lock()
	d.at = time.Since(be.epoch) // under the lock: the log is in time order
	be.log = append(be.log, d)
	be.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func parseBenchDelivery(r *http.Request) (benchDelivery, error) {
	var d benchDelivery
	if r.Method != http.MethodPost || r.URL.Path != "/push" {
		return d, errors.New("want POST /push")
	}
	if r.ContentLength <= 0 || r.ContentLength > 64<<10 {
		return d, fmt.Errorf("want a body with a Content-Length up to 64 KiB, got %d", r.ContentLength)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return d, fmt.Errorf("read body: %w", err)
	}
	var v benchValue
	if err := msgpack.Unmarshal(body, &v); err != nil {
		return d, fmt.Errorf("decode value: %w", err)
	}
	key, err := strconv.ParseInt(strings.TrimPrefix(v.Key, "k"), 10, 32)
	if err != nil || !strings.HasPrefix(v.Key, "k") {
		return d, fmt.Errorf("key %q: want kN", v.Key)
	}
	seq, _, ok := bytes.Cut(v.Data, []byte(":"))
	n, err := strconv.ParseInt(string(seq), 10, 32)
	if !ok || err != nil {
		return d, fmt.Errorf("data %.20q: want SEQ:...", v.Data)
	}
	d.key, d.seq = int32(key), int32(n)

	var have int
	for q := r.URL.RawQuery; q != ""; {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "p":
			p, err := strconv.ParseInt(val, 10, 32)
			if err != nil {
				return d, fmt.Errorf("p=%q: %w", val, err)
			}
			d.partition, have = int32(p), have|1
		case "o":
			if d.offset, err = strconv.ParseInt(val, 10, 64); err != nil {
				return d, fmt.Errorf("o=%q: %w", val, err)
			}
			have |= 2
		case "s":
			if len(val) != 1 {
				return d, fmt.Errorf("s=%q: want one character", val)
			}
			d.sender, have = val[0], have|4
		}
	}
	if have != 7 {
		return d, fmt.Errorf("query %q: want p, o and s", r.URL.RawQuery)
	}
	return d, nil
}

// now returns the time since the backend started, the clock of the log.
func (be *benchBackend) now() time.Duration { return time.Since(be.epoch) }

// since returns a copy of the log from entry k on.
func (be *benchBackend) since(k int) []benchDelivery {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]benchDelivery(nil), be.log[k:]...)
}

// firstPush returns the first delivery of partition by sender that arrived
// after t, or nil.
func (be *benchBackend) firstPush(partition int32, sender byte, t time.Duration) *benchDelivery {
	be.mu.Lock()
	defer be.mu.Unlock()
	for i := range be.log {
		d := &be.log[i]
		if d.at > t && d.partition == partition && d.sender == sender {
			c := *d
			return &c
		}
	}
	return nil
}

// reset empties the log.
func (be *benchBackend) reset() {
	be.mu.Lock()
	defer be.mu.Unlock()
	be.log = nil
}

// problems describes the requests answered 400, if any.
func (be *benchBackend) problems() string {
	n := be.bad.Load()
	if n == 0 {
		return "no request refused"
	}
	return fmt.Sprintf("%d requests answered 400, the first: %v", n, be.badFirst.Load())
}

// mustBeClean fails the benchmark when a request was answered 400.
func (be *benchBackend) mustBeClean(b *testing.B) {
	b.Helper()
	if be.bad.Load() > 0 {
		b.Fatalf("backend: %s", be.problems())
	}
}

// benchLedger checks the deliveries of records 0..n-1 of the workload as
// they come in: which records arrived, and that each key's first deliveries
// come in seq order (ordering kept).
type benchLedger struct {
	seen        []bool  // by record index seq*benchKeys+key
	next        []int32 // per key: the seq whose first delivery is due
	distinct    int     // records delivered at least once
	deliveries  int     // deliveries, duplicates included
	first, last time.Duration
	tenth, nine time.Duration // when 10% and 90% of the records had arrived
}

func newBenchLedger(n int) *benchLedger {
	return &benchLedger{seen: make([]bool, n), next: make([]int32, benchKeys)}
}

// steadyRate returns the records per second between 10% and 90% of the
// records delivered: the rate without the start and the tail.
func (l *benchLedger) steadyRate() float64 {
	if l.nine <= l.tenth {
		return 0
	}
	return float64(len(l.seen)*8/10) / (l.nine - l.tenth).Seconds()
}

// add takes the next deliveries in arrival order.
func (l *benchLedger) add(ds []benchDelivery) error {
	for _, d := range ds {
		i := int(d.seq)*benchKeys + int(d.key)
		if d.key < 0 || d.key >= benchKeys || d.seq < 0 || i >= len(l.seen) {
			return fmt.Errorf("got record k%d seq %d (partition %d offset %d), not one of the %d produced", d.key, d.seq, d.partition, d.offset, len(l.seen))
		}
		if l.deliveries == 0 {
			l.first = d.at
		}
		l.deliveries++
		if l.seen[i] {
			continue
		}
		if want := l.next[d.key]; d.seq != want {
			return fmt.Errorf("key k%d: got the first delivery of seq %d (partition %d offset %d), want seq %d first", d.key, d.seq, d.partition, d.offset, want)
		}
		l.seen[i] = true
		l.next[d.key]++
		l.distinct++
		l.last = d.at
		switch l.distinct {
		case len(l.seen) / 10:
			l.tenth = d.at
		case len(l.seen) * 9 / 10:
			l.nine = d.at
		}
	}
	return nil
}

// firstAt returns the wall-clock time of the first delivery.
func (l *benchLedger) firstAt(be *benchBackend) time.Time { return be.epoch.Add(l.first) }

func TestBenchConfigLoads(t *testing.T) {
	kpath, err := benchConfig(t.TempDir(), "k", 3*time.Second, benchKafka, "127.0.0.1:2181", "127.0.0.1:9092", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	kcfg, err := transfer.LoadConfig(kpath)
	if err != nil {
		t.Fatalf("LoadConfig of offset_store kafka: %v", err)
	}
	if got, want := fmt.Sprint(kcfg.OffsetStore, kcfg.GroupSessionTimeoutMs, kcfg.ZKHosts, kcfg.Modules[0].Name), fmt.Sprint("kafka", 3000, []string{}, benchModuleKafka); got != want {
		t.Errorf("offset_store kafka: got %s, want %s", got, want)
	}
	path, err := benchConfig(t.TempDir(), "a", 3*time.Second, benchZK, "127.0.0.1:2181", "127.0.0.1:9092", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := transfer.LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if got, want := fmt.Sprint(cfg.InstanceID, cfg.ZKTimeoutMs, cfg.ZKChroot, cfg.ZKHosts, cfg.BrokerHosts, cfg.Level),
		fmt.Sprint("bench-a", 3000, benchChroot, []string{"127.0.0.1:2181"}, []string{"127.0.0.1:9092"}, 2); got != want {
		t.Errorf("got main file %s, want %s", got, want)
	}
	if len(cfg.Modules) != 1 {
		t.Fatalf("got %d modules, want 1", len(cfg.Modules))
	}
	m := cfg.Modules[0]
	if got, want := fmt.Sprint(m.Name, m.Topic, m.Protocol.URI, m.WorkerNum, m.WindowSize, m.SerializeByKey, m.CommitIntervalMs, m.BackendServers),
		fmt.Sprint(benchModule, benchTopic, "/push?p={#PARTITION}&o={#TRANSID}&s=a", 64, 1000, true, 1000, []string{"127.0.0.1:8080"}); got != want {
		t.Errorf("got module %s, want %s", got, want)
	}
}

func TestBenchBackend(t *testing.T) {
	be := startBenchBackend(t)
	rec, err := benchRecord(3*benchKeys + 17) // k17, seq 3
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		body   []byte
		status int
		want   string // the logged delivery, "" for none
	}{
		{"record", "/push?p=5&o=42&s=a", rec.Value, http.StatusOK, "k17 seq 3 partition 5 offset 42 sender a"},
		{"query in another order", "/push?s=b&o=7&p=0", rec.Value, http.StatusOK, "k17 seq 3 partition 0 offset 7 sender b"},
		{"no sender", "/push?p=5&o=42", rec.Value, http.StatusBadRequest, ""},
		{"bad partition", "/push?p=x&o=42&s=a", rec.Value, http.StatusBadRequest, ""},
		{"other path", "/commit?p=5&o=42&s=a", rec.Value, http.StatusBadRequest, ""},
		{"not msgpack", "/push?p=5&o=42&s=a", []byte("hello"), http.StatusBadRequest, ""},
		{"no body", "/push?p=5&o=42&s=a", nil, http.StatusBadRequest, ""},
	}
	bad := int64(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(be.since(0))
			resp, err := http.Post(be.url+tt.path, "application/x-msgpack", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != http.StatusOK {
				bad++
			}
			if got := be.bad.Load(); got != bad {
				t.Errorf("got %d requests refused, want %d", got, bad)
			}
			var got string
			if ds := be.since(before); len(ds) == 1 {
				d := ds[0]
				got = fmt.Sprintf("k%d seq %d partition %d offset %d sender %c", d.key, d.seq, d.partition, d.offset, d.sender)
			} else if len(ds) > 1 {
				got = fmt.Sprintf("%d deliveries", len(ds))
			}
			if got != tt.want {
				t.Errorf("got logged %q, want %q", got, tt.want)
			}
		})
	}
	if d := be.firstPush(0, 'b', 0); d == nil || d.offset != 7 {
		t.Errorf("firstPush(0, b): got %+v, want the delivery of offset 7", d)
	}
	if d := be.firstPush(0, 'b', be.now()); d != nil {
		t.Errorf("firstPush(0, b, now): got %+v, want none", d)
	}
}

func TestBenchLedger(t *testing.T) {
	d := func(key, seq int32) benchDelivery { return benchDelivery{key: key, seq: seq} }
	tests := []struct {
		name     string
		in       []benchDelivery
		distinct int
		wantErr  bool
	}{
		{"in order", []benchDelivery{d(0, 0), d(1, 0), d(0, 1), d(1, 1)}, 4, false},
		{"duplicates after first delivery", []benchDelivery{d(0, 0), d(0, 1), d(0, 0), d(0, 1)}, 2, false},
		{"out of order", []benchDelivery{d(0, 0), d(0, 2), d(0, 1)}, 1, true},
		{"gap", []benchDelivery{d(5, 1)}, 0, true},
		{"not produced", []benchDelivery{d(0, 3)}, 0, true},
		{"unknown key", []benchDelivery{d(benchKeys, 0)}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newBenchLedger(3 * benchKeys)
			err := l.add(tt.in)
			if (err != nil) != tt.wantErr {
				t.Errorf("got error %v, want error %v", err, tt.wantErr)
			}
			if l.distinct != tt.distinct {
				t.Errorf("got %d distinct records, want %d", l.distinct, tt.distinct)
			}
		})
	}
}

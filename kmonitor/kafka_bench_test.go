//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/monitor"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// The setup of BenchmarkKafkaGroups: every group reads a topic of its own.
const (
	kgGroups     = 1000
	kgPartitions = 8
	kgWrites     = 10 // commits, each followed by a /delay rendered anew
	kgWorkers    = 8  // concurrent commits while setting up
)

// BenchmarkKafkaGroups is the Kafka offset source's case of `make bench`:
//
//	go test -run '^$' -bench BenchmarkKafkaGroups -benchtime 1x -timeout 30m -v ./kmonitor/
//
// It starts scripts/devbroker and a ZooKeeper on loopback, creates 1,000
// topics of 8 partitions with 10 records each, and commits the same offsets
// for 1,000 groups (one topic each, 8,000 module partitions, no members) both
// as Kafka consumer group offsets (with ktransfer's commit metadata) and as
// ZooKeeper offset nodes. Then it runs the kmonitor binary twice, polling
// every 5 s: first with offset_source zookeeper, the baseline, then with
// offset_source kafka, and for each prints the time until /delay first shows
// every module partition correctly, kmonitor's CPU time per poll while idle
// (over 6 polls), the mean poll duration, the time from a commit (10
// commits, written to both stores) until /delay shows it, the time of a
// /delay rendered anew and of one reused, and the peak RSS, with the ratio
// kafka / zookeeper. (A rendering anew is timed on /delay?unit=seconds a
// second after a commit showed: an answer holding time lags is rendered
// again, rows included, once 250 ms old.) A wrong /delay fails the
// benchmark; the figures are reported, not judged. It runs once whatever b.N
// is.
func BenchmarkKafkaGroups(b *testing.B) {
	r := newScaleRig(b, newScaleModel(kgGroups, kgPartitions, scaleRecords), rand.New(rand.NewPCG(3, 4)))
	start := time.Now()
	if err := r.createNodes(false); err != nil {
		b.Fatal(err)
	}
	r.zkCreate = time.Since(start)
	start = time.Now()
	if err := r.commitGroups(b.Context()); err != nil {
		b.Fatal(err)
	}
	commits := time.Since(start)
	scaleReport("BenchmarkKafkaGroups: %d groups x %d partitions = %d module partitions, no members, poll every %s\n",
		kgGroups, kgPartitions, kgGroups*kgPartitions, scalePoll)
	scaleReport("setup: %d records produced in %s, offset nodes created in ZooKeeper in %s, group offsets committed to Kafka in %s\n",
		kgGroups*kgPartitions*scaleRecords, r.produce.Round(time.Millisecond), r.zkCreate.Round(time.Millisecond), commits.Round(time.Millisecond))

	zk := r.measureSource(b, "")
	kafka := r.measureSource(b, monitor.SourceKafka)

	ratio := func(k, z time.Duration) string { return fmt.Sprintf("%.2f", float64(k)/float64(max(z, 1))) }
	scaleReport("\n%s", scaleTable([][2]string{
		{"", "zookeeper (baseline)\tkafka\tkafka / zookeeper"},
		{"startup to a complete /delay", scaleDur(zk.startup) + "\t" + scaleDur(kafka.startup) + "\t" + ratio(kafka.startup, zk.startup)},
		{fmt.Sprintf("kmonitor CPU per poll (idle, %d polls)", scaleCPUPolls), scaleDur(zk.cpuPerPoll) + "\t" + scaleDur(kafka.cpuPerPoll) + "\t" + ratio(kafka.cpuPerPoll, zk.cpuPerPoll)},
		{"poll duration, mean", scaleDur(zk.pollWall) + "\t" + scaleDur(kafka.pollWall) + "\t" + ratio(kafka.pollWall, zk.pollWall)},
		{fmt.Sprintf("/delay?unit=seconds rendered anew, p50 (%d times)", kgWrites), scaleDur(scaleQuantile(zk.fresh, 0.5)) + "\t" + scaleDur(scaleQuantile(kafka.fresh, 0.5)) + "\t" +
			ratio(scaleQuantile(kafka.fresh, 0.5), scaleQuantile(zk.fresh, 0.5))},
		{"/delay?unit=seconds rendered anew, max", scaleDur(slices.Max(zk.fresh)) + "\t" + scaleDur(slices.Max(kafka.fresh)) + "\t" + ratio(slices.Max(kafka.fresh), slices.Max(zk.fresh))},
		{"/delay reused, p50", scaleDur(scaleQuantile(zk.reused, 0.5)) + "\t" + scaleDur(scaleQuantile(kafka.reused, 0.5)) + "\t" +
			ratio(scaleQuantile(kafka.reused, 0.5), scaleQuantile(zk.reused, 0.5))},
		{"commit to /delay showing it, max", scaleDur(slices.Max(zk.seen)) + "\t" + scaleDur(slices.Max(kafka.seen)) + "\t" + ratio(slices.Max(kafka.seen), slices.Max(zk.seen))},
		{"kmonitor peak RSS", fmt.Sprintf("%.1f MB\t%.1f MB\t%.2f", float64(zk.peak)/1e6, float64(kafka.peak)/1e6, float64(kafka.peak)/float64(max(zk.peak, 1)))},
	}))
	b.ReportMetric(scaleMs(kafka.cpuPerPoll), "kafka-cpu-ms/poll")
	b.ReportMetric(scaleMs(zk.cpuPerPoll), "zk-cpu-ms/poll")
	b.ReportMetric(scaleMs(scaleQuantile(kafka.fresh, 0.5)), "kafka-delay-ms")
	b.ReportMetric(float64(kafka.peak)/1e6, "kafka-peak-RSS-MB")
}

// sourceRun is what BenchmarkKafkaGroups measured of one offset source.
type sourceRun struct {
	startup, cpuPerPoll, pollWall time.Duration
	fresh, reused, seen           []time.Duration
	peak                          int64
}

// measureSource runs kmonitor with offset_source source ("" = zookeeper) and
// measures it (see BenchmarkKafkaGroups); kmonitor is killed at the end.
func (r *scaleRig) measureSource(b *testing.B, source string) sourceRun {
	b.Helper()
	r.source = source
	var run sourceRun
	run.startup = r.startKmonitor(b, false)
	r.checkBoth(b, source+" after the start")
	// /delay can be complete before the first poll has ended (the Kafka
	// groups are read at its start): wait for the poll's series.
	for t0 := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		body, err := r.get(b, "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := parseScalePolls(body); err == nil {
			break
		} else if time.Since(t0) > scaleSeenTimeout {
			b.Fatalf("%s: %v", source, err)
		}
	}

	run.cpuPerPoll, run.pollWall = r.idlePolls(b)

	for range kgWrites {
		m, p := r.rng.IntN(kgGroups), r.rng.IntN(kgPartitions)
		end, old := r.model.ends[m][p], r.model.committed[m][p]
		next := (old + 1 + r.rng.Int64N(end)) % (end + 1)
		committed := time.Now()
		r.writeOffset(b, m, p, next)
		want := r.model.lag(m, p)
		for {
			body, err := r.get(b, "/delay")
			if err != nil {
				b.Fatal(err)
			}
			got, err := parseScaleDelay(body)
			if err != nil {
				b.Fatal(err)
			}
			if got[scaleModule(m)][strconv.Itoa(p)] == want {
				run.seen = append(run.seen, time.Since(committed))
				break
			}
			if time.Since(committed) > scaleSeenTimeout {
				b.Fatalf("%s: /delay does not show lag %d of %s/%d %s after the commit", source, want, scaleModule(m), p, scaleSeenTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// A second later the poll that may have shown the commit is over.
		// An answer holding time lags is rendered anew, rows included, once
		// 250 ms old: /delay?unit=seconds then costs a whole rendering.
		if !backoff.Sleep(b.Context(), time.Second) {
			b.Fatal("cancelled")
		}
		run.fresh = append(run.fresh, r.timedGet(b, "/delay?unit=seconds"))
		r.timedGet(b, "/delay")
		run.reused = append(run.reused, r.timedGet(b, "/delay"))
	}
	r.checkBoth(b, source+" at the end")
	run.peak = r.peakRSS(b)
	r.km.Kill()
	return run
}

// commitGroups commits every module's offsets to its Kafka consumer group,
// kgWorkers groups at a time, with ktransfer's commit metadata.
func (r *scaleRig) commitGroups(ctx context.Context) error {
	adm := kadm.NewClient(r.client)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan int)
	for range kgWorkers {
		wg.Go(func() {
			for m := range next {
				var os kadm.Offsets
				for p, off := range r.model.committed[m] {
					os.Add(kadm.Offset{Topic: scaleTopic(m), Partition: int32(p), At: off, LeaderEpoch: -1, Metadata: kgMeta()})
				}
				resp, err := adm.CommitOffsets(ctx, scaleModule(m), os)
				if err == nil {
					err = resp.Error()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("commit the offsets of group %s: %w", scaleModule(m), err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for m := range r.model.committed {
		next <- m
	}
	close(next)
	wg.Wait()
	return firstErr
}

// kgMeta is the commit metadata ktransfer writes, naming the benchmark and
// the time now.
func kgMeta() string {
	return fmt.Sprintf(`{"instance":"bench-1","time":%q}`, time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

// writeOffset commits offset off of module m's partition p to both stores,
// ZooKeeper and the Kafka group, and to the model.
func (r *scaleRig) writeOffset(b *testing.B, m, p int, off int64) {
	b.Helper()
	path := r.layout.Offset(scaleModule(m), scaleTopic(m), int32(p))
	if _, err := r.conn.Set(path, zkconsumers.EncodeOffset(off), -1); err != nil {
		b.Fatalf("write %s: %v", path, err)
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: scaleTopic(m), Partition: int32(p), At: off, LeaderEpoch: -1, Metadata: kgMeta()})
	resp, err := kadm.NewClient(r.client).CommitOffsets(b.Context(), scaleModule(m), os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		b.Fatalf("commit %s/%d at %d: %v", scaleModule(m), p, off, err)
	}
	r.model.committed[m][p] = off
}

// timedGet GETs path from kmonitor and returns how long the answer took.
func (r *scaleRig) timedGet(b *testing.B, path string) time.Duration {
	b.Helper()
	t0 := time.Now()
	if _, err := r.get(b, path); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

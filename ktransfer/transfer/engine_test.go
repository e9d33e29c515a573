package transfer

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

func offsetsOf(ds []delivery) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.offset)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TestWindowBound: with every push held by the backend, no more than window_size
// records of a partition are in flight, however many workers there are.
func TestWindowBound(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 1)
		release := releasedAtCleanup(t)
		var active, peak atomic.Int32
		e.be.delay = func(delivery) time.Duration {
			n := active.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release.ch
			active.Add(-1)
			return 0
		}
		var recs []*kgo.Record
		for i := 0; i < 30; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: value(t, "m", i)})
		}
		e.produce(t, recs...)
		m := e.module("windowed")
		m.WorkerNum, m.WindowSize, m.SerializeByKey = 20, 5, false
		startTransfer(t, e.config("a", m))
		t.Cleanup(release.close) // also before the transfer's stop, which waits for pushes
		testwait.Eventually(t, 10*time.Second, "window full", func() bool { return active.Load() == 5 })
		time.Sleep(300 * time.Millisecond) // would more arrive?
		if p := peak.Load(); p != 5 {
			t.Errorf("got %d pushes in flight at once, want window_size 5", p)
		}
		release.close()
		testwait.Eventually(t, 10*time.Second, "all delivered", func() bool { return len(e.be.deliveries()) == 30 })
	}, StoreZooKeeper, StoreKafka)
}

// TestCommitIsLowestNotDone holds one record while later ones complete: the
// committed offset stays at the held one, then moves to the end.
func TestCommitIsLowestNotDone(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 1)
		hold := releasedAtCleanup(t)
		e.be.delay = func(d delivery) time.Duration {
			if d.offset == 3 {
				<-hold.ch
			}
			return 0
		}
		var recs []*kgo.Record
		for i := 0; i < 10; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: value(t, "m", i)})
		}
		e.produce(t, recs...)
		m := e.module("lowest")
		startTransfer(t, e.config("a", m))
		t.Cleanup(hold.close) // also before the transfer's stop, which waits for pushes
		testwait.Eventually(t, 10*time.Second, "9 of 10 delivered", func() bool { return len(e.be.deliveries()) == 9 })
		time.Sleep(3 * time.Duration(m.CommitIntervalMs) * time.Millisecond)
		if got := e.committed(t, m.Name, 0); got != 3 {
			t.Errorf("committed %d while offset 3 is in flight, want 3", got)
		}
		hold.close()
		testwait.Eventually(t, 10*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == 10 })
	}, StoreZooKeeper, StoreKafka)
}

// TestMethodsAndMalformed checks the methods filter with each on_malformed
// choice; filtered and skipped records still advance the committed offset.
func TestMethodsAndMalformed(t *testing.T) {
	garbage := []byte{0xc1, 0x00}
	noMethod, _ := msgpack.Marshal(map[string]any{"x": 1})
	forStores(t, func(t *testing.T, store string) {
		for _, tc := range []struct {
			onMalformed string
			pushed      []int64
			deadLetters int
		}{
			{"skip", []int64{0, 4}, 0},
			{"push", []int64{0, 2, 3, 4}, 0},
			{"dead_letter", []int64{0, 4}, 2},
		} {
			t.Run(tc.onMalformed, func(t *testing.T) {
				e := newEnvIn(t, store, 1)
				e.produce(t,
					&kgo.Record{Value: value(t, "A", 0)},
					&kgo.Record{Value: value(t, "B", 1)},
					&kgo.Record{Value: garbage},
					&kgo.Record{Value: noMethod},
					&kgo.Record{Value: value(t, "A", 4)},
				)
				m := e.module("filter-" + tc.onMalformed)
				m.Methods = []string{"A"}
				m.OnMalformed = tc.onMalformed
				if tc.onMalformed == "dead_letter" {
					m.DeadLetterTopic = "dlq"
				}
				rt := startTransfer(t, e.config("a", m))
				testwait.Eventually(t, 10*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == 5 })
				if got := offsetsOf(e.be.deliveries()); fmt.Sprint(got) != fmt.Sprint(tc.pushed) {
					t.Errorf("pushed offsets %v, want %v", got, tc.pushed)
				}
				if got := testutil.ToFloat64(rt.tr.met.skipped.WithLabelValues(m.Name, "filtered")); got != 1 {
					t.Errorf("filtered count %v, want 1", got)
				}
				if n := len(e.readAll(t, "dlq")); n != tc.deadLetters {
					t.Errorf("dead letters %d, want %d", n, tc.deadLetters)
				}
			})
		}
	}, StoreZooKeeper, StoreKafka)
}

// TestAllFilteredStillCommits: a partition whose every record is filtered out
// still has its offset moved to the log end (the original never committed).
func TestAllFilteredStillCommits(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 1)
		for i := 0; i < 7; i++ {
			e.produce(t, &kgo.Record{Value: value(t, "other", i)})
		}
		m := e.module("filtered")
		m.Methods = []string{"wanted"}
		startTransfer(t, e.config("a", m))
		testwait.Eventually(t, 10*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == 7 })
		if n := len(e.be.deliveries()); n != 0 {
			t.Errorf("got %d pushes, want none", n)
		}
	}, StoreZooKeeper, StoreKafka)
}

// readAll reads every record of topic.
func (e *env) readAll(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ends, err := kadm.NewClient(e.cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < total && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// TestFailedRecords: retries run out (dead letter with headers, or skip), and a
// status outside retry_on_status fails at once.
func TestFailedRecords(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		for _, tc := range []struct {
			name        string
			status      int
			retryOn     []string
			dlq         bool
			attempts    int
			deadLetters int
			skipReason  string // the ktransfer_skipped_total reason counted once, if any
		}{
			{"retries exhausted to dead letter", 500, nil, true, 3, 1, ""},
			{"retries exhausted skipped", 503, nil, false, 3, 0, "retries_exhausted"},
			{"permanent status", 400, []string{"429", "500-599"}, false, 1, 0, "permanent_failure"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnvIn(t, store, 1)
				e.be.answer = func(d delivery, _ int) int {
					if d.key == "bad" {
						return tc.status
					}
					return 200
				}
				e.produce(t, &kgo.Record{Key: []byte("good"), Value: value(t, "m", 0)}, &kgo.Record{Key: []byte("bad"), Value: value(t, "m", 1)}, &kgo.Record{Key: []byte("good"), Value: value(t, "m", 2)})
				m := e.module("failing")
				m.MaxRetryTimes = 2
				m.RetryOnStatus = tc.retryOn
				if tc.dlq {
					m.DeadLetterTopic = "dlq"
				}
				rt := startTransfer(t, e.config("a", m))
				testwait.Eventually(t, 10*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == 3 })
				for _, reason := range []string{"retries_exhausted", "permanent_failure"} {
					want := 0.0
					if reason == tc.skipReason {
						want = 1
					}
					if got := testutil.ToFloat64(rt.tr.met.skipped.WithLabelValues(m.Name, reason)); got != want {
						t.Errorf("skipped{reason=%q}: got %v, want %v", reason, got, want)
					}
				}
				if got := testutil.ToFloat64(rt.tr.met.deadLettered.WithLabelValues(m.Name)); got != float64(tc.deadLetters) {
					t.Errorf("dead_lettered: got %v, want %d", got, tc.deadLetters)
				}
				bad := 0
				for _, d := range e.be.deliveries() {
					if d.key == "bad" {
						bad++
					}
				}
				if bad != tc.attempts {
					t.Errorf("got %d attempts for the failing record, want %d", bad, tc.attempts)
				}
				dl := e.readAll(t, "dlq")
				if len(dl) != tc.deadLetters {
					t.Fatalf("got %d dead letters, want %d", len(dl), tc.deadLetters)
				}
				if tc.deadLetters == 1 {
					h := map[string]string{}
					for _, kv := range dl[0].Headers {
						h[kv.Key] = string(kv.Value)
					}
					if string(dl[0].Key) != "bad" || h["ktransfer-module"] != m.Name || h["ktransfer-source-topic"] != e.topic ||
						h["ktransfer-source-partition"] != "0" || h["ktransfer-source-offset"] != "1" || h["ktransfer-error"] == "" {
						t.Errorf("dead letter key %q headers %v", dl[0].Key, h)
					}
				}
			})
		}
	}, StoreZooKeeper, StoreKafka)
}

// TestOffsetOutOfRange: the committed offset points below the log start
// (retention deleted those records): pushing continues from the oldest record.
func TestOffsetOutOfRange(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 1)
		for i := 0; i < 10; i++ {
			e.produce(t, &kgo.Record{Value: value(t, "m", i)})
		}
		adm := kadm.NewClient(e.cl)
		os := kadm.Offsets{}
		os.AddOffset(e.topic, 0, 6, -1)
		if _, err := adm.DeleteRecords(context.Background(), os); err != nil {
			t.Fatal(err)
		}
		m := e.module("behind")
		e.plantOffset(t, m, 0, 2)
		rt := startTransfer(t, e.config("a", m))
		testwait.Eventually(t, 10*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == 10 })
		if got := offsetsOf(e.be.deliveries()); fmt.Sprint(got) != "[6 7 8 9]" {
			t.Errorf("pushed offsets %v, want [6 7 8 9]", got)
		}
		if got := testutil.ToFloat64(rt.tr.met.offsetResets.WithLabelValues(m.Name, reasonBelowStart)); got != 1 {
			t.Errorf("out-of-range count %v, want 1", got)
		}
	}, StoreZooKeeper, StoreKafka)
}

// TestInitialOffsetNewest starts a module without offsets at the log end.
func TestInitialOffsetNewest(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 1)
		e.produce(t, &kgo.Record{Value: value(t, "m", 0)}, &kgo.Record{Value: value(t, "m", 1)})
		m := e.module("newest")
		m.InitialOffset = "newest"
		startTransfer(t, e.config("a", m))
		testwait.Eventually(t, 10*time.Second, "offset node created", func() bool { return e.committed(t, m.Name, 0) == 2 })
		e.produce(t, &kgo.Record{Value: value(t, "m", 2)})
		testwait.Eventually(t, 10*time.Second, "new record pushed", func() bool { return len(e.be.deliveries()) == 1 })
		if d := e.be.deliveries()[0]; d.offset != 2 {
			t.Errorf("pushed offset %d, want 2", d.offset)
		}
	}, StoreZooKeeper, StoreKafka)
}

// TestCleanRebalanceRepushesNothing: a second process joins and later leaves
// cleanly; partitions move both ways and no record is pushed twice.
func TestCleanRebalanceRepushesNothing(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 4)
		m := e.module("rebalance")
		seq := 0
		batch := func() {
			var recs []*kgo.Record
			for i := 0; i < 100; i++ {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Partition: int32(i % 4), Value: value(t, "m", seq)})
				seq++
			}
			e.produce(t, recs...)
		}
		a := startTransfer(t, e.config("a", m))
		batch()
		testwait.Eventually(t, 10*time.Second, "first batch", func() bool { return len(e.be.deliveries()) == 100 })
		b := startTransfer(t, e.config("b", m))
		testwait.Eventually(t, 15*time.Second, "b owns two partitions", func() bool {
			return len(b.tr.Status().Modules[m.Name].Partitions) == 2 && len(a.tr.Status().Modules[m.Name].Partitions) == 2
		})
		batch()
		testwait.Eventually(t, 10*time.Second, "second batch", func() bool { return len(e.be.deliveries()) == 200 })
		if err := a.stop(t); err != nil {
			t.Fatalf("a: %v", err)
		}
		testwait.Eventually(t, 15*time.Second, "b owns all", func() bool { return len(b.tr.Status().Modules[m.Name].Partitions) == 4 })
		batch()
		testwait.Eventually(t, 10*time.Second, "third batch", func() bool { return len(e.be.deliveries()) >= 300 })
		time.Sleep(500 * time.Millisecond)
		if n := len(e.be.deliveries()); n != 300 {
			t.Errorf("got %d pushes for 300 records: a clean hand-over must re-push none", n)
		}
	}, StoreZooKeeper, StoreKafka, storeKafkaClassic)
}

// TestFencedProcessStopsPushing cuts a process off ZooKeeper: once fenced it pushes
// nothing and commits nothing; when ZooKeeper is back it takes over again.
func TestFencedProcessStopsPushing(t *testing.T) {
	e := newEnv(t, 2)
	px := testcluster.NewProxy(t, e.zk.Addr)
	m := e.module("fenced")
	e.be.delay = func(delivery) time.Duration { return 20 * time.Millisecond }
	cfg := e.config("a", m)
	cfg.ZKHosts = []string{px.Addr()}
	var logged testwait.Log
	rt := startTransferLog(t, cfg, logged.Logger(slog.LevelInfo))
	produce := func(n int) {
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%10)), Partition: int32(i % 2), Value: value(t, "m", i)})
		}
		e.produce(t, recs...)
	}
	// Enough records that fetching pauses on the backlog: the partitions taken
	// back after the fence must fetch again.
	produce(1500)
	testwait.Eventually(t, 10*time.Second, "pushing", func() bool { return len(e.be.deliveries()) > 20 })
	px.Cut()
	testwait.Eventually(t, 10*time.Second, "fenced", func() bool {
		return len(rt.tr.Status().Modules[m.Name].Partitions) == 0
	})
	time.Sleep(100 * time.Millisecond) // requests already on the wire may land
	pushedAtFence := len(e.be.deliveries())
	offsets := []int64{e.committed(t, m.Name, 0), e.committed(t, m.Name, 1)}
	time.Sleep(2 * time.Second)
	if n := len(e.be.deliveries()); n != pushedAtFence {
		t.Errorf("fenced process pushed %d more records", n-pushedAtFence)
	}
	if now := []int64{e.committed(t, m.Name, 0), e.committed(t, m.Name, 1)}; fmt.Sprint(now) != fmt.Sprint(offsets) {
		t.Errorf("offsets moved while fenced: %v -> %v", offsets, now)
	}
	if pushedAtFence >= 1500 {
		t.Fatalf("everything was pushed before the cut; the test proves nothing")
	}
	px.Heal()
	ends := e.endOffsets(t)
	testwait.Eventually(t, 30*time.Second, "resumed to the log end", func() bool {
		return e.committed(t, m.Name, 0) == ends[0] && e.committed(t, m.Name, 1) == ends[1]
	})
	// Nobody else pushed the partitions meanwhile: the process took them back
	// where it was, so only pushes cut off at the fence were made again (on a
	// loaded machine the process may fence itself more than once).
	ds := e.be.deliveries()
	distinct := map[[2]int64]bool{}
	for _, d := range ds {
		distinct[[2]int64{int64(d.partition), d.offset}] = true
	}
	fences := strings.Count(logged.String(), "fenced: every partition lease is revoked")
	if dups := len(ds) - len(distinct); dups > fences*m.WorkerNum {
		t.Errorf("got %d duplicate pushes after %d fences, want at most worker_num %d per fence\n%s", dups, fences, m.WorkerNum, logged.String())
	}
}

// gate holds backend handlers until closed.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func (g *gate) close() { g.once.Do(func() { close(g.ch) }) }

// releasedAtCleanup returns a gate that is also closed when the test ends, before
// the backend's Close (which waits for its handlers), so a failing test cannot
// leave a handler blocked and the test binary hanging.
func releasedAtCleanup(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.close)
	return g
}

// TestTopicRecreatedUnderRunningModule deletes and recreates the topic while the
// module runs, then writes records to the new topic: every one is pushed,
// whether the committed offsets of the old topic lie beyond the new log end or
// within it, and the event is counted and shown in /status.
func TestTopicRecreatedUnderRunningModule(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		for _, tc := range []struct {
			name  string
			fresh int // records written to the recreated topic, per partition
		}{
			{"fewer records than committed", 30},
			{"more records than committed", 80},
		} {
			t.Run(tc.name, func(t *testing.T) {
				const before = 50 // records per partition before the recreation
				e := newEnvIn(t, store, 2)
				write := func(n, seq0 int) {
					var recs []*kgo.Record
					for i := 0; i < n; i++ {
						for p := int32(0); p < 2; p++ {
							recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%7)), Partition: p, Value: value(t, "m", seq0+i)})
						}
					}
					e.produce(t, recs...)
				}
				write(before, 0)
				m := e.module("recreated")
				rt := startTransfer(t, e.config("a", m))
				testwait.Eventually(t, 15*time.Second, "old topic pushed and committed", func() bool {
					return e.committed(t, m.Name, 0) == before && e.committed(t, m.Name, 1) == before
				})
				recreatedAt := time.Now()
				if err := e.kafka.DeleteTopic(e.topic); err != nil {
					t.Fatal(err)
				}
				if err := e.kafka.CreateTopic(e.topic, 2, nil); err != nil {
					t.Fatal(err)
				}
				e.cl.PurgeTopicsFromClient(e.topic) // the producer holds the old topic's id
				write(tc.fresh, 1000)

				fresh := func() map[string]bool {
					got := map[string]bool{}
					for _, d := range e.be.deliveries() {
						if d.seq >= 1000 {
							got[fmt.Sprintf("%d/%d", d.partition, d.seq)] = true
						}
					}
					return got
				}
				testwait.Eventually(t, 60*time.Second, "every record of the recreated topic pushed", func() bool { return len(fresh()) == 2*tc.fresh })
				testwait.Eventually(t, 10*time.Second, "offsets at the new log end", func() bool {
					return e.committed(t, m.Name, 0) == int64(tc.fresh) && e.committed(t, m.Name, 1) == int64(tc.fresh)
				})
				// With ZooKeeper the old topic's offsets stay, so every
				// partition meets them. A Kafka group's offsets go with the
				// topic: a partition the coordinator hands back before its
				// runner met the new topic starts without a commit, at the
				// log start, with no event to count.
				want := 2
				if store == StoreKafka {
					want = 1
				}
				total := 0.0
				for _, reason := range []string{reasonRecreated, reasonAboveEnd} {
					total += testutil.ToFloat64(rt.tr.met.offsetResets.WithLabelValues(m.Name, reason))
				}
				if total < float64(want) {
					t.Errorf("ktransfer_offset_out_of_range_total (topic_recreated + above_log_end): got %v, want at least %d", total, want)
				}
				got := rt.tr.Status().Modules[m.Name].OffsetResets
				if len(got) < want {
					t.Errorf("/status offset_out_of_range: got %+v, want at least %d events", got, want)
				}
				for _, ev := range got {
					if ev.To != 0 {
						t.Errorf("/status offset_out_of_range: got %+v, want every event continuing at 0", ev)
					}
					// Noticed at the fetch's first UNKNOWN_TOPIC_ID, confirmed by
					// the new id: not after the client's own retries (about
					// 12 s) nor the fallback of unknownIDFor.
					if after := time.UnixMilli(ev.UnixMs).Sub(recreatedAt); after >= unknownIDFor/2 {
						t.Errorf("/status offset_out_of_range: partition %d noticed %v after the recreation, want well within %v", ev.Partition, after, unknownIDFor)
					}
				}
			})
		}
	}, StoreZooKeeper, StoreKafka)
}

// TestConfirmRecreated checks when an UNKNOWN_TOPIC_ID answer counts as the
// topic recreated: not while the topic's id is unknown or still the one the
// consumer holds (Kafka answers so for a moment after a topic is created or a
// partition moves), at once when the metadata gives another id, and when the
// answers last for unknownIDFor whatever the metadata says.
func TestConfirmRecreated(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, "events"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(testcluster.Brokers(c)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	mr := &moduleRunner{m: Module{Topic: "events"}, consumer: cl}
	ctx := context.Background()
	id, err := mr.currentTopicID(ctx)
	if err != nil || id == (kadm.TopicID{}) {
		t.Fatalf("currentTopicID: got %v, %v; want an id", id, err)
	}

	if mr.confirmRecreated(ctx) {
		t.Error("id not known yet: got recreated at the first answer")
	}
	mr.noteTopicID(ctx)
	if mr.topicID != id {
		t.Fatalf("noteTopicID: got %v, want %v", mr.topicID, id)
	}
	mr.idCheckAt = time.Time{}
	if mr.confirmRecreated(ctx) {
		t.Error("the metadata gives the id the consumer holds: got recreated")
	}
	mr.unknownSince = time.Now().Add(-unknownIDFor)
	if !mr.confirmRecreated(ctx) {
		t.Errorf("answers for %s: got not recreated", unknownIDFor)
	}

	mr.unknownSince = time.Time{}
	if err := c.DeleteTopic("events"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic("events", 1, nil); err != nil {
		t.Fatal(err)
	}
	if mr.confirmRecreated(ctx) {
		t.Error("within idCheckInterval of the last metadata read: got recreated")
	}
	mr.idCheckAt = time.Time{}
	if !mr.confirmRecreated(ctx) {
		t.Error("the metadata gives another id: got not recreated")
	}
	mr.noteTopicID(ctx)
	if mr.topicID != id {
		t.Errorf("noteTopicID replaced a known id: got %v, want %v", mr.topicID, id)
	}
}

// TestCommittedOffsetAboveLogEnd plants offset nodes above the log end before
// the first start (as a recreated topic leaves them): with offset_reset oldest
// every record is pushed, with newest none of those present, only later ones.
func TestCommittedOffsetAboveLogEnd(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		for _, reset := range []string{"oldest", "newest"} {
			t.Run(reset, func(t *testing.T) {
				e := newEnvIn(t, store, 1)
				for i := 0; i < 10; i++ {
					e.produce(t, &kgo.Record{Value: value(t, "m", i)})
				}
				m := e.module("ahead-" + reset)
				m.OffsetReset = reset
				e.plantOffset(t, m, 0, 500)
				rt := startTransfer(t, e.config("a", m))
				want, end := "[0 1 2 3 4 5 6 7 8 9]", int64(10)
				if reset == "newest" {
					testwait.Eventually(t, 10*time.Second, "committed at the log end", func() bool { return e.committed(t, m.Name, 0) == 10 })
					e.produce(t, &kgo.Record{Value: value(t, "m", 10)})
					want, end = "[10]", 11
				}
				testwait.Eventually(t, 10*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == end })
				testwait.Eventually(t, 5*time.Second, "pushed", func() bool { return fmt.Sprint(offsetsOf(e.be.deliveries())) == want })
				if got := testutil.ToFloat64(rt.tr.met.offsetResets.WithLabelValues(m.Name, reasonAboveEnd)); got != 1 {
					t.Errorf("ktransfer_offset_out_of_range_total{reason=above_log_end}: got %v, want 1", got)
				}
				st := rt.tr.Status().Modules[m.Name].OffsetResets
				if len(st) != 1 || st[0].Reason != reasonAboveEnd || st[0].From != 500 || st[0].To != []int64{0, 10}[map[string]int{"oldest": 0, "newest": 1}[reset]] {
					t.Errorf("/status offset_out_of_range: got %+v, want one above_log_end event from 500", st)
				}
			})
		}
	}, StoreZooKeeper, StoreKafka)
}

// TestRetentionOvertakesFetch deletes records (as retention does) beyond the
// position the module fetched to while its backend is stalled: once the records
// it holds are pushed, the fetch is out of range below the log start, and the
// module continues from the new log start, counting it, instead of stalling or
// dropping records that still exist.
func TestRetentionOvertakesFetch(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 1)
		const n, deleteTo = 4000, 3000
		// Records large enough (and incompressible) that one fetch does not take
		// them all.
		rng := rand.New(rand.NewPCG(1, 2))
		var recs []*kgo.Record
		for i := 0; i < n; i++ {
			pad := make([]byte, 2048)
			for j := range pad {
				pad[j] = byte(rng.Uint32())
			}
			v, _ := msgpack.Marshal(map[string]any{"method": "m", "seq": i, "data": pad})
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%13)), Value: v})
		}
		e.produce(t, recs...)
		hold := releasedAtCleanup(t)
		e.be.delay = func(delivery) time.Duration { <-hold.ch; return 0 }
		m := e.module("retention")
		rt := startTransfer(t, e.config("a", m))
		var fetched int64
		testwait.Eventually(t, 10*time.Second, "fetching paused on the backlog", func() bool {
			ps := rt.tr.Status().Modules[m.Name].Partitions
			if len(ps) == 1 && ps[0].Pending >= 512 {
				fetched = int64(ps[0].Pending)
				return true
			}
			return false
		})
		os := kadm.Offsets{}
		os.AddOffset(e.topic, 0, deleteTo, -1)
		if _, err := kadm.NewClient(e.cl).DeleteRecords(context.Background(), os); err != nil {
			t.Fatal(err)
		}
		hold.close()
		testwait.Eventually(t, 30*time.Second, "committed at the end", func() bool { return e.committed(t, m.Name, 0) == n })
		got := offsetsOf(e.be.deliveries())
		pos := int64(0) // first offset not pushed before the deleted range
		for _, o := range got {
			if o == pos {
				pos++
			}
		}
		if pos < fetched || pos > deleteTo {
			t.Fatalf("pushed offsets 0..%d, then a gap; want at least the %d fetched before the deletion", pos-1, fetched)
		}
		for i, o := range got[pos:] {
			if want := int64(deleteTo + i); o != want {
				t.Fatalf("after offset %d: pushed %d, want %d (every record from the new log start on, once)", pos-1, o, want)
			}
		}
		if len(got) != int(pos)+n-deleteTo {
			t.Errorf("pushed %d records, want %d", len(got), int(pos)+n-deleteTo)
		}
		if v := testutil.ToFloat64(rt.tr.met.offsetResets.WithLabelValues(m.Name, reasonBelowStart)); v != 1 {
			t.Errorf("ktransfer_offset_out_of_range_total{reason=below_log_start}: got %v, want 1", v)
		}
		t.Logf("records 0..%d pushed, %d..%d deleted unpushed, the rest pushed", pos-1, pos, deleteTo-1)
	}, StoreZooKeeper, StoreKafka)
}

// TestRebalanceUnderLoadRepushesNothing: a second process joins while the
// first is pushing a backlog, and later the first leaves while the second is
// pushing one: the revoked partitions drain and commit before they move, so
// no record is pushed twice and none is lost.
func TestRebalanceUnderLoadRepushesNothing(t *testing.T) {
	forStores(t, func(t *testing.T, store string) {
		e := newEnvIn(t, store, 4)
		e.be.delay = func(delivery) time.Duration { return time.Millisecond }
		m := e.module("rebalance-load")
		m.WorkerNum = 4
		seq := 0
		batch := func(n int) {
			var recs []*kgo.Record
			for i := 0; i < n; i++ {
				recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%40)), Partition: int32(i % 4), Value: value(t, "m", seq)})
				seq++
			}
			e.produce(t, recs...)
		}
		batch(1500)
		a := startTransfer(t, e.config("a", m))
		testwait.Eventually(t, 10*time.Second, "a pushing", func() bool { return len(e.be.deliveries()) > 100 })
		b := startTransfer(t, e.config("b", m))
		testwait.Eventually(t, 20*time.Second, "spread over both", func() bool {
			return len(b.tr.Status().Modules[m.Name].Partitions) == 2 && len(a.tr.Status().Modules[m.Name].Partitions) == 2
		})
		if n := len(e.be.deliveries()); n >= 1500 {
			t.Logf("the backlog was pushed before b took over (%d deliveries): the join was not under load", n)
		}
		batch(1500)
		testwait.Eventually(t, 20*time.Second, "pushing the second batch", func() bool { return len(e.be.deliveries()) > 1600 })
		if err := a.stop(t); err != nil {
			t.Fatalf("a: %v", err)
		}
		if n := len(e.be.deliveries()); n >= 3000 {
			t.Logf("everything was pushed before a left (%d deliveries): the leave was not under load", n)
		}
		testwait.Eventually(t, 30*time.Second, "everything pushed", func() bool { return len(e.be.deliveries()) >= 3000 })
		e.waitCommittedAtEnd(t, m.Name)
		ds := e.be.deliveries()
		seen := map[[2]int64]int{}
		for _, d := range ds {
			seen[[2]int64{int64(d.partition), d.offset}]++
		}
		dups := 0
		for k, n := range seen {
			if n > 1 {
				dups += n - 1
				if dups < 5 {
					t.Errorf("partition %d offset %d pushed %d times", k[0], k[1], n)
				}
			}
		}
		if len(seen) != 3000 || dups != 0 {
			t.Errorf("got %d distinct records of 3000 and %d duplicate pushes, want 3000 and none", len(seen), dups)
		}
	}, StoreZooKeeper, StoreKafka, storeKafkaClassic)
}

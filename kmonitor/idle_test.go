//go:build linux

package main

// 20,000 idle consumer groups, one committed offset each, as old console
// consumers leave behind in real clusters (any ZooKeeper client may create
// them): kmonitor must stay within its documented memory bound.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// The idle groups' setup.
const (
	idleGroups     = 20000
	idleTopic      = "idle"
	idlePartitions = 4
	idleRecords    = 100 // per partition; group g commits g%idleRecords on partition g%idlePartitions
	idleCluster    = "idle"
	// idleRSSBound is the README's bound on kmonitor's RSS at 20,000 idle groups.
	idleRSSBound = 400_000_000
	// idleZKBatch is the create operations per ZooKeeper multi; idleZKInFlight
	// multis are sent at once over one connection.
	idleZKBatch    = 1000
	idleZKInFlight = 8
)

// idleGroup names group g.
func idleGroup(g int) string { return fmt.Sprintf("idle-%05d", g) }

// idleLag is the lag /delay shows for group g: it committed g%idleRecords.
func idleLag(g int) int64 { return int64(idleRecords - g%idleRecords) }

// createIdleGroups creates groups 0..n-1 under {chroot}/consumers, each with one
// offset node, in multis of idleZKBatch creates with idleZKInFlight of them
// pipelined on conn.
func createIdleGroups(ctx context.Context, conn *zk.Conn, layout zkconsumers.Layout, n int) error {
	acl := zk.WorldACL(zk.PermAll)
	if _, err := conn.Create(layout.Consumers(), nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("create %s: %w", layout.Consumers(), err)
	}
	var ops []any
	for g := range n {
		group := idleGroup(g)
		ops = append(ops,
			&zk.CreateRequest{Path: layout.Group(group), Acl: acl},
			&zk.CreateRequest{Path: layout.OffsetsRoot(group), Acl: acl},
			&zk.CreateRequest{Path: layout.OffsetsTopic(group, idleTopic), Acl: acl},
			&zk.CreateRequest{Path: layout.Offset(group, idleTopic, int32(g%idlePartitions)),
				Data: zkconsumers.EncodeOffset(int64(g % idleRecords)), Acl: acl})
	}
	batches := make(chan []any)
	errc := make(chan error, idleZKInFlight)
	var wg sync.WaitGroup
	for range idleZKInFlight {
		wg.Go(func() {
			for b := range batches {
				if _, err := conn.Multi(b...); err != nil {
					errc <- fmt.Errorf("create %d nodes from %s: %w", len(b), b[0].(*zk.CreateRequest).Path, err)
					return
				}
			}
		})
	}
	var err error
	for b := range slices.Chunk(ops, idleZKBatch) {
		select {
		case batches <- b:
			continue
		case err = <-errc:
		case <-ctx.Done():
			err = ctx.Err()
		}
		break
	}
	close(batches)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// idleEnv is ZooKeeper with the idle groups and Kafka with their topic.
type idleEnv struct {
	zk     *testcluster.ZooKeeper
	broker string
	setup  time.Duration // creating the groups
}

func startIdleEnv(tb testing.TB) *idleEnv {
	tb.Helper()
	kafka := testcluster.Kafka(tb, kfake.SeedTopics(idlePartitions, idleTopic))
	e := &idleEnv{zk: testcluster.StartZooKeeper(tb), broker: testcluster.Brokers(kafka)[0]}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range idlePartitions {
		for range idleRecords {
			recs = append(recs, &kgo.Record{Topic: idleTopic, Partition: int32(p), Value: []byte("v")})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		tb.Fatalf("produce: %v", err)
	}
	start := time.Now()
	if err := createIdleGroups(ctx, e.zk.Conn(tb), zkconsumers.New("/"), idleGroups); err != nil {
		tb.Fatal(err)
	}
	e.setup = time.Since(start)
	return e
}

// idleKmonitor is a kmonitor binary watching an idleEnv.
type idleKmonitor struct {
	p   *testproc.Proc
	url string
}

// startIdleKmonitor starts kmonitor on e with the cluster section's extra
// lines (indented by one space).
func startIdleKmonitor(tb testing.TB, e *idleEnv, poll time.Duration, extra string) *idleKmonitor {
	tb.Helper()
	port := testproc.FreePort(tb)
	cfg := filepath.Join(tb.TempDir(), "kmonitor.yaml")
	yaml := fmt.Sprintf(`base:
 log_dir: "-"
 log_level: 4
 clusters: [%s]
 poll_interval_ms: %d
http_server:
 port: %d
 listen_address: 127.0.0.1
%s:
 zk_hosts: [%q]
 broker_hosts: [%q]
%s`, idleCluster, poll.Milliseconds(), port, idleCluster, e.zk.Addr, e.broker, extra)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		tb.Fatal(err)
	}
	return &idleKmonitor{p: testproc.Start(tb, testproc.Build(tb, "."), "-f", cfg), url: "http://127.0.0.1:" + strconv.Itoa(port)}
}

// delay GETs /delay and returns the idle cluster's modules, failing when
// kmonitor exited.
func (k *idleKmonitor) delay(tb testing.TB) map[string]map[string]int64 {
	tb.Helper()
	select {
	case <-k.p.Exited():
		tb.Fatalf("kmonitor exited:\n%s", k.p.Output())
	default:
	}
	code, body := get(tb, k.url+"/delay")
	if code != 200 {
		return nil
	}
	var all map[string]map[string]map[string]int64
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		tb.Fatalf("/delay: %v", err)
	}
	return all[idleCluster]
}

// checkIdle reports how /delay differs from the idle groups 0..n-1.
func checkIdle(got map[string]map[string]int64, n int) error {
	if len(got) != n {
		return fmt.Errorf("got %d groups, want %d", len(got), n)
	}
	for g := range n {
		want := map[string]int64{strconv.Itoa(g % idlePartitions): idleLag(g)}
		if fmt.Sprint(got[idleGroup(g)]) != fmt.Sprint(want) {
			return fmt.Errorf("group %s: got %v, want %v", idleGroup(g), got[idleGroup(g)], want)
		}
	}
	return nil
}

// TestIdleGroupsMemory runs kmonitor against 20,000 idle groups, all monitored
// (max_groups raised), polling every second (the poll interval that cost the
// most when history was allocated per group ahead), reads every answer a few
// times, and checks kmonitor's peak RSS stays below the README's bound. Then
// a kmonitor with the default max_groups monitors 10,000 of them and says so.
func TestIdleGroupsMemory(t *testing.T) {
	e := startIdleEnv(t)
	t.Logf("%d groups created in %s", idleGroups, e.setup.Round(time.Millisecond))
	k := startIdleKmonitor(t, e, time.Second, " max_groups: 50000\n")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := checkIdle(k.delay(t), idleGroups)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/delay after 3 minutes: %v\n%s", err, k.p.Output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Ten polls, each answer read after each.
	for range 10 {
		for _, path := range []string{"/delay", "/delay?format=zabbix", "/delay?unit=seconds", "/lag", "/metrics", "/api/partitions", "/api/history"} {
			if code, body := get(t, k.url+path); code != 200 {
				t.Fatalf("%s: got %d %.200s", path, code, body)
			}
		}
		time.Sleep(time.Second)
	}
	// Each group has a directory for the topic, so every partition of it is a
	// row: the committed one and three without a commit.
	var rows []json.RawMessage
	if _, body := get(t, k.url+"/lag"); json.Unmarshal([]byte(body), &rows) != nil || len(rows) != idleGroups*idlePartitions {
		t.Errorf("/lag: got %d rows, want %d", len(rows), idleGroups*idlePartitions)
	}
	peak, err := loadgen.PeakRSS(k.p.PID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kmonitor peak RSS with %d idle groups: %.1f MB (bound %d MB)", idleGroups, float64(peak)/1e6, idleRSSBound/1_000_000)
	if peak >= idleRSSBound {
		t.Errorf("kmonitor peak RSS: got %.1f MB, want below %d MB", float64(peak)/1e6, idleRSSBound/1_000_000)
	}
	k.p.Kill()

	// The default max_groups: the first 10,000 in name order, a warning, the
	// rest counted.
	d := startIdleKmonitor(t, e, time.Second, "")
	deadline = time.Now().Add(3 * time.Minute)
	for {
		err := checkIdle(d.delay(t), 10000)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("default max_groups: /delay after 3 minutes: %v\n%s", err, d.p.Output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	_, metrics := get(t, d.url+"/metrics")
	for _, want := range []string{
		`kmonitor_groups{cluster="idle",state="tracked"} 10000`,
		`kmonitor_groups{cluster="idle",state="over_cap"} 10000`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if out := d.p.Output(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "max_groups reached") || !strings.Contains(out, "not_monitored=10000") {
		t.Errorf("no warning about max_groups in the log:\n%s", out)
	}
}

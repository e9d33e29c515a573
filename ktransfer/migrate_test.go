package main

// Black-box test of the move from offset_store zookeeper to kafka: a module
// runs on ZooKeeper, its process dies, `ktransfer migrate-offsets` copies its
// offsets into the module's Kafka group, and a process with offset_store
// kafka and no ZooKeeper carries on.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

const migrateChroot = "/mq/test_cluster" // the original file's zk_chroot

// TestMigrationFromZooKeeperToKafka: a process pushes a backlog under
// offset_store zookeeper. While it runs, migrate-offsets refuses the module;
// once it is stopped (SIGTERM, mid-stream), the dry run prints the plan and
// changes nothing, then the migration copies every partition's offset into
// the group. A process with offset_store kafka and no zk_hosts pushes the
// rest: no record skipped, duplicates bounded by what was pushed in the last
// commit interval before the stop.
func TestMigrationFromZooKeeperToKafka(t *testing.T) {
	r := newKafkaRig(t)
	z := testcluster.StartZooKeeper(t)
	bin := testproc.Build(t, ".")
	run := func(args ...string) (int, string) {
		t.Helper()
		p := testproc.Start(t, bin, args...)
		code := p.Wait(60 * time.Second)
		if code == -1 {
			t.Fatalf("ktransfer %v still runs after 60s:\n%s", args, p.Output())
		}
		return code, p.Output()
	}
	onZK := map[string][]string{
		"zk_hosts":     {"- " + z.Addr},
		"offset_store": {"zookeeper"},
	}
	cfgZ := r.config(t, "z", onZK)
	zp := startProc(t, "z", cfgZ, filepath.Join(r.dir, "log-z"))
	r.produce(t, 3000)
	testwait.Eventually(t, 30*time.Second, "pushing", func() bool { return r.be.count() >= 600 })

	code, out := run("migrate-offsets", "-f", cfgZ)
	if code != 1 || !strings.Contains(out, "module test_module_1: ktransfer processes still run it under offset_store zookeeper (live instances in /mq/test_cluster/consumers/test_module_1/ids: z)") {
		t.Errorf("migrate-offsets while the module runs: exit %d, want 1 and the module refused:\n%s", code, out)
	}
	stopAll(t, zp)
	stoppedAt := time.Now()
	atStop := r.be.snapshot()
	if len(atStop) >= 3000 {
		t.Fatalf("everything was pushed before the stop: the test proves nothing")
	}
	const commitInterval = 200 * time.Millisecond // commit_interval_ms of the module file
	lastInterval := 0
	for _, d := range atStop {
		if d.at.After(stoppedAt.Add(-commitInterval)) {
			lastInterval++
		}
	}

	conn := z.Conn(t)
	layout := zkconsumers.New(migrateChroot)
	zkOffsets := map[int32]int64{}
	for p := int32(0); p < kPartitions; p++ {
		data, _, err := conn.Get(layout.Offset(kModule, kTopic, p))
		if err == zk.ErrNoNode {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if zkOffsets[p], err = zkconsumers.DecodeOffset(data); err != nil {
			t.Fatal(err)
		}
	}
	if len(zkOffsets) != kPartitions {
		t.Fatalf("ZooKeeper offsets %v, want one per partition", zkOffsets)
	}

	code, out = run("migrate-offsets", "--dry-run", "-f", cfgZ)
	if code != 0 || strings.Count(out, "would be copied") != kPartitions || !strings.Contains(out, "dry run: nothing was changed") {
		t.Errorf("--dry-run: exit %d, want 0 and every partition to be copied:\n%s", code, out)
	}
	if g, err := readGroup(t, r.cl); err != nil || len(g.commits) != 0 {
		t.Fatalf("after the dry run the group has offsets %v (%v), want none", g.commits, err)
	}

	code, out = run("migrate-offsets", "--module", kModule, "-f", cfgZ)
	t.Logf("migrate-offsets:\n%s", out)
	if code != 0 || strings.Count(out, " copied") != kPartitions {
		t.Fatalf("migrate-offsets: exit %d, want 0 and every partition copied:\n%s", code, out)
	}
	for p, off := range zkOffsets {
		if !strings.Contains(out, fmt.Sprintf("%s  %s  %d          %d", kModule, kTopic, p, off)) {
			t.Errorf("the table does not show partition %d's ZooKeeper offset %d", p, off)
		}
	}
	g, err := readGroup(t, r.cl)
	if err != nil {
		t.Fatal(err)
	}
	for p, off := range zkOffsets {
		if c := g.commits[p]; c.At != off {
			t.Errorf("partition %d: group offset %d, want ZooKeeper's %d", p, c.At, off)
		}
	}

	// On Kafka, without ZooKeeper: the same module, its next process.
	k := r.start(t, "k", nil)
	r.produce(t, 500)
	dups := r.waitDelivered(t, k)
	t.Logf("moved after a stop at %d of 3000 deliveries: %d records, %d duplicate deliveries; %d deliveries in the last commit interval before the stop",
		len(atStop), r.total(), dups, lastInterval)
	if dups > lastInterval {
		t.Errorf("got %d duplicate deliveries, want at most the %d pushed in the last commit interval before the stop", dups, lastInterval)
	}
	for p, off := range zkOffsets {
		data, _, err := conn.Get(layout.Offset(kModule, kTopic, p))
		if now, _ := zkconsumers.DecodeOffset(data); err != nil || now != off {
			t.Errorf("partition %d: ZooKeeper offset %s (%v) after the move, want it left at %d", p, data, err, off)
		}
	}
	stopAll(t, k)
}

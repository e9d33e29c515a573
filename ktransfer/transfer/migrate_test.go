package transfer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/commitmeta"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// plantZKOffsets writes offset nodes of module m, offsets[p] for partition p
// (a value that is not a number is written as it is).
func (e *env) plantZKOffsets(t *testing.T, m Module, offsets map[int32]string) {
	t.Helper()
	l := zkconsumers.New(chroot)
	for _, p := range []string{chroot, l.Consumers(), l.Group(m.Name), l.OffsetsRoot(m.Name), l.OffsetsTopic(m.Name, e.topic)} {
		e.zkConn.Create(p, nil, 0, zkWorldACL())
	}
	for p, v := range offsets {
		path := l.Offset(m.Name, e.topic, p)
		if _, err := e.zkConn.Set(path, []byte(v), -1); err == zk.ErrNoNode {
			_, err = e.zkConn.Create(path, []byte(v), 0, zkWorldACL())
			if err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// plantOffset sets module m's committed offset of partition p in the env's
// store before a transfer runs: an offset node, or an administrator's commit
// to the group.
func (e *env) plantOffset(t *testing.T, m Module, p int32, off int64) {
	t.Helper()
	if e.store == StoreKafka {
		os := kadm.Offsets{}
		os.AddOffset(e.topic, p, off, -1)
		if err := kadm.NewClient(e.cl).CommitAllOffsets(context.Background(), m.Name, os); err != nil {
			t.Fatal(err)
		}
		return
	}
	e.plantZKOffsets(t, m, map[int32]string{p: fmt.Sprint(off)})
}

// kafkaOffsets returns the module's group offsets by partition.
func (e *env) kafkaOffsets(t *testing.T, module string) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	for p := int32(0); p < 4; p++ {
		if off := (&env{store: StoreKafka, cl: e.cl, topic: e.topic}).committed(t, module, p); off >= 0 {
			out[p] = off
		}
	}
	return out
}

func migrate(t *testing.T, cfg Config, opts MigrateOptions) (string, error) {
	t.Helper()
	rows, err := MigrateOffsets(context.Background(), cfg, opts, logging.Discard())
	var buf bytes.Buffer
	if werr := WriteMigrationTable(&buf, rows, opts.DryRun); werr != nil {
		t.Fatal(werr)
	}
	t.Logf("migrate-offsets (dry run %v):\n%s(err %v)", opts.DryRun, buf.String(), err)
	return buf.String(), err
}

// TestMigrateOffsets: the dry run changes nothing; the migration copies every
// ZooKeeper offset into the group and prints what it did per partition; a
// node that holds no offset is skipped and said so; run again, it finds
// everything in place.
func TestMigrateOffsets(t *testing.T) {
	e := newEnv(t, 4)
	m := e.module("moving")
	e.plantZKOffsets(t, m, map[int32]string{0: "5", 1: "0", 2: "garbage"})
	cfg := e.config("a", m)

	table, err := migrate(t, cfg, MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.kafkaOffsets(t, m.Name); len(got) != 0 {
		t.Fatalf("the dry run committed %v", got)
	}
	for _, want := range []string{
		"MODULE  TOPIC   PARTITION  ZOOKEEPER  KAFKA_BEFORE  KAFKA_AFTER(DRY_RUN)  ACTION",
		"moving  events  0          5          -             5                     would be copied",
		"moving  events  2          -          -             -                     skipped (",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("dry-run table lacks %q", want)
		}
	}

	table, err = migrate(t, cfg, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.kafkaOffsets(t, m.Name); fmt.Sprint(got) != "map[0:5 1:0]" {
		t.Errorf("group offsets after the migration: %v, want map[0:5 1:0]", got)
	}
	if !strings.Contains(table, "moving  events  1          0          -             0            copied") {
		t.Errorf("table lacks partition 1 copied:\n%s", table)
	}
	os, err := kadm.NewClient(e.cl).FetchOffsets(context.Background(), m.Name)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := os.Lookup(e.topic, 0)
	if meta, err := commitmeta.Decode(o.Metadata); err != nil || !strings.HasPrefix(meta.Instance, "migrate-offsets@") {
		t.Errorf("metadata of the migrated commit: %q (%v), want migrate-offsets@HOST", o.Metadata, err)
	}

	table, err = migrate(t, cfg, MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(table, "unchanged") != 2 {
		t.Errorf("a second migration: want both offsets unchanged:\n%s", table)
	}
}

// TestMigrateOffsetsKeepsNewerCommit: a partition whose group offset was
// committed after its ZooKeeper offset was written (the fleet ran on Kafka
// since) keeps the group's; an older group offset is replaced.
func TestMigrateOffsetsKeepsNewerCommit(t *testing.T) {
	e := newEnv(t, 4)
	m := e.module("back-and-forth")
	commit := func(p int32, off int64, at time.Time) {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: e.topic, Partition: p, At: off, LeaderEpoch: -1, Metadata: commitmeta.Meta{Instance: "x", Time: at}.Encode()})
		if err := kadm.NewClient(e.cl).CommitAllOffsets(context.Background(), m.Name, os); err != nil {
			t.Fatal(err)
		}
	}
	commit(0, 40, time.Now().Add(-time.Hour)) // before the ZooKeeper write below
	e.plantZKOffsets(t, m, map[int32]string{0: "30", 1: "30"})
	commit(1, 50, time.Now().Add(time.Minute)) // after it
	table, err := migrate(t, e.config("a", m), MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.kafkaOffsets(t, m.Name); fmt.Sprint(got) != "map[0:30 1:50]" {
		t.Errorf("group offsets: %v, want map[0:30 1:50] (partition 0 replaced, 1 kept)", got)
	}
	if !strings.Contains(table, "replaced") || !strings.Contains(table, "kept (the group's offset was committed after ZooKeeper's was written)") {
		t.Errorf("table does not say what happened:\n%s", table)
	}
}

// TestMigrateOffsetsRefusesRunningFleet: a module whose fleet runs — a live
// instance in ZooKeeper, or a member in its Kafka group — is refused and
// nothing is committed for it; --module limits the migration to one module.
func TestMigrateOffsetsRefusesRunningFleet(t *testing.T) {
	e := newEnv(t, 4)
	running, idle := e.module("running"), e.module("idle")
	e.plantZKOffsets(t, running, map[int32]string{0: "3"})
	e.plantZKOffsets(t, idle, map[int32]string{0: "4"})
	cfg := e.config("a", running, idle)

	// A process of the module still runs under offset_store zookeeper.
	zkCfg := e.config("zk-process", running)
	rt := startTransfer(t, zkCfg)
	testwait.Eventually(t, 10*time.Second, "registered", func() bool {
		ok, _, _ := e.zkConn.Exists(zkconsumers.New(chroot).ID(running.Name, "zk-process"))
		return ok
	})
	_, err := migrate(t, cfg, MigrateOptions{})
	if err == nil || !strings.Contains(err.Error(), "module running: ktransfer processes still run it under offset_store zookeeper (live instances in /kt/consumers/running/ids: zk-process)") {
		t.Errorf("got %v, want the running module refused naming its instance", err)
	}
	if got := e.kafkaOffsets(t, running.Name); len(got) != 0 {
		t.Errorf("the refused module's group got offsets %v", got)
	}
	if got := e.kafkaOffsets(t, idle.Name); fmt.Sprint(got) != "map[0:4]" {
		t.Errorf("the idle module: %v, want map[0:4]", got)
	}
	if err := rt.stop(t); err != nil {
		t.Fatal(err)
	}
	// What the process left in ZooKeeper (it may have reset the planted
	// offset, above the empty log's end, to 0).
	want := map[int32]int64{}
	for p := int32(0); p < 4; p++ {
		if off := e.committed(t, running.Name, p); off >= 0 {
			want[p] = off
		}
	}

	// A member in the group (another consumer, or a process already moved).
	member, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumerGroup(running.Name), kgo.ConsumeTopics(e.topic), kgo.ClientID("early-bird"),
		kgo.DisableAutoCommit()) // its own commits, newer than ZooKeeper's, would be kept
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	testwait.Eventually(t, 10*time.Second, "the member joined", func() bool {
		_, gen := member.GroupMetadata()
		return gen >= 0
	})
	_, err = migrate(t, cfg, MigrateOptions{Modules: []string{running.Name}})
	if err == nil || !strings.Contains(err.Error(), "its Kafka consumer group has 1 live members (early-bird") {
		t.Errorf("got %v, want the module refused naming the member", err)
	}
	member.Close()
	if _, err := migrate(t, cfg, MigrateOptions{Modules: []string{running.Name}}); err != nil {
		t.Fatal(err)
	}
	if got := e.kafkaOffsets(t, running.Name); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the member left: %v, want ZooKeeper's %v", got, want)
	}
	if _, err := migrate(t, cfg, MigrateOptions{Modules: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `--module "nope" is not one of module_enabled (running, idle)`) {
		t.Errorf("unknown module: got %v", err)
	}
}

// TestKafkaStoreImportsZooKeeperOffsets: a module pushes part of a backlog
// under offset_store zookeeper and stops; started under offset_store kafka
// with zk_hosts still set, it imports every partition's ZooKeeper offset
// (logged) and goes on: no record skipped, none pushed twice (the stop was
// clean), ZooKeeper left as it was.
func TestKafkaStoreImportsZooKeeperOffsets(t *testing.T) {
	e := newEnv(t, 4)
	e.be.delay = func(delivery) time.Duration { return time.Millisecond }
	m := e.module("imported")
	m.WorkerNum = 4
	var recs []*kgo.Record
	for i := 0; i < 2000; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%40)), Partition: int32(i % 4), Value: value(t, "m", i)})
	}
	e.produce(t, recs...)
	a := startTransfer(t, e.config("a", m))
	testwait.Eventually(t, 20*time.Second, "half pushed", func() bool { return len(e.be.deliveries()) >= 1000 })
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	atStop := len(e.be.deliveries())
	zkAtStop := map[int32]int64{}
	for p := int32(0); p < 4; p++ {
		zkAtStop[p] = e.committed(t, m.Name, p)
	}
	if atStop >= 2000 {
		t.Fatalf("everything was pushed before the stop (%d): the test proves nothing", atStop)
	}

	cfg := e.config("b", m)
	cfg.OffsetStore = StoreKafka // zk_hosts stays
	var logged testwait.Log
	startTransferLog(t, cfg, logged.Logger(slog.LevelInfo))
	testwait.Eventually(t, 30*time.Second, "the rest pushed", func() bool { return len(e.be.deliveries()) >= 2000 })
	(&env{store: StoreKafka, cl: e.cl, topic: e.topic}).waitCommittedAtEnd(t, m.Name)
	time.Sleep(300 * time.Millisecond)
	ds := e.be.deliveries()
	seen := map[[2]int64]bool{}
	for _, d := range ds {
		seen[[2]int64{int64(d.partition), d.offset}] = true
	}
	if len(seen) != 2000 || len(ds) != 2000 {
		t.Errorf("got %d pushes of %d distinct records, want 2000 of 2000 (%d before the move)", len(ds), len(seen), atStop)
	}
	if n := strings.Count(logged.String(), "importing the partition's ZooKeeper offset into the Kafka group"); n != 4 {
		t.Errorf("logged %d imports, want one per partition:\n%s", n, logged.String())
	}
	for p, off := range zkAtStop {
		if now := e.committed(t, m.Name, p); now != off {
			t.Errorf("partition %d: ZooKeeper offset moved from %d to %d under offset_store kafka", p, off, now)
		}
	}
	t.Logf("%d records pushed under zookeeper, %d under kafka", atStop, len(ds)-atStop)
}

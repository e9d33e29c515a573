package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// The tests of offset_source kafka run against kfake alone: no ZooKeeper
// process is started.

// newKafkaEnv returns an env with a Kafka (kfake) and no ZooKeeper.
func newKafkaEnv(t *testing.T, opts ...kfake.Opt) *env {
	t.Helper()
	k := testcluster.Kafka(t, opts...)
	return &env{kafka: k, brokers: testcluster.Brokers(k)}
}

// kafkaCluster returns a cluster section reading e's consumer groups: only
// broker_hosts, so offset_source defaults to kafka.
func (e *env) kafkaCluster(name string) ClusterConfig {
	cc := ClusterDefaults()
	cc.Name = name
	cc.BrokerHosts = e.brokers
	return cc
}

// groupCommit commits group's offset of topic/partition with metadata meta as
// an administrator (the group has no members then).
func (e *env) groupCommit(t *testing.T, group, topic string, p int32, off int64, meta string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: p, At: off, LeaderEpoch: -1, Metadata: meta})
	resp, err := kadm.NewClient(e.client(t)).CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit %s %s/%d at %d: %v", group, topic, p, off, err)
	}
}

// ktransferMeta is the metadata ktransfer's Kafka offset store commits with.
func ktransferMeta(instance string, at time.Time) string {
	return fmt.Sprintf(`{"instance":%q,"time":%q}`, instance, at.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

// groupMember is a consumer in a classic group: it holds partitions, commits
// when told to, and leaves when the test ends (or Leave).
type groupMember struct {
	cl   *kgo.Client
	stop func()
}

// join starts a member of group consuming topic with client id clientID.
func (e *env) join(t *testing.T, group, topic, clientID string) *groupMember {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID(clientID), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	var once sync.Once
	m := &groupMember{cl: cl, stop: func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close()
		})
	}}
	t.Cleanup(m.stop)
	return m
}

// commit commits topic/partition at off as the member.
func (m *groupMember) commit(t *testing.T, topic string, p int32, off int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	m.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: {p: {Epoch: -1, Offset: off}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
			if cerr == nil {
				cerr = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
			}
			err = cerr
		})
	if err != nil {
		t.Fatalf("the member's commit of %s/%d at %d: %v", topic, p, off, err)
	}
}

// TestKafkaSourceOriginalShapes: a cluster with offset_source kafka (the
// default with broker_hosts and no zk_hosts) answers /delay in the original
// shapes byte for byte for the README's example state, committed to Kafka
// consumer groups; /lag tells the commit time and committer from ktransfer's
// metadata; /metrics has the group source's series and no ZooKeeper one.
func TestKafkaSourceOriginalShapes(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	at := time.Date(2026, 11, 28, 10, 39, 46, 123000000, time.UTC)
	e.groupCommit(t, "test_module_1", "t", 0, 0, ktransferMeta("host1-4242-9f3a1c07", at))
	e.groupCommit(t, "test_module_2", "t", 0, 12, "opaque")
	r := start(t, testConfig(200*time.Millisecond, 10, e.kafkaCluster("test_cluster")))

	const wantJSON = `{"test_cluster":{"test_module_1":{"0":12},"test_module_2":{"0":0}}}`
	testwait.Eventually(t, 10*time.Second, "/delay shows the example state, polled", func() bool {
		row := r.row(t, "test_cluster", "test_module_1", "t", 0)
		return r.body(t, "/delay") == wantJSON && row != nil && !row.Stale
	})
	for q, want := range map[string]string{
		"/delay":                      wantJSON,
		"/delay?cluster=test_cluster": wantJSON,
		"/delay?format=zabbix":        "- test_cluster.test_module_1.0.delay 12\n- test_cluster.test_module_2.0.delay 0\n",
		"/delay?format=zabbix_discovery": `{"data":[` +
			`{"{#CLUSTER}":"test_cluster","{#MODULE}":"test_module_1","{#TOPIC}":"t","{#PARTITION}":"0"},` +
			`{"{#CLUSTER}":"test_cluster","{#MODULE}":"test_module_2","{#TOPIC}":"t","{#PARTITION}":"0"}]}`,
	} {
		if got := r.body(t, q); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
	row := r.row(t, "test_cluster", "test_module_1", "t", 0)
	if row == nil || row.LastCommit == nil || !row.LastCommit.Equal(at) || row.CommittedBy != "host1-4242-9f3a1c07" ||
		row.Owner != "" || row.Stale || *row.Committed != 0 || row.Lag != 12 {
		t.Errorf("test_module_1: got %+v, want committed 0 at %v by host1-4242-9f3a1c07, no owner, fresh", row, at)
	}
	// Opaque metadata: the commit was there before kmonitor started, when
	// it was made is not known.
	if row := r.row(t, "test_cluster", "test_module_2", "t", 0); row == nil || row.LastCommit != nil || row.CommittedBy != "" {
		t.Errorf("test_module_2: got %+v, want no last commit time and no committer", row)
	}
	metrics := scrape(t, r)
	for _, want := range []string{
		`kmonitor_kafka_groups_up{cluster="test_cluster"} 1`,
		`kmonitor_groups{cluster="test_cluster",state="tracked"} 2`,
		`kmonitor_module_lag_records{cluster="test_cluster",module="test_module_1"} 12`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, "kmonitor_zookeeper_connected{") {
		t.Error("/metrics has kmonitor_zookeeper_connected for a cluster without ZooKeeper")
	}
	if code, _ := get(t, r.url+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: got %d, want 200", code)
	}
}

// TestKafkaSourceStatusesAndOwners: the owner is the member holding the
// partition; a member that stands still with lag is STALL, catching up is OK;
// a group without members and with lag is STOP; a committed offset above the
// log end is OUT_OF_RANGE.
func TestKafkaSourceStatusesAndOwners(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	testcluster.CreateTopic(t, e.brokers, "u", 1)
	e.produce(t, "t", 0, 20, time.Time{})
	e.produce(t, "u", 0, 20, time.Time{})
	e.groupCommit(t, "live", "t", 0, 10, "")
	e.groupCommit(t, "gone", "t", 0, 10, "")
	e.groupCommit(t, "beyond", "u", 0, 50, "")
	m := e.join(t, "live", "t", "kt-live")
	r := start(t, testConfig(100*time.Millisecond, 3, e.kafkaCluster("c")))
	row := func(module, topic string) *PartitionLag { return r.row(t, "c", module, topic, 0) }

	testwait.Eventually(t, 20*time.Second, "live is STALL, owned by its member", func() bool {
		w := row("live", "t")
		return w != nil && w.Status == StatusStall && w.Lag == 10 && strings.HasPrefix(w.Owner, "kt-live@127.0.0.1:")
	})
	testwait.Eventually(t, 10*time.Second, "gone, without members and with lag, is STOP", func() bool {
		w := row("gone", "t")
		return w != nil && w.Status == StatusStop && w.Owner == "" && w.Lag == 10
	})
	testwait.Eventually(t, 10*time.Second, "beyond is OUT_OF_RANGE", func() bool {
		w := row("beyond", "u")
		return w != nil && w.Status == StatusOutOfRange && w.OutOfRange && w.Lag == 20
	})
	m.commit(t, "t", 0, 20)
	testwait.Eventually(t, 10*time.Second, "live is OK once caught up", func() bool {
		w := row("live", "t")
		return w != nil && w.Status == StatusOK && w.Lag == 0 && strings.HasPrefix(w.Owner, "kt-live@")
	})
	// The member's commit was seen to change: its time is known.
	if w := row("live", "t"); w.LastCommit == nil || time.Since(*w.LastCommit) > time.Minute {
		t.Errorf("live: got last commit %v, want about now", w.LastCommit)
	}
	if got := r.body(t, "/delay"); got != `{"c":{"beyond":{"0":20},"gone":{"0":10},"live":{"0":0}}}` {
		t.Errorf("/delay: got %s", got)
	}
	// The member leaves: nobody owns the partition any more.
	m.stop()
	testwait.Eventually(t, 20*time.Second, "no owner after the member left", func() bool {
		w := row("live", "t")
		return w != nil && w.Owner == ""
	})
}

// TestKafkaSourceTimeLag: the time lag of a Kafka group's partition is the age
// of the record at its committed offset.
func TestKafkaSourceTimeLag(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	now := time.Now()
	e.produce(t, "t", 0, 1, now.Add(-time.Hour))
	e.produce(t, "t", 0, 1, now.Add(-30*time.Minute))
	e.groupCommit(t, "m", "t", 0, 0, "")
	e.groupCommit(t, "done", "t", 0, 2, "")
	r := start(t, testConfig(200*time.Millisecond, 10, e.kafkaCluster("c")))
	checkTimeLag(t, r, func(off int64) { e.groupCommit(t, "m", "t", 0, off, "") })
}

// TestKafkaSourceStaleWhileBrokerDown stops the only broker: the last values
// stay, marked stale, /readyz fails; once the broker is back on its port with
// its data, everything is fresh again and new commits show.
func TestKafkaSourceStaleWhileBrokerDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{kafka: k, brokers: k.ListenAddrs()}
	_, portStr, _ := net.SplitHostPort(e.brokers[0])
	port, _ := strconv.Atoi(portStr)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	e.groupCommit(t, "m", "t", 0, 2, "")
	r := start(t, testConfig(200*time.Millisecond, 10, e.kafkaCluster("c")))
	testwait.Eventually(t, 10*time.Second, "fresh values", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 10 && !row.Stale
	})

	k.Close()
	testwait.Eventually(t, 20*time.Second, "stale while the broker is down", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && row.Lag == 10 && row.Stale
	})
	if got := r.body(t, "/delay"); got != `{"c":{"m":{"0":10}}}` {
		t.Errorf("/delay while stale: got %s, want the last values", got)
	}
	if code, _ := get(t, r.url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz: got %d, want 503", code)
	}
	if m := scrape(t, r); !strings.Contains(m, "\n"+`kmonitor_kafka_groups_up{cluster="c"} 0`+"\n") {
		t.Error("/metrics: kmonitor_kafka_groups_up is not 0 while the broker is down")
	}

	k2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatalf("restart the broker on port %d: %v", port, err)
	}
	t.Cleanup(k2.Close)
	e.kafka = k2
	testwait.Eventually(t, 30*time.Second, "fresh again", func() bool {
		row := r.row(t, "c", "m", "t", 0)
		return row != nil && !row.Stale
	})
	e.groupCommit(t, "m", "t", 0, 12, "")
	testwait.Eventually(t, 10*time.Second, "a commit after the restart", func() bool {
		return r.body(t, "/delay") == `{"c":{"m":{"0":0}}}`
	})
	testwait.Eventually(t, 10*time.Second, "/readyz 200", func() bool {
		code, _ := get(t, r.url+"/readyz")
		return code == http.StatusOK
	})
}

// TestKafkaSourceGroupsDeny: groups.deny leaves a Kafka group out.
func TestKafkaSourceGroupsDeny(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 10, time.Time{})
	e.groupCommit(t, "console-consumer-42", "t", 0, 1, "")
	e.groupCommit(t, "orders", "t", 0, 4, "")
	cc := e.kafkaCluster("c")
	cc.Groups.Deny = []string{"console-consumer-[0-9]+"}
	r := start(t, testConfig(100*time.Millisecond, 3, cc))
	testwait.Eventually(t, 10*time.Second, "only orders monitored", func() bool {
		return r.body(t, "/delay") == `{"c":{"orders":{"0":6}}}`
	})
	metrics := scrape(t, r)
	for _, want := range []string{`kmonitor_groups{cluster="c",state="tracked"} 1`, `kmonitor_groups{cluster="c",state="filtered"} 1`} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestBothSources: with offset_source both, a module known from ZooKeeper and
// from Kafka is one module: the newer commit wins, so it keeps its /delay and
// Zabbix keys while it moves from one store to the other; modules known from
// one store only are shown as that store says.
func TestBothSources(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testcluster.CreateTopic(t, e.brokers, "t", 1)
	e.produce(t, "t", 0, 12, time.Time{})
	commit(t, e.conn, chroot, "moving", "t", 0, 5)
	own(t, e.conn, chroot, "moving", "t", 0, "host-1")
	commit(t, e.conn, chroot, "zk-only", "t", 0, 2)
	e.groupCommit(t, "kafka-only", "t", 0, 9, "")
	cc := e.clusterConfig("c", chroot)
	cc.OffsetSource = SourceBoth
	logs := &testwait.Log{}
	r := startMonitor(t, testConfig(100*time.Millisecond, 10, cc), logs.Logger(slog.LevelInfo))
	testwait.Eventually(t, 10*time.Second, "every module from its store", func() bool {
		return r.body(t, "/delay") == `{"c":{"kafka-only":{"0":3},"moving":{"0":7},"zk-only":{"0":10}}}`
	})
	if row := r.row(t, "c", "moving", "t", 0); row == nil || row.Owner != "host-1" {
		t.Errorf("moving before the move: got %+v, want ZooKeeper's owner host-1", row)
	}

	// The module moves: its fleet stops (the owner node goes), its offset is
	// committed to its Kafka group, newer than the ZooKeeper node.
	testcluster.RemoveTree(t, e.conn, chroot+"/consumers/moving/owners")
	e.groupCommit(t, "moving", "t", 0, 10, ktransferMeta("kt-1", time.Now()))
	testwait.Eventually(t, 10*time.Second, "the newer Kafka commit wins", func() bool {
		return r.body(t, "/delay") == `{"c":{"kafka-only":{"0":3},"moving":{"0":2},"zk-only":{"0":10}}}`
	})
	if got := r.body(t, "/delay?format=zabbix"); got != "- c.kafka-only.0.delay 3\n- c.moving.0.delay 2\n- c.zk-only.0.delay 10\n" {
		t.Errorf("zabbix: got %q", got)
	}
	if row := r.row(t, "c", "moving", "t", 0); row == nil || row.CommittedBy != "kt-1" || row.Owner != "" {
		t.Errorf("moving after the move: got %+v, want committed by kt-1, no owner", row)
	}
	// A later write to ZooKeeper is newer again.
	time.Sleep(10 * time.Millisecond) // the node's mtime is in milliseconds
	commit(t, e.conn, chroot, "moving", "t", 0, 11)
	testwait.Eventually(t, 10*time.Second, "the newer ZooKeeper commit wins", func() bool {
		return r.body(t, "/delay") == `{"c":{"kafka-only":{"0":3},"moving":{"0":1},"zk-only":{"0":10}}}`
	})
	metrics := scrape(t, r)
	for _, want := range []string{
		`kmonitor_zookeeper_connected{cluster="c"} 1`,
		`kmonitor_kafka_groups_up{cluster="c"} 1`,
		`kmonitor_groups{cluster="c",state="tracked"} 3`,
	} {
		if !strings.Contains(metrics, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(logs.String(), "offset_source=both") {
		t.Errorf("log lacks the offset source:\n%s", logs)
	}
}

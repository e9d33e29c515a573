package main

// Black-box test of offset_source: kafka: the kmonitor binary against
// scripts/devbroker (kfake in a process of its own), without any ZooKeeper.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

// kafkaSourceConfig writes a kmonitor.yaml of one cluster reading the
// consumer groups of broker; withBrokers false leaves broker_hosts out.
func kafkaSourceConfig(t *testing.T, broker string, port int, withBrokers bool) string {
	t.Helper()
	brokers := ""
	if withBrokers {
		brokers = fmt.Sprintf(" broker_hosts:\n  - %q\n", broker)
	}
	yaml := fmt.Sprintf(`base:
 log_dir: %q
 log_level: 4
 clusters:
  - kafka_cluster
 poll_interval_ms: 300
 status_window: 3
http_server:
 port: %d
 listen_address: 127.0.0.1
kafka_cluster:
 offset_source: kafka
%s`, filepath.Join(t.TempDir(), "log"), port, brokers)
	path := filepath.Join(t.TempDir(), "kmonitor.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKafkaSourceBinary: kmonitor with offset_source: kafka reads the lag of
// consumer groups from a dev broker with no ZooKeeper anywhere: /delay and
// its Zabbix lines byte for byte (zabbix_sender delivers them), the owner of a
// partition is the group member holding it, a group without members is STOP,
// and -t names the missing broker_hosts.
func TestKafkaSourceBinary(t *testing.T) {
	broker, _ := testcluster.StartDevBroker(t, "-auto-create=false", "-topics", "orders", "-partitions", "2")
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p, n := range []int{12, 5} {
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: int32(p), Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	adm := kadm.NewClient(cl)
	commitAt := func(group string, offsets map[int32]int64, meta string) {
		t.Helper()
		var os kadm.Offsets
		for p, off := range offsets {
			os.Add(kadm.Offset{Topic: "orders", Partition: p, At: off, LeaderEpoch: -1, Metadata: meta})
		}
		resp, err := adm.CommitOffsets(ctx, group, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %s: %v", group, err)
		}
	}
	commitAt("orders-push", map[int32]int64{0: 2, 1: 5}, `{"instance":"host1-4242-9f3a1c07","time":"2026-11-28T10:39:46.123Z"}`)
	commitAt("orders-audit", map[int32]int64{0: 12, 1: 1}, "")

	// A live member of orders-push holds both partitions.
	member, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ClientID("kt-host1"), kgo.ConsumerGroup("orders-push"),
		kgo.ConsumeTopics("orders"), kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() {
		defer close(mdone)
		for mctx.Err() == nil {
			member.PollFetches(mctx)
		}
	}()
	t.Cleanup(func() { mcancel(); <-mdone; member.Close() })

	bin := testproc.Build(t, ".")
	port := testproc.FreePort(t)
	bad := kafkaSourceConfig(t, broker, port, false)
	out, err := exec.Command(bin, "-t", "-f", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kmonitor.yaml: kafka_cluster.broker_hosts: is required with offset_source kafka") {
		t.Errorf("-t without broker_hosts: got %v\n%s\nwant exit 1 naming kafka_cluster.broker_hosts", err, out)
	}
	cfg := kafkaSourceConfig(t, broker, port, true)
	if out, err := exec.Command(bin, "-t", "-f", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "is valid") {
		t.Fatalf("-t: %v %s", err, out)
	}
	p := testproc.Start(t, bin, "-f", cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	const wantJSON = `{"kafka_cluster":{"orders-audit":{"0":0,"1":4},"orders-push":{"0":10,"1":0}}}`
	const wantZabbix = "- kafka_cluster.orders-audit.0.delay 0\n- kafka_cluster.orders-audit.1.delay 4\n" +
		"- kafka_cluster.orders-push.0.delay 10\n- kafka_cluster.orders-push.1.delay 0\n"
	type row struct {
		Module, Owner, Status string
		CommittedBy           string `json:"committed_by"`
		Partition             int32
		Stale                 bool
		LastCommit            *time.Time `json:"last_commit"`
	}
	var rows []row
	testproc.Until(t, 30*time.Second, func() error {
		_, body := get(t, base+"/delay")
		_, lag := get(t, base+"/lag")
		rows = nil
		_ = json.Unmarshal([]byte(lag), &rows)
		owned, stopped := 0, 0
		for _, r := range rows {
			if r.Module == "orders-push" && strings.HasPrefix(r.Owner, "kt-host1@127.0.0.1:") && !r.Stale {
				owned++
			}
			if r.Module == "orders-audit" && r.Partition == 1 && r.Owner == "" && r.Status == "STOP" {
				stopped++
			}
		}
		if body != wantJSON || owned != 2 || stopped != 1 {
			return fmt.Errorf("/delay: got %s, want %s; /lag: %s", body, wantJSON, lag)
		}
		return nil
	}, p)
	for _, r := range rows {
		if r.Module == "orders-push" && (r.CommittedBy != "host1-4242-9f3a1c07" || r.LastCommit == nil ||
			!r.LastCommit.Equal(time.Date(2026, 11, 28, 10, 39, 46, 123000000, time.UTC))) {
			t.Errorf("orders-push/%d: got committed by %q at %v, want host1-4242-9f3a1c07 at the metadata's time", r.Partition, r.CommittedBy, r.LastCommit)
		}
	}
	code, zbx := get(t, base+"/delay?format=zabbix")
	if code != 200 || zbx != wantZabbix {
		t.Fatalf("zabbix format: got %d %q, want %q", code, zbx, wantZabbix)
	}
	tr := startTrapper(t)
	sender, err := exec.LookPath("zabbix_sender")
	if err != nil {
		t.Fatal("zabbix_sender is not installed: run `make test` (it installs it) or `apt-get install -y zabbix-agent`")
	}
	cmd := exec.Command(sender, "-z", "127.0.0.1", "-p", fmt.Sprint(tr.port()), "-s", "kmonitor-host", "-i", "-")
	cmd.Stdin = strings.NewReader(zbx)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "processed: 4; failed: 0") {
		t.Errorf("zabbix_sender: %v\n%s", err, out)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "\nkmonitor_kafka_groups_up{cluster=\"kafka_cluster\"} 1\n") ||
		strings.Contains(body, "kmonitor_zookeeper_connected{") {
		t.Errorf("/metrics: got %d, want kmonitor_kafka_groups_up 1 and no ZooKeeper series", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz: got %d, want 200", code)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM: %d\n%s", code, p.Output())
	}
}

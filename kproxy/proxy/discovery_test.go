package proxy

import (
	"fmt"
	"net"
	"testing"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// TestBrokersFromZooKeeper starts kproxy without broker_hosts: it must find the
// broker in {zk_chroot}/brokers/ids as Kafka's ZooKeeper mode registers it.
func TestBrokersFromZooKeeper(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(2, testTopic))
	host, port, _ := net.SplitHostPort(testcluster.Brokers(c)[0])
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)
	for _, p := range []string{"/kafka", "/kafka/brokers", "/kafka/brokers/ids"} {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	reg := fmt.Sprintf(`{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://%s:%s"],"jmx_port":-1,"host":%q,"timestamp":"1","port":%s,"version":4}`, host, port, host, port)
	if _, err := conn.Create("/kafka/brokers/ids/0", []byte(reg), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(nil)
	cfg.ZKHosts = []string{z.Addr}
	cfg.ZKChroot = "/kafka"
	p := newCore(t, cfg)
	if _, err := commitValue(t, p, testTopic, "k", []byte("v")); err != nil {
		t.Fatalf("got %v, want an acknowledged record", err)
	}
}

func TestProducerNumKeepsKeysTogether(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(4, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProducerNum = 3
	p := newCore(t, cfg)
	seen := map[string]int32{}
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("k%d", i%5)
		ack, err := commitValue(t, p, testTopic, key, []byte("any bytes"))
		if err != nil {
			t.Fatal(err)
		}
		if part, ok := seen[key]; ok && part != ack.Partition {
			t.Fatalf("key %s went to partitions %d and %d", key, part, ack.Partition)
		}
		seen[key] = ack.Partition
	}
	if n := len(p.prod.all()); n != 9 {
		t.Errorf("got %d Kafka clients, want 9 (3 per acks level)", n)
	}
}

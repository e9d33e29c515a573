package proxy

import (
	"fmt"
	"net"
	"net/http"
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
	r := start(t, cfg)
	if a := post(t, r.url, "topic="+testTopic+"&key=k", body(t, "m", 1)); a.status != http.StatusOK {
		t.Fatalf("got %d (%s), want 200", a.status, a.Error)
	}
}

func TestProducerNumKeepsKeysTogether(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(4, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProducerNum = 3
	cfg.ValidateMsgpack = false
	r := start(t, cfg)
	seen := map[string]int32{}
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("k%d", i%5)
		a := post(t, r.url, "topic="+testTopic+"&key="+key, []byte("not msgpack, and accepted"))
		if a.status != http.StatusOK {
			t.Fatalf("got %d (%s)", a.status, a.Error)
		}
		if p, ok := seen[key]; ok && p != a.Part {
			t.Fatalf("key %s went to partitions %d and %d", key, p, a.Part)
		}
		seen[key] = a.Part
	}
	if n := len(r.px.prod.all()); n != 9 {
		t.Errorf("got %d Kafka clients, want 9 (3 per acks level)", n)
	}
}

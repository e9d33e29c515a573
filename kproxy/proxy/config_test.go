package proxy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// TestOriginalFileAccepted loads the original kproxy's file unchanged and checks
// every key keeps its meaning.
func TestOriginalFileAccepted(t *testing.T) {
	c, err := LoadConfig("../../testdata/original/kproxy.yaml")
	if err != nil {
		t.Fatalf("original kproxy.yaml: %v", err)
	}
	want := Defaults()
	want.Dir, want.Level = "./log", 4
	want.Port = 5030
	want.ReadTimeoutMs, want.WriteTimeoutMs = 100, 100
	want.ReqPoolSize, want.ProducerNum = 10240, 1
	want.MaxRequestSizeBytes = 10485760
	want.BrokerHosts = []string{"10.1.4.17:5031", "10.1.5.17:5031"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

// TestExampleFileShowsEveryKeyWithItsDefault keeps conf/kproxy.yaml honest: it
// sets every key, each to its default (broker_hosts aside, which has none).
func TestExampleFileShowsEveryKeyWithItsDefault(t *testing.T) {
	const path = "../../conf/kproxy.yaml"
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	want := Defaults()
	want.BrokerHosts = c.BrokerHosts
	want.ZKHosts, want.Topics.Allow, want.Topics.Deny, want.Auth.Tokens = []string{}, []string{}, []string{}, []string{}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example differs from Defaults:\ngot  %+v\nwant %+v", c, want)
	}
	unset, err := config.Unset(path, "", Config{})
	if err != nil || len(unset) > 0 {
		t.Errorf("%s does not show keys %v (%v)", path, unset, err)
	}
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no brokers", "port: 5030\n", []string{"kproxy.yaml: broker_hosts: is required"}},
		{"everything wrong", `
broker_hosts: [localhost]
port: 0
req_pool_size: 0
producer_num: 100
max_request_size_bytes: 0
partitioner: fnv
default_acks: "2"
compression: brotli
topics: {allow: ["("]}
auth: {tokens: [short]}
shutdown_timeout: soon
kafka: {sasl: {mechanism: GSSAPI}, tls: {ca_file: /nonexistent/ca.pem}}
log_format: xml
tls: {key_file: /nonexistent/key.pem, min_version: "1.0"}
max_connections: 0
ops_listen: "localhost"
`, []string{
			`kproxy.yaml: auth.tokens: token 1 is shorter than 16 characters`,
			`kproxy.yaml: broker_hosts: "localhost" is not HOST:PORT`,
			`kproxy.yaml: compression: "brotli" is not one of none, gzip, snappy, lz4, zstd`,
			`kproxy.yaml: default_acks: "2" is not one of 0, 1, -1`,
			`kproxy.yaml: kafka.sasl.mechanism: "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`,
			`kproxy.yaml: kafka.sasl.user: is required when sasl.mechanism is set`,
			`kproxy.yaml: kafka.tls.ca_file: "/nonexistent/ca.pem" cannot be read`,
			`kproxy.yaml: kafka.tls.enabled: is false although TLS files are configured`,
			`kproxy.yaml: log_format: "xml" is not one of text, json`,
			`kproxy.yaml: max_request_size_bytes: 0 is not in 1..1073741824`,
			`kproxy.yaml: max_connections: 0 is not in 1..1048576`,
			`kproxy.yaml: ops_listen: "localhost" is not HOST:PORT`,
			`kproxy.yaml: partitioner: "fnv" is not one of sarama, murmur2, crc32`,
			`kproxy.yaml: port: 0 is not in 1..65535`,
			`kproxy.yaml: producer_num: 100 is not in 1..64`,
			`kproxy.yaml: req_pool_size: 0 is not in 1..16777216`,
			`kproxy.yaml: shutdown_timeout: "soon" is not a duration`,
			`kproxy.yaml: tls.cert_file: is required when tls.key_file is set`,
			`kproxy.yaml: tls.key_file: "/nonexistent/key.pem" cannot be read`,
			`kproxy.yaml: tls.min_version: "1.0" is not one of 1.2, 1.3`,
			`kproxy.yaml: topics.allow: "(" is not a valid regular expression`,
		}},
	}
	tests = append(tests, struct {
		name string
		yaml string
		want []string
	}{"body memory below the body size", "broker_hosts: [127.0.0.1:9092]\nmax_request_size_bytes: 10485760\nmax_body_memory_bytes: 4194304\nops_listen: \"127.0.0.1:x\"\n", []string{
		"kproxy.yaml: max_body_memory_bytes: 4194304 is below max_request_size_bytes 10485760",
		`kproxy.yaml: ops_listen: "127.0.0.1:x" has no port in 0..65535`,
	}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kproxy.yaml")
			if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestTopicRules(t *testing.T) {
	r, err := newTopicRules(TopicsConfig{Allow: []string{"orders.*", "__audit"}, Deny: []string{"orders-secret"}, AllowInternal: false})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{
		"orders": true, "orders-eu": true, "orders-secret": false, "payments": false,
		"__audit": false, "__consumer_offsets": false, "xorders": false,
	} {
		if got := r.allowed(topic); got != want {
			t.Errorf("allowed(%q): got %v, want %v", topic, got, want)
		}
	}
	open, _ := newTopicRules(TopicsConfig{AllowInternal: true})
	if !open.allowed("__audit") || !open.allowed("any") {
		t.Error("allow_internal with no lists must allow every topic")
	}
}

// TestMemoryBound checks the formula of MemoryBound for the defaults and with TLS.
func TestMemoryBound(t *testing.T) {
	c := Defaults()
	want := int64(64<<20 + 10000*(32<<10+2*64<<10) + 2*256<<20)
	if got := c.MemoryBound(); got != want {
		t.Errorf("defaults: got %d, want %d", got, want)
	}
	c.TLS = TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}
	if got := c.MemoryBound(); got != want+10000*48<<10 {
		t.Errorf("with TLS: got %d, want %d", got, want+10000*48<<10)
	}
}

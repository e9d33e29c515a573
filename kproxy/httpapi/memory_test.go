package httpapi

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// TestAdmissionBeforeBody checks that a request takes its slot of req_pool_size
// before its body is read, and that its buffer follows the bytes that arrived,
// not the length it announced: a client announcing 1 MiB and sending one byte
// holds one small buffer, and the next request is refused before it sends its
// body.
func TestAdmissionBeforeBody(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ReqPoolSize = 1
	cfg.ValidateMsgpack = false
	cfg.MaxRequestSizeBytes = 2 << 20
	r := start(t, cfg)
	testwait.Eventually(t, 5*time.Second, "/readyz 200", func() bool { return do(t, "GET", r.url+"/readyz", nil, nil).status == 200 })

	slow := rawConn(t, r.url)
	send(t, slow, commitHead+"Content-Length: 1048576\r\n\r\nx")
	testwait.Eventually(t, 5*time.Second, "kproxy_inflight_requests 1", func() bool { return metric(t, r, "kproxy_inflight_requests") == 1 })
	if got := metric(t, r, "kproxy_body_memory_bytes"); got != 4096 {
		t.Errorf("one byte of an announced MiB: got kproxy_body_memory_bytes %v, want 4096", got)
	}

	next := rawConn(t, r.url)
	send(t, next, commitHead+"Content-Length: 100\r\n\r\n") // no body yet
	if _, a := readAnswer(t, next, bufio.NewReader(next)); a.status != http.StatusServiceUnavailable || a.Code != "backpressure" {
		t.Fatalf("second request with req_pool_size 1: got %d %q, want 503 backpressure before its body", a.status, a.Code)
	}
	slow.Close()
	testwait.Eventually(t, 5*time.Second, "kproxy_inflight_requests and kproxy_body_memory_bytes 0", func() bool {
		return metric(t, r, "kproxy_inflight_requests") == 0 && metric(t, r, "kproxy_body_memory_bytes") == 0
	})
}

// TestBodyMemoryBound checks max_body_memory_bytes: while one large body holds
// half of the budget, another large one has no room to grow and gets 503; once
// the first is written, the second passes.
func TestBodyMemoryBound(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.ValidateMsgpack = false
	cfg.MaxRequestSizeBytes = 1 << 20
	cfg.MaxBodyMemoryBytes = 2 << 20
	cfg.ReadTimeoutMs = 60000
	r := start(t, cfg)
	testwait.Eventually(t, 5*time.Second, "/readyz 200", func() bool { return do(t, "GET", r.url+"/readyz", nil, nil).status == 200 })

	// 600 KiB of 1000 KiB: the buffer has grown to 1 MiB.
	const size, part = 1000 << 10, 600 << 10
	big := strings.Repeat("b", size)
	head := commitHead + fmt.Sprintf("Content-Length: %d\r\n\r\n", size)
	first := rawConn(t, r.url)
	send(t, first, head+big[:part])
	testwait.Eventually(t, 5*time.Second, "kproxy_body_memory_bytes 1 MiB", func() bool { return metric(t, r, "kproxy_body_memory_bytes") == 1<<20 })

	// The second needs 512 KiB and 1 MiB at once to grow past 512 KiB.
	second := rawConn(t, r.url)
	send(t, second, head+big[:part])
	resp, a := readAnswer(t, second, bufio.NewReader(second))
	if a.status != http.StatusServiceUnavailable || a.Code != "backpressure" || !strings.Contains(a.Error, "max_body_memory_bytes") {
		t.Fatalf("with the budget used: got %d %q (%s), want 503 backpressure naming max_body_memory_bytes", a.status, a.Code, a.Error)
	}
	if !resp.Close {
		t.Error("body refused part way: connection kept, want Connection: close")
	}
	if got := metric(t, r, "kproxy_body_memory_bytes"); got != 1<<20 {
		t.Errorf("after the refusal: got kproxy_body_memory_bytes %v, want 1 MiB (the first body only)", got)
	}
	send(t, first, big[part:])
	if _, a := readAnswer(t, first, bufio.NewReader(first)); a.status != http.StatusOK {
		t.Fatalf("the first body: got %d %q, want 200", a.status, a.Code)
	}
	if a := post(t, r.url, "topic="+testTopic, []byte(big)); a.status != http.StatusOK {
		t.Fatalf("the second body sent again: got %d %q, want 200", a.status, a.Code)
	}
	testwait.Eventually(t, 5*time.Second, "kproxy_body_memory_bytes 0", func() bool { return metric(t, r, "kproxy_body_memory_bytes") == 0 })
	if end := endOffset(t, brokers, testTopic); end != 2 {
		t.Errorf("got end offset %d, want 2", end)
	}
}

// TestAutoTopicCreation writes to a topic Kafka does not have: it is created
// when kproxy asks for it (allow_auto_topic_creation, the default) and the broker
// allows it; otherwise the answer is 404.
func TestAutoTopicCreation(t *testing.T) {
	for _, tc := range []struct {
		name          string
		brokerCreates bool
		kproxyAsks    bool
		status        int
	}{
		{"broker creates, kproxy asks (default)", true, true, http.StatusOK},
		{"broker does not create", false, true, http.StatusNotFound},
		{"kproxy does not ask", true, false, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.SeedTopics(1, testTopic)}
			if tc.brokerCreates {
				opts = append(opts, kfake.AllowAutoTopicCreation())
			}
			c := testcluster.Kafka(t, opts...)
			cfg := testConfig(testcluster.Brokers(c))
			cfg.AllowAutoTopicCreation = tc.kproxyAsks
			r := start(t, cfg)
			a := post(t, r.url, "topic=brand-new&key=k", body(t, "m", 1))
			if a.status != tc.status {
				t.Fatalf("got %d %q (%s), want %d", a.status, a.Code, a.Error, tc.status)
			}
			if tc.status == http.StatusOK {
				if recs := testcluster.ReadTopic(t, testcluster.Brokers(c), "brand-new", 1); string(recs[0].Key) != "k" {
					t.Errorf("got key %q in the new topic, want k", recs[0].Key)
				}
			}
		})
	}
}

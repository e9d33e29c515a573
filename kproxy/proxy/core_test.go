package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

const testTopic = "orders"

// testConfig returns a configuration for brokers with short timeouts.
func testConfig(brokers []string) Config {
	c := Defaults()
	c.BrokerHosts = brokers
	c.ListenAddress = "127.0.0.1"
	c.ProduceTimeoutMs = 2000
	c.Shutdown = 10 * time.Second
	return c
}

// newCore creates a core for cfg, probing Kafka until the test ends.
func newCore(t *testing.T, cfg Config, extra ...kgo.Opt) *Proxy {
	t.Helper()
	p, err := New(context.Background(), cfg, logging.Discard(), extra...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.RunHealth(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		p.Close()
	})
	return p
}

// commitValue admits, fills and commits one record at acks=1, as a door does.
func commitValue(t *testing.T, p *Proxy, topic, key string, value []byte) (Ack, error) {
	t.Helper()
	return commitWith(t, p, topic, func(r *Record) {
		r.SetKey(key)
		if err := r.SetValue(value); err != nil {
			t.Fatalf("SetValue: %v", err)
		}
	})
}

// commitWith admits a record for topic, lets fill set it up and commits it.
func commitWith(t *testing.T, p *Proxy, topic string, fill func(*Record)) (Ack, error) {
	t.Helper()
	r, err := p.Admit(topic)
	if err != nil {
		return Ack{}, err
	}
	defer r.Release()
	fill(r)
	return p.Commit(context.Background(), r)
}

// TestCommitAcknowledges commits records at every acks level, with keys, an
// explicit partition and headers, and reads them back.
func TestCommitAcknowledges(t *testing.T) {
	const parts = 4
	c := testcluster.Kafka(t, kfake.SeedTopics(parts, testTopic))
	brokers := testcluster.Brokers(c)
	p := newCore(t, testConfig(brokers))
	hash, _ := partition.Lookup(partition.NameSarama)

	type sent struct {
		ack   Ack
		value []byte
		acks  Acks
	}
	var all []sent
	for i, acks := range []Acks{AcksNone, AcksLeader, AcksAll} {
		key := fmt.Sprintf("user-%d", i)
		value := bytes.Repeat([]byte{byte('a' + i)}, 10+i)
		ack, err := commitWith(t, p, testTopic, func(r *Record) {
			r.Acks = acks
			r.SetKey(key)
			r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte(key)}}
			if err := r.SetValue(value); err != nil {
				t.Fatal(err)
			}
		})
		if err != nil {
			t.Fatalf("acks=%s: %v", acks, err)
		}
		if want := hash([]byte(key), parts); ack.Partition != want || ack.Topic != testTopic {
			t.Errorf("acks=%s: got %s/%d, want %s/%d", acks, ack.Topic, ack.Partition, testTopic, want)
		}
		if acks == AcksNone && ack.Offset != -1 {
			t.Errorf("acks=0: got offset %d, want -1", ack.Offset)
		}
		all = append(all, sent{ack, value, acks})
	}
	explicit, err := commitWith(t, p, testTopic, func(r *Record) {
		r.Partition = 3
		r.SetKey("user-0") // hashes elsewhere; the explicit partition wins
		_ = r.SetValue([]byte("explicit"))
	})
	if err != nil || explicit.Partition != 3 {
		t.Fatalf("explicit partition 3: got %+v, %v", explicit, err)
	}
	all = append(all, sent{explicit, []byte("explicit"), AcksLeader})

	recs := testcluster.ReadTopic(t, brokers, testTopic, len(all))
	for _, s := range all {
		found := false
		for _, rec := range recs {
			if rec.Partition == s.ack.Partition && bytes.Equal(rec.Value, s.value) {
				found = true
				if s.acks != AcksNone && rec.Offset != s.ack.Offset {
					t.Errorf("value %q: at offset %d, acknowledged %d", s.value, rec.Offset, s.ack.Offset)
				}
			}
		}
		if !found {
			t.Errorf("value %q not in partition %d", s.value, s.ack.Partition)
		}
	}
	for _, rec := range recs {
		if string(rec.Value) != "explicit" && (len(rec.Headers) != 1 || string(rec.Headers[0].Value) != string(rec.Key)) {
			t.Errorf("record %q: got headers %v, want h=key", rec.Value, rec.Headers)
		}
	}
}

func TestCommitUnknownPartition(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(2, testTopic))
	p := newCore(t, testConfig(testcluster.Brokers(c)))
	_, err := commitWith(t, p, testTopic, func(r *Record) {
		r.Partition = 2
		_ = r.SetValue([]byte("v"))
	})
	if !errors.Is(err, ErrUnknownPartition) || Code(err) != CodeUnknownPartition {
		t.Fatalf("partition 2 of 2: got %v (code %s), want ErrUnknownPartition", err, Code(err))
	}
}

// TestAdmitRefuses checks what Admit refuses before a door reads any value.
func TestAdmitRefuses(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ReqPoolSize = 1
	cfg.Topics.Deny = []string{"audit-.*"}
	p := newCore(t, cfg)
	for topic, want := range map[string]error{
		"":           ErrMissingTopic,
		"a/b":        ErrInvalidTopic,
		"audit-log":  ErrTopicNotAllowed,
		"__internal": ErrTopicNotAllowed,
	} {
		if _, err := p.Admit(topic); !errors.Is(err, want) {
			t.Errorf("Admit(%q): got %v, want %v", topic, err, want)
		}
		if err := p.CheckTopic(topic); !errors.Is(err, want) {
			t.Errorf("CheckTopic(%q): got %v, want %v", topic, err, want)
		}
	}
	first, err := p.Admit(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Admit(testTopic); !errors.Is(err, ErrBackpressure) || !strings.Contains(err.Error(), "req_pool_size 1") {
		t.Errorf("second record with req_pool_size 1: got %v, want ErrBackpressure naming req_pool_size", err)
	}
	first.Release()
	second, err := p.Admit(testTopic)
	if err != nil {
		t.Fatalf("after Release: got %v, want a free slot", err)
	}
	second.Release()
	p.StartDrain()
	if _, err := p.Admit(testTopic); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("draining: got %v, want ErrShuttingDown", err)
	}
}

// errReader fails after its bytes.
type errReader struct{ n int }

func (r *errReader) Read(b []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	n := min(r.n, len(b))
	r.n -= n
	return n, nil
}

// TestReadValue checks the bounds of ReadValue and that its buffer grows with
// the bytes that arrive.
func TestReadValue(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.MaxRequestSizeBytes = 200 << 10
	p := newCore(t, cfg)
	big := bytes.Repeat([]byte("0123456789"), 20<<10) // 200 KiB, the limit
	tests := []struct {
		name string
		src  io.Reader
		want []byte
		err  error
	}{
		{"small", strings.NewReader("hello"), []byte("hello"), nil},
		{"at the limit, one byte per read", iotest.OneByteReader(bytes.NewReader(big)), big, nil},
		{"at the limit, data with EOF", iotest.DataErrReader(bytes.NewReader(big)), big, nil},
		{"one byte past the limit", bytes.NewReader(append(big, 'x')), nil, ErrBodyTooLarge},
		{"empty", strings.NewReader(""), nil, ErrEmptyBody},
		{"broken", &errReader{n: 10}, nil, ErrBodyRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := p.Admit(testTopic)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			err = r.ReadValue(tt.src)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !bytes.Equal(r.Value(), tt.want) {
				t.Fatalf("got %d bytes, %v; want the %d bytes sent", len(r.Value()), err, len(tt.want))
			}
		})
	}

	t.Run("the buffer follows the bytes, not an announced length", func(t *testing.T) {
		r, err := p.Admit(testTopic)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		if err := r.ReadValue(strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if got := cap(r.buf.b); got != minValueBuf {
			t.Errorf("one byte read: buffer of %d bytes, want %d", got, minValueBuf)
		}
	})
}

// TestCommitGivesUp checks the two ways Commit stops waiting: produce_timeout_ms
// and the caller's context. Kafka holds every produce request meanwhile; once it
// answers, the records Commit gave up on give their memory back.
func TestCommitGivesUp(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProduceTimeoutMs = 300
	p := newCore(t, cfg)
	if _, err := commitValue(t, p, testTopic, "", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	_, open := testcluster.HoldProduces(t, c)

	_, err := commitValue(t, p, testTopic, "", []byte("slow"))
	if !errors.Is(err, ErrTimeout) || Code(err) != CodeKafkaTimeout {
		t.Errorf("held by Kafka: got %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := p.Admit(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.SetValue([]byte("gone"))
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = p.Commit(ctx, r)
	r.Release()
	if !errors.Is(err, ErrCanceled) || Code(err) != CodeCanceled {
		t.Errorf("caller gone: got %v, want ErrCanceled", err)
	}
	heldUntilAnswered(t, p, open)
}

// heldUntilAnswered checks that what Commit gave up on still counts body
// memory while Kafka holds it, then lets Kafka answer (open) and waits for the
// memory to come back.
func heldUntilAnswered(t *testing.T, p *Proxy, open func()) {
	t.Helper()
	if got := p.mem.used.Load(); got == 0 {
		t.Error("records held by Kafka's client count no body memory, want theirs counted")
	}
	open()
	deadline := time.Now().Add(15 * time.Second)
	for p.mem.used.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after Kafka answered: %d bytes of body memory still held, want 0", p.mem.used.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCodeCoversSentinels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{ErrMissingTopic, CodeMissingTopic}, {ErrInvalidTopic, CodeInvalidTopic}, {ErrInvalidKey, CodeInvalidKey},
		{ErrInvalidAcks, CodeInvalidAcks}, {ErrEmptyBody, CodeEmptyBody}, {ErrBodyRead, CodeBodyRead},
		{ErrInvalidMsgpack, CodeInvalidMsgpack}, {ErrUnauthorized, CodeUnauthorized},
		{ErrTopicNotAllowed, CodeTopicNotAllowed}, {kerr.TopicAuthorizationFailed, CodeTopicNotAllowed},
		{ErrUnknownTopic, CodeUnknownTopic}, {kerr.UnknownTopicOrPartition, CodeUnknownTopic},
		{ErrUnknownPartition, CodeUnknownPartition}, {ErrBodyTooLarge, CodeBodyTooLarge},
		{kerr.MessageTooLarge, CodeBodyTooLarge}, {ErrBackpressure, CodeBackpressure},
		{kgo.ErrMaxBuffered, CodeBackpressure}, {ErrShuttingDown, CodeShuttingDown},
		{kgo.ErrClientClosed, CodeShuttingDown}, {ErrTimeout, CodeKafkaTimeout},
		{context.DeadlineExceeded, CodeKafkaTimeout}, {fmt.Errorf("%w: %w", ErrCanceled, context.DeadlineExceeded), CodeCanceled},
		{ErrKafkaUnavailable, CodeKafkaUnavailable}, {errors.New("connection refused"), CodeKafkaUnavailable},
		{fmt.Errorf("wrapped: %w", ErrInvalidTopic), CodeInvalidTopic},
	} {
		if got := Code(tc.err); got != tc.code {
			t.Errorf("Code(%v): got %s, want %s", tc.err, got, tc.code)
		}
	}
}

func TestAuthorization(t *testing.T) {
	const tok = "0123456789abcdef-one"
	p := &Proxy{tokens: digestTokens([]string{tok, "0123456789abcdef-two"})}
	open := &Proxy{}
	for _, tc := range []struct {
		name          string
		header, query string
		plain, socket bool // Authorized, AuthorizedUpgrade
	}{
		{"header", "Bearer " + tok, "", true, true},
		{"second token", "Bearer 0123456789abcdef-two", "", true, true},
		{"wrong header", "Bearer " + tok + "x", "", false, false},
		{"prefix of a token", "Bearer " + tok[:10], "", false, false},
		{"query", "", "access_token=" + tok, false, true},
		{"escaped query", "", "x=1&access_token=0123456789abcdef%2Done", false, true},
		{"wrong query", "", "access_token=nope", false, false},
		{"empty query", "", "access_token=", false, false},
		{"wrong header decides over a right query", "Bearer nope", "access_token=" + tok, false, false},
		{"nothing", "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws?"+tc.query, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if got := p.Authorized(r); got != tc.plain {
				t.Errorf("Authorized: got %v, want %v", got, tc.plain)
			}
			if got := p.AuthorizedUpgrade(r); got != tc.socket {
				t.Errorf("AuthorizedUpgrade: got %v, want %v", got, tc.socket)
			}
			if !open.Authorized(r) || !open.AuthorizedUpgrade(r) {
				t.Error("without auth.tokens: refused, want every request authorized")
			}
		})
	}
}

// TestThrottle: a Throttle logs the first warning and drops the ones that
// follow within ThrottleEvery, counting them for its next line.
func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var th Throttle
	for i := 0; i < 5; i++ {
		th.Warn(log, "again", "i", i)
	}
	if got := strings.Count(buf.String(), "again"); got != 1 || !strings.Contains(buf.String(), "level=WARN") {
		t.Fatalf("got %d lines (%q), want one warning", got, buf.String())
	}
	if th.missed != 4 {
		t.Errorf("got %d counted for the next line, want 4", th.missed)
	}
}

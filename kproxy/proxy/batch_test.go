package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// TestCommitBatch commits a batch whose keys and values are slices of its body,
// with headers of the batch and of some records, and reads it back.
func TestCommitBatch(t *testing.T) {
	const parts = 4
	c := testcluster.Kafka(t, kfake.SeedTopics(parts, testTopic))
	brokers := testcluster.Brokers(c)
	p := newCore(t, testConfig(brokers))
	hash, _ := partition.Lookup(partition.NameSarama)

	b, err := p.AdmitBatch(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := b.SetBody([]byte("k1v1k2v2v3")); err != nil {
		t.Fatal(err)
	}
	body := b.Body()
	b.Acks = AcksAll
	b.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("t")}}
	if err := b.Grow(2); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Add(body[0:2], body[2:4]))
	must(b.Add(body[4:6], body[6:8]))
	must(b.AddHeader("own", []byte("x")))
	must(b.AddHeader("own2", []byte("y")))
	must(b.Add(nil, body[8:10])) // beyond Grow: Add makes room
	p.CommitBatch(context.Background(), b)
	if b.Failed() != 0 {
		for i := 0; i < b.Len(); i++ {
			_, err := b.Result(i)
			t.Errorf("record %d: %v", i, err)
		}
		t.FailNow()
	}
	wantHeaders := []string{"[traceparent=t]", "[traceparent=t own=x own2=y]", "[traceparent=t]"}
	recs := testcluster.ReadTopic(t, brokers, testTopic, 3)
	for i, want := range []struct{ key, value string }{{"k1", "v1"}, {"k2", "v2"}, {"", "v3"}} {
		ack, _ := b.Result(i)
		var rec *kgo.Record
		for _, r := range recs {
			if r.Partition == ack.Partition && r.Offset == ack.Offset {
				rec = r
			}
		}
		if rec == nil || string(rec.Key) != want.key || string(rec.Value) != want.value {
			t.Fatalf("record %d: got %+v at %d/%d, want key %q value %q", i, rec, ack.Partition, ack.Offset, want.key, want.value)
		}
		if want.key != "" && rec.Partition != hash([]byte(want.key), parts) {
			t.Errorf("record %d: in partition %d, want its key's", i, rec.Partition)
		}
		var hs []string
		for _, h := range rec.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		if got := fmt.Sprint(hs); got != wantHeaders[i] {
			t.Errorf("record %d: got headers %s, want %s", i, got, wantHeaders[i])
		}
	}
}

// TestBatchMemoryBound: a batch's bookkeeping counts against
// max_body_memory_bytes, and all of it comes back at Release.
func TestBatchMemoryBound(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.MaxBodyMemoryBytes = 1 << 20
	p := newCore(t, cfg)
	b, err := p.AdmitBatch(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Grow(100); err != nil {
		t.Fatal(err)
	}
	if got := p.mem.used.Load(); got != int64(100*entryBytes) {
		t.Errorf("after Grow(100): %d bytes counted, want %d", got, 100*entryBytes)
	}
	if err := b.Grow((1 << 20) / entryBytes); !errors.Is(err, ErrBackpressure) {
		t.Errorf("Grow beyond max_body_memory_bytes: got %v, want ErrBackpressure", err)
	}
	b.Release()
	if got := p.mem.used.Load(); got != 0 {
		t.Errorf("after Release: %d bytes counted, want 0", got)
	}
}

// TestCommitBatchGivesUp: Kafka holds the records; CommitBatch gives up at
// produce_timeout_ms with ErrTimeout for each and at the caller's cancellation
// with ErrCanceled, and the memory comes back once Kafka answered.
func TestCommitBatchGivesUp(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProduceTimeoutMs = 300
	p := newCore(t, cfg)
	if _, err := commitValue(t, p, testTopic, "", []byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	_, open := testcluster.HoldProduces(t, c)

	run := func(ctx context.Context) *Batch {
		b, err := p.AdmitBatch(testTopic)
		if err != nil {
			t.Fatal(err)
		}
		_ = b.SetBody([]byte("abc"))
		for i := 0; i < 3; i++ {
			if err := b.Add(nil, b.Body()[i:i+1]); err != nil {
				t.Fatal(err)
			}
		}
		p.CommitBatch(ctx, b)
		return b
	}
	b := run(context.Background())
	for i := 0; i < b.Len(); i++ {
		if _, err := b.Result(i); !errors.Is(err, ErrTimeout) {
			t.Errorf("timed out, record %d: got %v, want ErrTimeout", i, err)
		}
	}
	b.Release()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	b = run(ctx)
	for i := 0; i < b.Len(); i++ {
		if _, err := b.Result(i); !errors.Is(err, ErrCanceled) {
			t.Errorf("canceled, record %d: got %v, want ErrCanceled", i, err)
		}
	}
	b.Release()
	heldUntilAnswered(t, p, open)
}

// TestCommitAsync checks the callback form: one call per record with what
// Commit would return, Release allowed in it, and ErrTimeout from the sweeper.
func TestCommitAsync(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProduceTimeoutMs = 300
	p := newCore(t, cfg)
	type outcome struct {
		ack Ack
		err error
	}
	commit := func() <-chan outcome {
		out := make(chan outcome, 2)
		r, err := p.Admit(testTopic)
		if err != nil {
			t.Fatal(err)
		}
		_ = r.SetValue([]byte("v"))
		p.CommitAsync(context.Background(), r, func(r *Record, ack Ack, err error) {
			r.Release()
			out <- outcome{ack, err}
		})
		return out
	}
	for i := 0; i < 3; i++ {
		got := <-commit()
		if got.err != nil || got.ack.Offset != int64(i) {
			t.Fatalf("commit %d: got %+v, want offset %d", i, got, i)
		}
	}
	testcluster.HoldProduces(t, c)
	out := commit()
	if got := <-out; !errors.Is(got.err, ErrTimeout) {
		t.Fatalf("held by Kafka: got %+v, want ErrTimeout", got)
	}
	select {
	case got := <-out:
		t.Fatalf("a second callback: %+v", got)
	case <-time.After(100 * time.Millisecond):
	}
}

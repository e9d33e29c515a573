package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// TestBatchRoundTripThroughKcat runs the binary from the original file
// (max_batch_records at its default), POSTs a batch of records with binary
// keys and values of every msgpack kind, record headers and a trace context,
// and reads them back with kcat: each value is exactly its element's bytes,
// each key its element's, each header list the request's and the element's,
// at the partition and offset the answer gave.
func TestBatchRoundTripThroughKcat(t *testing.T) {
	const topic = "bb-batch"
	c := testcluster.Kafka(t, kfake.SeedTopics(4, topic))
	brokers := testcluster.Brokers(c)
	cfg, port, logDir := bbOriginalConfig(t, brokers, "")
	p := bbStart(t, cfg, port, logDir)

	type elem struct {
		key     []byte
		value   any
		headers [][2]string
	}
	elems := []elem{
		{[]byte("user-1"), map[string]any{"method": "TestReply", "data": []byte{0, 1, '\n', 0xff}}, nil},
		{[]byte{0, 0xfe, '\n'}, []any{1, "two", 3.5, nil, true}, [][2]string{{"content-type", "application/x-msgpack"}}},
		{nil, "a string value", [][2]string{{"a", "1"}, {"b", "2"}}},
		{[]byte("user-2"), int64(-1) << 40, nil},
		{[]byte("user-3"), bytes.Repeat([]byte{0xc1, 0x00, '\r'}, 1000), nil},
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(enc.EncodeArrayLen(len(elems)))
	var values [][]byte
	for _, e := range elems {
		n := 2
		if e.headers != nil {
			n++
		}
		must(enc.EncodeMapLen(n))
		must(enc.EncodeString("key"))
		if e.key == nil {
			must(enc.EncodeNil())
		} else {
			must(enc.EncodeBytes(e.key))
		}
		must(enc.EncodeString("value"))
		start := buf.Len()
		must(enc.Encode(e.value))
		values = append(values, bytes.Clone(buf.Bytes()[start:]))
		if e.headers != nil {
			must(enc.EncodeString("headers"))
			must(enc.EncodeMapLen(len(e.headers)))
			for _, h := range e.headers {
				must(enc.EncodeString(h[0]))
				must(enc.EncodeString(h[1]))
			}
		}
	}
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/batch?topic=%s&acks=-1", p.url, topic), bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-msgpack")
	req.Header.Set("Traceparent", trace)
	req.Header.Set("X-Kafka-Header-Source", "checkout")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ans struct {
		Topic   string `json:"topic"`
		Records []struct {
			Partition int32 `json:"partition"`
			Offset    int64 `json:"offset"`
		} `json:"records"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || resp.StatusCode != 200 || len(ans.Records) != len(elems) {
		t.Fatalf("got %d %s (%v), want 200 with %d records", resp.StatusCode, raw, err, len(elems))
	}

	recs := kcatRead(t, brokers[0], topic, len(elems))
	if len(recs) != len(elems) {
		t.Fatalf("kcat read %d records, want %d", len(recs), len(elems))
	}
	for i, e := range elems {
		var rec *kcatRecord
		for j := range recs {
			if recs[j].partition == ans.Records[i].Partition && recs[j].offset == ans.Records[i].Offset {
				rec = &recs[j]
			}
		}
		if rec == nil {
			t.Fatalf("record %d: kcat has nothing at %d/%d", i, ans.Records[i].Partition, ans.Records[i].Offset)
		}
		if !bytes.Equal(rec.value, values[i]) {
			t.Errorf("record %d: value bytes differ: got %x, want %x", i, rec.value, values[i])
		}
		if rec.key != string(e.key) {
			t.Errorf("record %d: got key %q, want %q", i, rec.key, e.key)
		}
		want := "traceparent=" + trace + ",source=checkout"
		for _, h := range e.headers {
			want += "," + h[0] + "=" + h[1]
		}
		if rec.headers != want {
			t.Errorf("record %d: got headers %q, want %q", i, rec.headers, want)
		}
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, p.Logs())
	}
}

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// batchRecordAnswer is one entry of a /batch answer; the pointers tell a
// missing field from a zero.
type batchRecordAnswer struct {
	Partition *int32 `json:"partition"`
	Offset    *int64 `json:"offset"`
	Error     string `json:"error"`
	Code      string `json:"code"`
	Status    int    `json:"status"`
}

type batchReply struct {
	status  int
	header  http.Header
	raw     []byte
	Topic   string              `json:"topic"`
	Records []batchRecordAnswer `json:"records"`
	Error   string              `json:"error"`
	Code    string              `json:"code"`
}

// postBatch POSTs body to /batch?query with hdr and decodes the answer.
func postBatch(t testing.TB, base, query string, body []byte, hdr http.Header) batchReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/batch?"+query, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /batch: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := batchReply{status: resp.StatusCode, header: resp.Header, raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("POST /batch: answer %q: %v", raw, err)
	}
	return a
}

// batchElem is one record of a batch body as a test writes it.
type batchElem struct {
	key     any // nil for none, string, []byte, or omit to leave the field out
	omitKey bool
	value   []byte // the value's msgpack encoding, exactly
	headers [][2]any
}

// encodeBatch writes the msgpack array of elems with fields in a fixed order
// (key, value, headers) and returns it with the byte range of every value.
func encodeBatch(t testing.TB, elems []batchElem) (body []byte, values [][2]int) {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(enc.EncodeArrayLen(len(elems)))
	for _, e := range elems {
		n := 1
		if !e.omitKey {
			n++
		}
		if e.headers != nil {
			n++
		}
		must(enc.EncodeMapLen(n))
		if !e.omitKey {
			must(enc.EncodeString("key"))
			must(enc.Encode(e.key))
		}
		must(enc.EncodeString("value"))
		start := buf.Len()
		buf.Write(e.value)
		values = append(values, [2]int{start, buf.Len()})
		if e.headers != nil {
			must(enc.EncodeString("headers"))
			must(enc.EncodeMapLen(len(e.headers)))
			for _, h := range e.headers {
				must(enc.Encode(h[0]))
				must(enc.Encode(h[1]))
			}
		}
	}
	return buf.Bytes(), values
}

func mp(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchWritesEachRecordExactly sends a batch of records with every kind of
// value, key and header, and reads each back: the value is exactly the bytes
// of its element, the key and headers are the element's after the request's,
// the partition is the key's, and the answer lists each record in order.
func TestBatchWritesEachRecordExactly(t *testing.T) {
	const parts = 4
	c := testcluster.Kafka(t, kfake.SeedTopics(parts, testTopic))
	brokers := testcluster.Brokers(c)
	r := start(t, testConfig(brokers))
	hash, _ := partition.Lookup(partition.NameSarama)

	ext := []byte{0xd6, 0x05, 1, 2, 3, 4} // fixext4 of type 5
	elems := []batchElem{
		{key: "user-1", value: body(t, "a", 10)},
		{key: []byte{0, 0xff, '\n'}, value: mp(t, []any{1, "two", 3.5, nil, true})},
		{omitKey: true, value: mp(t, "just a string")},
		{key: nil, value: []byte{0xc0}},
		{key: "", value: []byte{0x2a}},
		{key: "user-2", value: ext, headers: [][2]any{{"content-type", "application/x-msgpack"}, {"bin", []byte{1, 2, 3}}}},
		{key: "user-3", value: mp(t, map[string]any{"deep": []any{[]any{[]any{map[string]any{"x": []byte("y")}}}}}), headers: [][2]any{}},
		{key: "user-1", value: mp(t, strings.Repeat("x", 70000)), headers: [][2]any{{"n", ""}}},
	}
	raw, ranges := encodeBatch(t, elems)
	hdr := http.Header{
		"X-Kafka-Header-Source": {"checkout"},
		"Traceparent":           {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":            {"congo=t61rcWkgMzE"},
		"X-Other":               {"not copied"},
	}
	a := postBatch(t, r.url, "topic="+testTopic+"&acks=-1", raw, hdr)
	if a.status != http.StatusOK || a.Topic != testTopic || len(a.Records) != len(elems) {
		t.Fatalf("got %d topic %q with %d records (%s), want 200 %q with %d", a.status, a.Topic, len(a.Records), a.raw, testTopic, len(elems))
	}
	reqHeaders := []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		{Key: "tracestate", Value: []byte("congo=t61rcWkgMzE")},
		{Key: "source", Value: []byte("checkout")},
	}
	recs := testcluster.ReadTopic(t, brokers, testTopic, len(elems))
	for i, e := range elems {
		ans := a.Records[i]
		if ans.Partition == nil || ans.Offset == nil || ans.Error != "" {
			t.Fatalf("record %d: got answer %+v, want partition and offset", i, ans)
		}
		var rec *kgo.Record
		for _, x := range recs {
			if x.Partition == *ans.Partition && x.Offset == *ans.Offset {
				rec = x
			}
		}
		if rec == nil {
			t.Fatalf("record %d: nothing at %d/%d", i, *ans.Partition, *ans.Offset)
		}
		if want := raw[ranges[i][0]:ranges[i][1]]; !bytes.Equal(rec.Value, want) {
			t.Errorf("record %d: got value % x, want the element's bytes % x", i, head(rec.Value), head(want))
		}
		var wantKey []byte
		switch k := e.key.(type) {
		case string:
			wantKey = []byte(k)
		case []byte:
			wantKey = k
		}
		if !bytes.Equal(rec.Key, wantKey) || (len(wantKey) == 0 && rec.Key != nil) {
			t.Errorf("record %d: got key %q, want %q", i, rec.Key, wantKey)
		}
		if len(wantKey) > 0 {
			if want := hash(wantKey, parts); rec.Partition != want {
				t.Errorf("record %d: in partition %d, its key hashes to %d", i, rec.Partition, want)
			}
		}
		want := append([]kgo.RecordHeader(nil), reqHeaders...)
		for _, h := range e.headers {
			v, ok := h[1].([]byte)
			if !ok {
				v = []byte(h[1].(string))
			}
			want = append(want, kgo.RecordHeader{Key: h[0].(string), Value: v})
		}
		if got := fmt.Sprint(headerList(rec.Headers)); got != fmt.Sprint(headerList(want)) {
			t.Errorf("record %d: got headers %s, want %s", i, got, fmt.Sprint(headerList(want)))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 32)] }

func headerList(hs []kgo.RecordHeader) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = fmt.Sprintf("%s=%q", h.Key, h.Value)
	}
	return out
}

// TestBatchRejectedWhole sends bodies that are not well-formed batches: each is
// refused as a whole, with a reason naming the record, and nothing is written.
func TestBatchRejectedWhole(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.MaxBatchRecords = 3
	cfg.MaxRequestSizeBytes = 16 << 10
	r := start(t, cfg)
	good := body(t, "m", 5)
	ok := func(v []byte) map[string]any { return map[string]any{"value": msgpack.RawMessage(v)} }
	valid, _ := encodeBatch(t, []batchElem{{key: "k", value: good}})
	tests := []struct {
		name   string
		body   []byte
		hdr    http.Header
		status int
		code   string
	}{
		{"empty body", nil, nil, 400, "empty_body"},
		{"not msgpack", []byte{0xc1}, nil, 400, "invalid_batch"},
		{"a map, not an array", good, nil, 400, "invalid_batch"},
		{"empty array", []byte{0x90}, nil, 400, "invalid_batch"},
		{"too many records", mp(t, []any{ok(good), ok(good), ok(good), ok(good)}), nil, 413, "body_too_large"},
		{"element not a map", mp(t, []any{ok(good), "x"}), nil, 400, "invalid_batch"},
		{"no value", mp(t, []any{ok(good), map[string]any{"key": "k"}}), nil, 400, "invalid_batch"},
		{"unknown field", mp(t, []any{map[string]any{"value": 1, "partition": 2}}), nil, 400, "invalid_batch"},
		{"field twice", append([]byte{0x91, 0x82, 0xa5}, append([]byte("value"), append([]byte{0x01, 0xa5}, append([]byte("value"), 0x02)...)...)...), nil, 400, "invalid_batch"},
		{"key not a string", mp(t, []any{map[string]any{"value": 1, "key": 7}}), nil, 400, "invalid_batch"},
		{"field name not a string", mp(t, []any{map[any]any{1: 1}}), nil, 400, "invalid_batch"},
		{"headers not a map", mp(t, []any{map[string]any{"value": 1, "headers": []int{1}}}), nil, 400, "invalid_batch"},
		{"header value not bytes", mp(t, []any{map[string]any{"value": 1, "headers": map[string]any{"a": 1}}}), nil, 400, "invalid_batch"},
		{"header value with CR LF", mp(t, []any{map[string]any{"value": 1, "headers": map[string]any{"a": "x\r\nInjected: 1"}}}), nil, 400, "invalid_header"},
		{"header name not a token", mp(t, []any{map[string]any{"value": 1, "headers": map[string]any{"a b": "x"}}}), nil, 400, "invalid_header"},
		{"header value too long", mp(t, []any{map[string]any{"value": 1, "headers": map[string]any{"a": strings.Repeat("v", proxy.MaxHeaderValueBytes+1)}}}), nil, 400, "invalid_header"},
		{"truncated value", valid[:len(valid)-1], nil, 400, "invalid_batch"},
		{"trailing bytes", append(append([]byte{}, valid...), 0xc0), nil, 400, "invalid_batch"},
		{"request header too long", valid, http.Header{"X-Kafka-Header-Big": {strings.Repeat("v", proxy.MaxHeaderValueBytes+1)}}, 400, "invalid_header"},
		{"request header without a name", valid, http.Header{"X-Kafka-Header-": {"v"}}, 400, "invalid_header"},
		{"body too large", mp(t, []any{ok(mp(t, strings.Repeat("x", 20000)))}), nil, 413, "body_too_large"},
	}
	tooMany := map[string]any{}
	for i := 0; i < proxy.MaxRecordHeaders; i++ {
		tooMany[fmt.Sprintf("h%d", i)] = "v"
	}
	tests = append(tests, struct {
		name   string
		body   []byte
		hdr    http.Header
		status int
		code   string
	}{"headers of request and record beyond the bound", mp(t, []any{map[string]any{"value": 1, "headers": tooMany}}),
		http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, 400, "invalid_header"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := postBatch(t, r.url, "topic="+testTopic, tt.body, tt.hdr)
			if a.status != tt.status || a.Code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.Code, a.Error, tt.status, tt.code)
			}
			if a.Error == "" || a.Records != nil {
				t.Errorf("got error %q and records %v, want a sentence and no records", a.Error, a.Records)
			}
		})
	}
	if end := endOffset(t, brokers, testTopic); end != 0 {
		t.Errorf("got end offset %d after rejected batches, want 0", end)
	}
	if a := postBatch(t, r.url, "topic="+testTopic, valid, nil); a.status != 200 {
		t.Fatalf("the valid batch: got %d (%s), want 200", a.status, a.raw)
	}
}

// TestBatchRecordTooLargeForKafka writes a batch whose third record is above
// the topic's max.message.bytes: that record gets 413 in a 207 answer, every
// other one is written, although Kafka refused their first batch with it.
func TestBatchRecordTooLargeForKafka(t *testing.T) {
	c := testcluster.Kafka(t)
	brokers := testcluster.Brokers(c)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	limit := "3000"
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, map[string]*string{"max.message.bytes": &limit}, testTopic); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(brokers)
	cfg.LingerMs = 50 // the records go to Kafka in one batch
	r := start(t, cfg)
	elems := []batchElem{
		{key: "a", value: body(t, "m", 100)},
		{key: "a", value: body(t, "m", 200)},
		{key: "a", value: body(t, "m", 5000)},
		{key: "a", value: body(t, "m", 300)},
	}
	raw, ranges := encodeBatch(t, elems)
	a := postBatch(t, r.url, "topic="+testTopic, raw, nil)
	if a.status != http.StatusMultiStatus || len(a.Records) != 4 {
		t.Fatalf("got %d with %d records (%s), want 207 with 4", a.status, len(a.Records), a.raw)
	}
	for i, ans := range a.Records {
		if i == 2 {
			if ans.Status != 413 || ans.Code != "body_too_large" || ans.Error == "" || ans.Partition != nil {
				t.Errorf("record 2: got %+v, want status 413 body_too_large", ans)
			}
			continue
		}
		if ans.Partition == nil || ans.Offset == nil || ans.Code != "" {
			t.Errorf("record %d: got %+v, want written", i, ans)
		}
	}
	recs := testcluster.ReadTopic(t, brokers, testTopic, 3)
	for _, rec := range recs {
		found := false
		for i, rg := range ranges {
			if i != 2 && bytes.Equal(rec.Value, raw[rg[0]:rg[1]]) {
				found = true
			}
		}
		if !found {
			t.Errorf("record at offset %d is none of the written ones", rec.Offset)
		}
	}
	if end := endOffset(t, brokers, testTopic); end != 3 {
		t.Errorf("got end offset %d, want 3", end)
	}
}

// TestBatchAdmission checks that /batch is admitted as /commit is:
// authentication, topic rules, the method, req_pool_size.
func TestBatchAdmission(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic, "audit-log"))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.Auth.Tokens = []string{"0123456789abcdef-one"}
	cfg.Topics.Deny = []string{"audit-.*"}
	r := start(t, cfg)
	raw, _ := encodeBatch(t, []batchElem{{key: "k", value: body(t, "m", 5)}})
	auth := http.Header{"Authorization": {"Bearer 0123456789abcdef-one"}}
	for _, tc := range []struct {
		name   string
		query  string
		hdr    http.Header
		status int
		code   string
	}{
		{"no token", "topic=" + testTopic, nil, 401, "unauthorized"},
		{"wrong token", "topic=" + testTopic, http.Header{"Authorization": {"Bearer 0123456789abcdef-two"}}, 401, "unauthorized"},
		{"denied topic", "topic=audit-log", auth, 403, "topic_not_allowed"},
		{"internal topic", "topic=__consumer_offsets", auth, 403, "topic_not_allowed"},
		{"invalid topic", "topic=a/b", auth, 400, "invalid_topic"},
		{"no topic", "", auth, 400, "missing_topic"},
		{"bad acks", "topic=" + testTopic + "&acks=2", auth, 400, "invalid_acks"},
		{"unknown topic", "topic=nope", auth, 404, "unknown_topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := postBatch(t, r.url, tc.query, raw, tc.hdr)
			if a.status != tc.status || a.Code != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.Code, a.raw, tc.status, tc.code)
			}
			if tc.status == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if a := do(t, http.MethodGet, r.url+"/batch?topic="+testTopic, nil, auth); a.status != 405 || a.header.Get("Allow") != "POST" {
		t.Errorf("GET /batch: got %d Allow %q, want 405 with Allow: POST", a.status, a.header.Get("Allow"))
	}
	if a := postBatch(t, r.url, "topic="+testTopic, raw, auth); a.status != 200 {
		t.Fatalf("with the token: got %d (%s), want 200", a.status, a.raw)
	}
	if end := endOffset(t, brokers, testTopic); end != 1 {
		t.Errorf("got end offset %d, want 1", end)
	}
}

// TestBatchBackpressure: with Kafka holding records, a batch that does not fit
// in max_buffered_records gets 207 with backpressure (503) for the records
// beyond it, and a batch beyond req_pool_size gets 503 as a whole.
func TestBatchBackpressure(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	cfg := testConfig(brokers)
	cfg.MaxBufferedRecords = 3
	cfg.ReqPoolSize = 1
	r := start(t, cfg)
	one, _ := encodeBatch(t, []batchElem{{key: "k", value: body(t, "m", 5)}})
	if a := postBatch(t, r.url, "topic="+testTopic, one, nil); a.status != 200 {
		t.Fatalf("warm-up: got %d", a.status)
	}
	held, release := testcluster.HoldProduces(t, c)
	elems := make([]batchElem, 5)
	for i := range elems {
		elems[i] = batchElem{key: "k", value: body(t, "m", i)}
	}
	five, _ := encodeBatch(t, elems)
	first := make(chan batchReply, 1)
	go func() { first <- postBatch(t, r.url, "topic="+testTopic, five, nil) }()
	<-held
	a := postBatch(t, r.url, "topic="+testTopic, one, nil)
	if a.status != 503 || a.Code != "backpressure" || a.header.Get("Retry-After") != "1" {
		t.Errorf("second batch beyond req_pool_size: got %d %q Retry-After %q, want 503 backpressure with Retry-After 1",
			a.status, a.Code, a.header.Get("Retry-After"))
	}
	release()
	f := <-first
	if f.status != http.StatusMultiStatus || len(f.Records) != 5 {
		t.Fatalf("first batch: got %d with %d records (%s), want 207 with 5", f.status, len(f.Records), f.raw)
	}
	written := 0
	for i, ans := range f.Records {
		switch {
		case ans.Offset != nil:
			written++
		case ans.Status != 503 || ans.Code != "backpressure":
			t.Errorf("record %d: got %+v, want written or 503 backpressure", i, ans)
		}
	}
	if written != 3 {
		t.Errorf("got %d records written, want max_buffered_records 3", written)
	}
	if end := endOffset(t, brokers, testTopic); end != int64(1+written) {
		t.Errorf("got end offset %d, want %d", end, 1+written)
	}
}

// TestBatchTimeout: Kafka holds the records past produce_timeout_ms; every
// record gets 504, so the answer is 504 with the records listed.
func TestBatchTimeout(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	cfg.ProduceTimeoutMs = 300
	r := start(t, cfg)
	raw, _ := encodeBatch(t, []batchElem{{key: "k", value: body(t, "m", 1)}, {key: "j", value: body(t, "m", 2)}})
	if a := postBatch(t, r.url, "topic="+testTopic, raw, nil); a.status != 200 {
		t.Fatalf("warm-up: got %d", a.status)
	}
	_, release := testcluster.HoldProduces(t, c)
	a := postBatch(t, r.url, "topic="+testTopic, raw, nil)
	release()
	if a.status != 504 || a.Code != "kafka_timeout" || len(a.Records) != 2 {
		t.Fatalf("got %d %q with %d records (%s), want 504 kafka_timeout with 2", a.status, a.Code, len(a.Records), a.raw)
	}
	for i, ans := range a.Records {
		if ans.Status != 504 || ans.Code != "kafka_timeout" {
			t.Errorf("record %d: got %+v, want 504 kafka_timeout", i, ans)
		}
	}
}

// TestCommitRecordHeaders checks the record headers of /commit: X-Kafka-Header-*
// under their lower-cased names and the trace context, and the refusals.
func TestCommitRecordHeaders(t *testing.T) {
	c := testcluster.Kafka(t, kfake.SeedTopics(1, testTopic))
	brokers := testcluster.Brokers(c)
	r := start(t, testConfig(brokers))
	hdr := http.Header{
		"X-Kafka-Header-Request-Id": {"r-1", "r-2"},
		"Traceparent":               {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"X-Kafka-Header-Empty":      {""},
	}
	a := do(t, http.MethodPost, r.url+"/commit?topic="+testTopic, body(t, "m", 1), hdr)
	if a.status != 200 {
		t.Fatalf("got %d (%s), want 200", a.status, a.Error)
	}
	rec := testcluster.ReadTopic(t, brokers, testTopic, 1)[0]
	want := `[traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" empty="" request-id="r-1" request-id="r-2"]`
	if got := fmt.Sprint(headerList(rec.Headers)); got != want {
		t.Errorf("got headers %s, want %s", got, want)
	}
	many := http.Header{}
	for i := 0; i <= proxy.MaxRecordHeaders; i++ {
		many.Set(fmt.Sprintf("X-Kafka-Header-H%d", i), "v")
	}
	for _, tc := range []struct {
		name string
		hdr  http.Header
	}{
		{"too many", many},
		{"value too long", http.Header{"Tracestate": {strings.Repeat("v", proxy.MaxHeaderValueBytes+1)}}},
		{"no name", http.Header{"X-Kafka-Header-": {"v"}}},
	} {
		a := do(t, http.MethodPost, r.url+"/commit?topic="+testTopic, body(t, "m", 1), tc.hdr)
		if a.status != 400 || a.Code != "invalid_header" {
			t.Errorf("%s: got %d %q (%s), want 400 invalid_header", tc.name, a.status, a.Code, a.Error)
		}
	}
	if end := endOffset(t, brokers, testTopic); end != 1 {
		t.Errorf("got end offset %d, want 1", end)
	}
}

package pubsub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// answerTimeout guards reads of answers against a hang; never a timing check.
const answerTimeout = 20 * time.Second

// gateway is a Handler on a loopback test server over an in-process Kafka.
type gateway struct {
	h       *Handler
	reg     *prometheus.Registry
	kafka   *kfake.Cluster
	client  *kgo.Client // the client the handler reads through
	brokers []string
	url     string // ws://127.0.0.1:PORT/pubsub
	srv     *httptest.Server
}

// startGateway starts a one-broker kfake cluster, a kgo client and a Handler
// with opts (Client, Registerer set here) on an httptest server, all closed
// when the test ends.
func startGateway(t testing.TB, opts Options, kopts ...kfake.Opt) *gateway {
	t.Helper()
	c := testcluster.Kafka(t, kopts...)
	brokers := testcluster.Brokers(c)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	reg := prometheus.NewRegistry()
	opts.Client = cl
	opts.Registerer = reg
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/pubsub", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return &gateway{h: h, reg: reg, kafka: c, client: cl, brokers: brokers, srv: srv,
		url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/pubsub"}
}

// produce writes recs (Topic and Partition set by the caller) through a
// producer of its own with opts, synchronously, and returns them with offsets
// filled in.
func (g *gateway) produce(t testing.TB, recs []*kgo.Record, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(g.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return recs
}

// metric reads one series of a counter or gauge (labels as name, value
// pairs), 0 when absent.
func (g *gateway) metric(name string, labels ...string) float64 {
	mfs, err := g.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// send writes req as one binary frame.
func send(t testing.TB, ws *websocket.Conn, req *PubSubReq) {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// recv reads one answer.
func recv(t testing.TB, ws *websocket.Conn) *PubSubResp {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(answerTimeout))
	typ, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	if typ != websocket.BinaryMessage {
		t.Fatalf("got a frame of type %d, want binary", typ)
	}
	resp := &PubSubResp{}
	if err := proto.Unmarshal(b, resp); err != nil {
		t.Fatalf("answer does not decode: %v", err)
	}
	return resp
}

// call sends req and reads its answer, checking the sequence.
func call(t testing.TB, ws *websocket.Conn, req *PubSubReq) *PubSubResp {
	t.Helper()
	send(t, ws, req)
	resp := recv(t, ws)
	if resp.GetSequence() != req.GetSequence() {
		t.Fatalf("got sequence %d, want %d", resp.GetSequence(), req.GetSequence())
	}
	return resp
}

func pingReq(seq int64, state []byte) *PubSubReq {
	return &PubSubReq{Sequence: seq, Req: &PubSubReq_CmdPing{CmdPing: &CmdPing{State: state}}}
}

func listReq(seq int64, topic string, partition int32, ts int64) *PubSubReq {
	return &PubSubReq{Sequence: seq, Req: &PubSubReq_CmdKafkaListOffset{CmdKafkaListOffset: &CmdKafkaListOffset{Topic: topic, Partition: partition, Timestamp: ts}}}
}

func fetchReq(seq int64, topic string, partition int32, offset int64) *PubSubReq {
	return &PubSubReq{Sequence: seq, Req: &PubSubReq_CmdKafkaFetch{CmdKafkaFetch: &CmdKafkaFetch{Topic: topic, Partition: partition, Offset: offset}}}
}

// listOffset calls CmdKafkaListOffset and fails the test on an error answer.
func listOffset(t testing.TB, ws *websocket.Conn, topic string, partition int32, ts int64) int64 {
	t.Helper()
	resp := call(t, ws, listReq(9000, topic, partition, ts))
	r := resp.GetKafkaListOffsetResp()
	if r == nil {
		t.Fatalf("list offset %s/%d at %d: got %v, want an offset", topic, partition, ts, resp)
	}
	return r.GetOffset()
}

// fetch calls CmdKafkaFetch and fails the test on an error answer.
func fetch(t testing.TB, ws *websocket.Conn, seq int64, topic string, partition int32, offset int64) []*KafkaMessage {
	t.Helper()
	resp := call(t, ws, fetchReq(seq, topic, partition, offset))
	r := resp.GetKafkaFetchResp()
	if r == nil {
		t.Fatalf("fetch %s/%d at %d: got %v, want records", topic, partition, offset, resp)
	}
	return r.GetMessages()
}

// wantError checks resp is an ErrorResp with code whose message holds every
// part of want.
func wantError(t testing.TB, resp *PubSubResp, code int32, want ...string) {
	t.Helper()
	e := resp.GetErrorResp()
	if e == nil {
		t.Fatalf("got %v, want an error with code %d", resp, code)
	}
	if e.GetCode() != code {
		t.Errorf("got code %d (%q), want %d", e.GetCode(), e.GetMessage(), code)
	}
	for _, w := range want {
		if !strings.Contains(e.GetMessage(), w) {
			t.Errorf("error %q lacks %q", e.GetMessage(), w)
		}
	}
}

// records returns n records for topic with distinct binary keys and values and
// timestamps 1 s apart from base.
func records(topic string, partition int32, n int, base time.Time) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{
			Topic:     topic,
			Partition: partition,
			Key:       []byte(fmt.Sprintf("key-%d\x00\xff", i)),
			Value:     []byte(fmt.Sprintf("value %d \x00\x01\xfe\xff end", i)),
			Timestamp: base.Add(time.Duration(i) * time.Second),
		}
	}
	return recs
}

// sameRecord compares a fetched message to the record produced.
func sameRecord(t testing.TB, got *KafkaMessage, want *kgo.Record) {
	t.Helper()
	if got.GetOffset() != want.Offset || got.GetTimestamp() != want.Timestamp.UnixMilli() ||
		string(got.GetKey()) != string(want.Key) || string(got.GetValue()) != string(want.Value) {
		t.Errorf("got record {offset %d, ts %d, key %q, value %q}, want {offset %d, ts %d, key %q, value %q}",
			got.GetOffset(), got.GetTimestamp(), got.GetKey(), got.GetValue(),
			want.Offset, want.Timestamp.UnixMilli(), want.Key, want.Value)
	}
}

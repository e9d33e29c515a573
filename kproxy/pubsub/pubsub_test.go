package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const topic = "orders"

func TestPing(t *testing.T) {
	g := startGateway(t, Options{})
	ws := wsgatetest.Dial(t, g.url, nil)
	for _, state := range [][]byte{{72, 65, 100, 10, 90}, nil, bytes.Repeat([]byte{0, 0xff}, 1000)} {
		resp := call(t, ws, pingReq(100, state))
		pong := resp.GetPongResp()
		if pong == nil {
			t.Fatalf("got %v, want a pong", resp)
		}
		if !bytes.Equal(pong.GetState(), state) {
			t.Errorf("got state %v, want %v", pong.GetState(), state)
		}
	}
	if got := g.metric("kproxy_pubsub_frames_received_total", "type", "ping"); got != 3 {
		t.Errorf("got %v pings counted, want 3", got)
	}
	if got := g.metric("kproxy_pubsub_frames_sent_total", "type", "pong"); got != 3 {
		t.Errorf("got %v pongs counted, want 3", got)
	}
}

func TestUnknownCommand(t *testing.T) {
	g := startGateway(t, Options{})
	ws := wsgatetest.Dial(t, g.url, nil)
	// CmdEmpty, as the seed client's hello world sends it, and a request
	// without any command: both get APISIX's "unknown command".
	empty := &PubSubReq{Sequence: 101, Req: &PubSubReq_CmdEmpty{CmdEmpty: &CmdEmpty{}}}
	wantError(t, call(t, ws, empty), codeBadRequest, "unknown command")
	wantError(t, call(t, ws, &PubSubReq{Sequence: 102}), codeBadRequest, "unknown command")
	if got := g.metric("kproxy_pubsub_errors_total", "code", "unknown_command"); got != 2 {
		t.Errorf("got %v unknown_command errors counted, want 2", got)
	}
}

func TestUndecodableAndTextFrames(t *testing.T) {
	g := startGateway(t, Options{})
	ws := wsgatetest.Dial(t, g.url, nil)
	for _, frame := range [][]byte{
		{0xff, 0xff, 0xff},          // a truncated varint
		{0x0a, 0x05, 'a'},           // field 1 as bytes, longer than the frame
		[]byte("not protobuf \x07"), // wire type 7 does not exist
	} {
		if err := ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			t.Fatal(err)
		}
		resp := recv(t, ws)
		if resp.GetSequence() != 0 {
			t.Errorf("frame %q: got sequence %d, want 0", frame, resp.GetSequence())
		}
		wantError(t, resp, codeBadRequest, "wrong command")
	}
	// A text frame gets no answer: the next answer is the ping's.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"cmd":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if resp := call(t, ws, pingReq(7, []byte("still open"))); resp.GetPongResp() == nil {
		t.Fatalf("got %v, want a pong", resp)
	}
	if got := g.metric("kproxy_pubsub_frames_received_total", "type", "undecodable"); got != 3 {
		t.Errorf("got %v undecodable frames counted, want 3", got)
	}
	if got := g.metric("kproxy_pubsub_frames_received_total", "type", "text"); got != 1 {
		t.Errorf("got %v text frames counted, want 1", got)
	}
}

func TestListOffset(t *testing.T) {
	g := startGateway(t, Options{})
	testcluster.CreateTopic(t, g.brokers, topic, 2)
	base := time.UnixMilli(1_695_353_632_271)
	recs := g.produce(t, records(topic, 1, 10, base))
	ws := wsgatetest.Dial(t, g.url, nil)

	// Partition 0 is empty: start and end are 0, no record is at or after any time.
	for _, tc := range []struct {
		name      string
		partition int32
		ts        int64
		want      int64
	}{
		{"empty start", 0, -2, 0},
		{"empty end", 0, -1, 0},
		{"empty by time", 0, base.UnixMilli(), -1},
		{"start", 1, -2, 0},
		{"end", 1, -1, 10},
		{"before every record", 1, base.UnixMilli() - 1, 0},
		{"exactly the first", 1, base.UnixMilli(), 0},
		{"exactly the fourth", 1, recs[3].Timestamp.UnixMilli(), 3},
		{"between the fourth and fifth", 1, recs[3].Timestamp.UnixMilli() + 1, 4},
		{"exactly the last", 1, recs[9].Timestamp.UnixMilli(), 9},
		{"after every record", 1, recs[9].Timestamp.UnixMilli() + 1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listOffset(t, ws, topic, tc.partition, tc.ts); got != tc.want {
				t.Errorf("got offset %d, want %d", got, tc.want)
			}
		})
	}

	// Records deleted below offset 4: the log start moves there.
	adm := kadm.NewClient(g.client)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 4})
	if _, err := adm.DeleteRecords(context.Background(), offs); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if got := listOffset(t, ws, topic, 1, -2); got != 4 {
		t.Errorf("after deleting records below 4: got log start %d, want 4", got)
	}

	for _, tc := range []struct {
		name string
		req  *PubSubReq
		code int32
		want []string
	}{
		{"unknown topic", listReq(1, "nosuch", 0, -1), codeNotFound, []string{"topic: nosuch", "partition: 0"}},
		{"unknown partition", listReq(2, topic, 7, -1), codeNotFound, []string{"topic: orders", "partition: 7"}},
		{"negative partition", listReq(3, topic, -1, -1), codeBadRequest, []string{"topic: orders", "partition: -1"}},
		{"timestamp below -2", listReq(4, topic, 0, -3), codeBadRequest, []string{"topic: orders", "partition: 0", "timestamp -3"}},
		{"internal topic", listReq(5, "__consumer_offsets", 0, -1), codeForbidden, []string{"topic: __consumer_offsets"}},
		{"empty topic", listReq(6, "", 0, -1), codeBadRequest, []string{"empty topic"}},
		{"overlong topic", listReq(7, strings.Repeat("t", 250), 0, -1), codeBadRequest, []string{"longer than Kafka's 249"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, ws, tc.req), tc.code, tc.want...)
		})
	}
}

func TestFetch(t *testing.T) {
	g := startGateway(t, Options{FetchMaxWait: 50 * time.Millisecond})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	recs := g.produce(t, records(topic, 0, 20, time.UnixMilli(1_700_000_000_000)))
	// A record without key and with an empty value.
	recs = append(recs, g.produce(t, []*kgo.Record{{Topic: topic, Timestamp: time.UnixMilli(1_700_000_100_000)}})...)
	ws := wsgatetest.Dial(t, g.url, nil)

	for _, from := range []int64{0, 1, 7, 20} {
		got := fetch(t, ws, 33, topic, 0, from)
		if len(got) == 0 || got[0].GetOffset() != from {
			t.Fatalf("fetch at %d: got %d records starting at %v, want them to start at %d", from, len(got), first(got), from)
		}
		for i, m := range got {
			sameRecord(t, m, recs[from+int64(i)])
		}
	}
	// At the log end, after a short wait: no records.
	if got := fetch(t, ws, 34, topic, 0, 21); len(got) != 0 {
		t.Errorf("fetch at the log end: got %d records, want none", len(got))
	}
	if got := g.metric("kproxy_pubsub_fetched_records_total"); got == 0 {
		t.Error("fetched records are not counted")
	}
}

func first(msgs []*KafkaMessage) any {
	if len(msgs) == 0 {
		return "nothing"
	}
	return msgs[0].GetOffset()
}

func TestFetchWaitsForNewRecords(t *testing.T) {
	// A long wait, so the record produced after the request arrives within it.
	g := startGateway(t, Options{FetchMaxWait: 20 * time.Second})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	ws := wsgatetest.Dial(t, g.url, nil)
	send(t, ws, fetchReq(5, topic, 0, 0))
	// The fetch is waiting (it is in flight) before the record is written.
	testwait.Eventually(t, 10*time.Second, "fetch in flight", func() bool { return g.metric("kproxy_pubsub_inflight_requests") == 1 })
	want := g.produce(t, records(topic, 0, 1, time.UnixMilli(1_700_000_000_000)))
	resp := recv(t, ws)
	msgs := resp.GetKafkaFetchResp().GetMessages()
	if resp.GetSequence() != 5 || len(msgs) != 1 {
		t.Fatalf("got %v, want the record produced while the fetch waited", resp)
	}
	sameRecord(t, msgs[0], want[0])
}

func TestFetchErrors(t *testing.T) {
	g := startGateway(t, Options{
		FetchMaxWait: 50 * time.Millisecond,
		TopicAllowed: func(topic string) error {
			if strings.HasPrefix(topic, "secret") {
				return errors.New("refused by topics.deny")
			}
			return nil
		},
	})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	testcluster.CreateTopic(t, g.brokers, "secret-payroll", 1)
	g.produce(t, records(topic, 0, 10, time.UnixMilli(1_700_000_000_000)))
	adm := kadm.NewClient(g.client)
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 3})
	if _, err := adm.DeleteRecords(context.Background(), offs); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	ws := wsgatetest.Dial(t, g.url, nil)
	for _, tc := range []struct {
		name string
		req  *PubSubReq
		code int32
		want []string
	}{
		{"past the log end", fetchReq(1, topic, 0, 11), codeOutOfRange, []string{"topic: orders", "partition: 0", "offset 11", "start 3, end 10"}},
		{"below the log start", fetchReq(2, topic, 0, 1), codeOutOfRange, []string{"topic: orders", "partition: 0", "offset 1", "start 3, end 10"}},
		{"negative offset", fetchReq(3, topic, 0, -7), codeOutOfRange, []string{"topic: orders", "partition: 0", "offset -7"}},
		{"unknown topic", fetchReq(4, "nosuch", 0, 0), codeNotFound, []string{"topic: nosuch", "partition: 0"}},
		{"unknown partition", fetchReq(5, topic, 3, 0), codeNotFound, []string{"topic: orders", "partition: 3"}},
		{"denied topic", fetchReq(6, "secret-payroll", 0, 0), codeForbidden, []string{"topic: secret-payroll", "partition: 0", "refused by topics.deny"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, ws, tc.req), tc.code, tc.want...)
		})
	}
	// The log start is still served.
	if got := fetch(t, ws, 7, topic, 0, 3); len(got) == 0 || got[0].GetOffset() != 3 {
		t.Errorf("fetch at the log start: got records from %v, want from 3", first(got))
	}
	if got := g.metric("kproxy_pubsub_errors_total", "code", "offset_out_of_range"); got != 3 {
		t.Errorf("got %v offset_out_of_range errors counted, want 3", got)
	}
}

// TestFetchLoopAsSeedClient polls as the APISIX seed's TypeScript client does
// (fetch from the last offset seen, keep records after it) while records keep
// arriving, and must see every record exactly once, in order.
func TestFetchLoopAsSeedClient(t *testing.T) {
	g := startGateway(t, Options{FetchMaxBytes: 2000, FetchMaxWait: 20 * time.Millisecond})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	const total = 600
	all := records(topic, 0, total, time.UnixMilli(1_700_000_000_000))
	g.produce(t, all[:200])
	produced := make(chan error, 1)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(g.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			produced <- err
			return
		}
		defer cl.Close()
		for i := 200; i < total; i += 50 {
			if err := cl.ProduceSync(context.Background(), all[i:i+50]...).FirstErr(); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	ws := wsgatetest.Dial(t, g.url, nil)
	offset := listOffset(t, ws, topic, 0, -2)
	var got []*KafkaMessage
	fetches := 0
	// A fetch from the last offset seen always returns that record again, so
	// the loop pauses between fetches as the seed does (it waits 5 s).
	for deadline := time.Now().Add(60 * time.Second); len(got) < total && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		fetches++
		msgs := fetch(t, ws, 102, topic, 0, offset)
		if len(msgs) > 0 && msgs[0].GetOffset() != offset {
			t.Fatalf("fetch at %d: first record is at %d", offset, msgs[0].GetOffset())
		}
		for _, m := range msgs {
			if m.GetOffset() > offset || len(got) == 0 && m.GetOffset() == offset {
				got = append(got, m)
			}
		}
		if len(msgs) > 0 {
			offset = msgs[len(msgs)-1].GetOffset()
		}
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	if len(got) != total {
		t.Fatalf("got %d records after %d fetches, want %d", len(got), fetches, total)
	}
	for i, m := range got {
		sameRecord(t, m, all[i])
	}
	t.Logf("%d records in %d fetches", total, fetches)
}

// TestFetchInsideCompressedBatch writes batches of several records with each
// codec and fetches from an offset inside a batch: the answer starts exactly
// there, although Kafka returns the whole batch.
func TestFetchInsideCompressedBatch(t *testing.T) {
	g := startGateway(t, Options{FetchMaxWait: 50 * time.Millisecond})
	ws := wsgatetest.Dial(t, g.url, nil)
	for _, tc := range []struct {
		name  string
		codec kgo.CompressionCodec
		attr  int8
	}{
		{"gzip", kgo.GzipCompression(), 1},
		{"snappy", kgo.SnappyCompression(), 2},
		{"lz4", kgo.Lz4Compression(), 3},
		{"zstd", kgo.ZstdCompression(), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "compressed-" + tc.name
			testcluster.CreateTopic(t, g.brokers, name, 1)
			recs := records(name, 0, 30, time.UnixMilli(1_700_000_000_000))
			for _, r := range recs {
				r.Value = append(bytes.Repeat([]byte("compressible "), 20), r.Value...)
			}
			g.produce(t, recs, kgo.ProducerBatchCompression(tc.codec), kgo.ProducerLinger(time.Second))
			firstBatch := batchAt(t, g, name, 0)
			if firstBatch.NumRecords < 10 || firstBatch.Attributes&7 != int16(tc.attr) {
				t.Fatalf("first batch holds %d records with attributes %#x, want at least 10 compressed with %s",
					firstBatch.NumRecords, firstBatch.Attributes, tc.name)
			}
			mid := int64(firstBatch.NumRecords / 2)
			got := fetch(t, ws, 8, name, 0, mid)
			if len(got) == 0 || got[0].GetOffset() != mid {
				t.Fatalf("fetch at %d inside a batch of %d: got records from %v", mid, firstBatch.NumRecords, first(got))
			}
			for i, m := range got {
				sameRecord(t, m, recs[mid+int64(i)])
			}
			if last := got[len(got)-1].GetOffset(); last != 29 {
				t.Errorf("got records up to %d, want up to 29", last)
			}
		})
	}
}

// TestPipelined sends many requests of every kind before reading any answer:
// each gets one answer, in the order sent.
func TestPipelined(t *testing.T) {
	g := startGateway(t, Options{FetchMaxWait: 100 * time.Millisecond, MaxInFlight: 4})
	testcluster.CreateTopic(t, g.brokers, topic, 2)
	recs := g.produce(t, records(topic, 0, 50, time.UnixMilli(1_700_000_000_000)))
	ws := wsgatetest.Dial(t, g.url, nil)
	type want struct {
		kind   string
		offset int64 // first record or listed offset
	}
	var wants []want
	var reqs []*PubSubReq
	for i := range 120 {
		seq := int64(1000 + i)
		switch i % 6 {
		case 0:
			reqs = append(reqs, pingReq(seq, []byte{byte(i)}))
			wants = append(wants, want{kind: outPong})
		case 1:
			off := int64(i % 50)
			reqs = append(reqs, fetchReq(seq, topic, 0, off))
			wants = append(wants, want{kind: outFetch, offset: off})
		case 2:
			reqs = append(reqs, fetchReq(seq, topic, 1, 0)) // empty partition: waits, then nothing
			wants = append(wants, want{kind: outFetch, offset: -1})
		case 3:
			reqs = append(reqs, listReq(seq, topic, 0, -1))
			wants = append(wants, want{kind: outListOffset, offset: 50})
		case 4:
			reqs = append(reqs, fetchReq(seq, "nosuch", 0, 0))
			wants = append(wants, want{kind: outError})
		case 5:
			reqs = append(reqs, &PubSubReq{Sequence: seq, Req: &PubSubReq_CmdEmpty{CmdEmpty: &CmdEmpty{}}})
			wants = append(wants, want{kind: outError})
		}
	}
	sent := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			b, _ := proto.Marshal(r)
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i, r := range reqs {
		resp := recv(t, ws)
		if resp.GetSequence() != r.GetSequence() {
			t.Fatalf("answer %d: got sequence %d, want %d", i, resp.GetSequence(), r.GetSequence())
		}
		if got := answerKind(resp); got != wants[i].kind {
			t.Fatalf("answer %d: got %s (%v), want %s", i, got, resp, wants[i].kind)
		}
		switch {
		case wants[i].kind == outFetch && wants[i].offset >= 0:
			msgs := resp.GetKafkaFetchResp().GetMessages()
			if len(msgs) == 0 {
				t.Fatalf("answer %d: no records", i)
			}
			sameRecord(t, msgs[0], recs[wants[i].offset])
		case wants[i].kind == outFetch:
			if n := len(resp.GetKafkaFetchResp().GetMessages()); n != 0 {
				t.Errorf("answer %d: got %d records from an empty partition", i, n)
			}
		case wants[i].kind == outListOffset:
			if got := resp.GetKafkaListOffsetResp().GetOffset(); got != wants[i].offset {
				t.Errorf("answer %d: got offset %d, want %d", i, got, wants[i].offset)
			}
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
}

// batchAt returns the record batch holding offset, read with a raw fetch.
func batchAt(t *testing.T, g *gateway, topic string, offset int64) batchHeader {
	t.Helper()
	rp, err := g.h.reader.fetchOnce(context.Background(), topic, 0, offset, 1<<20, false)
	if err != nil {
		t.Fatalf("raw fetch: %v", err)
	}
	b := rp.RecordBatches
	if len(b) < 61 {
		t.Fatalf("raw fetch: %d bytes, want a record batch", len(b))
	}
	// Record batch v2: attributes at byte 21, record count at bytes 57..60.
	return batchHeader{
		Attributes: int16(b[21])<<8 | int16(b[22]),
		NumRecords: int32(b[57])<<24 | int32(b[58])<<16 | int32(b[59])<<8 | int32(b[60]),
	}
}

type batchHeader struct {
	Attributes int16
	NumRecords int32
}

func TestUpgradeRefusals(t *testing.T) {
	g := startGateway(t, Options{
		MaxConnections: 1,
		Authorize: func(r *http.Request) bool {
			return r.Header.Get("Authorization") == "Bearer good-token-0123456789" || r.URL.Query().Get("access_token") == "good-token-0123456789"
		},
	})
	httpURL := g.srv.URL + "/pubsub"
	for _, tc := range []struct {
		name   string
		method string
		header http.Header
		status int
		code   string
	}{
		{"plain GET", http.MethodGet, nil, http.StatusUpgradeRequired, "upgrade_required"},
		{"POST", http.MethodPost, nil, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"upgrade without token", http.MethodGet, wsgatetest.HandshakeHeader(), http.StatusUnauthorized, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := wsgatetest.Do(t, tc.method, httpURL, tc.header)
			var e struct {
				Error string `json:"error"`
				Code  string `json:"code"`
			}
			if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Code != tc.code || e.Error == "" {
				t.Errorf("got %d %s, want %d with code %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	// The same refusal through a WebSocket client, then the two ways in.
	_, resp, err := websocket.DefaultDialer.Dial(g.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without token: got %v, %v; want 401", resp, err)
	}
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	ws := wsgatetest.Dial(t, g.url, http.Header{"Authorization": {"Bearer good-token-0123456789"}})
	if resp := call(t, ws, pingReq(1, nil)); resp.GetPongResp() == nil {
		t.Fatalf("with a header token: got %v, want a pong", resp)
	}
	// One connection is the limit: the next upgrade is refused until it closes.
	_, resp, err = websocket.DefaultDialer.Dial(g.url+"?access_token=good-token-0123456789", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial beyond max connections: got %v, %v; want 503", resp, err)
	}
	ws.Close()
	testwait.Eventually(t, 10*time.Second, "connection closed", func() bool { return g.metric("kproxy_pubsub_connections") == 0 })
	ws = wsgatetest.Dial(t, g.url+"?access_token=good-token-0123456789", nil)
	if resp := call(t, ws, pingReq(2, nil)); resp.GetPongResp() == nil {
		t.Fatalf("with access_token: got %v, want a pong", resp)
	}
	for result, want := range map[string]float64{"ok": 2, "unauthorized": 2, "not_websocket": 1, "method_not_allowed": 1, "too_many_connections": 1} {
		if got := g.metric("kproxy_pubsub_upgrades_total", "result", result); got != want {
			t.Errorf("upgrades{result=%s}: got %v, want %v", result, got, want)
		}
	}
}

func TestFrameTooLarge(t *testing.T) {
	g := startGateway(t, Options{MaxFrameBytes: 1024})
	ws := wsgatetest.Dial(t, g.url, nil)
	if resp := call(t, ws, pingReq(1, make([]byte, 900))); resp.GetPongResp() == nil {
		t.Fatalf("frame below the limit: got %v, want a pong", resp)
	}
	send(t, ws, pingReq(2, make([]byte, 2000)))
	_ = ws.SetReadDeadline(time.Now().Add(answerTimeout))
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("got %v, want close 1009", err)
	}
	testwait.Eventually(t, 10*time.Second, "close counted", func() bool {
		return g.metric("kproxy_pubsub_closed_total", "reason", "frame_too_large") == 1
	})
}

func TestShutdownAnswersThenCloses(t *testing.T) {
	g := startGateway(t, Options{FetchMaxWait: 300 * time.Millisecond})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	ws := wsgatetest.Dial(t, g.url, nil)
	// A fetch at the log end is in flight when the shutdown begins.
	send(t, ws, fetchReq(77, topic, 0, 0))
	testwait.Eventually(t, 10*time.Second, "fetch in flight", func() bool { return g.metric("kproxy_pubsub_inflight_requests") == 1 })
	done := make(chan error, 1)
	go func() { done <- g.h.Shutdown(context.Background()) }()
	resp := recv(t, ws)
	if resp.GetSequence() != 77 || resp.GetKafkaFetchResp() == nil {
		t.Fatalf("got %v, want the in-flight fetch's answer", resp)
	}
	_, _, err := ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("got %v, want close 1001", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_, hresp, err := websocket.DefaultDialer.Dial(g.url, nil)
	if err == nil || hresp == nil || hresp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: got %v, %v; want 503", hresp, err)
	}
	if got := g.metric("kproxy_pubsub_closed_total", "reason", "shutdown"); got != 1 {
		t.Errorf("got %v shutdown closes counted, want 1", got)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	_, err := New(Options{MaxInFlight: -1, FetchMaxWait: -time.Second})
	if err == nil {
		t.Fatal("New accepted no client and negative limits")
	}
	for _, want := range []string{"Options.Client is nil", "Options.MaxInFlight: -1 is negative", "Options.FetchMaxWait"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestStalledReaderBounded has a client send fetches of large answers and never
// read: the gateway stops reading its requests once MaxInFlight answers wait,
// holds memory for those only, and closes the connection when a write has been
// stuck for WriteTimeout.
func TestStalledReaderBounded(t *testing.T) {
	const (
		inflight   = 4
		fetchBytes = 256 << 10
		requests   = 2000 // unbounded, their answers would take 500 MiB
	)
	g := startGateway(t, Options{MaxInFlight: inflight, FetchMaxBytes: fetchBytes, WriteTimeout: 2 * time.Second})
	testcluster.CreateTopic(t, g.brokers, topic, 1)
	recs := records(topic, 0, 16, time.UnixMilli(1_700_000_000_000))
	for _, r := range recs {
		r.Value = bytes.Repeat([]byte{'v'}, 64<<10)
	}
	g.produce(t, recs)

	dialer := *websocket.DefaultDialer
	dialer.NetDial = func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10) // the client's socket holds little
		}
		return c, err
	}
	ws, _, err := dialer.Dial(g.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	sendErr := make(chan error, 1)
	go func() {
		for i := range requests {
			send := fetchReq(int64(i), topic, 0, 0)
			b, _ := proto.Marshal(send)
			_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()

	// Until the gateway gives up on the client: watch the requests it holds
	// and the heap.
	var peakHeap uint64
	peakInflight := 0.0
	testwait.Eventually(t, 60*time.Second, "stalled connection closed", func() bool {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapAlloc)
		peakInflight = max(peakInflight, g.metric("kproxy_pubsub_inflight_requests"))
		return g.metric("kproxy_pubsub_closed_total", "reason", "write_error") == 1
	})
	read := g.metric("kproxy_pubsub_frames_received_total", "type", "fetch")
	written := g.metric("kproxy_pubsub_frames_sent_total", "type", "fetch")
	t.Logf("requests read %v of %d, answers written %v, peak in flight %v, heap growth %d KiB",
		read, requests, written, peakInflight, (int64(peakHeap)-int64(before.HeapAlloc))>>10)
	if peakInflight > inflight {
		t.Errorf("got %v requests in flight, want at most %d", peakInflight, inflight)
	}
	// A request is read only while fewer than MaxInFlight wait for their answer.
	if read > written+inflight {
		t.Errorf("read %v requests with %v answers written, want at most %d more", read, written, inflight)
	}
	// The answers in flight (4 × 256 KiB) and what the sockets hold, not 500 MiB.
	if growth := int64(peakHeap) - int64(before.HeapAlloc); growth > 64<<20 {
		t.Errorf("heap grew by %d MiB, want under 64 MiB", growth>>20)
	}
	testwait.Eventually(t, 10*time.Second, "connection gone", func() bool { return g.metric("kproxy_pubsub_connections") == 0 })
	ws.Close()
	<-sendErr
}

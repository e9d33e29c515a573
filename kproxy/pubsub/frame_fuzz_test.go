package pubsub

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// FuzzFrame sends each input as one frame over a live connection, followed by
// a ping as a fence, and checks the protocol's promises: the connection stays
// open; a text frame gets no answer; a binary frame that is not a PubSubReq
// gets one ErrorResp with sequence 0; a PubSubReq gets exactly one answer with
// its sequence, of the kind its command calls for (records of a fetch starting
// at or after the requested offset, in order).
func FuzzFrame(f *testing.F) {
	seeds := []*PubSubReq{
		pingReq(1, []byte{72, 65, 100, 10, 90}),
		{Sequence: 2, Req: &PubSubReq_CmdEmpty{CmdEmpty: &CmdEmpty{}}},
		{Sequence: -3},
		listReq(4, topic, 0, -2),
		listReq(5, topic, 0, -1),
		listReq(6, topic, 0, 1_700_000_003_000),
		listReq(7, topic, 9, -1),
		fetchReq(8, topic, 0, 0),
		fetchReq(9, topic, 0, 5),
		fetchReq(10, "compressed", 0, 3),
		fetchReq(11, topic, 0, 1<<40),
		fetchReq(12, "__consumer_offsets", 0, 0),
		fetchReq(13, "nosuch", 0, 0),
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(false, b)
	}
	f.Add(false, []byte{})
	f.Add(false, []byte{0xff, 0xff, 0xff})
	f.Add(false, []byte{0x08, 0x01, 0xfa, 0x01, 0x02, 0x0a}) // truncated cmd_ping
	f.Add(true, []byte(`{"sequence":1}`))

	g := startGateway(f, Options{FetchMaxWait: time.Millisecond})
	testcluster.CreateTopic(f, g.brokers, topic, 1)
	testcluster.CreateTopic(f, g.brokers, "compressed", 1)
	g.produce(f, records(topic, 0, 10, time.UnixMilli(1_700_000_000_000)))
	g.produce(f, records("compressed", 0, 10, time.UnixMilli(1_700_000_000_000)),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerLinger(100*time.Millisecond))
	ws := wsgatetest.Dial(f, g.url, nil)
	fence := int64(0)

	f.Fuzz(func(t *testing.T, text bool, frame []byte) {
		if int64(len(frame)) > DefaultMaxFrameBytes {
			frame = frame[:DefaultMaxFrameBytes] // larger frames close the connection, by design
		}
		typ := websocket.BinaryMessage
		if text {
			typ = websocket.TextMessage
		}
		if err := ws.WriteMessage(typ, frame); err != nil {
			t.Fatalf("send frame: %v", err)
		}
		fence++
		state := []byte(fmt.Sprintf("fence %d", fence))
		send(t, ws, pingReq(fence, state))

		if !text {
			resp := recv(t, ws)
			req := &PubSubReq{}
			if err := proto.Unmarshal(frame, req); err != nil {
				if resp.GetSequence() != 0 || resp.GetErrorResp() == nil {
					t.Fatalf("undecodable frame: got %v, want an error with sequence 0", resp)
				}
			} else {
				checkAnswer(t, req, resp)
			}
		}
		resp := recv(t, ws)
		if resp.GetSequence() != fence || !bytes.Equal(resp.GetPongResp().GetState(), state) {
			t.Fatalf("got %v, want the fence's pong (one answer per request)", resp)
		}
	})
}

// checkAnswer checks resp is the answer req calls for.
func checkAnswer(t *testing.T, req *PubSubReq, resp *PubSubResp) {
	t.Helper()
	if resp.GetSequence() != req.GetSequence() {
		t.Fatalf("got sequence %d, want %d", resp.GetSequence(), req.GetSequence())
	}
	switch cmd := req.GetReq().(type) {
	case *PubSubReq_CmdPing:
		if resp.GetPongResp() == nil || !bytes.Equal(resp.GetPongResp().GetState(), cmd.CmdPing.GetState()) {
			t.Fatalf("ping: got %v, want a pong with its state", resp)
		}
	case *PubSubReq_CmdKafkaListOffset:
		if resp.GetKafkaListOffsetResp() == nil && resp.GetErrorResp() == nil {
			t.Fatalf("list offset: got %v", resp)
		}
	case *PubSubReq_CmdKafkaFetch:
		if resp.GetErrorResp() != nil {
			return
		}
		if resp.GetKafkaFetchResp() == nil {
			t.Fatalf("fetch: got %v", resp)
		}
		prev := cmd.CmdKafkaFetch.GetOffset() - 1
		for _, m := range resp.GetKafkaFetchResp().GetMessages() {
			if m.GetOffset() <= prev {
				t.Fatalf("fetch at %d: record %d follows %d", cmd.CmdKafkaFetch.GetOffset(), m.GetOffset(), prev)
			}
			prev = m.GetOffset()
		}
	default:
		if e := resp.GetErrorResp(); e == nil || e.GetMessage() != "unknown command" {
			t.Fatalf("no or empty command: got %v, want unknown command", resp)
		}
	}
}

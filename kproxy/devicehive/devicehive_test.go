package devicehive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// TestTopicCreateAndList creates topics with the broker's default partitions
// and lists what the topic rules allow.
func TestTopicCreateAndList(t *testing.T) {
	g := startGateway(t, setup{
		opts: Options{AllowTopicCreate: true},
		cfg:  func(c *proxy.Config) { c.Topics.Deny = []string{"secret.*"} },
	})
	testcluster.CreateTopic(t, g.brokers, "secret-orders", 1)
	c := dial(t, g.url, nil)

	var created []string
	if err := json.Unmarshal(c.ok(1, "topic", "create", []string{"topic1", "topic2", "topic1"}), &created); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created, []string{"topic1", "topic2"}) {
		t.Errorf("create: got p %v, want [topic1 topic2]", created)
	}
	// Creating a topic that exists is not an error: the client gets what it asked for.
	c.ok(2, "topic", "create", []string{"topic2"})
	c.fails(3, "topic", "create", []string{"secret-x"}, 403, proxy.CodeTopicNotAllowed, `"secret-x"`)
	c.fails(4, "topic", "create", []string{"__internal"}, 403, proxy.CodeTopicNotAllowed)
	c.fails(5, "topic", "create", []string{"bad topic"}, 400, proxy.CodeInvalidTopic)
	c.fails(6, "topic", "create", []string{}, 400, CodeBadPayload)
	c.fails(7, "topic", "create", map[string]string{"t": "x"}, 400, CodeBadPayload)
	c.fails(8, "topic", "create", nil, 400, CodeBadPayload, "p is required")

	// A consumer group makes Kafka create __consumer_offsets; it must not be listed.
	c.subscribe(9, "g", "topic1")
	var listed []topicPartition
	if err := json.Unmarshal(c.ok(10, "topic", "list", nil), &listed); err != nil {
		t.Fatal(err)
	}
	want := []topicPartition{{"topic1", 0}, {"topic1", 1}, {"topic1", 2}, {"topic2", 0}, {"topic2", 1}, {"topic2", 2}}
	if !slices.Equal(listed, want) {
		t.Errorf("list: got %v, want %v (secret-orders and __ topics hidden)", listed, want)
	}

	off := startGateway(t, setup{})
	dial(t, off.url, nil).fails("x", "topic", "create", []string{"t"}, 403, CodeTopicCreateDisabled)
}

// TestNotifCreateAcknowledgedOnlyByKafka holds the broker's produce answer and
// shows no reply comes until Kafka has the record; then the reply carries
// where Kafka wrote it, and the record holds the message as sent.
func TestNotifCreateAcknowledgedOnlyByKafka(t *testing.T) {
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "t1", 2)
	c := dial(t, g.url, nil)

	held, release := testcluster.HoldProduces(t, g.kafka)
	c.send(map[string]any{"id": 7, "t": "notif", "a": "create", "p": map[string]any{"t": "t1", "m": "hello", "part": 1}})
	select {
	case <-held:
	case <-time.After(replyTimeout):
		t.Fatal("the produce request never reached the broker")
	}
	select {
	case r := <-c.replies:
		t.Fatalf("got reply %+v while Kafka had not answered the produce request", r)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	r := c.reply()
	if r.S != 0 || string(r.ID) != "7" || string(r.RefID) != "7" || r.T != "notif" || r.A != "create" {
		t.Fatalf("got %+v, want s 0 for id 7", r)
	}
	var ack ackPayload
	if err := json.Unmarshal(r.P, &ack); err != nil || ack != (ackPayload{Topic: "t1", Partition: 1, Offset: 0}) {
		t.Errorf("got p %s, want t1/1 at offset 0", r.P)
	}

	// Any other JSON value goes as its JSON text; a key is kept.
	c.ok(8, "notif", "create", map[string]any{"t": "t1", "m": map[string]any{"custom_message": "msg", "n": []int{1, 2}}, "part": 0, "key": "device-1"})
	c.send(`{"id":9,"t":"notif","a":"create","p":{"t":"t1","m":42,"part":0}}`)
	if r := c.reply(); r.S != 0 {
		t.Fatalf("number message: got %+v", r)
	}
	recs := testcluster.ReadTopic(t, g.brokers, "t1", 3)
	byValue := map[string]*kgo.Record{}
	for _, r := range recs {
		byValue[string(r.Value)] = r
	}
	if r := byValue["hello"]; r == nil || r.Partition != 1 || r.Key != nil {
		t.Errorf("string message: got %v, want value hello in partition 1 without key", r)
	}
	if r := byValue[`{"custom_message":"msg","n":[1,2]}`]; r == nil || string(r.Key) != "device-1" {
		t.Errorf("object message: got records %v, want its JSON text with key device-1", byValue)
	}
	if byValue["42"] == nil {
		t.Errorf("number message: got records %v, want value 42", byValue)
	}
	if got := value(g.h.metrics.repliesSent.WithLabelValues("notif_create", "0")); got != 3 {
		t.Errorf("replies_total{notif_create,0}: got %v, want 3", got)
	}
}

// TestNotifCreateErrors checks each refusal is an error reply with its status
// and code, and the connection stays usable.
func TestNotifCreateErrors(t *testing.T) {
	g := startGateway(t, setup{cfg: func(c *proxy.Config) {
		c.Topics.Deny = []string{"private"}
		c.MaxRequestSizeBytes = 1024
	}})
	testcluster.CreateTopic(t, g.brokers, "t1", 2)
	c := dial(t, g.url, nil)
	notif := func(p map[string]any) map[string]any { return p }
	tests := []struct {
		name string
		p    any
		s    int
		code string
		want string
	}{
		{"denied topic", notif(map[string]any{"t": "private", "m": "x"}), 403, proxy.CodeTopicNotAllowed, `"private"`},
		{"internal topic", notif(map[string]any{"t": "__consumer_offsets", "m": "x"}), 403, proxy.CodeTopicNotAllowed, ""},
		{"unknown topic", notif(map[string]any{"t": "nosuch", "m": "x"}), 404, proxy.CodeUnknownTopic, `"nosuch"`},
		{"unknown partition", notif(map[string]any{"t": "t1", "m": "x", "part": 5}), 404, proxy.CodeUnknownPartition, "5"},
		{"negative partition", notif(map[string]any{"t": "t1", "m": "x", "part": -1}), 400, CodeBadPayload, "negative"},
		{"no topic", notif(map[string]any{"m": "x"}), 400, proxy.CodeMissingTopic, ""},
		{"no message", notif(map[string]any{"t": "t1"}), 400, CodeBadPayload, "m, the message, is required"},
		{"null message", notif(map[string]any{"t": "t1", "m": nil}), 400, CodeBadPayload, "required"},
		{"empty message", notif(map[string]any{"t": "t1", "m": ""}), 400, proxy.CodeEmptyBody, ""},
		{"message too large", notif(map[string]any{"t": "t1", "m": strings.Repeat("x", 1025)}), 413, proxy.CodeBodyTooLarge, "1024"},
		{"partition not a number", notif(map[string]any{"t": "t1", "m": "x", "part": "one"}), 400, CodeBadPayload, ""},
		{"payload not an object", "t1", 400, CodeBadPayload, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			c.fails(i, "notif", "create", tt.p, tt.s, tt.code, tt.want)
		})
	}
	c.t = t
	// Fields the payload does not have are ignored, as upstream does.
	c.ok("still", "notif", "create", map[string]any{"t": "t1", "m": "usable", "partition": 1, "extra": true})
}

// TestNotifCreateBackpressureAndKafkaDown: a notif create beyond req_pool_size
// gets 503 backpressure while another waits for Kafka; with Kafka gone the
// answer is 503 kafka_unavailable.
func TestNotifCreateBackpressureAndKafkaDown(t *testing.T) {
	g := startGateway(t, setup{cfg: func(c *proxy.Config) { c.ReqPoolSize = 1 }})
	testcluster.CreateTopic(t, g.brokers, "t1", 1)
	holder, other := dial(t, g.url, nil), dial(t, g.url, nil)

	held, release := testcluster.HoldProduces(t, g.kafka)
	holder.send(map[string]any{"id": 1, "t": "notif", "a": "create", "p": map[string]any{"t": "t1", "m": "first"}})
	<-held
	other.fails(2, "notif", "create", map[string]any{"t": "t1", "m": "second"}, 503, proxy.CodeBackpressure, "req_pool_size 1")
	release()
	if r := holder.reply(); r.S != 0 {
		t.Fatalf("held notif: got %+v, want s 0", r)
	}

	g.kafka.Close()
	testwait.Eventually(t, replyTimeout, "503 kafka_unavailable with Kafka gone", func() bool {
		r := other.call(3, "notif", "create", map[string]any{"t": "t1", "m": "x"})
		return r.S == 503 && r.Code == proxy.CodeKafkaUnavailable
	})
}

// TestBadFramesKeepConnectionUsable sends what the protocol does not accept;
// each gets one error reply and the connection goes on.
func TestBadFramesKeepConnectionUsable(t *testing.T) {
	g := startGateway(t, setup{})
	c := dial(t, g.url, nil)

	c.send(`{"id":1,"t":`)
	r := checkError(t, c.reply(), 400, CodeBadJSON)
	if string(r.ID) != "null" || string(r.RefID) != "null" {
		t.Errorf("bad JSON: got id %s refid %s, want null", r.ID, r.RefID)
	}
	c.fails(2, "device", "create", nil, 400, CodeUnknownType, `"device"`)
	c.fails(3, "topic", "delete", nil, 400, CodeUnknownAction, `"delete"`)
	c.fails(4, "notif", "list", nil, 400, CodeUnknownAction)
	c.fails("s", "topic", "subscribe", []string{"a"}, 400, CodeBadPayload)

	c.send(`{"id":5,"t":7}`)
	r = checkError(t, c.reply(), 400, CodeBadMessage, `"t" must be a string`)
	if string(r.ID) != "5" {
		t.Errorf("bad t: got id %s, want 5", r.ID)
	}
	c.send(`"just a string"`)
	checkError(t, c.reply(), 400, CodeBadMessage)
	c.send(`{"id":6}`)
	checkError(t, c.reply(), 400, CodeUnknownType)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"id":"bin","t":"health"}`)); err != nil {
		t.Fatal(err)
	}
	if r := c.reply(); r.S != 0 || string(r.ID) != `"bin"` {
		t.Errorf("binary frame: got %+v, want it handled as text", r)
	}
	c.ok(8, "health", "", nil)
	if got := value(g.h.metrics.FramesReceived.WithLabelValues(frameInvalid)); got != 1 {
		t.Errorf("frames_received_total{invalid}: got %v, want 1", got)
	}
}

// TestBatchFrame sends three messages in one frame and gets three replies in
// order, each with its id.
func TestBatchFrame(t *testing.T) {
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "t1", 1)
	c := dial(t, g.url, nil)
	c.send(`[{"id":1,"t":"notif","a":"create","p":{"t":"t1","m":"one"}},` +
		`{"id":"two","t":"topic","a":"nope"},` +
		`{"id":3,"t":"notif","a":"create","p":{"t":"t1","m":"three"}}, 4]`)
	want := []struct {
		id string
		s  int
	}{{"1", 0}, {`"two"`, 400}, {"3", 0}, {"null", 400}}
	for i, w := range want {
		r := c.reply()
		if string(r.ID) != w.id || string(r.RefID) != w.id || r.S != w.s {
			t.Errorf("reply %d: got id %s refid %s s %d, want id %s s %d", i, r.ID, r.RefID, r.S, w.id, w.s)
		}
	}
	recs := testcluster.ReadTopic(t, g.brokers, "t1", 2)
	if string(recs[0].Value) != "one" || string(recs[1].Value) != "three" {
		t.Errorf("got records %q, %q, want one, three in order", recs[0].Value, recs[1].Value)
	}
	if got := value(g.h.metrics.FramesReceived.WithLabelValues(frameBatch)); got != 1 {
		t.Errorf("frames_received_total{batch}: got %v, want 1", got)
	}
}

// TestAuthentication requires a token: none or a wrong one gets 401 before
// the upgrade, the Authorization header or ?access_token= get in. A plain GET
// gets 426 and another method 405.
func TestAuthentication(t *testing.T) {
	const token = "0123456789abcdef-token"
	g := startGateway(t, setup{cfg: func(c *proxy.Config) { c.Auth.Tokens = []string{token} }})
	refused := func(url string, header http.Header) int {
		_, resp, err := websocket.DefaultDialer.Dial(url, header)
		if err == nil {
			t.Fatalf("dial %s: got a connection, want a refusal", url)
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		defer resp.Body.Close()
		return resp.StatusCode
	}
	if got := refused(g.url, nil); got != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", got)
	}
	if got := refused(g.url, http.Header{"Authorization": {"Bearer wrong-token-0123456789"}}); got != http.StatusUnauthorized {
		t.Errorf("wrong token: got %d, want 401", got)
	}
	if got := refused(g.url+"?access_token=wrong-token-0123456789", nil); got != http.StatusUnauthorized {
		t.Errorf("wrong access_token: got %d, want 401", got)
	}
	dial(t, g.url, http.Header{"Authorization": {"Bearer " + token}}).ok(1, "health", "", nil)
	dial(t, g.url+"?access_token="+token, nil).ok(2, "health", "", nil)
	if got := value(g.h.metrics.Upgrades.WithLabelValues(wsgate.UpgradeUnauthorized)); got != 3 {
		t.Errorf("upgrades_total{unauthorized}: got %v, want 3", got)
	}

	for _, tt := range []struct {
		method string
		want   int
	}{{http.MethodGet, http.StatusUpgradeRequired}, {http.MethodPost, http.StatusMethodNotAllowed}} {
		resp, body := wsgatetest.Do(t, tt.method, g.srv.URL+"/ws", nil)
		if resp.StatusCode != tt.want || !strings.Contains(string(body), `"code"`) {
			t.Errorf("%s without upgrade: got %d %s, want %d with a JSON error", tt.method, resp.StatusCode, body, tt.want)
		}
	}
}

// TestConnectionLimit refuses the upgrade beyond MaxConnections with 503.
func TestConnectionLimit(t *testing.T) {
	g := startGateway(t, setup{opts: Options{MaxConnections: 1}})
	c := dial(t, g.url, nil)
	c.fence()
	_, resp, err := websocket.DefaultDialer.Dial(g.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection: got %v %v, want 503", resp, err)
	}
	resp.Body.Close()
	c.ws.Close()
	testwait.Eventually(t, replyTimeout, "the slot freed", func() bool { return g.h.Connections() == 0 })
	dial(t, g.url, nil).fence()
}

// TestFrameTooLarge closes the connection with 1009 beyond MaxFrameBytes.
func TestFrameTooLarge(t *testing.T) {
	g := startGateway(t, setup{opts: Options{MaxFrameBytes: 2048}})
	c := dial(t, g.url, nil)
	// The gateway may close before the client wrote it all: the write may fail.
	_ = c.ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"t":"health","p":"`+strings.Repeat("x", 4096)+`"}`))
	<-c.closed
	// Unless the reset caught up with it, the client reads status 1009.
	var ce *websocket.CloseError
	if errors.As(c.readErr, &ce) && ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("got %v, want close 1009", c.readErr)
	}
	testwait.Eventually(t, replyTimeout, "closed_total{frame_too_large}", func() bool {
		return value(g.h.metrics.Closed.WithLabelValues(wsgate.ClosedTooLarge)) == 1
	})
}

// TestHealth lists every connection with its topics and groups.
func TestHealth(t *testing.T) {
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "topic1", 1)
	testcluster.CreateTopic(t, g.brokers, "topic2", 1)
	// Connections are numbered as they start: a has 1 once it got a reply.
	a := dial(t, g.url, nil)
	a.subscribe(1, "g1", "topic1", "topic2")
	a.subscribe(2, "g2", "topic2")
	b := dial(t, g.url, nil)
	var h healthPayload
	if err := json.Unmarshal(b.ok(3, "health", "", nil), &h); err != nil {
		t.Fatal(err)
	}
	want := healthPayload{Consumers: []consumerInfo{
		{WS: 1, Topics: []string{"topic1", "topic2"}, Groups: []string{"g1", "g2"}},
		{WS: 2, Topics: []string{}, Groups: []string{}},
	}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("health: got %+v, want %+v", h, want)
	}
	if got := value(g.h.metrics.subscriptions); got != 2 {
		t.Errorf("subscriptions: got %v, want 2", got)
	}
}

// TestShutdown ends connections with 1001 and leaves their groups.
func TestShutdown(t *testing.T) {
	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "t1", 2)
	c := dial(t, g.url, nil)
	c.subscribe(1, "g", "t1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-c.closed
	if !websocket.IsCloseError(c.readErr, websocket.CloseGoingAway) {
		t.Errorf("got %v, want close 1001", c.readErr)
	}
	groups, err := g.admin.DescribeGroups(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(groups["g"].Members); n != 0 {
		t.Errorf("group g: got %d members after shutdown, want 0", n)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(g.url, nil); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after shutdown: got %v, want 503", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Core is nil") {
		t.Errorf("no core: got %v", err)
	}
	if _, err := New(Options{MaxConnections: -1, WriteTimeout: -time.Second}); err == nil ||
		!strings.Contains(err.Error(), "MaxConnections: -1 is negative") || !strings.Contains(err.Error(), "WriteTimeout") {
		t.Errorf("negative values: got %v", err)
	}
}

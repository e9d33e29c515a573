package main

// Black-box tests of the WebSocket gateways: the kproxy binary with both
// gateways on, over TLS, driven by real WebSocket clients.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/protobuf/proto"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy/testpki"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/pubsub"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

const gwToken = "gateway-token-0123456789"

// wsReply is a devicehive reply.
type wsReply struct {
	ID, RefID json.RawMessage
	T, A      string
	S         int
	P         json.RawMessage
	Code      string
}

// wsCall sends one devicehive message and reads frames until its reply;
// notification frames read meanwhile are returned too.
func wsCall(t *testing.T, ws *websocket.Conn, msg string) (wsReply, []map[string]any) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("send %s: %v", msg, err)
	}
	var notifs []map[string]any
	for {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reply to %s: %v", msg, err)
		}
		if b[0] == '[' {
			var ns []map[string]any
			if err := json.Unmarshal(b, &ns); err != nil {
				t.Fatal(err)
			}
			notifs = append(notifs, ns...)
			continue
		}
		var r wsReply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		return r, notifs
	}
}

// TestWebSocketGatewaysOverTLS runs the binary with both gateways, HTTPS and
// tokens: devicehive subscribes, produces (acknowledged with its offset) and
// receives over wss with the token in the header; pubsub pings and fetches
// that record with ?access_token=; no token gets 401, a plain GET 426; the
// metrics show both gateways; SIGTERM closes the connections with 1001 and
// exits 0.
func TestWebSocketGatewaysOverTLS(t *testing.T) {
	const topic = "bb-ws"
	ca := testpki.NewCA(t, "bb-ws")
	server := ca.Server(t, "kproxy")
	c := testcluster.Kafka(t, kfake.SeedTopics(2, topic))
	cfg, port, logDir := bbOriginalConfig(t, testcluster.Brokers(c), fmt.Sprintf(`tls:
  cert_file: %s
  key_file: %s
auth:
  tokens: [%s]
websocket:
  devicehive_path: /ws
  pubsub_path: /pubsub
  default_consumer_group: bb-default
`, server.CertFile, server.KeyFile, gwToken))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	t.Cleanup(tr.CloseIdleConnections)
	httpsClient := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	p := bbStartWith(t, cfg, "https://"+addr, logDir, httpsClient)
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, HandshakeTimeout: 10 * time.Second}
	dial := func(path string, h http.Header) *websocket.Conn {
		t.Helper()
		ws, resp, err := dialer.Dial("wss://"+addr+path, h)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("dial %s: %v (status %d)\n%s", path, err, status, p.Logs())
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}

	for _, path := range []string{"/ws", "/pubsub"} {
		if _, resp, err := dialer.Dial("wss://"+addr+path, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a token: got %v, want 401", path, err)
		}
		resp, err := httpsClient.Get("https://" + addr + path + "?access_token=" + gwToken)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Errorf("plain GET %s: got %d, want 426", path, resp.StatusCode)
		}
	}

	dh := dial("/ws", http.Header{"Authorization": {"Bearer " + gwToken}})
	if r, _ := wsCall(t, dh, `{"id":1,"t":"topic","a":"subscribe","p":{"t":["`+topic+`"]}}`); r.S != 0 || string(r.P) != `["bb-ws"]` {
		t.Fatalf("subscribe: got %+v", r)
	}
	// The notification may come before the reply: it is sent once Kafka has
	// the record, as the reply is.
	r, notifs := wsCall(t, dh, `{"id":2,"t":"notif","a":"create","p":{"t":"`+topic+`","m":"over wss","part":1}}`)
	if r.S != 0 || string(r.RefID) != "2" || string(r.P) != `{"topic":"bb-ws","partition":1,"offset":0}` {
		t.Fatalf("notif create: got %+v", r)
	}
	notifs = append(notifs, awaitNotifs(t, dh, 1-len(notifs))...)
	if len(notifs) != 1 || notifs[0]["p"] != "over wss" || notifs[0]["topic"] != topic || notifs[0]["partition"] != 1.0 {
		t.Errorf("notifications: got %v, want the record written\n%s", notifs, p.Logs())
	}

	ps := dial("/pubsub?access_token="+gwToken, nil)
	pubsubCall := func(req *pubsub.PubSubReq) *pubsub.PubSubResp {
		t.Helper()
		b, _ := proto.Marshal(req)
		if err := ps.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		_ = ps.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := ps.ReadMessage()
		if err != nil {
			t.Fatalf("pubsub answer: %v", err)
		}
		resp := &pubsub.PubSubResp{}
		if err := proto.Unmarshal(b, resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := pubsubCall(&pubsub.PubSubReq{Sequence: 1, Req: &pubsub.PubSubReq_CmdPing{CmdPing: &pubsub.CmdPing{State: []byte("hi")}}}); string(resp.GetPongResp().GetState()) != "hi" {
		t.Errorf("pubsub ping: got %v", resp)
	}
	resp := pubsubCall(&pubsub.PubSubReq{Sequence: 2, Req: &pubsub.PubSubReq_CmdKafkaFetch{CmdKafkaFetch: &pubsub.CmdKafkaFetch{Topic: topic, Partition: 1, Offset: 0}}})
	if msgs := resp.GetKafkaFetchResp().GetMessages(); len(msgs) != 1 || string(msgs[0].GetValue()) != "over wss" {
		t.Errorf("pubsub fetch: got %v, want the record devicehive wrote", resp)
	}

	mresp, err := httpsClient.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, m := range []string{"kproxy_devicehive_connections 1", "kproxy_pubsub_connections 1",
		"kproxy_devicehive_subscriptions 1", "kproxy_devicehive_notifications_delivered_total 1",
		`kproxy_devicehive_replies_total{s="0",type="notif_create"} 1`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, p.Logs())
	}
	for name, ws := range map[string]*websocket.Conn{"devicehive": dh, "pubsub": ps} {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, _, err := ws.ReadMessage()
			if err == nil {
				continue
			}
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Errorf("%s after SIGTERM: got %v, want close 1001", name, err)
			}
			break
		}
	}
}

// TestGatewaysOffByDefault: from the original file, the gateways' paths are
// not served.
func TestGatewaysOffByDefault(t *testing.T) {
	c := testcluster.Kafka(t)
	cfg, port, logDir := bbOriginalConfig(t, testcluster.Brokers(c), "")
	p := bbStart(t, cfg, port, logDir)
	for _, path := range []string{"/ws", "/pubsub"} {
		resp, err := http.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestCheckFlagWebSocket: kproxy -t names every broken websocket rule.
func TestCheckFlagWebSocket(t *testing.T) {
	bin := testproc.Build(t, ".")
	bad := filepath.Join(t.TempDir(), "ws.yaml")
	if err := os.WriteFile(bad, []byte("broker_hosts: [127.0.0.1:9092]\nwebsocket:\n  devicehive_path: ws\n  pubsub_path: /commit\n  initial_offset: latest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-f", bad)
	out, _ := cmd.CombinedOutput()
	for _, want := range []string{
		`ws.yaml: websocket.devicehive_path: "ws" must start with "/"`,
		`ws.yaml: websocket.pubsub_path: "/commit" is served by kproxy itself`,
		`ws.yaml: websocket.initial_offset: "latest" is not one of newest, oldest`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kproxy -t: output lacks %q:\n%s", want, out)
		}
	}
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("kproxy -t: got exit %d, want 1", cmd.ProcessState.ExitCode())
	}
}

// TestGatewayOptions checks the configuration reaches both gateways' options.
func TestGatewayOptions(t *testing.T) {
	c := testcluster.Kafka(t)
	cfg := proxy.Defaults()
	cfg.BrokerHosts = testcluster.Brokers(c)
	cfg.ProduceTimeoutMs = 1234
	ws := &cfg.WebSocket
	ws.DefaultConsumerGroup, ws.InitialOffset, ws.WriteTimeoutMs = "g", "oldest", 2500
	ws.Devicehive = proxy.DevicehiveConfig{MaxConnections: 1, MaxFrameBytes: 2048, MaxSubscriptions: 3, SendQueueBytes: 4096, MaxNotifsPerFrame: 5}
	ws.Pubsub = proxy.PubsubConfig{MaxConnections: 6, MaxFrameBytes: 7000, MaxInFlight: 8, FetchMaxBytes: 9000, FetchMaxWaitMs: 10, RequestTimeoutMs: 1100}
	core, err := proxy.New(t.Context(), cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(core.Close)
	d := devicehiveOptions(core, logging.Discard())
	if d.Core != core || d.DefaultGroup != "g" || !d.StartAtOldest || d.AllowTopicCreate || d.MaxConnections != 1 ||
		d.MaxFrameBytes != 2048 || d.MaxSubscriptions != 3 || d.SendQueueBytes != 4096 || d.MaxNotifsPerFrame != 5 ||
		d.WriteTimeout != 2500*time.Millisecond || d.RequestTimeout != 1234*time.Millisecond || d.Registerer != core.Registry() {
		t.Errorf("devicehive options: got %+v", d)
	}
	s := pubsubOptions(core, logging.Discard(), nil)
	if s.MaxConnections != 6 || s.MaxFrameBytes != 7000 || s.MaxInFlight != 8 || s.FetchMaxBytes != 9000 ||
		s.FetchMaxWait != 10*time.Millisecond || s.RequestTimeout != 1100*time.Millisecond || s.WriteTimeout != 2500*time.Millisecond ||
		s.Authorize == nil || s.TopicAllowed == nil || s.Registerer != core.Registry() {
		t.Errorf("pubsub options: got %+v", s)
	}
	if err := s.TopicAllowed("__consumer_offsets"); err == nil {
		t.Error("pubsub TopicAllowed: got nil for an internal topic, want the core's refusal")
	}
}

// TestDevicehiveOnBinary drives every devicehive action and the main errors
// against the binary: topics created and listed, two members of a group
// splitting a batch of three notifications while another group gets all
// three, unsubscribe, health, and error replies that leave the connection
// usable.
func TestDevicehiveOnBinary(t *testing.T) {
	c := testcluster.Kafka(t, kfake.DefaultNumPartitions(2))
	cfg, port, logDir := bbOriginalConfig(t, testcluster.Brokers(c), `topics:
  deny: ["denied.*"]
websocket:
  devicehive_path: /dh
`)
	p := bbStart(t, cfg, port, logDir)
	url := fmt.Sprintf("ws://127.0.0.1:%d/dh", port)
	dial := func() *websocket.Conn {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v\n%s", err, p.Logs())
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}
	want := func(r wsReply, s int, code string) {
		t.Helper()
		if r.S != s || r.Code != code || string(r.ID) != string(r.RefID) {
			t.Errorf("got %+v, want s %d code %q", r, s, code)
		}
	}
	a, b, all, w := dial(), dial(), dial(), dial()

	r, _ := wsCall(t, w, `{"id":1,"t":"topic","a":"create","p":["dh-a"]}`)
	want(r, 0, "")
	r, _ = wsCall(t, w, `{"id":2,"t":"topic","a":"create","p":["denied-x"]}`)
	want(r, 403, "topic_not_allowed")
	r, _ = wsCall(t, w, `{"id":3,"t":"topic","a":"list"}`)
	if want(r, 0, ""); string(r.P) != `[{"topic":"dh-a","partition":0},{"topic":"dh-a","partition":1}]` {
		t.Errorf("topic list: got %s", r.P)
	}
	for i, ws := range []*websocket.Conn{a, b, all} {
		group := "split"
		if ws == all {
			group = "all"
		}
		r, _ = wsCall(t, ws, fmt.Sprintf(`{"id":%d,"t":"topic","a":"subscribe","p":{"t":["dh-a"],"consumer_group":%q}}`, 10+i, group))
		want(r, 0, "")
	}
	r, _ = wsCall(t, w, `{"id":20,"t":"topic","a":"subscribe","p":{"t":["dh-a"]}}`)
	want(r, 400, "no_consumer_group")

	// Three notifications in one frame, one per key over both partitions.
	if err := w.WriteMessage(websocket.TextMessage, []byte(`[
		{"id":31,"t":"notif","a":"create","p":{"t":"dh-a","m":"n1","part":0}},
		{"id":32,"t":"notif","a":"create","p":{"t":"dh-a","m":"n2","part":1}},
		{"id":33,"t":"notif","a":"create","p":{"t":"dh-a","m":{"n":3},"part":1}}]`)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"31", "32", "33"} {
		_ = w.SetReadDeadline(time.Now().Add(30 * time.Second))
		var r wsReply
		if err := w.ReadJSON(&r); err != nil {
			t.Fatal(err)
		}
		if want(r, 0, ""); string(r.ID) != id {
			t.Errorf("batch: got reply %s, want %s", r.ID, id)
		}
	}
	collect := func(ws *websocket.Conn, n int) []string {
		t.Helper()
		return mapValues(awaitNotifs(t, ws, n))
	}
	three := []string{"n1", "n2", `{"n":3}`}
	if got := collect(all, 3); !slices.Equal(sorted(got), three) {
		t.Errorf("group all: got %v, want %v", got, three)
	}
	split := collect(a, 1)
	split = append(split, collect(b, 3-len(split))...)
	r, more := wsCall(t, a, `{"id":40,"t":"topic","a":"unsubscribe"}`)
	want(r, 0, "")
	split = append(split, mapValues(more)...)
	r, more = wsCall(t, b, `{"id":41,"t":"topic","a":"unsubscribe"}`)
	want(r, 0, "")
	split = append(split, mapValues(more)...)
	if !slices.Equal(sorted(split), three) {
		t.Errorf("group split: got %v, want each of %v once", split, three)
	}

	r, _ = wsCall(t, w, `{"id":50,"t":"notif","a":"create","p":{"t":"dh-missing","m":"x"}}`)
	want(r, 404, "unknown_topic")
	r, _ = wsCall(t, w, `{"id":51,"t":"notif","a":"create","p":{"t":"denied-y","m":"x"}}`)
	want(r, 403, "topic_not_allowed")
	r, _ = wsCall(t, w, `{not json`)
	want(r, 400, "bad_json")
	r, _ = wsCall(t, w, `{"id":52,"t":"nope"}`)
	want(r, 400, "unknown_type")
	r, _ = wsCall(t, w, `{"id":53,"t":"health"}`)
	want(r, 0, "")
	var health struct {
		Consumers []struct {
			WS     int      `json:"ws"`
			Topics []string `json:"topics"`
			Groups []string `json:"consumer_groups"`
		} `json:"consumers"`
	}
	if err := json.Unmarshal(r.P, &health); err != nil {
		t.Fatal(err)
	}
	inAll := 0
	for _, c := range health.Consumers {
		if slices.Equal(c.Groups, []string{"all"}) && slices.Equal(c.Topics, []string{"dh-a"}) {
			inAll++
		}
	}
	if len(health.Consumers) != 4 || inAll != 1 {
		t.Errorf("health: got %s, want 4 connections, one in group all on dh-a", r.P)
	}
}

// awaitNotifs reads notifications until n have arrived (or 30 seconds have
// passed), asking for health as a fence every 20 ms, and returns them.
func awaitNotifs(t *testing.T, ws *websocket.Conn, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; len(got) < n && time.Now().Before(deadline); i++ {
		_, ns := wsCall(t, ws, fmt.Sprintf(`{"id":"fence%d","t":"health"}`, i))
		got = append(got, ns...)
		time.Sleep(20 * time.Millisecond)
	}
	return got
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mapValues(ns []map[string]any) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n["p"].(string))
	}
	return out
}

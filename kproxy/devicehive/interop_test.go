//go:build linux

package devicehive

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate/wsgatetest"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// TestInteropNodeClient drives the gateway with a client nobody here wrote
// the WebSocket code of: the npm ws package in Node (testdata/interop, with
// package.json and package-lock.json pinning it), speaking the protocol as
// upstream's users do and matching replies by refid. It subscribes, creates
// notifications (a string and an object) and receives them, asks for
// health, sends a batch, gets error replies and unsubscribes. It is skipped
// only when the npm registry cannot be reached.
func TestInteropNodeClient(t *testing.T) {
	node := wsgatetest.LookPath(t, "node", "apt-get install -y nodejs npm")
	dir := wsgatetest.NodeClient(t, filepath.Join("testdata", "interop"), "package.json", "package-lock.json", "client.js")

	g := startGateway(t, setup{})
	testcluster.CreateTopic(t, g.brokers, "interop", 2)
	out, err := wsgatetest.Run(t, dir, 2*time.Minute, node, "client.js", g.url, "interop", "node-group")
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	steps := map[string][]map[string]any{}
	for line := range strings.Lines(string(out)) {
		var s map[string]any
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("client printed %q: %v\n%s", line, err, out)
		}
		steps[s["step"].(string)] = append(steps[s["step"].(string)], s)
	}
	check := func(step string, i int, want map[string]any) {
		t.Helper()
		got := steps[step]
		if len(got) <= i {
			t.Errorf("step %s #%d missing:\n%s", step, i, out)
			return
		}
		for k, v := range want {
			if g, _ := json.Marshal(got[i][k]); string(g) != mustJSON(v) {
				t.Errorf("step %s #%d: %s is %s, want %s", step, i, k, g, mustJSON(v))
			}
		}
	}
	check("subscribe", 0, map[string]any{"s": 0, "id": 1, "refid": 1, "p": []string{"interop"}})
	check("notif_create", 0, map[string]any{"s": 0, "id": "n1", "refid": "n1"})
	check("notif", 0, map[string]any{"t": "notif", "p": "hello from node", "topic": "interop", "key": nil})
	check("notif_create", 1, map[string]any{"s": 0, "refid": "n2"})
	check("notif", 1, map[string]any{"p": `{"custom_message":"msg"}`, "topic": "interop"})
	check("health", 0, map[string]any{"s": 0, "p": map[string]any{"consumers": []any{
		map[string]any{"ws": 1, "topics": []string{"interop"}, "consumer_groups": []string{"node-group"}}}}})
	check("batch", 0, map[string]any{"ids": []int{4, 5}, "s": []int{0, 0}})
	check("bad_json", 0, map[string]any{"s": 400, "code": CodeBadJSON})
	check("unknown_type", 0, map[string]any{"s": 400, "code": CodeUnknownType, "refid": 7})
	check("denied", 0, map[string]any{"s": 403, "code": "topic_not_allowed", "refid": 8})
	check("unsubscribe", 0, map[string]any{"s": 0, "p": []string{"interop"}})
	if len(steps["done"]) != 1 {
		t.Errorf("the client did not finish:\n%s", out)
	}
	// Both notifications are in Kafka where the acknowledgements said.
	for i, want := range []string{"hello from node", `{"custom_message":"msg"}`} {
		ack, _ := steps["notif_create"][i]["p"].(map[string]any)
		n := steps["notif"][i]
		if ack == nil || ack["partition"] != n["partition"] || ack["offset"] != n["offset"] || n["p"] != want {
			t.Errorf("notification %d: acknowledged at %v, delivered as %v", i, ack, n)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebSocketConfig checks the websocket section's rules: each problem named
// with its key and value, a path the right shape and of its own.
func TestWebSocketConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // empty: valid
	}{
		{"both gateways", "websocket: {devicehive_path: /ws, pubsub_path: /api/pubsub, default_consumer_group: g, initial_offset: oldest}\n", nil},
		{"no leading slash", "websocket: {devicehive_path: ws}\n", []string{`kproxy.yaml: websocket.devicehive_path: "ws" must start with "/"`}},
		{"root", "websocket: {pubsub_path: /}\n", []string{`websocket.pubsub_path: "/" has an empty segment`}},
		{"trailing slash", "websocket: {pubsub_path: /ws/}\n", []string{`websocket.pubsub_path: "/ws/" has an empty segment`}},
		{"pattern characters", "websocket: {devicehive_path: \"/ws/{id}\"}\n", []string{`websocket.devicehive_path: "/ws/{id}" holds '{'`}},
		{"dot segment", "websocket: {devicehive_path: /a/..}\n", []string{`websocket.devicehive_path: "/a/.." holds a ".." segment`}},
		{"commit", "websocket: {devicehive_path: /commit}\n", []string{`websocket.devicehive_path: "/commit" is served by kproxy itself`}},
		{"batch", "websocket: {devicehive_path: /batch}\n", []string{`websocket.devicehive_path: "/batch" is served by kproxy itself`}},
		{"metrics", "websocket: {pubsub_path: /metrics}\n", []string{`websocket.pubsub_path: "/metrics" is served by kproxy itself`}},
		{"pprof", "websocket: {pubsub_path: /debug/pprof/x}\n", []string{`websocket.pubsub_path: "/debug/pprof/x" is served by kproxy itself`}},
		{"same path", "websocket: {devicehive_path: /ws, pubsub_path: /ws}\n", []string{`websocket.pubsub_path: "/ws" is also websocket.devicehive_path`}},
		{"limits", `websocket:
  initial_offset: latest
  write_timeout_ms: 0
  default_consumer_group: ` + strings.Repeat("g", 250) + `
  devicehive: {max_connections: 0, max_frame_bytes: 10, max_subscriptions: 65, send_queue_bytes: 0, max_notifs_per_frame: 0}
  pubsub: {max_connections: 0, max_frame_bytes: 10, max_in_flight: 0, fetch_max_bytes: 0, fetch_max_wait_ms: 0, request_timeout_ms: 0}
`, []string{
			`websocket.initial_offset: "latest" is not one of newest, oldest`,
			`websocket.write_timeout_ms: 0 is not in 100..3600000`,
			`websocket.default_consumer_group: "ggg`,
			`websocket.devicehive.max_connections: 0 is not in`,
			`websocket.devicehive.max_frame_bytes: 10 is not in`,
			`websocket.devicehive.max_subscriptions: 65 is not in 1..64`,
			`websocket.devicehive.send_queue_bytes: 0 is not in`,
			`websocket.devicehive.max_notifs_per_frame: 0 is not in`,
			`websocket.pubsub.max_connections: 0 is not in`,
			`websocket.pubsub.max_frame_bytes: 10 is not in`,
			`websocket.pubsub.max_in_flight: 0 is not in`,
			`websocket.pubsub.fetch_max_bytes: 0 is not in`,
			`websocket.pubsub.fetch_max_wait_ms: 0 is not in`,
			`websocket.pubsub.request_timeout_ms: 0 is not in`,
		}},
		{"unknown key", "websocket: {devicehive: {max_conections: 3}}\n", []string{"websocket.devicehive.max_conections: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kproxy.yaml")
			if err := os.WriteFile(p, []byte("broker_hosts: [127.0.0.1:9092]\n"+tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(p)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want a valid file", err)
				}
				if c.WebSocket.DevicehivePath != "/ws" || c.WebSocket.PubsubPath != "/api/pubsub" || c.WebSocket.InitialOffset != "oldest" {
					t.Errorf("got %+v", c.WebSocket)
				}
				return
			}
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// TestWebSocketOffByDefault: the original file (no websocket section) and the
// defaults serve no gateway.
func TestWebSocketOffByDefault(t *testing.T) {
	c, err := LoadConfig("../../testdata/original/kproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.WebSocket.DevicehivePath != "" || c.WebSocket.PubsubPath != "" {
		t.Errorf("got paths %q, %q, want both off", c.WebSocket.DevicehivePath, c.WebSocket.PubsubPath)
	}
}

// TestWebSocketMemoryBound checks the gateways' part of the memory bound: none
// when both are off, each gateway's connections bounded by port's too.
func TestWebSocketMemoryBound(t *testing.T) {
	w := webSocketDefaults()
	if got := w.MemoryBound(10000); got != 0 {
		t.Errorf("both off: got %d, want 0", got)
	}
	w.DevicehivePath = "/ws"
	dh := int64(1024 * (2*1<<20 + 4*(4*256<<10+256<<10)))
	if got := w.MemoryBound(10000); got != dh {
		t.Errorf("devicehive: got %d, want %d", got, dh)
	}
	w.PubsubPath = "/pubsub"
	ps := int64(1024 * (64<<10 + 8*2*1<<20))
	if got := w.MemoryBound(10000); got != dh+ps {
		t.Errorf("both: got %d, want %d", got, dh+ps)
	}
	if got, want := w.MemoryBound(10), (dh+ps)/1024*10; got != want {
		t.Errorf("max_connections 10: got %d, want %d", got, want)
	}
}

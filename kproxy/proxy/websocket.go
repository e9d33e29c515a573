package proxy

import (
	"fmt"
	"strings"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// WebSocketConfig is the websocket section: kproxy's two WebSocket gateways,
// served on port beside /commit (over TLS when the tls section enables it).
// Both are off by default. kproxy/devicehive and kproxy/pubsub implement them;
// this section only configures them.
type WebSocketConfig struct {
	// DevicehivePath is the path of the devicehive ws-kafka-proxy JSON protocol,
	// such as "/ws"; "" turns the gateway off.
	DevicehivePath string `key:"devicehive_path"`
	// PubsubPath is the path of the Apache APISIX pubsub protocol (protobuf),
	// such as "/pubsub"; "" turns the gateway off.
	PubsubPath string `key:"pubsub_path"`
	// DefaultConsumerGroup is the consumer group of a devicehive subscribe that
	// names none; "" refuses such a subscribe.
	DefaultConsumerGroup string `key:"default_consumer_group"`
	// InitialOffset is where a devicehive consumer group without committed
	// offsets starts: "newest" (the log end, as upstream) or "oldest".
	InitialOffset string `key:"initial_offset"`
	// WriteTimeoutMs bounds writing one frame to a client of either gateway; a
	// client that reads nothing for that long is disconnected.
	WriteTimeoutMs int `key:"write_timeout_ms"`
	// Devicehive holds the devicehive gateway's limits.
	Devicehive DevicehiveConfig `key:"devicehive"`
	// Pubsub holds the pubsub gateway's limits.
	Pubsub PubsubConfig `key:"pubsub"`
}

// DevicehiveConfig is the websocket.devicehive section: limits of the
// devicehive gateway.
type DevicehiveConfig struct {
	// MaxConnections bounds the gateway's open connections; more upgrades get 503.
	MaxConnections int `key:"max_connections"`
	// MaxFrameBytes bounds one received frame; a larger one closes the connection
	// (status 1009). A notif create's message must fit, JSON-escaped.
	MaxFrameBytes int `key:"max_frame_bytes"`
	// MaxSubscriptions bounds the consumer groups one connection is a member of
	// at once (each is a Kafka client of its own).
	MaxSubscriptions int `key:"max_subscriptions"`
	// SendQueueBytes bounds the notifications (keys and values) waiting to be
	// written to one connection; when it is full the connection's consumers
	// stop fetching until the client has read. It also bounds each consumer's
	// fetches.
	SendQueueBytes int `key:"send_queue_bytes"`
	// MaxNotifsPerFrame bounds the notifications sent in one frame.
	MaxNotifsPerFrame int `key:"max_notifs_per_frame"`
	// AllowTopicCreate lets clients create topics (topic create) that the topic
	// rules allow.
	AllowTopicCreate bool `key:"allow_topic_create"`
}

// PubsubConfig is the websocket.pubsub section: limits of the pubsub gateway.
type PubsubConfig struct {
	// MaxConnections bounds the gateway's open connections; more upgrades get 503.
	MaxConnections int `key:"max_connections"`
	// MaxFrameBytes bounds one received frame; a larger one closes the
	// connection (status 1009).
	MaxFrameBytes int `key:"max_frame_bytes"`
	// MaxInFlight bounds the requests of one connection read and not yet
	// answered; beyond it the connection is not read.
	MaxInFlight int `key:"max_in_flight"`
	// FetchMaxBytes bounds the record batches one fetch answer is read from,
	// counted as Kafka stores them; the batch of the requested offset always
	// comes, however large.
	FetchMaxBytes int `key:"fetch_max_bytes"`
	// FetchMaxWaitMs is how long a fetch at the log end waits for records.
	FetchMaxWaitMs int `key:"fetch_max_wait_ms"`
	// RequestTimeoutMs bounds the Kafka requests of one command.
	RequestTimeoutMs int `key:"request_timeout_ms"`
}

// webSocketDefaults returns the websocket section's defaults; Defaults uses it.
func webSocketDefaults() WebSocketConfig {
	return WebSocketConfig{
		InitialOffset:  "newest",
		WriteTimeoutMs: 10000,
		Devicehive: DevicehiveConfig{
			MaxConnections:    1024,
			MaxFrameBytes:     1 << 20,
			MaxSubscriptions:  4,
			SendQueueBytes:    256 << 10,
			MaxNotifsPerFrame: 100,
			AllowTopicCreate:  true,
		},
		Pubsub: PubsubConfig{
			MaxConnections:   1024,
			MaxFrameBytes:    64 << 10,
			MaxInFlight:      8,
			FetchMaxBytes:    1 << 20,
			FetchMaxWaitMs:   500,
			RequestTimeoutMs: 10000,
		},
	}
}

// memPerMember is the memory of a devicehive group member's own Kafka client
// (connections, metadata, goroutines) beyond its fetches.
const memPerMember = 256 << 10

// MemoryBound returns the most memory, in bytes, the gateways that are on add
// to Config.MemoryBound, with at most connections connections open on port
// (max_connections):
//
//	devicehive: min(devicehive.max_connections, connections) × (2 × max_frame_bytes
//	            + max_subscriptions × (4 × send_queue_bytes + 256 KiB))
//	pubsub:     min(pubsub.max_connections, connections) × (max_frame_bytes
//	            + max_in_flight × 2 × fetch_max_bytes)
//
// A devicehive frame is held as read and as decoded messages; a group member
// holds its send queue, the batch it polled, the one fetch it may have
// buffered (one at a time, of at most send_queue_bytes) and the frame being
// encoded, besides its Kafka client. A pubsub answer is held as the batches
// read and as the encoded answer; records of compressed batches take more
// once decompressed.
func (w WebSocketConfig) MemoryBound(connections int) int64 {
	var n int64
	if w.DevicehivePath != "" {
		d := w.Devicehive
		conns := int64(min(d.MaxConnections, connections))
		n += conns * (2*int64(d.MaxFrameBytes) + int64(d.MaxSubscriptions)*(4*int64(d.SendQueueBytes)+memPerMember))
	}
	if w.PubsubPath != "" {
		p := w.Pubsub
		conns := int64(min(p.MaxConnections, connections))
		n += conns * (int64(p.MaxFrameBytes) + int64(p.MaxInFlight)*2*int64(p.FetchMaxBytes))
	}
	return n
}

// InitialOffsets lists the accepted websocket.initial_offset values.
var InitialOffsets = []string{"newest", "oldest"}

// reservedPaths are served by kproxy itself: a gateway path must not take them
// (nor anything under a reserved prefix ending in "/").
var reservedPaths = []string{"/commit", "/batch", "/healthz", "/readyz", "/metrics", "/debug/"}

// maxGroupLen bounds websocket.default_consumer_group, as Kafka's group ids
// are stored in a topic's record keys.
const maxGroupLen = 249

// check records every problem of the section.
func (w WebSocketConfig) check(f *config.File) {
	paths := map[string]string{}
	for _, p := range []struct{ key, path string }{
		{"websocket.devicehive_path", w.DevicehivePath},
		{"websocket.pubsub_path", w.PubsubPath},
	} {
		if p.path == "" {
			continue
		}
		if err := checkGatewayPath(p.path); err != nil {
			f.Problem(p.key, p.path, err.Error())
			continue
		}
		if other, ok := paths[p.path]; ok {
			f.Problem(p.key, p.path, "is also "+other+": each gateway needs a path of its own")
			continue
		}
		paths[p.path] = p.key
	}
	if len(w.DefaultConsumerGroup) > maxGroupLen {
		f.Problem("websocket.default_consumer_group", w.DefaultConsumerGroup, fmt.Sprintf("is longer than %d characters", maxGroupLen))
	}
	f.OneOf("websocket.initial_offset", w.InitialOffset, InitialOffsets...)
	f.Range("websocket.write_timeout_ms", int64(w.WriteTimeoutMs), 100, 3600000)

	d := w.Devicehive
	f.Range("websocket.devicehive.max_connections", int64(d.MaxConnections), 1, 1<<20)
	f.Range("websocket.devicehive.max_frame_bytes", int64(d.MaxFrameBytes), 1024, maxRecordBytes)
	f.Range("websocket.devicehive.max_subscriptions", int64(d.MaxSubscriptions), 1, 64)
	f.Range("websocket.devicehive.send_queue_bytes", int64(d.SendQueueBytes), 1024, maxRecordBytes)
	f.Range("websocket.devicehive.max_notifs_per_frame", int64(d.MaxNotifsPerFrame), 1, 10000)

	s := w.Pubsub
	f.Range("websocket.pubsub.max_connections", int64(s.MaxConnections), 1, 1<<20)
	f.Range("websocket.pubsub.max_frame_bytes", int64(s.MaxFrameBytes), 1024, 1<<24)
	f.Range("websocket.pubsub.max_in_flight", int64(s.MaxInFlight), 1, 1024)
	f.Range("websocket.pubsub.fetch_max_bytes", int64(s.FetchMaxBytes), 1024, maxRecordBytes)
	f.Range("websocket.pubsub.fetch_max_wait_ms", int64(s.FetchMaxWaitMs), 1, 60000)
	f.Range("websocket.pubsub.request_timeout_ms", int64(s.RequestTimeoutMs), 100, 3600000)
}

// checkGatewayPath returns why path cannot be a gateway's path, or nil: it must
// be one or more segments of letters, digits, '.', '_', '~' and '-', each after
// a "/", and must not be one of kproxy's own paths.
func checkGatewayPath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf(`must start with "/"`)
	}
	for seg := range strings.SplitSeq(path[1:], "/") {
		if seg == "" {
			return fmt.Errorf(`has an empty segment: use "/name" or "/a/b", without a trailing "/"`)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
				return fmt.Errorf("holds %q: only letters, digits, '.', '_', '~', '-' and '/' are allowed", c)
			}
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("holds a %q segment", seg)
		}
	}
	for _, r := range reservedPaths {
		if path == r || strings.HasSuffix(r, "/") && strings.HasPrefix(path+"/", r) {
			return fmt.Errorf("is served by kproxy itself (%s)", strings.Join(reservedPaths, ", "))
		}
	}
	return nil
}

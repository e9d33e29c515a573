package devicehive

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Message kinds of kproxy_devicehive_messages_received_total and
// kproxy_devicehive_replies_total (besides topic_create, topic_list,
// topic_subscribe and topic_unsubscribe).
const (
	kindNotifCreate = "notif_create"
	kindHealth      = "health"
	kindUnknown     = "unknown" // an unknown type or action
	kindInvalid     = "invalid" // not JSON, or not a message
)

var messageKinds = []string{"topic_create", "topic_list", "topic_subscribe", "topic_unsubscribe", kindNotifCreate, kindHealth, kindUnknown, kindInvalid}

// Frame kinds of kproxy_devicehive_frames_received_total.
const (
	frameSingle  = "message"
	frameBatch   = "batch"
	frameInvalid = "invalid"
)

// Results of kproxy_devicehive_upgrades_total.
const (
	upgradeOK           = "ok"
	upgradeNotWebSocket = "not_websocket"
	upgradeMethod       = "method_not_allowed"
	upgradeUnauthorized = "unauthorized"
	upgradeLimit        = "too_many_connections"
	upgradeShutdown     = "shutting_down"
	upgradeHandshake    = "bad_handshake"
)

// Reasons of kproxy_devicehive_closed_total.
const (
	closedByClient = "client"
	closedReadErr  = "read_error"
	closedTooLarge = "frame_too_large"
	closedWriteErr = "write_error"
	closedStalled  = "stalled"
	closedIdle     = "idle"
	closedShutdown = "shutdown"
)

// metrics are the gateway's Prometheus series, all named kproxy_devicehive_*.
type metrics struct {
	connections   prometheus.Gauge
	upgrades      *prometheus.CounterVec
	closed        *prometheus.CounterVec
	subscriptions prometheus.Gauge
	framesIn      *prometheus.CounterVec
	received      *prometheus.CounterVec
	repliesSent   *prometheus.CounterVec
	notifFrames   prometheus.Counter
	delivered     prometheus.Counter
	sentBytes     prometheus.Counter
	queuedBytes   prometheus.Gauge
	pauses        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_devicehive_connections",
			Help: "Open devicehive WebSocket connections.",
		}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_devicehive_upgrades_total",
			Help: "Requests to the devicehive path by result: ok (upgraded) or why not.",
		}, []string{"result"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_devicehive_closed_total",
			Help: "Closed devicehive connections by reason (stalled: the client read nothing for write_timeout_ms).",
		}, []string{"reason"}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_devicehive_subscriptions",
			Help: "Consumer group memberships of devicehive connections (each a Kafka group member).",
		}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_devicehive_frames_received_total",
			Help: "Frames received by kind: message (one), batch (an array), invalid (not JSON).",
		}, []string{"type"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_devicehive_messages_received_total",
			Help: "Messages received by type and action (unknown: no such type or action; invalid: not a message).",
		}, []string{"type"}),
		repliesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_devicehive_replies_total",
			Help: "Reply frames sent by message type and status s (0 ok, else the error's HTTP-like status).",
		}, []string{"type", "s"}),
		notifFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_devicehive_notification_frames_total",
			Help: "Frames of notifications sent.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_devicehive_notifications_delivered_total",
			Help: "Records sent to clients as notifications.",
		}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_devicehive_sent_bytes_total",
			Help: "Bytes of frames written (replies and notifications).",
		}),
		queuedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_devicehive_send_queue_bytes",
			Help: "Bytes of notifications waiting to be written, over every connection.",
		}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_devicehive_send_queue_pauses_total",
			Help: "Times a consumer stopped fetching because its connection's send queue was full.",
		}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.upgrades, m.closed, m.subscriptions, m.framesIn,
		m.received, m.repliesSent, m.notifFrames, m.delivered, m.sentBytes, m.queuedBytes, m.pauses} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that exist before their first event, so rates and alerts see 0.
	for _, k := range messageKinds {
		m.received.WithLabelValues(k)
		m.repliesSent.WithLabelValues(k, "0")
	}
	for _, f := range []string{frameSingle, frameBatch, frameInvalid} {
		m.framesIn.WithLabelValues(f)
	}
	for _, r := range []string{closedByClient, closedReadErr, closedTooLarge, closedWriteErr, closedStalled, closedIdle, closedShutdown} {
		m.closed.WithLabelValues(r)
	}
	return m, nil
}

// frames counts one received frame of kind.
func (m *metrics) frames(kind string) { m.framesIn.WithLabelValues(kind).Inc() }

// replies counts one reply to a message of kind with status s.
func (m *metrics) replies(kind string, s int) {
	m.repliesSent.WithLabelValues(kind, strconv.Itoa(s)).Inc()
}

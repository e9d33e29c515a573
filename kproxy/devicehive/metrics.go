package devicehive

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
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

// metrics are the gateway's Prometheus series, all named kproxy_devicehive_*:
// the gate's (connections, upgrades, closes, frames received, bytes sent) and
// the protocol's.
type metrics struct {
	*wsgate.Metrics
	subscriptions prometheus.Gauge
	received      *prometheus.CounterVec
	repliesSent   *prometheus.CounterVec
	notifFrames   prometheus.Counter
	delivered     prometheus.Counter
	queuedBytes   prometheus.Gauge
	pauses        prometheus.Counter
}

// newMetrics registers the protocol's series beside the gate's.
func newMetrics(reg prometheus.Registerer, gate *wsgate.Metrics) (*metrics, error) {
	m := &metrics{
		Metrics: gate,
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_devicehive_subscriptions",
			Help: "Consumer group memberships of devicehive connections (each a Kafka group member).",
		}),
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
		queuedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_devicehive_send_queue_bytes",
			Help: "Bytes of notifications waiting to be written, over every connection.",
		}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_devicehive_send_queue_pauses_total",
			Help: "Times a consumer stopped fetching because its connection's send queue was full.",
		}),
	}
	for _, c := range []prometheus.Collector{m.subscriptions, m.received, m.repliesSent, m.notifFrames,
		m.delivered, m.queuedBytes, m.pauses} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that exist before their first event, so rates and alerts see 0.
	for _, k := range messageKinds {
		m.received.WithLabelValues(k)
		m.repliesSent.WithLabelValues(k, "0")
	}
	return m, nil
}

// frames counts one received frame of kind.
func (m *metrics) frames(kind string) { m.FramesReceived.WithLabelValues(kind).Inc() }

// replies counts one reply to a message of kind with status s.
func (m *metrics) replies(kind string, s int) {
	m.repliesSent.WithLabelValues(kind, strconv.Itoa(s)).Inc()
}

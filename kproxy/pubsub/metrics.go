package pubsub

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Frame types of kproxy_pubsub_frames_received_total.
const (
	inPing        = "ping"
	inEmpty       = "empty"
	inListOffset  = "list_offset"
	inFetch       = "fetch"
	inNoCommand   = "no_command"
	inUndecodable = "undecodable"
	inText        = "text"
)

// Frame types of kproxy_pubsub_frames_sent_total.
const (
	outPong       = "pong"
	outError      = "error"
	outFetch      = "fetch"
	outListOffset = "list_offset"
)

// Reasons of kproxy_pubsub_upgrades_total (besides "ok").
const (
	upgradeOK           = "ok"
	upgradeNotWebSocket = "not_websocket"
	upgradeMethod       = "method_not_allowed"
	upgradeUnauthorized = "unauthorized"
	upgradeLimit        = "too_many_connections"
	upgradeShutdown     = "shutting_down"
	upgradeHandshake    = "bad_handshake"
)

// Reasons of kproxy_pubsub_closed_total.
const (
	closedByClient = "client"
	closedReadErr  = "read_error"
	closedTooLarge = "frame_too_large"
	closedWriteErr = "write_error"
	closedShutdown = "shutdown"
)

// metrics are the gateway's Prometheus series, all named kproxy_pubsub_*.
type metrics struct {
	connections prometheus.Gauge
	upgrades    *prometheus.CounterVec
	closed      *prometheus.CounterVec
	received    *prometheus.CounterVec
	sent        *prometheus.CounterVec
	errors      *prometheus.CounterVec
	records     prometheus.Counter
	sentBytes   prometheus.Counter
	inflight    prometheus.Gauge
	duration    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_pubsub_connections",
			Help: "Open pubsub WebSocket connections.",
		}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_pubsub_upgrades_total",
			Help: "Requests to the pubsub path by result: ok (upgraded) or why not.",
		}, []string{"result"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_pubsub_closed_total",
			Help: "Closed pubsub connections by reason.",
		}, []string{"reason"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_pubsub_frames_received_total",
			Help: "Frames received by command (undecodable and text frames included).",
		}, []string{"type"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_pubsub_frames_sent_total",
			Help: "Answers sent by type.",
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_pubsub_errors_total",
			Help: "Error answers by machine code.",
		}, []string{"code"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_pubsub_fetched_records_total",
			Help: "Records sent in fetch answers.",
		}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_pubsub_sent_bytes_total",
			Help: "Bytes of answers written (frame payloads).",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kproxy_pubsub_inflight_requests",
			Help: "Requests read and not yet answered, over every connection.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kproxy_pubsub_command_duration_seconds",
			Help:    "Time to answer a Kafka command, by command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"command"}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.upgrades, m.closed, m.received, m.sent,
		m.errors, m.records, m.sentBytes, m.inflight, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that exist before their first event, so rates and alerts see 0.
	for _, t := range []string{inPing, inEmpty, inListOffset, inFetch, inNoCommand, inUndecodable, inText} {
		m.received.WithLabelValues(t)
	}
	for _, t := range []string{outPong, outError, outFetch, outListOffset} {
		m.sent.WithLabelValues(t)
	}
	for _, c := range []string{inListOffset, inFetch} {
		m.duration.WithLabelValues(c)
	}
	return m, nil
}

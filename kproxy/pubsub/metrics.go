package pubsub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
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

// metrics are the gateway's Prometheus series, all named kproxy_pubsub_*: the
// gate's (connections, upgrades, closes, frames received, bytes sent) and the
// protocol's.
type metrics struct {
	*wsgate.Metrics
	sent     *prometheus.CounterVec
	errors   *prometheus.CounterVec
	records  prometheus.Counter
	inflight prometheus.Gauge
	duration *prometheus.HistogramVec
}

// newMetrics registers the protocol's series beside the gate's.
func newMetrics(reg prometheus.Registerer, gate *wsgate.Metrics) (*metrics, error) {
	m := &metrics{
		Metrics: gate,
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
	for _, c := range []prometheus.Collector{m.sent, m.errors, m.records, m.inflight, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that exist before their first event, so rates and alerts see 0.
	for _, t := range []string{outPong, outError, outFetch, outListOffset} {
		m.sent.WithLabelValues(t)
	}
	for _, c := range []string{inListOffset, inFetch} {
		m.duration.WithLabelValues(c)
	}
	return m, nil
}

package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are kproxy's Prometheus series.
type metrics struct {
	requests     *prometheus.CounterVec   // by status code and machine code
	latency      *prometheus.HistogramVec // by acks, successful commits only
	bodyBytes    prometheus.Counter
	produceErrs  *prometheus.CounterVec // by machine code
	requestCache sync.Map               // "status/code" -> prometheus.Counter
	latencyByAck [3]prometheus.Observer
	ok           prometheus.Counter // requests{status="200",code="ok"}, the hot path
}

func newMetrics(reg prometheus.Registerer, p *Proxy) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_requests_total",
			Help: "Requests to /commit by HTTP status and machine code (ok for 200).",
		}, []string{"status", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kproxy_commit_duration_seconds",
			Help:    "Time from request start to Kafka's acknowledgement, successful commits, by acks.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"acks"}),
		bodyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_received_bytes_total",
			Help: "Bytes of request bodies accepted and written to Kafka.",
		}),
		produceErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_produce_errors_total",
			Help: "Records Kafka did not acknowledge, by machine code.",
		}, []string{"code"}),
	}
	m.ok = m.requests.WithLabelValues("200", "ok")
	for _, a := range []Acks{AcksNone, AcksLeader, AcksAll} {
		m.latencyByAck[a.index()] = m.latency.WithLabelValues(a.String())
	}
	reg.MustRegister(m.requests, m.latency, m.bodyBytes, m.produceErrs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_buffered_records",
			Help: "Records handed to the Kafka clients and not yet acknowledged.",
		}, func() float64 { return float64(p.prod.buffered()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_inflight_requests",
			Help: "Requests to /commit in progress (bounded by req_pool_size).",
		}, func() float64 { return float64(p.inflight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_kafka_up",
			Help: "1 when the last probe reached a Kafka broker, else 0.",
		}, func() float64 {
			if p.health.up() {
				return 1
			}
			return 0
		}),
	)
	return m
}

// request counts one finished request; the counter per label pair is cached so the
// hot path does not hash labels.
func (m *metrics) request(status int, code string) {
	key := strconv.Itoa(status) + "/" + code
	c, ok := m.requestCache.Load(key)
	if !ok {
		c, _ = m.requestCache.LoadOrStore(key, m.requests.WithLabelValues(strconv.Itoa(status), code))
	}
	c.(prometheus.Counter).Inc()
}

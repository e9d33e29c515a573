package proxy

import "github.com/prometheus/client_golang/prometheus"

// metrics are the core's Prometheus series, shared by every door.
type metrics struct {
	latency      *prometheus.HistogramVec // by acks, successful commits only
	bodyBytes    prometheus.Counter
	produceErrs  *prometheus.CounterVec // by machine code
	latencyByAck [3]prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, p *Proxy) *metrics {
	m := &metrics{
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
	for _, a := range []Acks{AcksNone, AcksLeader, AcksAll} {
		m.latencyByAck[a.index()] = m.latency.WithLabelValues(a.String())
	}
	reg.MustRegister(m.latency, m.bodyBytes, m.produceErrs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_buffered_records",
			Help: "Records handed to the Kafka clients and not yet acknowledged.",
		}, func() float64 { return float64(p.prod.buffered()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_inflight_requests",
			Help: "Records admitted and not yet answered, from every door (bounded by req_pool_size).",
		}, func() float64 { return float64(p.inflight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kproxy_body_memory_bytes",
			Help: "Bytes of buffers holding request bodies, read so far or waiting for Kafka (bounded by max_body_memory_bytes).",
		}, func() float64 { return float64(p.mem.used.Load()) }),
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

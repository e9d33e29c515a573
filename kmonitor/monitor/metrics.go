package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are kmonitor's own Prometheus metrics kept in the registry: the poll
// and ZooKeeper series, a few per cluster. The lag series (per cluster, module
// and partition) are not in the registry: /metrics writes them from the current
// rows, rendered once per state change (see exposition.go).
type metrics struct {
	pollDuration *prometheus.HistogramVec
	pollErrors   *prometheus.CounterVec
	groups       *prometheus.GaugeVec
}

var descZK = prometheus.NewDesc("kmonitor_zookeeper_connected",
	"1 while the cluster's ZooKeeper session is established.", []string{"cluster"}, nil)

func newMetrics(reg prometheus.Registerer, m *Monitor) *metrics {
	mt := &metrics{
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmonitor_poll_duration_seconds",
			Help:    "Duration of one poll of a cluster's Kafka offsets and record timestamps.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"cluster"}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmonitor_poll_errors_total",
			Help: "Polls during which Kafka could not be read (source kafka) or ZooKeeper was not connected (source zookeeper).",
		}, []string{"cluster", "source"}),
		groups: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmonitor_groups",
			Help: "Consumer groups under {chroot}/consumers: monitored (state tracked), left out by groups.allow/groups.deny (filtered) or by max_groups (over_cap).",
		}, []string{"cluster", "state"}),
	}
	reg.MustRegister(mt.pollDuration, mt.pollErrors, mt.groups, zkCollector{m})
	return mt
}

// zkCollector exports each cluster's ZooKeeper session state.
type zkCollector struct{ m *Monitor }

func (zkCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descZK }

func (zc zkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range zc.m.clusters {
		ch <- prometheus.MustNewConstMetric(descZK, prometheus.GaugeValue, b2f(c.connected()), c.name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

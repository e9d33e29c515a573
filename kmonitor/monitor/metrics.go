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

var (
	descZK = prometheus.NewDesc("kmonitor_zookeeper_connected",
		"1 while the cluster's ZooKeeper session is established (offset_source zookeeper or both).", []string{"cluster"}, nil)
	descGroups = prometheus.NewDesc("kmonitor_kafka_groups_up",
		"1 while the last poll read every monitored consumer group's offsets from Kafka (offset_source kafka or both).", []string{"cluster"}, nil)
)

func newMetrics(reg prometheus.Registerer, m *Monitor) *metrics {
	mt := &metrics{
		pollDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmonitor_poll_duration_seconds",
			Help:    "Duration of one poll of a cluster's Kafka offsets and record timestamps.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"cluster"}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmonitor_poll_errors_total",
			Help: "Polls during which Kafka's log offsets could not be read (source kafka), ZooKeeper was not connected (source zookeeper) or not every consumer group's offsets could be read from Kafka (source kafka_groups).",
		}, []string{"cluster", "source"}),
		groups: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmonitor_groups",
			Help: "Consumer groups under {chroot}/consumers or listed by Kafka: monitored (state tracked), left out by groups.allow/groups.deny (filtered) or by max_groups (over_cap).",
		}, []string{"cluster", "state"}),
	}
	reg.MustRegister(mt.pollDuration, mt.pollErrors, mt.groups, sourceCollector{m})
	return mt
}

// sourceCollector exports whether each cluster's offset source is reachable:
// its ZooKeeper session, its reads of Kafka's groups.
type sourceCollector struct{ m *Monitor }

func (sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descZK
	ch <- descGroups
}

func (sc sourceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range sc.m.clusters {
		if c.zk != nil {
			ch <- prometheus.MustNewConstMetric(descZK, prometheus.GaugeValue, b2f(c.zk.Err() == nil), c.name)
		}
		if c.groups != nil {
			ch <- prometheus.MustNewConstMetric(descGroups, prometheus.GaugeValue, b2f(c.groups.Err() == nil), c.name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

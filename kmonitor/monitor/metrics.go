package monitor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are kmonitor's own Prometheus metrics. The per-partition gauges are
// computed from the current rows at every scrape, so partitions that went away
// disappear from /metrics too.
type metrics struct {
	pollDuration *prometheus.HistogramVec
	pollErrors   *prometheus.CounterVec
}

var partLabels = []string{"cluster", "module", "topic", "partition"}

var (
	descLag = prometheus.NewDesc("kmonitor_lag_records",
		"Records of the partition not yet pushed by the module (log end minus committed offset, from the log start at most).", partLabels, nil)
	descLagSeconds = prometheus.NewDesc("kmonitor_lag_seconds",
		"Age of the oldest record of the partition not yet pushed by the module; 0 without lag.", partLabels, nil)
	descCommitted = prometheus.NewDesc("kmonitor_committed_offset",
		"The module's committed offset of the partition (absent while it has none).", partLabels, nil)
	descLogEnd = prometheus.NewDesc("kmonitor_log_end_offset",
		"The partition's log-end offset (high watermark) at the last poll.", partLabels, nil)
	descLogStart = prometheus.NewDesc("kmonitor_log_start_offset",
		"The partition's log-start offset at the last poll.", partLabels, nil)
	descStatus = prometheus.NewDesc("kmonitor_partition_status",
		"Status of the module partition: 0 OK, 1 WARN, 2 STALL, 3 STOP, 4 REWIND.", partLabels, nil)
	descNoCommit = prometheus.NewDesc("kmonitor_partition_no_commit",
		"1 while the module has no committed offset for the partition.", partLabels, nil)
	descStale = prometheus.NewDesc("kmonitor_partition_stale",
		"1 while the partition's values are the last known ones (ZooKeeper or Kafka unreachable).", partLabels, nil)
	descZK = prometheus.NewDesc("kmonitor_zookeeper_connected",
		"1 while the cluster's ZooKeeper session is established.", []string{"cluster"}, nil)
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
			Help: "Polls during which Kafka could not be read (source kafka) or ZooKeeper was not connected (source zookeeper).",
		}, []string{"cluster", "source"}),
	}
	reg.MustRegister(mt.pollDuration, mt.pollErrors, rowCollector{m})
	return mt
}

// rowCollector exports the current rows as gauges.
type rowCollector struct{ m *Monitor }

func (rowCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descLagSeconds, descCommitted, descLogEnd, descLogStart, descStatus, descNoCommit, descStale, descZK} {
		ch <- d
	}
}

func (rc rowCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range rc.m.clusters {
		ch <- prometheus.MustNewConstMetric(descZK, prometheus.GaugeValue, b2f(c.zkConnected()), c.name)
	}
	for _, r := range rc.m.Partitions() {
		lv := []string{r.Cluster, r.Module, r.Topic, strconv.Itoa(int(r.Partition))}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		gauge(descLag, float64(r.Lag))
		gauge(descLagSeconds, r.TimeLagSeconds)
		if r.Committed != nil {
			gauge(descCommitted, float64(*r.Committed))
		}
		if r.LogEnd != nil {
			gauge(descLogEnd, float64(*r.LogEnd))
			gauge(descLogStart, float64(*r.LogStart))
		}
		gauge(descStatus, float64(r.Status))
		gauge(descNoCommit, b2f(r.NoCommit))
		gauge(descStale, b2f(r.Stale))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

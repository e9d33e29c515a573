package transfer

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are ktransfer's Prometheus series; every series has a module label.
type metrics struct {
	pushed         *prometheus.CounterVec   // records delivered (2xx)
	failed         *prometheus.CounterVec   // failed push attempts
	retried        *prometheus.CounterVec   // retries scheduled
	deadLettered   *prometheus.CounterVec   // records sent to the dead-letter topic
	skipped        *prometheus.CounterVec   // records done without a push, by reason
	latency        *prometheus.HistogramVec // one push, all attempts included
	windowFill     *prometheus.GaugeVec     // records in flight per partition
	committed      *prometheus.GaugeVec     // committed offset per partition
	owned          *prometheus.GaugeVec     // partitions owned by this process
	offsetResets   *prometheus.CounterVec   // positions out of the log, by reason
	unsolicited    *prometheus.CounterVec   // backend answers no request asked for
	headersDropped *prometheus.CounterVec   // record headers not forwarded
	fenced         *prometheus.CounterVec   // partitions given up at once: ownership lost
	commitFailures *prometheus.CounterVec   // commits not made, by reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	mod := []string{"module"}
	part := []string{"module", "topic", "partition"}
	m := &metrics{
		pushed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_pushed_total", Help: "Records delivered to a backend (2xx).",
		}, mod),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_push_failures_total", Help: "Push attempts that failed (non-2xx, transport error or timeout).",
		}, mod),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_retries_total", Help: "Retries scheduled after a failed attempt.",
		}, mod),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_dead_lettered_total", Help: "Records written to the dead-letter topic after their retries ran out.",
		}, mod),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_skipped_total", Help: "Records done without a delivery, by reason (filtered, malformed, retries_exhausted, permanent_failure).",
		}, []string{"module", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ktransfer_push_duration_seconds",
			Help:    "Time to deliver one record, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, mod),
		windowFill: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ktransfer_window_fill", Help: "Records of a partition dispatched and not yet done.",
		}, part),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ktransfer_committed_offset", Help: "Last offset written to the offset store, ZooKeeper or the module's Kafka group (next offset to push).",
		}, part),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ktransfer_owned_partitions", Help: "Partitions this process owns.",
		}, mod),
		offsetResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_offset_out_of_range_total",
			Help: "Times a partition's committed or fetch offset was not in the log and pushing continued from offset_reset, by reason: below_log_start (retention), above_log_end (topic recreated or log truncated), topic_recreated (under the running module), log_truncated (unclean leader election).",
		}, []string{"module", "reason"}),
		unsolicited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_unsolicited_responses_total",
			Help: "Bytes a backend sent on a kept connection with no request in flight (a protocol error: the connection is closed and the request goes on a new one), by server.",
		}, []string{"module", "server"}),
		headersDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_forward_headers_dropped_total",
			Help: "Record headers named in forward_headers that were not sent: the value had control characters or was longer than 8 KiB, by header.",
		}, []string{"module", "header"}),
		fenced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_fenced_total",
			Help: "Partitions this process stopped pushing at once, without a final commit, because it could no longer be sure it owned them (ZooKeeper session expired or silent, no heartbeat answered by the Kafka group coordinator within the session timeout, removed from the group, a commit refused).",
		}, mod),
		commitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktransfer_commit_failures_total",
			Help: "Commits of a partition's offset not made, by reason: refused (the store says another process may own the partition: ZooKeeper's owner check failed, or Kafka refused the member's generation or epoch) or failed (the store could not be asked; the next commit tries again).",
		}, []string{"module", "reason"}),
	}
	reg.MustRegister(m.pushed, m.failed, m.retried, m.deadLettered, m.skipped, m.latency, m.windowFill, m.committed, m.owned, m.offsetResets, m.unsolicited, m.headersDropped, m.fenced, m.commitFailures)
	return m
}

// moduleMetrics are one module's series, resolved once so that pushing a record
// does not hash label values.
type moduleMetrics struct {
	pushed, failed, retried, deadLettered     prometheus.Counter
	filtered, malformed, exhausted, permanent prometheus.Counter
	latency                                   prometheus.Observer
	owned                                     prometheus.Gauge
}

func (m *metrics) module(name string) *moduleMetrics {
	// Every reason shows from the start, at 0: an alert on an increase needs the
	// series before the first event.
	for _, r := range []string{reasonBelowStart, reasonAboveEnd, reasonRecreated, reasonTruncated} {
		m.offsetResets.WithLabelValues(name, r)
	}
	for _, r := range []string{"refused", "failed"} {
		m.commitFailures.WithLabelValues(name, r)
	}
	m.fenced.WithLabelValues(name)
	return &moduleMetrics{
		pushed:       m.pushed.WithLabelValues(name),
		failed:       m.failed.WithLabelValues(name),
		retried:      m.retried.WithLabelValues(name),
		deadLettered: m.deadLettered.WithLabelValues(name),
		filtered:     m.skipped.WithLabelValues(name, "filtered"),
		malformed:    m.skipped.WithLabelValues(name, "malformed"),
		exhausted:    m.skipped.WithLabelValues(name, "retries_exhausted"),
		permanent:    m.skipped.WithLabelValues(name, "permanent_failure"),
		latency:      m.latency.WithLabelValues(name),
		owned:        m.owned.WithLabelValues(name),
	}
}

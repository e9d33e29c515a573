package wsgate

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of PREFIX_upgrades_total{result}.
const (
	UpgradeOK           = "ok"
	UpgradeNotWebSocket = "not_websocket"
	UpgradeMethod       = "method_not_allowed"
	UpgradeUnauthorized = "unauthorized"
	UpgradeLimit        = "too_many_connections"
	UpgradeShutdown     = "shutting_down"
	UpgradeHandshake    = "bad_handshake"
)

// Metrics are the series every gateway has, named after Options.MetricPrefix.
// The Gate counts connections, upgrades and closes; the gateway counts the
// frames it reads and the bytes it writes.
type Metrics struct {
	// Connections is PREFIX_connections: the connections being served.
	Connections prometheus.Gauge
	// Upgrades is PREFIX_upgrades_total{result}: requests to the gateway's
	// path by result, UpgradeOK or why not.
	Upgrades *prometheus.CounterVec
	// Closed is PREFIX_closed_total{reason}: ended connections by reason
	// (Closed*).
	Closed *prometheus.CounterVec
	// FramesReceived is PREFIX_frames_received_total{type}: frames read, by
	// the protocol's types.
	FramesReceived *prometheus.CounterVec
	// SentBytes is PREFIX_sent_bytes_total: bytes of frames written.
	SentBytes prometheus.Counter
}

// newMetrics makes and registers the series of o.
func newMetrics[C Conn](o Options[C]) (*Metrics, error) {
	p, name := o.MetricPrefix, o.Name
	if o.ClosedHelp == "" {
		o.ClosedHelp = fmt.Sprintf("Closed %s connections by reason.", name)
	}
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: p + "_connections",
			Help: fmt.Sprintf("Open %s WebSocket connections.", name),
		}),
		Upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: p + "_upgrades_total",
			Help: fmt.Sprintf("Requests to the %s path by result: ok (upgraded) or why not.", name),
		}, []string{"result"}),
		Closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: p + "_closed_total",
			Help: o.ClosedHelp,
		}, []string{"reason"}),
		FramesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: p + "_frames_received_total",
			Help: o.FramesHelp,
		}, []string{"type"}),
		SentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: p + "_sent_bytes_total",
			Help: o.SentBytesHelp,
		}),
	}
	for _, c := range []prometheus.Collector{m.Connections, m.Upgrades, m.Closed, m.FramesReceived, m.SentBytes} {
		if err := o.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("%s: register metrics: %w", name, err)
		}
	}
	for _, t := range o.FrameTypes {
		m.FramesReceived.WithLabelValues(t)
	}
	for _, r := range o.CloseReasons {
		m.Closed.WithLabelValues(r)
	}
	return m, nil
}

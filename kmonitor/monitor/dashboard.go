package monitor

import (
	"net/http"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/web"
)

// dashboard adapts a Monitor to the web page's Source.
type dashboard struct{ m *Monitor }

// History implements web.Source.
func (d dashboard) History(span time.Duration) map[string][]web.Point {
	src := d.m.History(span)
	out := make(map[string][]web.Point, len(src))
	for name, pts := range src {
		conv := make([]web.Point, len(pts))
		for i, p := range pts {
			conv[i] = web.Point{Time: p.Time, Lag: p.Lag, Seconds: p.Seconds}
		}
		out[name] = conv
	}
	return out
}

// Rows implements web.Source.
func (d dashboard) Rows() []web.Row {
	parts := d.m.rowsOf(d.m.names)
	rows := make([]web.Row, len(parts))
	for i, p := range parts {
		rows[i] = web.Row{
			Cluster: p.Cluster, Module: p.Module, Topic: p.Topic, Partition: p.Partition,
			Lag: p.Lag, TimeLagSeconds: p.TimeLagSeconds, Status: p.Status.String(),
			Stale: p.Stale, NoCommit: p.NoCommit, OutOfRange: p.OutOfRange, Owner: p.Owner,
		}
	}
	return rows
}

// DashboardHandler serves the web page with a lag chart per module and the status
// of each partition, reading from m.
func DashboardHandler(m *Monitor) http.Handler { return web.Handler(dashboard{m}) }

package monitor

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

// Handler returns kmonitor's HTTP handler: /delay, /lag, /healthz, /readyz,
// /metrics and whatever was added with Handle.
func (m *Monitor) Handler() http.Handler { return m.mux }

// Handle adds h under pattern (http.ServeMux syntax), for example the dashboard
// under "/". Call it before serving.
func (m *Monitor) Handle(pattern string, h http.Handler) { m.mux.Handle(pattern, h) }

func (m *Monitor) mount() {
	// /healthz and /readyz are the shared ones; /metrics adds the lag series
	// to the registry's.
	ops := http.NewServeMux()
	opshttp.Mount(ops, m.ready, m.reg)
	m.mux.Handle("GET /healthz", ops)
	m.mux.Handle("GET /readyz", ops)
	m.mux.HandleFunc("GET /metrics", m.serveMetrics)
	m.mux.HandleFunc("/delay", m.serveDelay)
	m.mux.HandleFunc("/lag", m.serveLag)
}

// delayQuery is a parsed /delay or /lag query.
type delayQuery struct {
	clusters []string // selected cluster names, sorted
	format   string   // json, zabbix or zabbix_discovery
	seconds  bool     // unit=seconds
}

func (m *Monitor) parseQuery(r *http.Request) (delayQuery, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return delayQuery{}, fmt.Errorf("%w: %s", ErrMethodNotAllowed, quoteCut(r.Method))
	}
	// A query the standard parser cannot read whole is refused rather than
	// read in part: url.Query drops a parameter it cannot parse, so
	// "format=zabbix;x=1" (a semicolon is no separator) would answer JSON.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return delayQuery{}, fmt.Errorf("%w %s: %v; separate parameters with & and escape reserved characters", ErrBadQuery, quoteCut(r.URL.RawQuery), err)
	}
	dq := delayQuery{format: q.Get("format")}
	switch dq.format {
	case "":
		dq.format = "json"
	case "json", "zabbix", "zabbix_discovery":
	default:
		return delayQuery{}, fmt.Errorf("%w %s: use json, zabbix or zabbix_discovery", ErrUnknownFormat, quoteCut(dq.format))
	}
	switch u := q.Get("unit"); u {
	case "", "records":
	case "seconds":
		dq.seconds = true
	default:
		return delayQuery{}, fmt.Errorf("%w %s: use records or seconds", ErrUnknownUnit, quoteCut(u))
	}
	if name, ok := q["cluster"]; ok {
		if _, known := m.byName[name[0]]; !known {
			// The configured names are not listed: they are the operator's, not
			// every client's business.
			return delayQuery{}, fmt.Errorf("%w %s: it is not one of the %d configured", ErrUnknownCluster, quoteCut(name[0]), len(m.names))
		}
		dq.clusters = []string{name[0]}
	} else {
		dq.clusters = m.names
	}
	return dq, nil
}

// rowsOf returns the rows of clusters (sorted names), shared between answers:
// callers must not modify them.
func (m *Monitor) rowsOf(clusters []string) []PartitionLag {
	now := m.now()
	if len(clusters) == 1 {
		return m.byName[clusters[0]].sharedRows(now)
	}
	var rows []PartitionLag
	for _, n := range clusters {
		rows = append(rows, m.byName[n].sharedRows(now)...)
	}
	return rows
}

// serveDelay answers /delay in the original shapes. Only partitions with a
// committed offset and known log offsets appear (Kafka answered once). A module reading several topics has one value per
// partition number: the sum of the topics' lags (the largest time lag with
// unit=seconds).
func (m *Monitor) serveDelay(w http.ResponseWriter, r *http.Request) {
	q, err := m.parseQuery(r)
	if err != nil {
		m.fail(w, err)
		return
	}
	key := q.format + "|" + strconv.FormatBool(q.seconds) + "|" + strings.Join(q.clusters, ",")
	var maxAge time.Duration // records only change with the state
	if q.seconds {
		maxAge = secondsMaxAge
	}
	ctype, body := m.answers.get(key, q.clusters, m.tokens(q.clusters), maxAge, m.now(), func() (string, []byte) { return m.renderDelay(q) })
	writeBody(w, ctype, body)
}

// quoteCut quotes s for an error message, cut to 64 bytes.
func quoteCut(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}

// tokens identifies the state of the selected clusters.
func (m *Monitor) tokens(clusters []string) string {
	var sb strings.Builder
	for _, n := range clusters {
		sb.WriteString(m.byName[n].token())
		sb.WriteByte(';')
	}
	return sb.String()
}

// answerCache keeps rendered answers of /delay, /lag and /metrics until the
// state they were rendered from changes (a ZooKeeper change, a poll, a session
// change): rendering 10,000 partitions costs tens of milliseconds, and
// dashboards, Zabbix and Prometheus ask far more often than the state changes.
// Time lags change with the clock, so answers holding them are kept for at most
// secondsMaxAge. The keys are bounded: /delay's formats × units × (configured
// clusters + 1), /lag's configured clusters + 1, and /metrics.
type answerCache struct {
	mu      sync.Mutex
	entries map[string]*answer
}

type answer struct {
	clusters []string   // the clusters it is rendered from
	mu       sync.Mutex // held while rendering, so concurrent requests render once
	token    string
	at       time.Time
	ctype    string
	body     []byte
}

// secondsMaxAge bounds the age of a cached answer holding time lags.
const secondsMaxAge = 250 * time.Millisecond

// get returns the answer under key rendered from the state token, rendering it
// when there is none, the state changed, or maxAge (0: no limit) has passed.
func (c *answerCache) get(key string, clusters []string, token string, maxAge time.Duration, now time.Time, render func() (string, []byte)) (string, []byte) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*answer{}
	}
	e := c.entries[key]
	if e == nil {
		e = &answer{clusters: clusters}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.body == nil || e.token != token || (maxAge > 0 && now.Sub(e.at) > maxAge) {
		e.ctype, e.body = render()
		e.token, e.at = token, now
	}
	return e.ctype, e.body
}

// drop forgets the answers rendered from cluster: after its poll they are out
// of date, and at tens of thousands of partitions they are megabytes that would
// otherwise wait for the next request for the same answer.
func (c *answerCache) drop(cluster string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, e := range c.entries {
		if slices.Contains(e.clusters, cluster) {
			delete(c.entries, key)
		}
	}
}

// renderDelay renders /delay for q.
func (m *Monitor) renderDelay(q delayQuery) (string, []byte) {
	rows := m.rowsOf(q.clusters)
	var buf bytes.Buffer
	switch q.format {
	case "zabbix_discovery":
		writeDiscovery(&buf, rows)
		return "application/json", buf.Bytes()
	case "zabbix":
		suffix := ".delay"
		if q.seconds {
			suffix = ".delay_seconds"
		}
		for _, c := range delayTable(q.clusters, rows, q.seconds) {
			for _, mod := range c.modules {
				for _, p := range mod.parts {
					fmt.Fprintf(&buf, "- %s %s\n", zabbixKey(fmt.Sprintf("%s.%s.%d%s", c.name, mod.name, p.partition, suffix)), p.value)
				}
			}
		}
		return "text/plain; charset=utf-8", buf.Bytes()
	default:
		buf.WriteByte('{')
		for i, c := range delayTable(q.clusters, rows, q.seconds) {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(appendJSONString(buf.AvailableBuffer(), c.name))
			buf.WriteString(":{")
			for j, mod := range c.modules {
				if j > 0 {
					buf.WriteByte(',')
				}
				buf.Write(appendJSONString(buf.AvailableBuffer(), mod.name))
				buf.WriteString(":{")
				for k, p := range mod.parts {
					if k > 0 {
						buf.WriteByte(',')
					}
					fmt.Fprintf(&buf, "%q:%s", strconv.Itoa(int(p.partition)), p.value)
				}
				buf.WriteByte('}')
			}
			buf.WriteByte('}')
		}
		buf.WriteByte('}')
		return "application/json", buf.Bytes()
	}
}

// zabbixKey writes an item key for zabbix_sender's input: as it is when it holds
// no white space, quote or backslash (every key of the original's shape), else in
// double quotes with quotes and backslashes escaped. A line break cannot be
// written inside a key, so control characters become '?'.
func zabbixKey(k string) string {
	k = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, k)
	if !strings.ContainsAny(k, " \t\"\\") {
		return k
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k) + `"`
}

type delayCluster struct {
	name    string
	modules []delayModule
}

type delayModule struct {
	name  string
	parts []delayPart
}

type delayPart struct {
	partition int32
	value     string
}

// delayTable folds rows (sorted by cluster, module, topic, partition) into
// clusters → modules → partitions, in order, summing a module's topics per
// partition number. Every selected cluster appears, also without modules. It
// walks the rows once, one module at a time.
func delayTable(clusters []string, rows []PartitionLag, seconds bool) []delayCluster {
	out := make([]delayCluster, 0, len(clusters))
	at := make(map[string]int, len(clusters))
	for _, c := range clusters {
		at[c] = len(out)
		out = append(out, delayCluster{name: c})
	}
	type sum struct {
		partition int32
		lag       int64
		secs      float64
	}
	var sums []sum
	flush := func(cluster, module string) {
		if len(sums) == 0 {
			return
		}
		slices.SortStableFunc(sums, func(a, b sum) int { return cmp.Compare(a.partition, b.partition) })
		dm := delayModule{name: module}
		for i := 0; i < len(sums); {
			s := sums[i]
			for i++; i < len(sums) && sums[i].partition == s.partition; i++ {
				s.lag += sums[i].lag
				s.secs = max(s.secs, sums[i].secs)
			}
			v := strconv.FormatInt(s.lag, 10)
			if seconds {
				v = formatSeconds(s.secs)
			}
			dm.parts = append(dm.parts, delayPart{partition: s.partition, value: v})
		}
		if i, ok := at[cluster]; ok {
			out[i].modules = append(out[i].modules, dm)
		}
		sums = sums[:0]
	}
	for i := range rows {
		r := &rows[i]
		if i > 0 && (r.Cluster != rows[i-1].Cluster || r.Module != rows[i-1].Module) {
			flush(rows[i-1].Cluster, rows[i-1].Module)
		}
		if r.Committed != nil && r.LogEnd != nil {
			sums = append(sums, sum{r.Partition, r.Lag, r.TimeLagSeconds})
		}
	}
	if len(rows) > 0 {
		flush(rows[len(rows)-1].Cluster, rows[len(rows)-1].Module)
	}
	return out
}

// formatSeconds writes a time lag with millisecond precision and no exponent.
func formatSeconds(s float64) string {
	if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
		s = 0
	}
	return strconv.FormatFloat(math.Round(s*1000)/1000, 'f', -1, 64)
}

// discoveryItem is one entry of Zabbix low-level discovery.
type discoveryItem struct {
	Cluster   string `json:"{#CLUSTER}"`
	Module    string `json:"{#MODULE}"`
	Topic     string `json:"{#TOPIC}"`
	Partition string `json:"{#PARTITION}"`
}

// writeDiscovery lists every partition Kafka knows of every module, with a
// committed offset or not: a partition without one gets its items before its
// first commit, and a nodata() trigger on them finds partitions nobody pushes.
func writeDiscovery(buf *bytes.Buffer, rows []PartitionLag) {
	items := []discoveryItem{}
	for _, r := range rows {
		if r.LogEnd == nil {
			continue
		}
		items = append(items, discoveryItem{r.Cluster, r.Module, r.Topic, strconv.Itoa(int(r.Partition))})
	}
	b, _ := json.Marshal(map[string]any{"data": items})
	buf.Write(b)
}

// serveLag answers /lag: a JSON array of every row, including partitions without
// a commit, ordered by cluster, module, topic and partition. Answers are cached
// as /delay's in seconds are.
func (m *Monitor) serveLag(w http.ResponseWriter, r *http.Request) {
	q, err := m.parseQuery(r)
	if err != nil {
		m.fail(w, err)
		return
	}
	key := "lag|" + strings.Join(q.clusters, ",")
	ctype, body := m.answers.get(key, q.clusters, m.tokens(q.clusters), secondsMaxAge, m.now(), func() (string, []byte) {
		rows := m.rowsOf(q.clusters)
		// About 250 bytes a row: one allocation for the whole answer.
		return "application/json", appendLagJSON(make([]byte, 0, 256*len(rows)+2), rows)
	})
	writeBody(w, ctype, body)
}

// metricsContentType is the Prometheus text format, version 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// serveMetrics answers /metrics in the Prometheus text format: the registry's
// series (Go runtime, process, polls, ZooKeeper, groups), then the lag series,
// cached as /lag is.
func (m *Monitor) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var head bytes.Buffer
	mfs, err := m.reg.Gather()
	for _, mf := range mfs {
		if _, werr := expfmt.MetricFamilyToText(&head, mf); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		// Gather returns what it could with the error, as promhttp's
		// ContinueOnError does; the failure goes to the log.
		m.log.Warn("gathering metrics", "err", err)
	}
	_, body := m.answers.get("metrics", m.names, m.tokens(m.names), secondsMaxAge, m.now(), func() (string, []byte) {
		b := renderMetrics(m.names, m.rowsOf(m.names), m.cfg.Base.MetricsPerPartition, m.metricsSize)
		m.metricsSize = len(b)
		return metricsContentType, b
	})
	w.Header().Set("Content-Type", metricsContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(head.Len()+len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(head.Bytes())
	_, _ = w.Write(body)
}

func writeBody(w http.ResponseWriter, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// fail answers with the error's status and {"error": ..., "code": ...}.
func (m *Monitor) fail(w http.ResponseWriter, err error) {
	status, code := classify(err)
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, HEAD")
	}
	b, _ := json.Marshal(map[string]string{"error": err.Error(), "code": code})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

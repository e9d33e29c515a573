package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler returns kmonitor's HTTP handler: /delay, /lag, /healthz, /readyz,
// /metrics and whatever was added with Handle.
func (m *Monitor) Handler() http.Handler { return m.mux }

// Handle adds h under pattern (http.ServeMux syntax), for example the dashboard
// under "/". Call it before serving.
func (m *Monitor) Handle(pattern string, h http.Handler) { m.mux.Handle(pattern, h) }

func (m *Monitor) mount() {
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
		return delayQuery{}, fmt.Errorf("%w: %s", ErrMethodNotAllowed, r.Method)
	}
	q := r.URL.Query()
	dq := delayQuery{format: q.Get("format")}
	switch dq.format {
	case "":
		dq.format = "json"
	case "json", "zabbix", "zabbix_discovery":
	default:
		return delayQuery{}, fmt.Errorf("%w %q: use json, zabbix or zabbix_discovery", ErrUnknownFormat, dq.format)
	}
	switch u := q.Get("unit"); u {
	case "", "records":
	case "seconds":
		dq.seconds = true
	default:
		return delayQuery{}, fmt.Errorf("%w %q: use records or seconds", ErrUnknownUnit, u)
	}
	if name, ok := q["cluster"]; ok {
		if _, known := m.byName[name[0]]; !known {
			return delayQuery{}, fmt.Errorf("%w %q: configured clusters are %v", ErrUnknownCluster, name[0], m.names)
		}
		dq.clusters = []string{name[0]}
	} else {
		dq.clusters = m.names
	}
	return dq, nil
}

func (m *Monitor) rowsOf(clusters []string) []PartitionLag {
	var rows []PartitionLag
	for _, n := range clusters {
		rows = append(rows, m.byName[n].rows(m.now())...)
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
	ctype, body := m.delayCache.get(q, m.tokens(q.clusters), m.now(), func() (string, []byte) { return m.renderDelay(q) })
	writeBody(w, ctype, body)
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

// delayCache keeps rendered /delay answers until the state they were rendered
// from changes (a ZooKeeper change, a poll, a session change): rendering 10,000
// partitions costs tens of milliseconds, and dashboards and Zabbix ask far more
// often than the state changes. Time lags change with the clock, so answers in
// seconds are kept for at most secondsMaxAge. The keys are bounded: formats ×
// units × (configured clusters + 1).
type delayCache struct {
	mu      sync.Mutex
	entries map[string]*delayEntry
}

type delayEntry struct {
	mu    sync.Mutex // held while rendering, so concurrent requests render once
	token string
	at    time.Time
	ctype string
	body  []byte
}

// secondsMaxAge bounds the age of a cached answer in seconds.
const secondsMaxAge = 250 * time.Millisecond

func (c *delayCache) get(q delayQuery, token string, now time.Time, render func() (string, []byte)) (string, []byte) {
	key := q.format + "|" + strconv.FormatBool(q.seconds) + "|" + strings.Join(q.clusters, ",")
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*delayEntry{}
	}
	e := c.entries[key]
	if e == nil {
		e = &delayEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.body == nil || e.token != token || (q.seconds && now.Sub(e.at) > secondsMaxAge) {
		e.ctype, e.body = render()
		e.token, e.at = token, now
	}
	return e.ctype, e.body
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
			writeJSONString(&buf, c.name)
			buf.WriteString(":{")
			for j, mod := range c.modules {
				if j > 0 {
					buf.WriteByte(',')
				}
				writeJSONString(&buf, mod.name)
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

// delayTable folds rows (sorted) into clusters → modules → partitions, in order.
// Every selected cluster appears, also without modules.
func delayTable(clusters []string, rows []PartitionLag, seconds bool) []delayCluster {
	type key struct {
		cluster, module string
		partition       int32
	}
	lag := map[key]int64{}
	secs := map[key]float64{}
	mods := map[string]map[string]map[int32]bool{}
	for _, r := range rows {
		if r.Committed == nil || r.LogEnd == nil {
			continue
		}
		k := key{r.Cluster, r.Module, r.Partition}
		lag[k] += r.Lag
		secs[k] = max(secs[k], r.TimeLagSeconds)
		if mods[r.Cluster] == nil {
			mods[r.Cluster] = map[string]map[int32]bool{}
		}
		if mods[r.Cluster][r.Module] == nil {
			mods[r.Cluster][r.Module] = map[int32]bool{}
		}
		mods[r.Cluster][r.Module][r.Partition] = true
	}
	out := make([]delayCluster, 0, len(clusters))
	for _, c := range clusters {
		dc := delayCluster{name: c}
		names := make([]string, 0, len(mods[c]))
		for n := range mods[c] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			dm := delayModule{name: n}
			ps := make([]int32, 0, len(mods[c][n]))
			for p := range mods[c][n] {
				ps = append(ps, p)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			for _, p := range ps {
				k := key{c, n, p}
				v := strconv.FormatInt(lag[k], 10)
				if seconds {
					v = formatSeconds(secs[k])
				}
				dm.parts = append(dm.parts, delayPart{partition: p, value: v})
			}
			dc.modules = append(dc.modules, dm)
		}
		out = append(out, dc)
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

func writeDiscovery(buf *bytes.Buffer, rows []PartitionLag) {
	items := []discoveryItem{}
	for _, r := range rows {
		if r.Committed == nil || r.LogEnd == nil {
			continue
		}
		items = append(items, discoveryItem{r.Cluster, r.Module, r.Topic, strconv.Itoa(int(r.Partition))})
	}
	b, _ := json.Marshal(map[string]any{"data": items})
	buf.Write(b)
}

// serveLag answers /lag: a JSON array of every row, including partitions without
// a commit, ordered by cluster, module, topic and partition.
func (m *Monitor) serveLag(w http.ResponseWriter, r *http.Request) {
	q, err := m.parseQuery(r)
	if err != nil {
		m.fail(w, err)
		return
	}
	rows := m.rowsOf(q.clusters)
	if rows == nil {
		rows = []PartitionLag{}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		m.fail(w, err)
		return
	}
	writeBody(w, "application/json", b)
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
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

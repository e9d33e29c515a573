package monitor

import (
	"math"
	"strconv"
	"strings"
)

// The lag series of /metrics are written here in the Prometheus text format
// (version 0.0.4) straight from the rows, not through the client library's
// registry: building, gathering, sorting and encoding a metric object per series
// took about 40 µs per module partition (420 ms and 1.6 million allocations for
// 200 modules × 50 partitions, BenchmarkMetrics), writing the same lines takes
// about 1 µs (11 ms, 15 allocations), and /metrics reuses the bytes until the
// state changes (see answerCache). Labels are written in the order the client
// library writes them (sorted by name): the lines are the same as before
// (TestRenderMetricsAsClientLibrary).

// statusHelp names the numbers kmonitor_partition_status and
// kmonitor_module_status export.
var statusHelp = func() string {
	var sb strings.Builder
	for i, n := range statusNames {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(i) + " " + n)
	}
	return sb.String()
}()

// partFamily is one per-partition series family: its name, help and value.
type partFamily struct {
	name, help string
	value      func(r *PartitionLag) (float64, bool) // false: no sample for r
}

var partFamilies = []partFamily{
	{"kmonitor_lag_records", "Records of the partition not yet pushed by the module (log end minus committed offset; from the log start when the committed offset is out of range).",
		func(r *PartitionLag) (float64, bool) { return float64(r.Lag), true }},
	{"kmonitor_lag_seconds", "Age of the oldest record of the partition not yet pushed by the module; 0 without lag.",
		func(r *PartitionLag) (float64, bool) { return r.TimeLagSeconds, true }},
	{"kmonitor_committed_offset", "The module's committed offset of the partition (absent while it has none).",
		func(r *PartitionLag) (float64, bool) {
			if r.Committed == nil {
				return 0, false
			}
			return float64(*r.Committed), true
		}},
	{"kmonitor_log_end_offset", "The partition's log-end offset (high watermark) at the last poll.",
		func(r *PartitionLag) (float64, bool) {
			if r.LogEnd == nil {
				return 0, false
			}
			return float64(*r.LogEnd), true
		}},
	{"kmonitor_log_start_offset", "The partition's log-start offset at the last poll.",
		func(r *PartitionLag) (float64, bool) {
			if r.LogStart == nil {
				return 0, false
			}
			return float64(*r.LogStart), true
		}},
	{"kmonitor_partition_status", "Status of the module partition: " + statusHelp + ".",
		func(r *PartitionLag) (float64, bool) { return float64(r.Status), true }},
	{"kmonitor_partition_no_commit", "1 while the module has no committed offset for the partition.",
		func(r *PartitionLag) (float64, bool) { return b2f(r.NoCommit), true }},
	{"kmonitor_partition_stale", "1 while the partition's values are the last known ones (ZooKeeper or Kafka unreachable).",
		func(r *PartitionLag) (float64, bool) { return b2f(r.Stale), true }},
}

// moduleSums are one module's figures for the per-module series.
type moduleSums struct {
	cluster, module string
	lag             int64
	seconds         float64
	status          Status
}

// renderMetrics writes the lag series of rows (sorted as Partitions sorts
// them) for the clusters named: per cluster the partitions in each status, the
// ones without a commit and the stale ones; per module its lag, largest time lag
// and worst status; and, with perPartition, the eight series of every module
// partition. sizeHint is the length of the last answer.
func renderMetrics(clusters []string, rows []PartitionLag, perPartition bool, sizeHint int) []byte {
	w := expo{b: make([]byte, 0, sizeHint+sizeHint/8)}

	type counts struct {
		status          [len(statusNames)]int
		noCommit, stale int
	}
	per := make(map[string]*counts, len(clusters))
	for _, c := range clusters {
		per[c] = &counts{}
	}
	var mods []moduleSums
	for i := range rows {
		r := &rows[i]
		if c := per[r.Cluster]; c != nil {
			if int(r.Status) < len(c.status) {
				c.status[r.Status]++
			}
			c.noCommit += int(b2u(r.NoCommit))
			c.stale += int(b2u(r.Stale))
		}
		if n := len(mods); n == 0 || mods[n-1].cluster != r.Cluster || mods[n-1].module != r.Module {
			mods = append(mods, moduleSums{cluster: r.Cluster, module: r.Module})
		}
		ms := &mods[len(mods)-1]
		if r.Committed != nil {
			ms.lag += r.Lag
			ms.seconds = max(ms.seconds, r.TimeLagSeconds)
		}
		ms.status = max(ms.status, r.Status)
	}

	w.family("kmonitor_partitions", "Module partitions of the cluster in each status ("+statusHelp+").")
	for _, c := range clusters {
		for s, n := range per[c].status {
			w.sample("kmonitor_partitions", `{cluster="`, c, `",status="`, statusNames[s], `"}`, float64(n))
		}
	}
	w.family("kmonitor_partitions_no_commit", "Module partitions of the cluster without a committed offset.")
	for _, c := range clusters {
		w.sample("kmonitor_partitions_no_commit", `{cluster="`, c, `"}`, "", "", float64(per[c].noCommit))
	}
	w.family("kmonitor_partitions_stale", "Module partitions of the cluster showing their last known values (ZooKeeper or Kafka unreachable).")
	for _, c := range clusters {
		w.sample("kmonitor_partitions_stale", `{cluster="`, c, `"}`, "", "", float64(per[c].stale))
	}
	for _, f := range []struct {
		name, help string
		value      func(*moduleSums) float64
	}{
		{"kmonitor_module_lag_records", "Records not yet pushed by the module, summed over its partitions with a committed offset.",
			func(m *moduleSums) float64 { return float64(m.lag) }},
		{"kmonitor_module_lag_seconds", "Age of the oldest record not yet pushed by the module: the largest time lag of its partitions.",
			func(m *moduleSums) float64 { return m.seconds }},
		{"kmonitor_module_status", "Worst status of the module's partitions, the highest of: " + statusHelp + ".",
			func(m *moduleSums) float64 { return float64(m.status) }},
	} {
		w.family(f.name, f.help)
		for i := range mods {
			m := &mods[i]
			w.sample(f.name, `{cluster="`, m.cluster, `",module="`, m.module, `"}`, f.value(m))
		}
	}
	if perPartition {
		w.partitions(rows)
	}
	return w.b
}

// partitions writes the eight series of every row (sorted as Partitions sorts
// them).
func (w *expo) partitions(rows []PartitionLag) {
	// Each row's label set is written once and reused by the eight families.
	labels := make([]byte, 0, len(rows)*64)
	ends := make([]int, len(rows))
	for i := range rows {
		r := &rows[i]
		labels = append(labels, `{cluster="`...)
		labels = appendLabel(labels, r.Cluster)
		labels = append(labels, `",module="`...)
		labels = appendLabel(labels, r.Module)
		labels = append(labels, `",partition="`...)
		labels = strconv.AppendInt(labels, int64(r.Partition), 10)
		labels = append(labels, `",topic="`...)
		labels = appendLabel(labels, r.Topic)
		labels = append(labels, `"}`...)
		ends[i] = len(labels)
	}
	for _, f := range partFamilies {
		w.family(f.name, f.help)
		from := 0
		for i := range rows {
			if v, ok := f.value(&rows[i]); ok {
				w.b = append(w.b, f.name...)
				w.b = append(w.b, labels[from:ends[i]]...)
				w.b = append(w.b, ' ')
				w.b = appendValue(w.b, v)
				w.b = append(w.b, '\n')
			}
			from = ends[i]
		}
	}
}

// expo appends lines of the text format.
type expo struct{ b []byte }

// family writes the HELP and TYPE lines of a gauge.
func (w *expo) family(name, help string) {
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	for i := 0; i < len(help); i++ {
		switch help[i] {
		case '\\':
			w.b = append(w.b, `\\`...)
		case '\n':
			w.b = append(w.b, `\n`...)
		default:
			w.b = append(w.b, help[i])
		}
	}
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, " gauge\n"...)
}

// sample writes one line: name, then the label text pre1 value1 pre2 value2
// post (values escaped), then v.
func (w *expo) sample(name, pre1, value1, pre2, value2, post string, v float64) {
	w.b = append(w.b, name...)
	w.b = append(w.b, pre1...)
	w.b = appendLabel(w.b, value1)
	w.b = append(w.b, pre2...)
	w.b = appendLabel(w.b, value2)
	w.b = append(w.b, post...)
	w.b = append(w.b, ' ')
	w.b = appendValue(w.b, v)
	w.b = append(w.b, '\n')
}

// appendLabel appends a label value escaped as the text format wants:
// backslash, double quote and line feed.
func appendLabel(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue appends a sample value as the client library writes it.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

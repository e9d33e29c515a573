package monitor

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scaleRows returns modules × partitions rows of one cluster, in order, with
// varied values and label values that need escaping.
func scaleRows(modules, partitions int) []PartitionLag {
	var rows []PartitionLag
	for m := range modules {
		for p := range partitions {
			end, committed := int64(1000+p), int64(990+m%20)
			r := PartitionLag{Cluster: "bench", Module: fmt.Sprintf("m%03d", m), Topic: fmt.Sprintf("t%03d", m), Partition: int32(p),
				LogStart: &[]int64{0}[0], LogEnd: &end, Committed: &committed, Lag: max(0, end-committed),
				TimeLagSeconds: float64(p) * 1.5, Status: Status(p % len(statusNames)), Stale: p%7 == 0}
			if p%11 == 0 {
				r.Committed, r.NoCommit, r.Lag = nil, true, 0
			}
			rows = append(rows, r)
		}
	}
	rows[0].Module = `odd "name"\with` + "\nbreak"
	return rows
}

// registryLines returns the sample lines the client library writes for the
// per-partition series of rows (the way /metrics was rendered before), sorted.
func registryLines(t testing.TB, rows []PartitionLag) []string {
	return sampleLines(string(registryText(t, rows)))
}

// registryText renders the per-partition series of rows with the client
// library: a collector of constant metrics, Gather, the text encoder.
func registryText(t testing.TB, rows []PartitionLag) []byte {
	reg := prometheus.NewRegistry()
	descs := map[string]*prometheus.Desc{}
	for _, f := range partFamilies {
		descs[f.name] = prometheus.NewDesc(f.name, f.help, []string{"cluster", "module", "topic", "partition"}, nil)
	}
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		for i := range rows {
			r := &rows[i]
			for _, f := range partFamilies {
				if v, ok := f.value(r); ok {
					ch <- prometheus.MustNewConstMetric(descs[f.name], prometheus.GaugeValue, v, r.Cluster, r.Module, r.Topic, strconv.Itoa(int(r.Partition)))
				}
			}
		}
	}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func sampleLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

type collectorFunc func(chan<- prometheus.Metric)

func (collectorFunc) Describe(chan<- *prometheus.Desc)      {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// TestRenderMetricsAsClientLibrary: the per-partition lines are exactly the
// client library's; the whole answer parses, each family once; without the
// option there are none, and the per-module and per-status series are right.
func TestRenderMetricsAsClientLibrary(t *testing.T) {
	rows := scaleRows(3, 12)
	out := string(renderMetrics([]string{"bench"}, rows, true, 0))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("does not parse: %v\n%s", err, out)
	}
	var ours []string
	for _, l := range sampleLines(out) {
		name, _, _ := strings.Cut(l, "{")
		if slices.ContainsFunc(partFamilies, func(f partFamily) bool { return f.name == name }) {
			ours = append(ours, l)
		}
	}
	if want := registryLines(t, rows); !slices.Equal(ours, want) {
		t.Errorf("per-partition lines differ from the client library's:\ngot  %d %q\nwant %d %q", len(ours), ours[:3], len(want), want[:3])
	}
	if got := fams["kmonitor_lag_records"].GetMetric(); len(got) != len(rows) {
		t.Errorf("kmonitor_lag_records: got %d series, want %d", len(got), len(rows))
	}
	for _, want := range []string{
		`kmonitor_partitions{cluster="bench",status="OK"} 6`,
		`kmonitor_partitions{cluster="bench",status="OUT_OF_RANGE"} 6`,
		`kmonitor_partitions_no_commit{cluster="bench"} 6`,
		`kmonitor_partitions_stale{cluster="bench"} 6`,
		`kmonitor_module_status{cluster="bench",module="m001"} 5`,
		// m002: partitions 1..10 committed at 992 with log ends 1001..1010;
		// the largest time lag is partition 10's.
		`kmonitor_module_lag_records{cluster="bench",module="m002"} 135`,
		`kmonitor_module_lag_seconds{cluster="bench",module="m002"} 15`,
		`kmonitor_module_status{cluster="bench",module="odd \"name\"\\with\nbreak"} 0`,
	} {
		if !strings.Contains(out, "\n"+want+"\n") {
			t.Errorf("lacks %s", want)
		}
	}
	if short := string(renderMetrics([]string{"bench"}, rows, false, 0)); strings.Contains(short, "kmonitor_lag_records") {
		t.Error("per-partition series without metrics_per_partition")
	}
}

// BenchmarkMetrics renders the lag series of 200 modules × 50 partitions:
// with the client library as every scrape did before (the baseline of the
// same run), and written from the rows, with and without the per-partition
// series.
func BenchmarkMetrics(b *testing.B) {
	rows := scaleRows(200, 50)
	b.Run("registry", func(b *testing.B) {
		size := 0
		for b.Loop() {
			size = len(registryText(b, rows))
		}
		b.ReportMetric(float64(size)/1e6, "MB")
	})
	b.Run("per-partition", func(b *testing.B) {
		size := 0
		for b.Loop() {
			size = len(renderMetrics([]string{"bench"}, rows, true, size))
		}
		b.ReportMetric(float64(size)/1e6, "MB")
	})
	b.Run("per-module", func(b *testing.B) {
		size := 0
		for b.Loop() {
			size = len(renderMetrics([]string{"bench"}, rows, false, size))
		}
		b.ReportMetric(float64(size)/1e6, "MB")
	})
}

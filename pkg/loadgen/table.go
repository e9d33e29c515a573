package loadgen

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Row is one line of a Table.
type Row struct {
	// Name labels the row, for example "kproxy acks=1".
	Name string
	// Result is what the run measured.
	Result Result
	// RSS is a memory figure in bytes (usually PeakRSS of the process under
	// test); the column is shown when any row has RSS > 0.
	RSS int64
	// Ratios are extra columns by name, for example {"vs direct": 0.83}; a
	// row without a column shows "-" there. Use Ratio to compute them.
	Ratios map[string]float64
}

// Table renders rows as an aligned text table with the columns name, req/s
// (Result.Rate: successful requests only), p50, p99, errors (requests that
// did not succeed: errors plus non-2xx responses), RSS in MiB when any row
// has one, and one column per Ratios name in sorted order, each ratio with two
// decimals. The result ends with a newline.
func Table(rows []Row) string {
	var ratioNames []string
	seen := map[string]bool{}
	showRSS := false
	for _, r := range rows {
		for name := range r.Ratios {
			if !seen[name] {
				seen[name] = true
				ratioNames = append(ratioNames, name)
			}
		}
		showRSS = showRSS || r.RSS > 0
	}
	sort.Strings(ratioNames)

	header := []string{"name", "req/s", "p50", "p99", "errors"}
	if showRSS {
		header = append(header, "RSS MiB")
	}
	header = append(header, ratioNames...)
	cells := [][]string{header}
	for _, r := range rows {
		line := []string{
			r.Name,
			strconv.FormatFloat(r.Result.Rate(), 'f', 0, 64),
			fmtDuration(r.Result.Quantile(0.5)),
			fmtDuration(r.Result.Quantile(0.99)),
			strconv.FormatInt(r.Result.Requests-r.Result.OK, 10),
		}
		if showRSS {
			rss := "-"
			if r.RSS > 0 {
				rss = fmt.Sprintf("%.1f", float64(r.RSS)/(1<<20))
			}
			line = append(line, rss)
		}
		for _, name := range ratioNames {
			v, ok := r.Ratios[name]
			if !ok {
				line = append(line, "-")
				continue
			}
			line = append(line, strconv.FormatFloat(v, 'f', 2, 64))
		}
		cells = append(cells, line)
	}

	widths := make([]int, len(header))
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], len(c))
		}
	}
	var b strings.Builder
	for _, line := range cells {
		for i, c := range line {
			if i == 0 {
				// Names read left-aligned, figures right-aligned.
				b.WriteString(c + strings.Repeat(" ", widths[i]-len(c)))
				continue
			}
			b.WriteString("  " + strings.Repeat(" ", widths[i]-len(c)) + c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

package monitor

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzDelayQuery feeds arbitrary methods and query strings to the parser of
// /delay and /lag. An accepted query selects a known format, the unit asked for
// and only configured clusters (exactly the one named, when one is); a refused
// one is a 405 for a method other than GET and HEAD, a 400 bad_query for a query
// the standard parser cannot read whole (never a part of it read), and otherwise
// a 400 whose code names the first bad parameter, checked in the order format,
// unit, cluster.
func FuzzDelayQuery(f *testing.F) {
	for _, q := range []string{
		"", "format=zabbix", "format=zabbix_discovery&cluster=test_cluster", "format=json&unit=seconds",
		"unit=records", "cluster=nope", "cluster=", "cluster=test_cluster&cluster=nope", "format=xml",
		"unit=minutes", "format=%zz&format=zabbix", "format=zabbix;unit=seconds", "cluster=b.c&unit=seconds&format=",
		"FORMAT=zabbix", "format=zabbix+", "cluster=test%5Fcluster", "format=zabbix;x=1", "x=1;format=zabbix",
		"format=zabbix&%", "cluster=" + strings.Repeat("n", 3000),
	} {
		f.Add("GET", q)
	}
	f.Add("HEAD", "format=zabbix")
	f.Add("POST", "")
	f.Add("get", "")
	names := []string{"b.c", "test_cluster"}
	m := &Monitor{byName: map[string]*cluster{}, names: names}
	for _, n := range names {
		m.byName[n] = nil
	}
	f.Fuzz(func(t *testing.T, method, raw string) {
		r := &http.Request{Method: method, URL: &url.URL{Path: "/delay", RawQuery: raw}}
		dq, err := m.parseQuery(r)

		// What the query asks for, read with the standard library.
		q, perr := url.ParseQuery(raw)
		format, unit := q.Get("format"), q.Get("unit")
		cl, hasCluster := q["cluster"]
		var wantErr error
		switch {
		case method != http.MethodGet && method != http.MethodHead:
			wantErr = ErrMethodNotAllowed
		case perr != nil:
			wantErr = ErrBadQuery
		case !slices.Contains([]string{"", "json", "zabbix", "zabbix_discovery"}, format):
			wantErr = ErrUnknownFormat
		case !slices.Contains([]string{"", "records", "seconds"}, unit):
			wantErr = ErrUnknownUnit
		case hasCluster && !slices.Contains(names, cl[0]):
			wantErr = ErrUnknownCluster
		}
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("%s /delay?%s: got %+v, %v; want %v", method, raw, dq, err, wantErr)
			}
			status, code := classify(err)
			wantStatus := http.StatusBadRequest
			if wantErr == ErrMethodNotAllowed {
				wantStatus = http.StatusMethodNotAllowed
			}
			if status != wantStatus || code == "internal" {
				t.Fatalf("%s /delay?%s: error %v maps to %d %s, want %d", method, raw, err, status, code, wantStatus)
			}
			// The reason is bounded, and names no configured cluster.
			msg, rest := err.Error(), ""
			if wantErr == ErrUnknownCluster {
				rest = strings.Replace(msg, quoteCut(cl[0]), "", 1)
			}
			if len(msg) > 400 || strings.Contains(rest, "b.c") || strings.Contains(rest, "test_cluster") {
				t.Fatalf("%s /delay?%s: reason %q: want at most 400 bytes naming no configured cluster", method, raw, msg)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s /delay?%s: %v, want accepted", method, raw, err)
		}
		if format == "" {
			format = "json"
		}
		wantClusters := names
		if hasCluster {
			wantClusters = cl[:1]
		}
		if dq.format != format || dq.seconds != (unit == "seconds") || !slices.Equal(dq.clusters, wantClusters) {
			t.Fatalf("%s /delay?%s: got %+v, want format %s, unit %q, clusters %v", method, raw, dq, format, unit, wantClusters)
		}
	})
}

package monitor

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestLagJSONAsEncodingJSON: the hand-written /lag encoder writes what
// encoding/json writes, byte for byte, for rows of every shape.
func TestLagJSONAsEncodingJSON(t *testing.T) {
	num := func(v int64) *int64 { return &v }
	at := time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.UTC)
	rows := []PartitionLag{
		{Cluster: "c", Module: "m", Topic: "t", Partition: 3, Committed: num(5), LogStart: num(0), LogEnd: num(12), Lag: 7,
			TimeLagSeconds: 1800.125, Owner: "host-1", LastCommit: &at, CommittedBy: "host-1-42-ab\"c", Status: StatusWarn},
		{Cluster: "c", Module: "fresh", Topic: "t", NoCommit: true, Status: StatusStop, Stale: true},
		{Cluster: "c", Module: `q"uote\\<b>&`, Topic: "t", Owner: "tab\there\nline\x00\x1f", Status: StatusOutOfRange, OutOfRange: true,
			Committed: num(500), LogStart: num(0), LogEnd: num(200), Lag: 200, TimeLagSeconds: 1e-7},
		{Cluster: "c", Module: "bad\xffutf8 \u2028\u2029 é 日本", Topic: "t", TimeLagSeconds: 1e21, LastCommit: &time.Time{}},
		{Cluster: "c", Module: "m", Topic: "t", TimeLagSeconds: 123456789.000001, Status: StatusRewind},
	}
	want, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendLagJSON(nil, rows); string(got) != string(want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := appendLagJSON(nil, nil); string(got) != "[]" {
		t.Errorf("no rows: got %s, want []", got)
	}
	for _, f := range []float64{0, 1, 0.5, 1e-6, 9.99e-7, 1e20, 1e21, 3.0000001, 1e-9} {
		w, _ := json.Marshal(f)
		if got := appendJSONFloat(nil, f); string(got) != string(w) {
			t.Errorf("float %v: got %s, want %s", f, got, w)
		}
	}
	if got := appendJSONFloat(nil, math.NaN()); string(got) != "0" {
		t.Errorf("NaN: got %s, want 0", got)
	}
}

// FuzzJSONString checks appendJSONString against encoding/json on any string
// (module, topic and owner names are whatever a ZooKeeper client wrote).
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "<script>&", "\x00\x1f\x7f", "\xff\xfe", "é日本\u2028\u2029", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

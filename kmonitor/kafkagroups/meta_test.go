package kafkagroups

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseMeta(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		instance string
		at       time.Time
	}{
		{ktMeta, true, "host1-4242-9f3a1c07", time.Date(2026, 11, 28, 10, 39, 46, 123000000, time.UTC)},
		{`{"time":"2026-11-28T11:39:46+01:00","instance":"a","extra":1}`, true, "a", time.Date(2026, 11, 28, 10, 39, 46, 0, time.UTC)},
		{"", false, "", time.Time{}},
		{"member-1-8d3c", false, "", time.Time{}}, // kgo's default: the member id
		{`{"instance":"a"}`, false, "", time.Time{}},
		{`{"time":"2026-11-28T10:39:46.123Z"}`, false, "", time.Time{}},
		{`{"instance":"","time":"2026-11-28T10:39:46.123Z"}`, false, "", time.Time{}},
		{`{"instance":"a","time":"yesterday"}`, false, "", time.Time{}},
		{`{"instance":"a","time":"2026-11-28T10:39:46.123Z"`, false, "", time.Time{}},
		{`{"instance":"` + strings.Repeat("x", maxMetaBytes) + `","time":"2026-11-28T10:39:46Z"}`, false, "", time.Time{}},
	} {
		m, ok := parseMeta(tc.in)
		if ok != tc.ok || m.instance != tc.instance || !m.at.Equal(tc.at) {
			t.Errorf("parseMeta(%.60q): got %+v %v, want %q %v %v", tc.in, m, ok, tc.instance, tc.at, tc.ok)
		}
	}
}

// FuzzParseMeta: commit metadata is whatever any consumer of a group wrote.
// What parseMeta accepts has an instance and a time that, written back as
// ktransfer writes them, parse to the same; what it refuses is opaque.
func FuzzParseMeta(f *testing.F) {
	for _, s := range []string{ktMeta, "member-1", `{"instance":null,"time":null}`, `{"instance":"a","time":"2026-11-28T10:39:46+14:00"}`, "{", `{"instance":"\u2028","time":"0001-01-01T00:00:00Z"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := parseMeta(s)
		if !ok {
			if m != (commitMeta{}) {
				t.Fatalf("parseMeta(%q): refused but returned %+v", s, m)
			}
			return
		}
		if m.instance == "" || len(s) > maxMetaBytes {
			t.Fatalf("parseMeta(%q): accepted %+v", s, m)
		}
		b, err := json.Marshal(map[string]string{"instance": m.instance, "time": m.at.Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		again, ok := parseMeta(string(b))
		if len(b) <= maxMetaBytes && (!ok || again.instance != m.instance || !again.at.Equal(m.at)) {
			t.Fatalf("parseMeta(%q) = %+v, written back %s: got %+v %v", s, m, b, again, ok)
		}
	})
}

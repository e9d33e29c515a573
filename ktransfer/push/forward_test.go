package push

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestForwardHeaders(t *testing.T) {
	long := bytes.Repeat([]byte("a"), MaxForwardedValue+1)
	for _, tc := range []struct {
		name    string
		headers []kgo.RecordHeader
		want    map[string]string // forwarded headers; missing = not sent
		dropped []string
	}{
		{"none", nil, map[string]string{}, nil},
		{"both, any case", []kgo.RecordHeader{{Key: "TRACEPARENT", Value: []byte("00-a-b-01")}, {Key: "tracestate", Value: []byte("k=v")}, {Key: "other", Value: []byte("x")}},
			map[string]string{"Traceparent": "00-a-b-01", "Tracestate": "k=v"}, nil},
		{"first of a name", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("one")}, {Key: "traceparent", Value: []byte("two")}},
			map[string]string{"Traceparent": "one"}, nil},
		{"line break dropped", []kgo.RecordHeader{{Key: "traceparent", Value: []byte("a\r\nX-Injected: 1")}, {Key: "tracestate", Value: []byte("k=v")}},
			map[string]string{"Tracestate": "k=v"}, []string{"traceparent"}},
		{"too long dropped", []kgo.RecordHeader{{Key: "tracestate", Value: long}}, map[string]string{}, []string{"tracestate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dropped []string
			p, err := New(Config{Servers: []string{"127.0.0.1:8080"}, URI: "/", ForwardHeaders: []string{"traceparent", "tracestate"}},
				nil, Events{HeaderDropped: func(n string) { dropped = append(dropped, n) }})
			if err != nil {
				t.Fatal(err)
			}
			r := Record{Topic: "t", Value: []byte("v"), Headers: tc.headers}
			mc, _, _, _, err := exchangeWith(t, p, &r, []byte("HTTP/1.1 204 No Content\r\n\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(mc.out.Bytes())))
			if err != nil {
				t.Fatalf("request %q: %v", mc.out.Bytes(), err)
			}
			for _, name := range []string{"Traceparent", "Tracestate", "X-Injected", "Other"} {
				got, ok := req.Header[name]
				want, wantOK := tc.want[name]
				if ok != wantOK || (ok && (len(got) != 1 || got[0] != want)) {
					t.Errorf("%s: got %q (sent %v), want %q (sent %v)", name, got, ok, want, wantOK)
				}
			}
			if strings.Join(dropped, ",") != strings.Join(tc.dropped, ",") {
				t.Errorf("dropped: got %v, want %v", dropped, tc.dropped)
			}
		})
	}
}

func TestCheckForwardHeaders(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		headers []map[string]string
		want    string // substring of the one error; "" = valid
	}{
		{[]string{"traceparent", "tracestate", "X-Request-Id"}, nil, ""},
		{nil, nil, ""},
		{[]string{"bad name"}, nil, "not a header name"},
		{[]string{"content-length"}, nil, "frames the request"},
		{[]string{"Host"}, nil, "frames the request"},
		{[]string{"x-tenant"}, []map[string]string{{"X-Tenant": "a"}}, "also a configured header"},
		{[]string{"traceparent", "TraceParent"}, nil, "listed twice"},
	} {
		errs := CheckForwardHeaders(tc.names, tc.headers)
		switch {
		case tc.want == "" && len(errs) != 0:
			t.Errorf("%v: got %v, want no error", tc.names, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)):
			t.Errorf("%v: got %v, want one error with %q", tc.names, errs, tc.want)
		}
	}
}

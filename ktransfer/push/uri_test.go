package push

import (
	"net/url"
	"testing"
)

func TestExpandURI(t *testing.T) {
	rec := Record{Topic: "orders", Partition: 7, Offset: 123456789012, Key: []byte("user 42&x=1/é"), Method: "TestReply"}
	tests := []struct {
		name string
		tmpl string
		r    Record
		want string
	}{
		{"original", "/XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&format=msgpack", rec,
			"/XXX/orders?key=user+42%26x%3D1%2F%C3%A9&transid=123456789012&format=msgpack"},
		{"every placeholder", "/{#TOPIC}/{#PARTITION}/{#TRANSID}/{#METHOD}?k={#KEY}", rec,
			"/orders/7/123456789012/TestReply?k=user+42%26x%3D1%2F%C3%A9"},
		{"missing method", "/m/{#METHOD}", Record{Topic: "t"}, "/m/*"},
		{"method escaped", "/m/{#METHOD}", Record{Method: "a b?c"}, "/m/a+b%3Fc"},
		{"empty key", "/k={#KEY}", Record{}, "/k="},
		{"binary key", "/k={#KEY}", Record{Key: []byte{0, 0xff, '~'}}, "/k=%00%FF~"},
		{"repeated", "/{#TOPIC}{#TOPIC}", Record{Topic: "a.b-c_d"}, "/a.b-c_da.b-c_d"},
		{"unknown placeholder kept", "/{#FOO}/{#TOPIC}", Record{Topic: "t"}, "/{#FOO}/t"},
		{"unterminated", "/x{#TOPIC", Record{Topic: "t"}, "/x{#TOPIC"},
		{"brace inside", "/{#{#TOPIC}}", Record{Topic: "t"}, "/{#t}"},
		{"negative partition", "/{#PARTITION}", Record{Partition: -1}, "/-1"},
		{"no placeholders", "/plain?a=b", rec, "/plain?a=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExpandURI(tt.tmpl, tt.r); got != tt.want {
				t.Errorf("ExpandURI(%q) = %q, want %q", tt.tmpl, got, tt.want)
			}
			if got := string(compileURI(tt.tmpl).appendTo([]byte("pre"), &tt.r)); got != "pre"+tt.want {
				t.Errorf("compiled appendTo = %q, want %q", got, "pre"+tt.want)
			}
		})
	}
}

func TestExpandURIAllocs(t *testing.T) {
	tmpl := compileURI("/XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&p={#PARTITION}&m={#METHOD}")
	r := &Record{Topic: "orders", Partition: 3, Offset: 99, Key: []byte("a b"), Method: "M"}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = tmpl.appendTo(buf[:0], r) }); n != 0 {
		t.Errorf("appendTo allocates %v times per call, want 0", n)
	}
}

func FuzzQueryEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", "&=?/#%+", "\x00\xff", "é☃", "-_.~*'()!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := url.QueryEscape(s)
		if got := string(appendQueryEscape(nil, s)); got != want {
			t.Errorf("appendQueryEscape(%q) = %q, want %q", s, got, want)
		}
		if got := string(appendQueryEscape(nil, []byte(s))); got != want {
			t.Errorf("appendQueryEscape([]byte %q) = %q, want %q", s, got, want)
		}
	})
}

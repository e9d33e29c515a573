package push

import (
	"context"
	"net/url"
	"strings"
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
		{"method escaped in the path", "/m/{#METHOD}", Record{Method: "a b?c"}, "/m/a%20b%3Fc"},
		{"method escaped in the query", "/m?m={#METHOD}", Record{Method: "a b?c"}, "/m?m=a+b%3Fc"},
		{"key in the path", "/k/{#KEY}", rec, "/k/user%2042&x=1%2F%C3%A9"},
		{"key in path and query", "/k/{#KEY}/{#TOPIC}?key={#KEY}", Record{Topic: "t", Key: []byte("a b+c;d,e")},
			"/k/a%20b+c%3Bd%2Ce/t?key=a+b%2Bc%3Bd%2Ce"},
		{"second question mark", "/p?a={#KEY}?b={#KEY}", Record{Key: []byte("x y")}, "/p?a=x+y?b=x+y"},
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
	tmpl := compileURI("/XXX/{#TOPIC}/{#KEY}/{#METHOD}?key={#KEY}&transid={#TRANSID}&p={#PARTITION}&m={#METHOD}")
	r := &Record{Topic: "orders", Partition: 3, Offset: 99, Key: []byte("a b"), Method: "M"}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = tmpl.appendTo(buf[:0], r) }); n != 0 {
		t.Errorf("appendTo allocates %v times per call, want 0", n)
	}
}

// FuzzQueryEscape checks both escapers of placeholder values against the
// standard library: appendQueryEscape against url.QueryEscape (values in the
// query) and appendPathEscape against url.PathEscape (values in the path).
func FuzzQueryEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", "&=?/#%+", "\x00\xff", "é☃", "-_.~*'()!", ";,:@$ /"} {
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
		want = url.PathEscape(s)
		if got := string(appendPathEscape(nil, s)); got != want {
			t.Errorf("appendPathEscape(%q) = %q, want %q", s, got, want)
		}
		if got := string(appendPathEscape(nil, []byte(s))); got != want {
			t.Errorf("appendPathEscape([]byte %q) = %q, want %q", s, got, want)
		}
	})
}

func TestKeyInPathAndQuery(t *testing.T) {
	b := newBackend(t, nil)
	p := newPusher(t, Config{Servers: []string{b.name}, URI: "/k/{#KEY}/{#METHOD}?key={#KEY}&m={#METHOD}"}, Events{})
	r := Record{Topic: "t", Key: []byte("a b/c+d"), Method: "x y", Value: []byte{0xc0}}
	if res := p.Push(context.Background(), r); res.Err != nil {
		t.Fatalf("got %+v, want delivered", res)
	}
	got := b.seen()
	const want = "/k/a%20b%2Fc+d/x%20y?key=a+b%2Fc%2Bd&m=x+y"
	if len(got) != 1 || got[0].URI != want {
		t.Fatalf("got %+v, want one request for %s", got, want)
	}
	u, err := url.ParseRequestURI(got[0].URI)
	if err != nil {
		t.Fatal(err)
	}
	if seg := strings.Split(u.EscapedPath(), "/"); len(seg) != 4 {
		t.Errorf("got path segments %q, want 4 (the key is one segment)", seg)
	} else if k, _ := url.PathUnescape(seg[2]); k != string(r.Key) {
		t.Errorf("got key %q from the path, want %q", k, r.Key)
	}
	if q := u.Query(); q.Get("key") != string(r.Key) || q.Get("m") != r.Method {
		t.Errorf("got query %q, want key %q and m %q", q, r.Key, r.Method)
	}
}

package httpapi

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

func TestParseCommitQuery(t *testing.T) {
	tests := []struct {
		raw  string
		want commitParams[string]
		err  error
	}{
		{"topic=t&key=k&acks=-1", commitParams[string]{"t", "k", proxy.AcksAll}, nil},
		{"topic=t", commitParams[string]{"t", "", proxy.AcksLeader}, nil},
		{"topic=t&acks=", commitParams[string]{"t", "", proxy.AcksLeader}, nil},
		{"topic=t&acks=0&acks=1", commitParams[string]{"t", "", proxy.AcksNone}, nil},
		{"key=a%26b%3Dc&topic=t&x=1", commitParams[string]{"t", "a&b=c", proxy.AcksLeader}, nil},
		{"topic=t&key=hello+world", commitParams[string]{"t", "hello world", proxy.AcksLeader}, nil},
		{"topic=t&topic=u", commitParams[string]{"t", "", proxy.AcksLeader}, nil},
		{"topic=a.b_c-D9", commitParams[string]{"a.b_c-D9", "", proxy.AcksLeader}, nil},
		{"", commitParams[string]{}, proxy.ErrMissingTopic},
		{"topic=t%2", commitParams[string]{}, proxy.ErrInvalidTopic},
		{"topic=t&key=%", commitParams[string]{}, proxy.ErrInvalidKey},
		{"topic=t&acks=%", commitParams[string]{}, proxy.ErrInvalidAcks},
		{"topic=t&acks=1.0", commitParams[string]{}, proxy.ErrInvalidAcks},
		{"topic=a+b", commitParams[string]{}, proxy.ErrInvalidTopic},
		{"topic=" + strings.Repeat("x", 249), commitParams[string]{strings.Repeat("x", 249), "", proxy.AcksLeader}, nil},
		{"topic=" + strings.Repeat("x", 250), commitParams[string]{}, proxy.ErrInvalidTopic},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseCommitQuery(tt.raw, proxy.AcksLeader)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzCommitQuery checks that parsing never panics, that whatever it accepts is a
// legal topic and a known acks level, and that it agrees with net/url on values
// the standard library encodes.
func FuzzCommitQuery(f *testing.F) {
	for _, s := range []string{"topic=t&key=k&acks=-1", "topic=%41&key=%zz", "acks=0&topic=..", "topic=a&&&key=+", "topic=__x;y"} {
		f.Add(s, "k", "1")
	}
	f.Fuzz(func(t *testing.T, raw, key, acks string) {
		p, err := parseCommitQuery(raw, proxy.AcksLeader)
		// The loop's reading of a query in a read buffer agrees.
		pb, berr := parseQuery([]byte(raw), proxy.AcksLeader, func(b []byte) string { return string(b) })
		if (err == nil) != (berr == nil) || err != nil && berr.Error() != err.Error() ||
			err == nil && (pb.topic != p.topic || string(pb.key) != p.key || pb.acks != p.acks) {
			t.Fatalf("%q: from bytes %+v, %v; from a string %+v, %v", raw, pb, berr, p, err)
		}
		if err == nil {
			if proxy.ValidTopic(p.topic) != nil {
				t.Fatalf("accepted invalid topic %q from %q", p.topic, raw)
			}
			if p.acks != proxy.AcksNone && p.acks != proxy.AcksLeader && p.acks != proxy.AcksAll {
				t.Fatalf("accepted acks %d", p.acks)
			}
		} else if status, _ := Status(err); status != 400 {
			t.Fatalf("parse error %v maps to status %d, want 400", err, status)
		}
		// Round trip through the standard library's encoding.
		q := url.Values{"topic": {"fuzz.topic"}, "key": {key}, "acks": {acks}}.Encode()
		p, err = parseCommitQuery(q, proxy.AcksLeader)
		_, acksErr := proxy.ParseAcks(acks)
		switch {
		case acks != "" && acksErr != nil:
			if !errors.Is(err, proxy.ErrInvalidAcks) {
				t.Fatalf("acks %q: got %v, want proxy.ErrInvalidAcks", acks, err)
			}
		case err != nil:
			t.Fatalf("query %q: %v", q, err)
		case p.key != key || p.topic != "fuzz.topic":
			t.Fatalf("query %q: got key %q topic %q, want key %q", q, p.key, p.topic, key)
		}
	})
}

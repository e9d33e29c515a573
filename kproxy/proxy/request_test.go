package proxy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseCommitQuery(t *testing.T) {
	tests := []struct {
		raw  string
		want commitParams
		err  error
	}{
		{"topic=t&key=k&acks=-1", commitParams{"t", "k", AcksAll}, nil},
		{"topic=t", commitParams{"t", "", AcksLeader}, nil},
		{"topic=t&acks=", commitParams{"t", "", AcksLeader}, nil},
		{"topic=t&acks=0&acks=1", commitParams{"t", "", AcksNone}, nil},
		{"key=a%26b%3Dc&topic=t&x=1", commitParams{"t", "a&b=c", AcksLeader}, nil},
		{"topic=t&key=hello+world", commitParams{"t", "hello world", AcksLeader}, nil},
		{"topic=t&topic=u", commitParams{"t", "", AcksLeader}, nil},
		{"topic=a.b_c-D9", commitParams{"a.b_c-D9", "", AcksLeader}, nil},
		{"", commitParams{}, ErrMissingTopic},
		{"topic=t%2", commitParams{}, ErrInvalidTopic},
		{"topic=t&key=%", commitParams{}, ErrInvalidKey},
		{"topic=t&acks=%", commitParams{}, ErrInvalidAcks},
		{"topic=t&acks=1.0", commitParams{}, ErrInvalidAcks},
		{"topic=a+b", commitParams{}, ErrInvalidTopic},
		{"topic=" + strings.Repeat("x", 249), commitParams{strings.Repeat("x", 249), "", AcksLeader}, nil},
		{"topic=" + strings.Repeat("x", 250), commitParams{}, ErrInvalidTopic},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := parseCommitQuery(tt.raw, AcksLeader)
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
		p, err := parseCommitQuery(raw, AcksLeader)
		if err == nil {
			if ValidTopic(p.topic) != nil {
				t.Fatalf("accepted invalid topic %q from %q", p.topic, raw)
			}
			if p.acks != AcksNone && p.acks != AcksLeader && p.acks != AcksAll {
				t.Fatalf("accepted acks %d", p.acks)
			}
		} else if _, code := classify(err); code == "kafka_unavailable" {
			t.Fatalf("parse error %v maps to no 400 code", err)
		}
		// Round trip through the standard library's encoding.
		q := url.Values{"topic": {"fuzz.topic"}, "key": {key}, "acks": {acks}}.Encode()
		p, err = parseCommitQuery(q, AcksLeader)
		_, acksErr := ParseAcks(acks)
		switch {
		case acks != "" && acksErr != nil:
			if !errors.Is(err, ErrInvalidAcks) {
				t.Fatalf("acks %q: got %v, want ErrInvalidAcks", acks, err)
			}
		case err != nil:
			t.Fatalf("query %q: %v", q, err)
		case p.key != key || p.topic != "fuzz.topic":
			t.Fatalf("query %q: got key %q topic %q, want key %q", q, p.key, p.topic, key)
		}
	})
}

func FuzzValidTopic(f *testing.F) {
	for _, s := range []string{"orders", ".", "..", "a/b", strings.Repeat("a", 250), "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		err := ValidTopic(topic)
		legal := topic != "" && len(topic) <= 249 && topic != "." && topic != ".." &&
			strings.Trim(topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
		if (err == nil) != legal {
			t.Fatalf("ValidTopic(%q) = %v, want legal=%v", topic, err, legal)
		}
	})
}

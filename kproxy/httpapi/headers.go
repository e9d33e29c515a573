package httpapi

import (
	"fmt"
	"net/http"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// Request headers that become record headers: X-Kafka-Header-NAME gives the
// record header NAME (lower-cased: HTTP header names are case-insensitive, and
// proxies on the way may change their case), and the W3C trace context
// headers are copied under their own names, so a trace started by the
// producing service goes on through Kafka.
const (
	recordHeaderPrefix = "x-kafka-header-"
	traceParent        = "traceparent"
	traceState         = "tracestate"
)

// appendRecordHeader appends the record header that the request header
// name: value gives, if it gives one, to dst. A name or value that breaks
// proxy.CheckHeader, or one header more than proxy.MaxRecordHeaders, is an
// error wrapping proxy.ErrInvalidHeader naming the request header. It
// allocates only for a header it appends.
func appendRecordHeader[T string | []byte](dst []kgo.RecordHeader, name, value T) ([]kgo.RecordHeader, error) {
	var key string
	switch {
	case len(name) > len(recordHeaderPrefix) && hasPrefixFold(name, recordHeaderPrefix):
		key = lower(string(name[len(recordHeaderPrefix):]))
	case len(name) == len(recordHeaderPrefix) && hasPrefixFold(name, recordHeaderPrefix):
		return dst, fmt.Errorf("%w: %s names no record header", proxy.ErrInvalidHeader, name)
	case equalFold(name, traceParent):
		key = traceParent
	case equalFold(name, traceState):
		key = traceState
	default:
		return dst, nil
	}
	if len(dst) >= proxy.MaxRecordHeaders {
		return dst, fmt.Errorf("%w: more than %d record headers", proxy.ErrInvalidHeader, proxy.MaxRecordHeaders)
	}
	// A copy: a []byte value may be the connection's read buffer.
	v := append([]byte(nil), value...)
	if err := proxy.CheckHeader(key, v); err != nil {
		return dst, fmt.Errorf("request header %s: %w", name, err)
	}
	return append(dst, kgo.RecordHeader{Key: key, Value: v}), nil
}

// recordHeaders returns the record headers of a request net/http parsed. Its
// header map has no order between names: they are taken in sorted order, the
// values of one name in the order they came.
func recordHeaders(h http.Header) ([]kgo.RecordHeader, error) {
	var names []string
	for name := range h {
		if hasPrefixFold(name, recordHeaderPrefix) || equalFold(name, traceParent) || equalFold(name, traceState) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	var out []kgo.RecordHeader
	for _, name := range names {
		for _, v := range h[name] {
			var err error
			if out, err = appendRecordHeader(out, name, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// hasPrefixFold reports whether s starts with prefix, ASCII case-insensitively;
// prefix is lower case.
func hasPrefixFold[T string | []byte](s T, prefix string) bool {
	return len(s) >= len(prefix) && equalFold(s[:len(prefix)], prefix)
}

// equalFold reports whether s equals t, ASCII case-insensitively; t is lower
// case.
func equalFold[T string | []byte](s T, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// lower returns s in ASCII lower case, allocating only when it changes.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

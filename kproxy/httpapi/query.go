package httpapi

import (
	"fmt"
	"net/url"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// commitParams are the query parameters of one /commit or /batch request: the
// query as a string (net/http) or as the bytes of a read buffer (kproxy's own
// loop).
type commitParams[T string | []byte] struct {
	topic string
	key   T
	acks  proxy.Acks
}

// parseCommitQuery reads topic, key and acks from a raw query string. The first
// occurrence of a parameter wins; others are ignored. It allocates only for
// percent-encoded values.
func parseCommitQuery(raw string, defaultAcks proxy.Acks) (commitParams[string], error) {
	return parseQuery(raw, defaultAcks, func(s string) string { return s })
}

// parseQuery is parseCommitQuery for a query held as T; topic turns the
// topic's bytes into the string the record keeps (for a read buffer: a copy,
// which a caller may keep for the next request with the same topic). It
// allocates only for percent-encoded values and in topic.
func parseQuery[T string | []byte](raw T, defaultAcks proxy.Acks, topic func(T) string) (commitParams[T], error) {
	p := commitParams[T]{acks: defaultAcks}
	var seenTopic, seenKey, seenAcks bool
	for len(raw) > 0 {
		part := raw
		if i := indexByte(raw, '&'); i >= 0 {
			part, raw = raw[:i], raw[i+1:]
		} else {
			raw = raw[len(raw):]
		}
		name, value := part, part[len(part):]
		if i := indexByte(part, '='); i >= 0 {
			name, value = part[:i], part[i+1:]
		}
		var sentinel error
		switch string(name) {
		case "topic":
			if seenTopic {
				continue
			}
			seenTopic, sentinel = true, proxy.ErrInvalidTopic
		case "key":
			if seenKey {
				continue
			}
			seenKey, sentinel = true, proxy.ErrInvalidKey
		case "acks":
			if seenAcks {
				continue
			}
			seenAcks, sentinel = true, proxy.ErrInvalidAcks
		default:
			continue
		}
		if indexByte(value, '%') >= 0 || indexByte(value, '+') >= 0 {
			v, err := url.QueryUnescape(string(value))
			if err != nil {
				return p, fmt.Errorf("%w: %v", sentinel, err)
			}
			value = T(v)
		}
		switch sentinel {
		case proxy.ErrInvalidTopic:
			p.topic = topic(value)
		case proxy.ErrInvalidKey:
			p.key = value
		default:
			switch string(value) {
			case "":
			case "0":
				p.acks = proxy.AcksNone
			case "1":
				p.acks = proxy.AcksLeader
			case "-1":
				p.acks = proxy.AcksAll
			default:
				_, err := proxy.ParseAcks(string(value))
				return p, err
			}
		}
	}
	if err := proxy.ValidTopic(p.topic); err != nil {
		return p, err
	}
	return p, nil
}

// indexByte returns the index of the first c in s, or -1.
func indexByte[T string | []byte](s T, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

package httpapi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// commitParams are the query parameters of one /commit request.
type commitParams struct {
	topic string
	key   string
	acks  proxy.Acks
}

// parseCommitQuery reads topic, key and acks from a raw query string. The first
// occurrence of a parameter wins; others are ignored. It allocates only for
// percent-encoded values.
func parseCommitQuery(raw string, defaultAcks proxy.Acks) (commitParams, error) {
	p := commitParams{acks: defaultAcks}
	var seenTopic, seenKey, seenAcks bool
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		name, value, _ := strings.Cut(part, "=")
		var dst *string
		var acks string
		switch name {
		case "topic":
			if seenTopic {
				continue
			}
			seenTopic, dst = true, &p.topic
		case "key":
			if seenKey {
				continue
			}
			seenKey, dst = true, &p.key
		case "acks":
			if seenAcks {
				continue
			}
			seenAcks, dst = true, &acks
		default:
			continue
		}
		if strings.ContainsAny(value, "%+") {
			v, err := url.QueryUnescape(value)
			if err != nil {
				if name == "acks" {
					return p, fmt.Errorf("%w: %v", proxy.ErrInvalidAcks, err)
				}
				if name == "topic" {
					return p, fmt.Errorf("%w: %v", proxy.ErrInvalidTopic, err)
				}
				return p, fmt.Errorf("%w: %v", proxy.ErrInvalidKey, err)
			}
			value = v
		}
		*dst = value
		if name == "acks" && value != "" {
			a, err := proxy.ParseAcks(value)
			if err != nil {
				return p, err
			}
			p.acks = a
		}
	}
	if err := proxy.ValidTopic(p.topic); err != nil {
		return p, err
	}
	return p, nil
}

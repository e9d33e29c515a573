package proxy

import (
	"fmt"
	"net/url"
	"strings"
)

// Acks is the acknowledgement level a caller asks for.
type Acks int8

// The three acks levels; each has its own Kafka clients.
const (
	AcksNone   Acks = 0  // do not wait for the broker
	AcksLeader Acks = 1  // the partition leader has the record
	AcksAll    Acks = -1 // every in-sync replica has the record
)

// index returns the slot of a in a three-element array.
func (a Acks) index() int {
	switch a {
	case AcksNone:
		return 0
	case AcksLeader:
		return 1
	default:
		return 2
	}
}

func (a Acks) String() string {
	switch a {
	case AcksNone:
		return "0"
	case AcksLeader:
		return "1"
	default:
		return "-1"
	}
}

// ParseAcks parses an acks parameter: "0", "1" or "-1".
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "0":
		return AcksNone, nil
	case "1":
		return AcksLeader, nil
	case "-1":
		return AcksAll, nil
	}
	return 0, fmt.Errorf("%w %q: use 0 (no wait), 1 (leader) or -1 (all in-sync replicas)", ErrInvalidAcks, s)
}

// MaxTopicLen is the longest topic name Kafka accepts.
const MaxTopicLen = 249

// ValidTopic checks a topic name the way Kafka does: 1..249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func ValidTopic(t string) error {
	if t == "" {
		return ErrMissingTopic
	}
	if len(t) > MaxTopicLen {
		return fmt.Errorf("%w: %d characters, at most %d are allowed", ErrInvalidTopic, len(t), MaxTopicLen)
	}
	if t == "." || t == ".." {
		return fmt.Errorf("%w %q", ErrInvalidTopic, t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: only letters, digits, '.', '_' and '-' are allowed", ErrInvalidTopic, t)
		}
	}
	return nil
}

// commitParams are the query parameters of one /commit request.
type commitParams struct {
	topic string
	key   string
	acks  Acks
}

// parseCommitQuery reads topic, key and acks from a raw query string. The first
// occurrence of a parameter wins; others are ignored. It allocates only for
// percent-encoded values.
func parseCommitQuery(raw string, defaultAcks Acks) (commitParams, error) {
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
					return p, fmt.Errorf("%w: %v", ErrInvalidAcks, err)
				}
				if name == "topic" {
					return p, fmt.Errorf("%w: %v", ErrInvalidTopic, err)
				}
				return p, fmt.Errorf("%w: %v", ErrInvalidKey, err)
			}
			value = v
		}
		*dst = value
		if name == "acks" && value != "" {
			a, err := ParseAcks(value)
			if err != nil {
				return p, err
			}
			p.acks = a
		}
	}
	if err := ValidTopic(p.topic); err != nil {
		return p, err
	}
	return p, nil
}

package proxy

import "fmt"

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

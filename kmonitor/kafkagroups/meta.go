package kafkagroups

import (
	"encoding/json"
	"strings"
	"time"
)

// maxMetaBytes bounds the metadata parsed as ktransfer's: Kafka's default
// offset.metadata.max.bytes is 4096, and ktransfer's object is far shorter.
const maxMetaBytes = 4096

// commitMeta is what the metadata of a commit tells: the instance that
// committed and when.
type commitMeta struct {
	instance string
	at       time.Time
}

// parseMeta reads the metadata ktransfer's Kafka offset store writes with
// every commit, a JSON object naming the instance and the time:
//
//	{"instance":"host1-4242-9f3a1c07","time":"2026-11-28T10:39:46.123Z"}
//
// Anything else — empty, another consumer's metadata (kgo writes the member
// id), an object without both fields or with a time that is not RFC 3339 — is
// opaque: ok is false.
func parseMeta(s string) (m commitMeta, ok bool) {
	if len(s) > maxMetaBytes || !strings.HasPrefix(s, "{") {
		return commitMeta{}, false
	}
	var raw struct {
		Instance *string `json:"instance"`
		Time     *string `json:"time"`
	}
	if json.Unmarshal([]byte(s), &raw) != nil || raw.Instance == nil || raw.Time == nil || *raw.Instance == "" {
		return commitMeta{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, *raw.Time)
	if err != nil {
		return commitMeta{}, false
	}
	return commitMeta{instance: *raw.Instance, at: at}, true
}

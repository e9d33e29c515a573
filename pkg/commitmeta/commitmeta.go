// Package commitmeta is the metadata ktransfer writes with every offset it
// commits to a Kafka consumer group (offset_store: kafka): the instance that
// committed and when, as a small JSON object, so that kmonitor and people
// reading the group with Kafka's tools can tell who moved an offset last.
//
//	{"instance":"host1-4242-9f3a1c07","time":"2026-11-28T10:39:46.123Z"}
//
// Metadata written by other consumers of a group is whatever they chose;
// Decode tells it apart.
package commitmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxInstance bounds the instance id written, in bytes: Kafka refuses a
// commit whose metadata exceeds offset.metadata.max.bytes (4096 by default).
const MaxInstance = 1024

// Meta is the metadata of one commit.
type Meta struct {
	// Instance is the committing process's instance_id.
	Instance string `json:"instance"`
	// Time is when the process sent the commit, to the millisecond.
	Time time.Time `json:"time"`
}

// Encode returns m as the commit's metadata string. An instance longer than
// MaxInstance bytes is cut (at a character boundary); the time is written in
// UTC with milliseconds.
func (m Meta) Encode() string {
	inst := m.Instance
	if len(inst) > MaxInstance {
		inst = inst[:MaxInstance]
		for !utf8.ValidString(inst) {
			inst = inst[:len(inst)-1]
		}
	}
	b, _ := json.Marshal(struct {
		Instance string `json:"instance"`
		Time     string `json:"time"`
	}{inst, m.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
	return string(b)
}

// ErrForeign is returned (wrapped) by Decode for metadata ktransfer did not
// write: empty, or not its JSON object.
var ErrForeign = errors.New("commitmeta: not ktransfer's commit metadata")

// Decode parses metadata written by Encode. Anything else — another
// consumer's metadata, an empty string, a partial object — is an error
// wrapping ErrForeign.
func Decode(s string) (Meta, error) {
	if !strings.HasPrefix(s, "{") || len(s) > 4*MaxInstance {
		return Meta{}, fmt.Errorf("%w: %.40q", ErrForeign, s)
	}
	var raw struct {
		Instance *string `json:"instance"`
		Time     *string `json:"time"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return Meta{}, fmt.Errorf("%w: %v", ErrForeign, err)
	}
	if raw.Instance == nil || raw.Time == nil || *raw.Instance == "" {
		return Meta{}, fmt.Errorf("%w: instance or time missing", ErrForeign)
	}
	t, err := time.Parse(time.RFC3339Nano, *raw.Time)
	if err != nil {
		return Meta{}, fmt.Errorf("%w: time: %v", ErrForeign, err)
	}
	return Meta{Instance: *raw.Instance, Time: t}, nil
}

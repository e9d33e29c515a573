package monitor

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// groupFilter decides which consumer groups of a cluster are monitored: those the
// groups.allow and groups.deny patterns let through, at most max of them. It is
// immutable and safe for concurrent use.
type groupFilter struct {
	allow, deny []*regexp.Regexp
	max         int
}

func newGroupFilter(cfg GroupsConfig, maxGroups int) (*groupFilter, error) {
	f := &groupFilter{max: maxGroups}
	for _, l := range []struct {
		key string
		dst *[]*regexp.Regexp
		src []string
	}{{"groups.allow", &f.allow, cfg.Allow}, {"groups.deny", &f.deny, cfg.Deny}} {
		for _, p := range l.src {
			re, err := config.Pattern(p)
			if err != nil {
				return nil, fmt.Errorf("%s: pattern %q: %w", l.key, p, err)
			}
			*l.dst = append(*l.dst, re)
		}
	}
	if f.max <= 0 {
		return nil, fmt.Errorf("max_groups: %d is not positive", maxGroups)
	}
	return f, nil
}

// allowed reports whether the patterns let group through.
func (f *groupFilter) allowed(group string) bool {
	for _, re := range f.deny {
		if re.MatchString(group) {
			return false
		}
	}
	if len(f.allow) == 0 {
		return true
	}
	for _, re := range f.allow {
		if re.MatchString(group) {
			return true
		}
	}
	return false
}

// admission is what admit decided about the groups under {chroot}/consumers.
type admission struct {
	keep     []string // the groups to monitor
	filtered int      // groups the patterns exclude
	overCap  int      // allowed groups left out because max were monitored
}

// admit chooses the groups to monitor among names: every allowed group that is
// tracked already, then the other allowed ones in name order while fewer than
// max are monitored. A group once monitored stays so while it exists, so a new
// group never displaces one, and which groups are left out over the cap does not
// change from one read of the directory to the next.
func (f *groupFilter) admit(names []string, tracked map[string]bool) admission {
	var a admission
	var fresh []string
	for _, n := range names {
		switch {
		case !f.allowed(n):
			a.filtered++
		case tracked[n]:
			a.keep = append(a.keep, n)
		default:
			fresh = append(fresh, n)
		}
	}
	sort.Strings(fresh)
	room := max(f.max-len(a.keep), 0)
	if len(fresh) > room {
		a.overCap = len(fresh) - room
		fresh = fresh[:room]
	}
	a.keep = append(a.keep, fresh...)
	return a
}

// maxSubscriptionTopics bounds the topics taken from one registration: ktransfer
// registers one, a Kafka 0.8 consumer a few.
const maxSubscriptionTopics = 100

// parseSubscription returns the topics an instance's registration under ids/
// subscribes to, sorted and without repeats. Only a static subscription names
// topics (a white or black list names patterns); names Kafka would not accept
// are left out, and at most maxSubscriptionTopics are taken.
func parseSubscription(data []byte) ([]string, error) {
	var reg struct {
		Subscription map[string]json.RawMessage `json:"subscription"`
		Pattern      string                     `json:"pattern"`
	}
	if err := json.Unmarshal(data, &reg); err != nil {
		return nil, fmt.Errorf("registration is not JSON with a subscription: %w", err)
	}
	if reg.Pattern != "" && reg.Pattern != "static" {
		return nil, nil
	}
	topics := make([]string, 0, len(reg.Subscription))
	for t := range reg.Subscription {
		if legalTopic(t) {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	if len(topics) > maxSubscriptionTopics {
		topics = topics[:maxSubscriptionTopics]
	}
	return topics, nil
}

// legalTopic reports whether Kafka accepts t as a topic name: 1..249 characters
// of [a-zA-Z0-9._-], and not "." or "..".
func legalTopic(t string) bool {
	if len(t) == 0 || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

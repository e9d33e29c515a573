package committed

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// Filter decides which consumer groups of a cluster a source follows: those the
// groups.allow and groups.deny patterns let through, at most max_groups of
// them. It is immutable and safe for concurrent use.
type Filter struct {
	allow, deny []*regexp.Regexp
	max         int
}

// NewFilter returns the Filter of a cluster section's groups.allow and
// groups.deny patterns (regular expressions matching whole names) and its
// max_groups, which must be positive.
func NewFilter(allow, deny []string, maxGroups int) (*Filter, error) {
	f := &Filter{max: maxGroups}
	for _, l := range []struct {
		key string
		dst *[]*regexp.Regexp
		src []string
	}{{"groups.allow", &f.allow, allow}, {"groups.deny", &f.deny, deny}} {
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

// Max returns max_groups.
func (f *Filter) Max() int { return f.max }

// allowed reports whether the patterns let group through.
func (f *Filter) allowed(group string) bool {
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

// Admission is what Admit decided about a cluster's groups.
type Admission struct {
	// Keep are the groups to follow.
	Keep []string
	// Filtered counts the groups the patterns exclude.
	Filtered int
	// OverCap counts the allowed groups left out because max_groups were
	// followed.
	OverCap int
}

// Admit chooses the groups to follow among names: every allowed group that is
// tracked already, then the other allowed ones in name order while fewer than
// max_groups are followed. A group once followed stays so while it exists, so
// a new group never displaces one, and which groups are left out over the cap
// does not change from one listing of the groups to the next.
func (f *Filter) Admit(names []string, tracked map[string]bool) Admission {
	var a Admission
	var fresh []string
	for _, n := range names {
		switch {
		case !f.allowed(n):
			a.Filtered++
		case tracked[n]:
			a.Keep = append(a.Keep, n)
		default:
			fresh = append(fresh, n)
		}
	}
	sort.Strings(fresh)
	room := max(f.max-len(a.Keep), 0)
	if len(fresh) > room {
		a.OverCap = len(fresh) - room
		fresh = fresh[:room]
	}
	a.Keep = append(a.Keep, fresh...)
	return a
}

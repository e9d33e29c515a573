package committed

import (
	"slices"
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	f, err := NewFilter([]string{"m.*", "console-.*"}, []string{"console-consumer-[0-9]+"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		names             []string
		tracked           []string
		keep              []string
		filtered, overCap int
	}{
		{"all fit", []string{"m2", "m1"}, nil, []string{"m1", "m2"}, 0, 0},
		{"patterns", []string{"m1", "x", "console-consumer-42", "console-tool", "mm"}, nil, []string{"console-tool", "m1", "mm"}, 2, 0},
		{"whole names only", []string{"am1", "m1"}, nil, []string{"m1"}, 1, 0},
		{"cap in name order", []string{"m5", "m4", "m3", "m2", "m1"}, nil, []string{"m1", "m2", "m3"}, 0, 2},
		{"tracked ones stay", []string{"m1", "m2", "m8", "m9"}, []string{"m8", "m9"}, []string{"m8", "m9", "m1"}, 0, 1},
		{"a freed slot is taken", []string{"m1", "m2", "m3", "m9"}, []string{"m1", "m9"}, []string{"m1", "m9", "m2"}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tracked := map[string]bool{}
			for _, n := range tt.tracked {
				tracked[n] = true
			}
			a := f.Admit(tt.names, tracked)
			got, want := slices.Sorted(slices.Values(a.Keep)), slices.Sorted(slices.Values(tt.keep))
			if !slices.Equal(got, want) || a.Filtered != tt.filtered || a.OverCap != tt.overCap {
				t.Errorf("got %v filtered %d over %d, want %v filtered %d over %d", got, a.Filtered, a.OverCap, want, tt.filtered, tt.overCap)
			}
		})
	}
	for _, tc := range []struct {
		allow, deny []string
		max         int
		want        string
	}{
		{nil, []string{"("}, 1, `groups.deny: pattern "(": error parsing regexp: missing closing ): ` + "`" + `^(?:()$` + "`"},
		{[]string{"a["}, nil, 1, `groups.allow: pattern "a[": error parsing regexp: missing closing ]: ` + "`" + `[)$` + "`"},
		{nil, nil, 0, "max_groups: 0 is not positive"},
	} {
		if _, err := NewFilter(tc.allow, tc.deny, tc.max); err == nil || err.Error() != tc.want {
			t.Errorf("NewFilter(%q, %q, %d): got %v, want %q", tc.allow, tc.deny, tc.max, err, tc.want)
		}
	}
}

// added reports whether s signalled an addition since the last call.
func added(s *State) bool {
	select {
	case <-s.Added():
		return true
	default:
		return false
	}
}

// TestState: a part lives while it has a commit or an owner, a topic while
// something references it; additions are signalled, every change moves the
// version, and a snapshot is shared until the next change.
func TestState(t *testing.T) {
	s := NewState()
	k := Key{"m", "t", 3}
	at := time.UnixMilli(1700000000000)
	steps := []struct {
		name      string
		do        func()
		wantPart  *Part
		wantAdded bool
	}{
		{"owner first", func() { s.Update(k, func(p *Part) { p.Owner = "host-1" }) }, &Part{Owner: "host-1"}, true},
		{"then a commit", func() { s.Update(k, func(p *Part) { p.Offset, p.HasCommit, p.CommitTime = 7, true, at }) },
			&Part{Offset: 7, HasCommit: true, CommitTime: at, Owner: "host-1"}, false},
		{"owner gone", func() { s.Update(k, func(p *Part) { p.Owner = "" }) }, &Part{Offset: 7, HasCommit: true, CommitTime: at}, false},
		{"commit gone", func() { s.Update(k, func(p *Part) { *p = Part{} }) }, nil, false},
		{"back again", func() { s.Update(k, func(p *Part) { p.Offset, p.HasCommit = 9, true }) }, &Part{Offset: 9, HasCommit: true}, true},
	}
	added(s)
	for _, st := range steps {
		before := s.Version()
		st.do()
		snap := s.Snapshot()
		got, ok := snap.Parts[k]
		switch {
		case st.wantPart == nil && ok:
			t.Errorf("%s: got %+v, want no part", st.name, got)
		case st.wantPart != nil && (!ok || got != *st.wantPart):
			t.Errorf("%s: got %+v (present %v), want %+v", st.name, got, ok, *st.wantPart)
		}
		if a := added(s); a != st.wantAdded {
			t.Errorf("%s: got added %v, want %v", st.name, a, st.wantAdded)
		}
		if s.Version() == before || snap.Version != s.Version() {
			t.Errorf("%s: got version %d → %d (snapshot %d), want a new version", st.name, before, s.Version(), snap.Version)
		}
		if again := s.Snapshot(); again != snap {
			t.Errorf("%s: got a new snapshot without a change, want the shared one", st.name)
		}
	}

	gt := GroupTopic{"m", "u"}
	s.AddTopic(gt, 1)
	if !added(s) {
		t.Error("first reference to a topic: got no signal")
	}
	s.AddTopic(gt, 1)
	if added(s) {
		t.Error("second reference to a topic: got a signal, want none")
	}
	s.AddTopic(gt, -1)
	if got := s.Snapshot().Topics; !slices.Equal(got, []GroupTopic{gt}) {
		t.Errorf("one reference left: got topics %v, want %v", got, []GroupTopic{gt})
	}
	s.AddTopic(gt, -1)
	if got := s.Snapshot().Topics; len(got) != 0 {
		t.Errorf("no reference left: got topics %v, want none", got)
	}
}

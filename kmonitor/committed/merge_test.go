package committed

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMergePart(t *testing.T) {
	t1 := time.UnixMilli(1700000000000)
	t2 := t1.Add(time.Second)
	zk := func(off int64, at time.Time, owner string) Part {
		return Part{Offset: off, HasCommit: true, CommitTime: at, Owner: owner}
	}
	for _, tc := range []struct {
		name       string
		a, b, want Part
	}{
		{"the newer commit wins: a", zk(10, t2, "zk-1"), zk(5, t1, "member@h"), zk(10, t2, "zk-1")},
		{"the newer commit wins: b", zk(10, t1, ""), Part{Offset: 12, HasCommit: true, CommitTime: t2, CommittedBy: "kt-1", Owner: "member@h"},
			Part{Offset: 12, HasCommit: true, CommitTime: t2, CommittedBy: "kt-1", Owner: "member@h"}},
		{"a tie goes to b", zk(10, t1, "zk-1"), zk(11, t1, "member@h"), zk(11, t1, "member@h")},
		{"an unknown time loses", zk(10, t1, ""), zk(3, time.Time{}, ""), zk(10, t1, "")},
		{"only one commit", Part{Owner: "zk-1"}, zk(7, time.Time{}, ""), zk(7, time.Time{}, "zk-1")},
		{"only a's commit", zk(7, t1, ""), Part{Owner: "member@h"}, zk(7, t1, "member@h")},
		{"the winner names no owner: the other's", zk(10, t2, ""), zk(5, t1, "member@h"), zk(10, t2, "member@h")},
		{"no commit: b's owner", Part{Owner: "zk-1"}, Part{Owner: "member@h"}, Part{Owner: "member@h"}},
		{"no commit: a's owner", Part{Owner: "zk-1"}, Part{}, Part{Owner: "zk-1"}},
	} {
		if got := MergePart(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// stateSource is a Source over a State, for tests of Merged.
type stateSource struct {
	*State
	err    error
	polls  int
	closed int
}

func (s *stateSource) Run(ctx context.Context) { <-ctx.Done() }
func (s *stateSource) Err() error              { return s.err }
func (s *stateSource) Close()                  { s.closed++ }

type pollSource struct{ *stateSource }

func (p pollSource) Poll(context.Context) { p.polls++ }

// TestMerged: the merged view, its version, its errors, its Added signal and
// its polls.
func TestMerged(t *testing.T) {
	a := &stateSource{State: NewState()}
	b := pollSource{&stateSource{State: NewState()}}
	m := Merge(a, b)
	t1 := time.UnixMilli(1700000000000)
	k := Key{"m", "t", 0}
	a.Update(k, func(p *Part) { *p = Part{Offset: 10, HasCommit: true, CommitTime: t1, Owner: "zk-1"} })
	a.AddTopic(GroupTopic{"m", "t"}, 1)
	b.AddTopic(GroupTopic{"m", "t"}, 1)
	b.AddTopic(GroupTopic{"k", "u"}, 1)
	b.Update(Key{"k", "u", 1}, func(p *Part) { *p = Part{Offset: 3, HasCommit: true} })

	snap := m.Snapshot()
	if snap.Version != m.Version() || snap.Version != a.Version()+b.Version() {
		t.Errorf("version: got snapshot %d, Version %d, want %d", snap.Version, m.Version(), a.Version()+b.Version())
	}
	if got := snap.Parts[k]; got.Offset != 10 || got.Owner != "zk-1" || len(snap.Parts) != 2 {
		t.Errorf("parts: got %v", snap.Parts)
	}
	topics := slices.Clone(snap.Topics)
	slices.SortFunc(topics, func(x, y GroupTopic) int { return strings.Compare(x.Group+x.Topic, y.Group+y.Topic) })
	if want := []GroupTopic{{"k", "u"}, {"m", "t"}}; !slices.Equal(topics, want) {
		t.Errorf("topics: got %v, want %v", topics, want)
	}
	if again := m.Snapshot(); again != snap {
		t.Error("no change: got a new snapshot, want the shared one")
	}

	// The module moves to b: its commit there is newer and wins.
	b.Update(k, func(p *Part) {
		*p = Part{Offset: 12, HasCommit: true, CommitTime: t1.Add(time.Minute), Owner: "kt-1@h"}
	})
	if got := m.Snapshot().Parts[k]; got.Offset != 12 || got.Owner != "kt-1@h" {
		t.Errorf("after b's newer commit: got %+v", got)
	}
	if m.Version() == snap.Version {
		t.Error("after a change: got the same version")
	}

	m.Poll(context.Background())
	if b.polls != 1 {
		t.Errorf("Poll: got %d polls of the polling source, want 1", b.polls)
	}
	if m.Err() != nil {
		t.Errorf("Err: got %v, want nil", m.Err())
	}
	down := errors.New("ZooKeeper down")
	a.err = down
	if !errors.Is(m.Err(), down) {
		t.Errorf("Err with a down: got %v, want it", m.Err())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	a.Update(Key{"new", "t", 0}, func(p *Part) { p.Owner = "zk-2" })
	select {
	case <-m.Added():
	case <-time.After(10 * time.Second):
		t.Error("Added: no signal after a's partition appeared")
	}
	cancel()
	<-done
	m.Close()
	if a.closed != 1 || b.closed != 1 {
		t.Errorf("Close: got %d and %d closes, want 1 each", a.closed, b.closed)
	}
}

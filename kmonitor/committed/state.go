package committed

import (
	"sync"
	"sync/atomic"
)

// State is the view a Source keeps: the module partitions with a commit or an
// owner, and the topics of every group with their reference counts. It is safe
// for concurrent use. Create it with NewState.
type State struct {
	mu     sync.Mutex
	parts  map[Key]*Part
	topics map[GroupTopic]int // reference count: how many places of the source name the topic
	added  chan struct{}
	// version counts changes, so answers rendered from the state can be reused
	// until it changes.
	version atomic.Uint64

	// snap is the last snapshot: it is shared until the state changes, since
	// its readers never modify it.
	snap *Snapshot
}

// NewState returns an empty State.
func NewState() *State {
	return &State{parts: map[Key]*Part{}, topics: map[GroupTopic]int{}, added: make(chan struct{}, 1)}
}

// Version returns a number that changes whenever the state does.
func (s *State) Version() uint64 { return s.version.Load() }

// Added receives a signal when a partition or a group's topic appears (see
// Source.Added).
func (s *State) Added() <-chan struct{} { return s.added }

func (s *State) signalAdded() {
	select {
	case s.added <- struct{}{}:
	default:
	}
}

// Update applies fn to the Part of k (the zero Part when k has none) and drops
// it when it no longer holds a commit or an owner.
func (s *State) Update(k Key, fn func(p *Part)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, existed := s.parts[k]
	if !existed {
		p = &Part{}
	}
	fn(p)
	s.version.Add(1)
	switch {
	case !p.HasCommit && p.Owner == "":
		delete(s.parts, k)
	case !existed:
		s.parts[k] = p
		s.signalAdded()
	}
}

// AddTopic adds delta (+1 or -1) to the references of gt: a source may learn a
// group's topic from several places (ZooKeeper: its offsets/ and owners/
// directories, its instances' subscriptions), and the topic stays while one
// of them names it.
func (s *State) AddTopic(gt GroupTopic, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version.Add(1)
	if n := s.topics[gt] + delta; n > 0 {
		if s.topics[gt] == 0 {
			s.signalAdded()
		}
		s.topics[gt] = n
	} else {
		delete(s.topics, gt)
	}
}

// Snapshot returns a copy of the state, shared by every caller until the state
// changes: callers must not modify it. (20,000 groups copied at every poll and
// answer cost megabytes each time while nothing changed.)
func (s *State) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	// version only changes with s.mu held, so it is stable here.
	if s.snap != nil && s.snap.Version == s.version.Load() {
		return s.snap
	}
	parts := make(map[Key]Part, len(s.parts))
	for k, p := range s.parts {
		parts[k] = *p
	}
	topics := make([]GroupTopic, 0, len(s.topics))
	for gt := range s.topics {
		topics = append(topics, gt)
	}
	s.snap = &Snapshot{Parts: parts, Topics: topics, Version: s.version.Load()}
	return s.snap
}

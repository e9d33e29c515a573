package committed

import (
	"context"
	"errors"
	"sync"
)

// Merged is one Source made of two that follow the same cluster's groups in
// different stores — ZooKeeper and Kafka, for offset_source: both, while the
// modules move from one store to the other. A module partition that only one
// of them knows is taken as that one says. One that both know is taken, for
// its commit, from the source whose commit is newer (Part.CommitTime; on equal
// times or when neither has a commit, from the second source), and its owner
// is that source's owner or, if it names none, the other's. So a module keeps
// its name, its rows and its Zabbix items across the move: before it, the
// ZooKeeper offsets move and win; after it, the Kafka group's commits are the
// newer ones, while the offsets left in ZooKeeper stand still. A commit whose
// time its source cannot tell (zero CommitTime) counts as older than any.
//
// A group's topics are those of either source. Merged is reachable (Err nil)
// only while both sources are: what an unreachable one would say could be the
// newer commit. It is a Poller: Poll polls whichever of the two is one, and
// Added fires when either source's does. Its methods are safe for concurrent
// use.
type Merged struct {
	a, b  Source
	added chan struct{}

	mu   sync.Mutex
	snap *Snapshot // the last merged snapshot
	va   uint64    // a's version snap was merged from
	vb   uint64    // b's version snap was merged from
}

var _ Poller = (*Merged)(nil)

// Merge returns the Merged source of a and b; b wins ties.
func Merge(a, b Source) *Merged {
	return &Merged{a: a, b: b, added: make(chan struct{}, 1)}
}

// Run runs both sources until ctx ends, passing on their Added signals; it
// returns when both have.
func (m *Merged) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { m.a.Run(ctx) })
	wg.Go(func() { m.b.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.a.Added():
			case <-m.b.Added():
			}
			select {
			case m.added <- struct{}{}:
			default:
			}
		}
	})
	wg.Wait()
}

// Poll polls each of the two sources that is a Poller.
func (m *Merged) Poll(ctx context.Context) {
	for _, s := range []Source{m.a, m.b} {
		if p, ok := s.(Poller); ok {
			p.Poll(ctx)
		}
	}
}

// Version returns the sum of the sources' versions: each only grows, so the
// sum changes whenever either does.
func (m *Merged) Version() uint64 { return m.a.Version() + m.b.Version() }

// Added receives a signal when either source's Added does.
func (m *Merged) Added() <-chan struct{} { return m.added }

// Err returns nil while both sources are reachable, else why not.
func (m *Merged) Err() error { return errors.Join(m.a.Err(), m.b.Err()) }

// Close closes both sources; safe to call twice.
func (m *Merged) Close() {
	m.a.Close()
	m.b.Close()
}

// Snapshot returns the merged view, shared until either source changes.
func (m *Merged) Snapshot() *Snapshot {
	sa, sb := m.a.Snapshot(), m.b.Snapshot()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap != nil && m.va == sa.Version && m.vb == sb.Version {
		return m.snap
	}
	m.snap, m.va, m.vb = MergeSnapshots(sa, sb), sa.Version, sb.Version
	return m.snap
}

// MergeSnapshots returns the merge of a and b by Merged's rules, with the sum
// of their versions.
func MergeSnapshots(a, b *Snapshot) *Snapshot {
	parts := make(map[Key]Part, max(len(a.Parts), len(b.Parts)))
	for k, p := range a.Parts {
		parts[k] = p
	}
	for k, pb := range b.Parts {
		if pa, ok := parts[k]; ok {
			parts[k] = MergePart(pa, pb)
		} else {
			parts[k] = pb
		}
	}
	seen := make(map[GroupTopic]bool, len(a.Topics)+len(b.Topics))
	topics := make([]GroupTopic, 0, len(a.Topics)+len(b.Topics))
	for _, l := range [][]GroupTopic{a.Topics, b.Topics} {
		for _, gt := range l {
			if !seen[gt] {
				seen[gt] = true
				topics = append(topics, gt)
			}
		}
	}
	return &Snapshot{Parts: parts, Topics: topics, Version: a.Version + b.Version}
}

// MergePart returns what two sources saying a and b of one module partition
// say together: the commit of the newer CommitTime (b's on a tie or when
// neither has one) with that source's owner, or the other's when it names
// none.
func MergePart(a, b Part) Part {
	win, other := b, a
	if a.HasCommit && (!b.HasCommit || a.CommitTime.After(b.CommitTime)) {
		win, other = a, b
	}
	if win.Owner == "" {
		win.Owner = other.Owner
	}
	return win
}

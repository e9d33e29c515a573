package fleet

import (
	"context"
	"errors"
)

// Claim is the engine's view of one partition this process owns, whatever
// store the fleet keeps offsets and owners in: the ZooKeeper layout (a Lease,
// through Claims) or a Kafka consumer group (package kgroup). It lasts from the
// moment the fleet hands it over until the engine calls Release; at most one
// live claim per partition exists in the whole fleet at any moment.
//
// The engine pushes while Context is not done. When it is done, context.Cause
// tells why: ErrRevoked or ErrClosed (drain, make the final Commit, Release) or
// ErrFenced (stop at once; Commit refuses; Release). Its methods are safe for
// concurrent use.
type Claim interface {
	// Partition returns the claimed partition.
	Partition() int32
	// Context is done when the claim is revoked, fenced or closed.
	Context() context.Context
	// Live reports whether the process may still push the partition: false
	// once the claim is fenced, and as soon as the fleet can tell that the
	// store may have given the partition to another process, even before
	// Context says so. It is cheap: the engine asks before every push attempt.
	Live() bool
	// LoadOffset reads the partition's committed offset; ok is false when
	// there is none yet. The error wraps ErrNotOwner when the claim no longer
	// owns the partition, ErrNoSession while the store cannot be asked.
	LoadOffset() (off int64, ok bool, err error)
	// Commit writes off as the partition's committed offset (the next offset
	// to push), in a way the store refuses once another process may own the
	// partition. It works on a revoked claim (the final commit before
	// Release), not on a fenced or released one. The error wraps ErrNotOwner
	// when the store refused it (the claim is then fenced), ErrNoSession while
	// the store cannot be asked (transient: try again later).
	Commit(off int64) error
	// Release hands the partition back. The engine calls it exactly once per
	// claim, after it stopped pushing and made its final Commit; later calls
	// do nothing. It waits for the hand-over until ctx ends.
	Release(ctx context.Context) error
	// Written returns the committed offset as this claim last wrote it, or a
	// Mark whose IsZero is true when unknown.
	Written() Mark
	// Resumes tells whether the committed offset this claim found (by
	// LoadOffset, or when it was made) is still the one an earlier claim's
	// Written describes: nobody else committed since, so the process may take
	// the partition back where that claim left it.
	Resumes(earlier Mark) bool
}

// Mark identifies one committed state of a partition's offset, as a store
// records it (a ZooKeeper node version, a Kafka commit's metadata).
type Mark interface {
	// IsZero tells whether the state is unknown.
	IsZero() bool
}

// Membership is one process's membership in one module's fleet: it hands the
// engine a Claim for every partition the process takes. The engine runs a
// partition from its claim and learns from the claim's context when to stop.
type Membership interface {
	// Claims delivers a claim for every partition this process takes. It is
	// closed when the membership stops.
	Claims() <-chan Claim
	// SetPartitions tells the fleet the topic's partition count, now and
	// whenever it grows (a fleet that learns it from its store ignores it).
	SetPartitions(n int32)
	// Snapshot returns the membership's state for /status.
	Snapshot() any
	// Close leaves the fleet: every claim is revoked with ErrClosed and
	// Close waits, within the fleet's bound, for the engine to release them.
	// It is safe to call more than once.
	Close()
}

// Claims adapts m, a member of the ZooKeeper fleet, to Membership: its leases
// become claims. Leases revoked before the engine takes them are released
// unused, as the member itself does with the leases it still holds.
func Claims(m *Member) Membership {
	z := &zkMembership{m: m, out: make(chan Claim), done: make(chan struct{})}
	go z.forward()
	return z
}

type zkMembership struct {
	m    *Member
	out  chan Claim
	done chan struct{} // closed when forward returns
}

func (z *zkMembership) forward() {
	defer close(z.done)
	defer close(z.out)
	for l := range z.m.Leases() {
		select {
		case z.out <- zkClaim{l}:
		case <-l.Context().Done():
			_ = l.Release(context.Background())
		}
	}
}

func (z *zkMembership) Claims() <-chan Claim  { return z.out }
func (z *zkMembership) SetPartitions(n int32) { z.m.SetPartitions(n) }
func (z *zkMembership) Snapshot() any         { return z.m.Snapshot() }

func (z *zkMembership) Close() {
	z.m.Close()
	<-z.done
}

// zkClaim is a Lease as a Claim.
type zkClaim struct{ *Lease }

func (c zkClaim) Written() Mark { return c.Lease.Written() }

func (c zkClaim) Resumes(earlier Mark) bool {
	w, ok := earlier.(NodeVersion)
	return ok && w.Unchanged(c.Lease.Found())
}

// Live is false once the lease is fenced: its session's epoch ended or a
// check of its nodes failed. A revoked or closed lease stays live while the
// engine drains it.
func (c zkClaim) Live() bool {
	return c.ep.live() && !errors.Is(context.Cause(c.ctx), ErrFenced)
}

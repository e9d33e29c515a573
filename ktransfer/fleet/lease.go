package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// Lease is the ownership of one partition, from the moment the member created
// (or adopted) its owner node and claimed its offset node until the engine calls
// Release. At most one lease per partition exists in the whole fleet at any
// moment, counting revoked leases not yet released.
//
// The engine pushes while Context is not done. When it is done, context.Cause
// tells why: ErrRevoked or ErrClosed (drain, make the final Commit, Release) or
// ErrFenced (stop at once; Commit refuses; Release). Its methods are safe for
// concurrent use; Commit, LoadOffset and Release run one at a time.
type Lease struct {
	m          *Member
	p          int32
	ep         *epoch
	ctx        context.Context
	cancel     context.CancelCauseFunc
	ownerPath  string
	offsetPath string
	czxid      int64 // creation zxid of our owner node
	acquired   time.Time

	mu            sync.Mutex
	ownerVersion  int32 // data version of the owner node after the claim
	offsetVersion int32 // data version of the offset node, -1 while it does not exist
	last          int64 // offset the node holds, when hasLast
	hasLast       bool
	resync        bool // a write's outcome is unknown: read the nodes again first
	lost          bool // a check failed: someone else owns the partition
	released      bool
	found         NodeVersion // the offset node when the claim read it
	written       NodeVersion // the offset node after this lease's last known write
}

// NodeVersion identifies one state of a partition's offset node: the ZooKeeper
// transaction that last wrote it, its data version and the offset it holds. The
// zero NodeVersion means unknown (or, from Found, no node).
type NodeVersion struct {
	zxid    int64
	version int32
	offset  int64
	// pending: a write of offset whose outcome is unknown was made on top of
	// the state zxid names; if it happened, the node is at version holding
	// offset.
	pending bool
}

// IsZero tells whether the version is unknown.
func (v NodeVersion) IsZero() bool { return v.zxid == 0 }

// String shows the version for logs.
func (v NodeVersion) String() string {
	if v.zxid == 0 {
		return "unknown"
	}
	s := fmt.Sprintf("zxid 0x%x, version %d, offset %d", v.zxid, v.version, v.offset)
	if v.pending {
		s += " (a write of unknown outcome after it)"
	}
	return s
}

// Unchanged tells whether found — a later lease's Found — is still the node as
// v — an earlier lease's Written — left it: nobody else wrote it in between. A
// write whose outcome was unknown counts as this lease's when the node shows its
// exact result (the version it would have made, holding its offset): any other
// writer takes the partition first, and that claim bumps the version again.
func (v NodeVersion) Unchanged(found NodeVersion) bool {
	if v.IsZero() || found.IsZero() {
		return false
	}
	if found.zxid == v.zxid {
		return true
	}
	return v.pending && found.version == v.version && found.offset == v.offset
}

// Found returns the offset node as the claim found it when the member took the
// partition, before the claim rewrote it: with an earlier lease's Written, it
// tells whether anyone wrote the node after that lease (NodeVersion.Unchanged).
// Zero when the node did not exist.
func (l *Lease) Found() NodeVersion {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.found
}

// Written returns the offset node as this lease last wrote it (the claim's
// rewrite or a Commit), including a last write whose outcome is unknown. Zero
// when unknown.
func (l *Lease) Written() NodeVersion {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

// Partition returns the leased partition.
func (l *Lease) Partition() int32 { return l.p }

// Context is done when the lease is revoked; context.Cause returns ErrRevoked,
// ErrFenced or ErrClosed.
func (l *Lease) Context() context.Context { return l.ctx }

// Acquired returns when the member took the partition.
func (l *Lease) Acquired() time.Time { return l.acquired }

// String names the lease for logs.
func (l *Lease) String() string {
	return fmt.Sprintf("%s/%s/%d", l.m.group, l.m.topic, l.p)
}

// LoadOffset reads the partition's committed offset: ok is false when no offset
// node exists yet (the engine then chooses the initial offset and Commits it, so
// the node exists from the first ownership on). A node that does not hold a
// decimal offset is logged and reported as missing, so the partition starts from
// the initial offset instead of stalling. The error wraps ErrNotOwner when the
// lease no longer owns the partition (for instance someone else wrote the node),
// ErrNoSession while ZooKeeper is unreachable.
func (l *Lease) LoadOffset() (off int64, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ownedLocked(); err != nil {
		return 0, false, fmt.Errorf("load offset %s: %w", l, err)
	}
	if err := l.connectedLocked(); err != nil {
		return 0, false, fmt.Errorf("load offset %s: %w", l, err)
	}
	if l.resync {
		if err := l.resyncLocked(); err != nil {
			return 0, false, fmt.Errorf("load offset %s: %w", l, err)
		}
	}
	data, st, err := l.m.sess.conn.Get(l.offsetPath)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		if l.offsetVersion >= 0 {
			return 0, false, fmt.Errorf("load offset %s: %w", l, l.loseLocked("the offset node was deleted by someone else"))
		}
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("load offset %s: read %s: %w", l, l.offsetPath, err)
	case st.Version != l.offsetVersion:
		return 0, false, fmt.Errorf("load offset %s: %w", l, l.loseLocked(fmt.Sprintf("the offset node was written by someone else (version %d, want %d)", st.Version, l.offsetVersion)))
	}
	off, err = zkconsumers.DecodeOffset(data)
	if err != nil {
		l.m.log.Warn("offset node is unreadable; starting as if no offset had been committed", "partition", l.p, "path", l.offsetPath, "err", err)
		l.hasLast = false
		return 0, false, nil
	}
	l.last, l.hasLast = off, true
	return off, true, nil
}

// Commit writes off as the partition's committed offset (the next offset to
// push), unless it equals the offset the node already holds. The write is one
// ZooKeeper multi-operation that checks the owner node and the offset node are
// still as this lease left them, so a previous or fenced owner never overwrites
// the current owner's offset. Commit works on a revoked lease (the final commit
// before Release) but not on a fenced or released one. The error wraps
// ErrNotOwner when the lease no longer owns the partition (then its context is
// cancelled with ErrFenced and nothing was written), ErrNoSession while
// ZooKeeper is unreachable; other errors are ZooKeeper failures whose write may
// or may not have happened, and the next Commit sorts that out.
//
// Throttling is the caller's job: every write is seen by every watcher.
func (l *Lease) Commit(off int64) error {
	if off < 0 {
		return fmt.Errorf("commit offset %s: negative offset %d", l, off)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.ownedLocked(); err != nil {
		return fmt.Errorf("commit offset %s at %d: %w", l, off, err)
	}
	if l.hasLast && l.last == off && !l.resync {
		return nil
	}
	if err := l.connectedLocked(); err != nil {
		return fmt.Errorf("commit offset %s at %d: %w", l, off, err)
	}
	if l.resync {
		if err := l.resyncLocked(); err != nil {
			return fmt.Errorf("commit offset %s at %d: %w", l, off, err)
		}
		if l.hasLast && l.last == off {
			return nil
		}
	}
	data := zkconsumers.EncodeOffset(off)
	ops := []any{&zk.CheckVersionRequest{Path: l.ownerPath, Version: l.ownerVersion}}
	if l.offsetVersion < 0 {
		ops = append(ops, &zk.CreateRequest{Path: l.offsetPath, Data: data, Acl: l.m.acl, Flags: zk.FlagPersistent})
	} else {
		ops = append(ops, &zk.SetDataRequest{Path: l.offsetPath, Data: data, Version: l.offsetVersion})
	}
	res, err := l.m.sess.conn.Multi(ops...)
	switch {
	case err == nil:
		if len(res) == 2 && res[1].Stat != nil {
			l.offsetVersion = res[1].Stat.Version
			l.written = NodeVersion{zxid: res[1].Stat.Mzxid, version: l.offsetVersion, offset: off}
		} else {
			// Created: version 0. A create answers no stat; while the owner
			// node is unchanged nobody else can have written the node since,
			// so its stat now is the stat of this write.
			l.offsetVersion = 0
			l.written = NodeVersion{}
			if ok, st, err := l.m.sess.conn.Exists(l.offsetPath); err == nil && ok && st.Version == 0 {
				l.written = NodeVersion{zxid: st.Mzxid, offset: off}
			}
		}
		l.last, l.hasLast = off, true
		return nil
	case checkFailed(err):
		return fmt.Errorf("commit offset %s at %d: %w", l, off, l.loseLocked(fmt.Sprintf("ZooKeeper's check failed: %v", err)))
	default:
		l.resync = true
		if l.offsetVersion >= 0 && !l.written.IsZero() {
			l.written.pending, l.written.version, l.written.offset = true, l.offsetVersion+1, off
		}
		return fmt.Errorf("commit offset %s at %d: %w", l, off, err)
	}
}

// Release hands the partition back: the member deletes the owner node (when the
// session still holds it) so the next owner can take the partition, and may give
// this process a new lease for it later. The engine calls Release exactly once
// per lease, after it stopped pushing and made its final Commit; until then the
// partition stays with this process, also when the lease was revoked. Release
// waits for the deletion until ctx ends; the deletion happens either way. Later
// calls do nothing.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	l.mu.Unlock()
	l.cancel(ErrRevoked)
	done := l.m.enqueueRelease(l)
	select {
	case <-done:
		return nil
	case <-l.m.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("release %s: %w", l, context.Cause(ctx))
	}
}

// revoke cancels the lease's context; a cause set earlier stays.
func (l *Lease) revoke(cause error) { l.cancel(cause) }

// ownedLocked tells whether the lease still entitles its holder to the partition.
func (l *Lease) ownedLocked() error {
	switch {
	case l.released:
		return fmt.Errorf("%w: lease released", ErrNotOwner)
	case l.lost:
		return fmt.Errorf("%w: ownership lost", ErrNotOwner)
	case !l.ep.live():
		return fmt.Errorf("%w: fenced (%v)", ErrNotOwner, context.Cause(l.ep.ctx))
	}
	return nil
}

// connectedLocked tells whether ZooKeeper can be asked now, in the lease's session.
func (l *Lease) connectedLocked() error {
	if l.m.sess.live() != l.ep {
		return fmt.Errorf("%w: %s", ErrNoSession, l.m.sess.State())
	}
	return nil
}

// resyncLocked reads the owner and offset nodes again after a write whose outcome
// is unknown. The owner node must still be ours and unchanged; then nobody else
// wrote the offset node since our claim, so whatever it holds is our own write.
func (l *Lease) resyncLocked() error {
	conn := l.m.sess.conn
	_, st, err := conn.Get(l.ownerPath)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return l.loseLocked("the owner node is gone")
	case err != nil:
		return fmt.Errorf("read %s: %w", l.ownerPath, err)
	case st.Czxid != l.czxid || st.EphemeralOwner != l.ep.id || st.Version != l.ownerVersion:
		return l.loseLocked("the owner node was replaced")
	}
	data, st, err := conn.Get(l.offsetPath)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		l.offsetVersion, l.hasLast = -1, false
	case err != nil:
		return fmt.Errorf("read %s: %w", l.offsetPath, err)
	default:
		l.offsetVersion = st.Version
		off, err := zkconsumers.DecodeOffset(data)
		l.last, l.hasLast = off, err == nil
		l.written = NodeVersion{zxid: st.Mzxid, version: st.Version, offset: off}
	}
	l.resync = false
	return nil
}

// loseLocked marks the lease as no longer owning the partition and cancels it
// with ErrFenced. It returns the error for the caller.
func (l *Lease) loseLocked(reason string) error {
	if !l.lost {
		l.lost = true
		l.m.log.Warn("partition ownership lost: stop pushing it", "partition", l.p, "reason", reason)
		l.cancel(ErrFenced)
		l.m.nudge()
	}
	return fmt.Errorf("%w: %s", ErrNotOwner, reason)
}

// checkFailed tells whether a multi-operation failed on one of its checks, as
// opposed to a connection problem.
func checkFailed(err error) bool {
	return errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists)
}

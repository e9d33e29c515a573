package kgroup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/commitmeta"
)

// Claim is one partition the coordinator assigned to this member, from the
// moment the member hands it to the engine until the engine releases it; it
// implements fleet.Claim. The member makes a new claim for a partition only
// once the previous one is released.
type Claim struct {
	m         *Member
	p         int32
	memberID  string // the member the coordinator assigned the partition to
	ctx       context.Context
	cancel    context.CancelCauseFunc
	released  chan struct{} // closed by Release (or when dropped undelivered)
	relOnce   sync.Once
	delivered atomic.Bool
	fenced    atomic.Bool

	mu      sync.Mutex // one LoadOffset or Commit at a time
	found   mark       // the committed offset LoadOffset read
	written mark       // the last commit of this claim
}

// mark is a committed offset with the metadata its commit carried: the
// metadata names the instance and the millisecond, so an equal mark means
// nobody committed since.
type mark struct {
	offset int64
	meta   string
}

// IsZero tells whether the mark is unknown.
func (k mark) IsZero() bool { return k.meta == "" }

func (m *Member) newClaim(p int32, memberID string) *Claim {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Claim{m: m, p: p, memberID: memberID, ctx: ctx, cancel: cancel, released: make(chan struct{})}
}

// Partition returns the claimed partition.
func (c *Claim) Partition() int32 { return c.p }

// Context is done when the partition is revoked (fleet.ErrRevoked, or
// fleet.ErrClosed when the member leaves) or fenced (fleet.ErrFenced).
func (c *Claim) Context() context.Context { return c.ctx }

// Live is false once the claim is fenced, and as soon as the coordinator has
// answered no heartbeat for 2/3 of the session timeout (which fences every
// claim of the member).
func (c *Claim) Live() bool {
	if c.fenced.Load() {
		return false
	}
	if c.m.overdue() {
		c.m.checkSilence()
		return false
	}
	return true
}

// fenceNow fences the claim: it refuses to commit from now on and its context
// ends with fleet.ErrFenced unless it ended before. It reports whether the
// claim was live.
func (c *Claim) fenceNow() bool {
	if c.fenced.Swap(true) {
		return false
	}
	c.cancel(fleet.ErrFenced)
	return true
}

// fenceWait fences the claim once a commit in flight has ended.
func (c *Claim) fenceWait(reason string) {
	c.mu.Lock()
	fenced := c.fenceNow()
	c.mu.Unlock()
	if fenced {
		c.m.setErr(fmt.Errorf("partition %d fenced: %s", c.p, reason))
	}
}

func (c *Claim) markReleased() { c.relOnce.Do(func() { close(c.released) }) }

func (c *Claim) isReleased() bool {
	select {
	case <-c.released:
		return true
	default:
		return false
	}
}

// stateErr is ownedLocked without the lock, for the committer.
func (c *Claim) stateErr() error { return c.ownedLocked() }

// ownedLocked tells whether the claim may still read and commit.
func (c *Claim) ownedLocked() error {
	switch {
	case c.isReleased():
		return fmt.Errorf("%w: claim released", fleet.ErrNotOwner)
	case c.fenced.Load():
		return fmt.Errorf("%w: fenced (%v)", fleet.ErrNotOwner, context.Cause(c.ctx))
	}
	return nil
}

// LoadOffset reads the partition's committed offset in the group. Without
// one, Config.Import is asked (the ZooKeeper offset of a module moving to
// Kafka), and the import is logged.
func (c *Claim) LoadOffset() (int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ownedLocked(); err != nil {
		return 0, false, fmt.Errorf("load offset of partition %d: %w", c.p, err)
	}
	cl := c.m.cl.Load()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	topic := c.m.cfg.Topic
	resps, err := kadm.NewClient(cl).FetchOffsetsForTopics(ctx, c.m.cfg.Group, topic)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		err, _ = classify(err)
		return 0, false, fmt.Errorf("load offset of partition %d from group %s: %w", c.p, c.m.cfg.Group, err)
	}
	if r, ok := resps.Lookup(topic, c.p); ok && r.At >= 0 {
		c.found = mark{offset: r.At, meta: r.Metadata}
		return r.At, true, nil
	}
	c.found = mark{}
	if c.m.cfg.Import == nil {
		return 0, false, nil
	}
	off, ok, err := c.m.cfg.Import(ctx, c.p)
	if err != nil {
		return 0, false, fmt.Errorf("load offset of partition %d: no offset in group %s, and the import failed: %w", c.p, c.m.cfg.Group, err)
	}
	if ok {
		c.m.log.Info("no committed offset in the consumer group: starting from the imported ZooKeeper offset", "partition", c.p, "offset", off)
	}
	return off, ok, nil
}

// Commit commits off to the group with the member's generation or epoch and
// metadata naming the instance and the time. A refusal by Kafka fences every
// claim of the member; see fleet.Claim.
func (c *Claim) Commit(off int64) error {
	if off < 0 {
		return fmt.Errorf("commit offset of partition %d: negative offset %d", c.p, off)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ownedLocked(); err != nil {
		return fmt.Errorf("commit offset of partition %d at %d: %w", c.p, off, err)
	}
	if !c.Live() {
		return fmt.Errorf("commit offset of partition %d at %d: %w: the group coordinator has been silent too long", c.p, off, fleet.ErrNotOwner)
	}
	meta := commitmeta.Meta{Instance: c.m.cfg.Instance, Time: time.Now()}.Encode()
	if err := c.m.commit(c, off, meta); err != nil {
		return fmt.Errorf("commit offset of partition %d at %d: %w", c.p, off, err)
	}
	c.written = mark{offset: off, meta: meta}
	return nil
}

// Release hands the partition back; see fleet.Claim.
func (c *Claim) Release(context.Context) error {
	first := false
	c.relOnce.Do(func() {
		first = true
		close(c.released)
	})
	if first {
		c.cancel(fleet.ErrRevoked)
		c.m.released(c)
	}
	return nil
}

// Written returns the claim's last commit.
func (c *Claim) Written() fleet.Mark {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}

// Resumes tells whether the committed offset LoadOffset found is earlier's
// commit, metadata included.
func (c *Claim) Resumes(earlier fleet.Mark) bool {
	e, ok := earlier.(mark)
	c.mu.Lock()
	defer c.mu.Unlock()
	return ok && !e.IsZero() && e == c.found
}

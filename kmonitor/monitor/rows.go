package monitor

import (
	"cmp"
	"slices"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
)

// sharedRows returns the cluster's current rows, computed from the source's
// latest view and the last polled log offsets, shared between the answers
// rendered from one state: rows computed from the current state at most
// secondsMaxAge ago (their time lags that old) are reused. Callers must not
// modify them.
// (Each answer computing its own rows costs 14 MB at 80,000 partitions.)
func (c *cluster) sharedRows(now time.Time) []PartitionLag {
	token := c.token() // before the state is read: rows newer than it only cost a recomputation
	snap := c.src.Snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shared.rows != nil && c.shared.token == token && now.Sub(c.shared.at) <= secondsMaxAge && !now.Before(c.shared.at) {
		return c.shared.rows
	}
	rows := c.rowsLocked(snap, now)
	c.shared.rows, c.shared.token, c.shared.at = rows, token, now
	return rows
}

// rowsLocked computes the rows. Every partition with an offset or owner node is a
// row, and so is every partition of a topic a group has a directory for (without
// an offset node it has no commit yet). c.mu is held.
func (c *cluster) rowsLocked(snap *committed.Snapshot, now time.Time) []PartitionLag {
	parts := snap.Parts
	keys := c.keysLocked(snap)
	a := rowArena{nums: make([]int64, 0, 3*len(keys)), times: make([]time.Time, 0, len(parts))}
	live := c.connected()
	rows := make([]PartitionLag, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, c.rowLocked(k, parts[k], live, now, &a))
	}
	return rows
}

// keysLocked lists the module partitions rows are computed for, sorted by
// module, topic and partition number; the list is shared until ZooKeeper or a
// partition count changes, and must not be modified. c.mu is held.
func (c *cluster) keysLocked(snap *committed.Snapshot) []committed.Key {
	if c.keys == nil || snap.Version != c.keysVersion || c.countsVersion != c.keysCounts {
		c.keys = listKeys(snap.Parts, snap.Topics, c.counts)
		c.keysVersion, c.keysCounts = snap.Version, c.countsVersion
	}
	return c.keys
}

// listKeys lists the module partitions of parts and gts, sorted.
func listKeys(parts map[committed.Key]committed.Part, gts []committed.GroupTopic, counts map[string]int32) []committed.Key {
	// Every partition of a group topic is a row, then every other partition
	// with a node: one with a number past the topic's count, or of a topic
	// whose directory is gone.
	counted := make(map[committed.GroupTopic]int32, len(gts))
	n := 0
	for _, gt := range gts {
		counted[gt] = counts[gt.Topic]
		n += int(counts[gt.Topic])
	}
	for k := range parts {
		if k.Partition >= counted[committed.GroupTopic{Group: k.Group, Topic: k.Topic}] {
			n++
		}
	}
	keys := make([]committed.Key, 0, n)
	for _, gt := range gts {
		for p := range counted[gt] {
			keys = append(keys, committed.Key{Group: gt.Group, Topic: gt.Topic, Partition: p})
		}
	}
	for k := range parts {
		if k.Partition >= counted[committed.GroupTopic{Group: k.Group, Topic: k.Topic}] {
			keys = append(keys, k)
		}
	}
	// Sorting the keys, not the rows, moves a fifth of the bytes.
	slices.SortFunc(keys, func(a, b committed.Key) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return keys
}

// rowArena holds the values rows point to, so a row costs no allocation of its
// own.
type rowArena struct {
	nums  []int64
	times []time.Time
}

func (a *rowArena) num(v int64) *int64 {
	a.nums = append(a.nums, v)
	return &a.nums[len(a.nums)-1]
}

func (a *rowArena) time(v time.Time) *time.Time {
	a.times = append(a.times, v)
	return &a.times[len(a.times)-1]
}

// rowLocked computes the row of k from what the source says of it (p) and the
// last poll; live says whether the source is reachable. c.mu is held.
func (c *cluster) rowLocked(k committed.Key, p committed.Part, live bool, now time.Time, a *rowArena) PartitionLag {
	tp := topicPart{k.Topic, k.Partition}
	e, known := c.logs[tp]
	j := c.judged[k] // the zero value before the first poll: OK
	r := PartitionLag{
		Cluster:   c.name,
		Module:    k.Group,
		Topic:     k.Topic,
		Partition: k.Partition,
		NoCommit:  !p.HasCommit,
		Owner:     p.Owner,
		Stale:     !live || !known || !e.fresh || !c.polled,
		Status:    j.status,
	}
	if known {
		r.LogStart, r.LogEnd = a.num(e.start), a.num(e.end)
	}
	if !p.HasCommit {
		return r
	}
	r.Committed = a.num(p.Offset)
	r.LastCommit = a.time(p.CommitTime.UTC())
	if !known {
		return r
	}
	r.pos, r.OutOfRange = position(p.Offset, e.logOffsets, c.aboveEnd[k].confirmed(p.Offset))
	r.Lag = max(0, e.end-r.pos)
	if r.Lag > 0 {
		ts, read := c.tsCache[tsKey{tp, r.pos}]
		r.TimeLagSeconds = timeLag(now, ts, read, j.timeLag)
	}
	return r
}

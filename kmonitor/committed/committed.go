// Package committed is what kmonitor's core reads from an offset source: per
// module partition (consumer group, topic, partition) the committed offset,
// when it was committed and which instance owns the partition, and per group
// the topics it consumes. It holds no I/O: a Source fills a State, and the
// core reads the State's Snapshots.
//
// A Source is one way of learning committed offsets. The first is the
// ZooKeeper watcher (package zkwatch), which follows the Kafka 0.8 consumer
// layout under {chroot}/consumers through watches. A second one — committed
// offsets Kafka itself keeps for consumer groups — is one new package beside
// it implementing the same interface: list the groups (ListGroups) that its
// Filter admits, read their offsets (OffsetFetch) into State.Update with the
// commit's time, name each partition's owner from the member it is assigned to
// (DescribeGroups; a group without members has no owner, so its lagging
// partitions turn STOP), and report each group's topics with State.AddTopic.
// The core then needs no change beyond choosing the source for a cluster
// section.
package committed

import (
	"context"
	"time"
)

// Key names one module partition: a consumer group's view of one Kafka
// partition.
type Key struct {
	Group     string
	Topic     string
	Partition int32
}

// Part is what a source says about one module partition. The zero value is a
// partition nobody committed or owns.
type Part struct {
	// Offset is the committed offset, the next record to push; valid when
	// HasCommit.
	Offset    int64
	HasCommit bool
	// CommitTime is when the offset was last committed.
	CommitTime time.Time
	// Owner names the instance holding the partition; "" = none.
	Owner string
}

// GroupTopic names a topic a group consumes. Every partition of such a topic
// is a module partition, committed or not.
type GroupTopic struct{ Group, Topic string }

// Snapshot is a State at one version. Snapshots are shared between readers:
// nobody modifies one.
type Snapshot struct {
	// Parts are the module partitions with a commit or an owner.
	Parts map[Key]Part
	// Topics are the topics the groups consume, in no order.
	Topics []GroupTopic
	// Version is the State's version the snapshot was taken at.
	Version uint64
}

// Source keeps the committed offsets of one cluster current. Its methods are
// safe for concurrent use.
type Source interface {
	// Run keeps the source's State current until ctx ends, then closes its
	// clients; it returns when its goroutines have. Errors never end it: the
	// values read before stay until a successful read replaces them.
	Run(ctx context.Context)
	// Snapshot returns the current view, shared until it changes.
	Snapshot() *Snapshot
	// Version returns a number that changes whenever the view does; it is
	// cheap enough to call on every request.
	Version() uint64
	// Added receives a signal, without blocking the source, when a partition
	// or a group's topic appears, so the core reads its log offsets at once
	// rather than a poll interval later.
	Added() <-chan struct{}
	// Err returns nil while the source is reachable, else why not (its view
	// then holds the last values known, which the core marks stale). It suits
	// a readiness check.
	Err() error
	// Close closes the source's clients, for a source that never ran; safe to
	// call twice.
	Close()
}

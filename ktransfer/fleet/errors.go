package fleet

import "errors"

// The errors below are the causes and failures of every Claim, whichever store
// keeps the fleet's offsets: the ZooKeeper layout of this package or a Kafka
// consumer group (package kgroup).

// ErrRevoked is the cause of a claim's context when the partition moves to another
// instance (instances joined or left, the topic grew) or the engine released it.
// The engine drains, makes its final Commit and calls Release.
var ErrRevoked = errors.New("fleet: partition revoked for a rebalance")

// ErrFenced is the cause of a claim's context when the process can no longer be
// sure it owns the partition. ZooKeeper: its session expired, ZooKeeper has not
// answered for 2/3 of the session timeout, or a Commit found the owner or offset
// node changed by someone else. Kafka: the group coordinator has not answered a
// heartbeat for 2/3 of the session timeout, the member was removed from the
// group, or the coordinator refused a commit of the member's generation or
// epoch. Pushing must stop at once; Commit refuses every write of the claim.
// The engine still calls Release.
var ErrFenced = errors.New("fleet: ownership lost (fenced)")

// ErrClosed is the cause of a claim's context when the membership is closed
// (shutdown). The engine drains, makes its final Commit and calls Release.
var ErrClosed = errors.New("fleet: closed")

// ErrNotOwner is returned (wrapped) by Commit and LoadOffset when the claim no
// longer entitles the process to the partition: it was released or fenced, or
// the store refused the write (ZooKeeper's check of the owner and offset nodes
// failed; Kafka refused the member's generation or epoch). Nothing was written.
var ErrNotOwner = errors.New("fleet: not the owner of the partition")

// ErrNoSession is returned (wrapped) by Commit and LoadOffset while the store
// cannot be asked but the claim is not fenced yet (the ZooKeeper connection is
// down; the Kafka group coordinator does not answer or is moving), and by
// Session.Err while there is no usable ZooKeeper session. It is transient: try
// again later.
var ErrNoSession = errors.New("fleet: no session with the offset store")

// ErrForeignACL is returned (wrapped, with zk.ErrNoAuth) by SecureGroup and by a
// Member with credentials when a node of its module carries an ACL its
// credentials may not change (or not even read): another tenant's module of the
// same name, or one protected with other credentials. The error names the node.
var ErrForeignACL = errors.New("fleet: module node protected by other ZooKeeper credentials")

package fleet

import "errors"

// ErrRevoked is the cause of a lease's context when the partition moves to another
// instance (instances joined or left, the topic grew) or the engine released it.
// The engine drains, makes its final Commit and calls Release.
var ErrRevoked = errors.New("fleet: partition revoked for a rebalance")

// ErrFenced is the cause of a lease's context when the process can no longer be
// sure it owns the partition: its ZooKeeper session expired, ZooKeeper has not
// answered for 2/3 of the session timeout, or a Commit found the owner or offset
// node changed by someone else. Pushing must stop at once; Commit refuses every
// write of the lease. The engine still calls Release.
var ErrFenced = errors.New("fleet: ownership lost (ZooKeeper session expired or unreachable)")

// ErrClosed is the cause of a lease's context when the Member or the Session is
// closed (shutdown). The engine drains, makes its final Commit and calls Release.
var ErrClosed = errors.New("fleet: closed")

// ErrNotOwner is returned (wrapped) by Commit and LoadOffset when the lease no
// longer entitles the process to the partition: it was released, fenced, or
// ZooKeeper's check of the owner and offset nodes failed. Nothing was written.
var ErrNotOwner = errors.New("fleet: not the owner of the partition")

// ErrNoSession is returned (wrapped) by Commit and LoadOffset while the ZooKeeper
// connection is down but the lease is not fenced yet, and by Session.Err while
// there is no usable session. It is transient: try again later.
var ErrNoSession = errors.New("fleet: no ZooKeeper session")

// ErrForeignACL is returned (wrapped, with zk.ErrNoAuth) by SecureGroup and by a
// Member with credentials when a node of its module carries an ACL its
// credentials may not change (or not even read): another tenant's module of the
// same name, or one protected with other credentials. The error names the node.
var ErrForeignACL = errors.New("fleet: module node protected by other ZooKeeper credentials")

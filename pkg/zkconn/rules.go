package zkconn

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/config"
)

// Bounds of the timeout settings, in milliseconds. The daemons once differed
// (kproxy's zk_timeout_ms started at 100): a session below one second buys
// nothing — ZooKeeper grants at least two ticks, two seconds by default — and
// makes the client ping every few milliseconds.
const (
	MinSessionTimeoutMs = 1000
	MaxSessionTimeoutMs = 600000
	MinConnectTimeoutMs = 10
	MaxConnectTimeoutMs = 600000
)

// Settings are a daemon's ZooKeeper settings with the keys its file gives
// them (kproxy and ktransfer: zk_hosts, zk_chroot, zk_timeout_ms; kmonitor:
// CLUSTER.zk_hosts, CLUSTER.chroot, CLUSTER.zk_session_timeout_ms,
// CLUSTER.zk_connect_timeout_ms). A setting whose key is "" is one the daemon
// does not have and is not checked.
type Settings struct {
	HostsKey string
	// Hosts is the ensemble, HOST:PORT each. Whether it may be empty is the
	// daemon's to say (ZooKeeper is optional for kproxy).
	Hosts []string

	ChrootKey string
	// Chroot prefixes every path; see CheckChroot.
	Chroot string

	SessionTimeoutKey string
	// SessionTimeoutMs is the session timeout requested, in
	// MinSessionTimeoutMs..MaxSessionTimeoutMs.
	SessionTimeoutMs int

	ConnectTimeoutKey string
	// ConnectTimeoutMs bounds one TCP connection attempt, in
	// MinConnectTimeoutMs..MaxConnectTimeoutMs.
	ConnectTimeoutMs int
}

// Check records in f a problem, "FILE: KEY: VALUE RULE", for every setting that
// breaks its rule: a host that is not HOST:PORT, a chroot CheckChroot refuses,
// a timeout out of its bounds.
func (s Settings) Check(f *config.File) {
	if s.HostsKey != "" {
		f.HostPort(s.HostsKey, s.Hosts)
	}
	if s.ChrootKey != "" {
		if err := CheckChroot(s.Chroot); err != nil {
			f.Problem(s.ChrootKey, s.Chroot, err.Error())
		}
	}
	if s.SessionTimeoutKey != "" {
		f.Range(s.SessionTimeoutKey, int64(s.SessionTimeoutMs), MinSessionTimeoutMs, MaxSessionTimeoutMs)
	}
	if s.ConnectTimeoutKey != "" {
		f.Range(s.ConnectTimeoutKey, int64(s.ConnectTimeoutMs), MinConnectTimeoutMs, MaxConnectTimeoutMs)
	}
}

// CheckNodeName returns an error when s cannot be the name of one ZooKeeper node,
// by the server's own rules: not empty, not "." or "..", no '/', valid UTF-8
// without NUL, control characters (U+0001..U+001F, U+007F..U+009F), characters of
// the private-use and surrogate ranges (U+D800..U+F8FF), U+FFF0..U+FFFF, or
// characters beyond U+FFFF (ZooKeeper's Java server refuses all of these). The
// message states the rule, for configuration checks to append to key and value.
func CheckNodeName(s string) error {
	switch {
	case s == "":
		return errors.New("is empty (it names a ZooKeeper node)")
	case s == "." || s == "..":
		return errors.New("is not a ZooKeeper node name (\".\" and \"..\" are not allowed)")
	case strings.Contains(s, "/"):
		return errors.New("must not contain '/' (it names one ZooKeeper node)")
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8 (it names a ZooKeeper node)")
	}
	for _, r := range s {
		if r == 0 || r <= 0x1f || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0 {
			return fmt.Errorf("contains %U, which ZooKeeper does not allow in a node name (control, private-use or non-BMP character)", r)
		}
	}
	return nil
}

// CheckChroot returns an error when chroot cannot prefix ZooKeeper paths: every
// part between slashes must be a node name by CheckNodeName ("." and ".." are
// refused rather than resolved). Empty parts (a missing leading slash, a
// trailing or doubled slash, an empty chroot) are tolerated: the paths are built
// with them removed (zkconsumers.New), so "", "/" and "mq/x/" mean "/", "/" and
// "/mq/x". This is the one chroot rule of the three daemons; kmonitor's chroot
// once had to start with "/" instead, a rule no part of the path needed.
func CheckChroot(chroot string) error {
	for _, part := range strings.Split(chroot, "/") {
		if part == "" {
			continue
		}
		if err := CheckNodeName(part); err != nil {
			return fmt.Errorf("has the part %q, which %w", part, err)
		}
	}
	return nil
}

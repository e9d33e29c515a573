// Package testcluster starts throwaway Kafka (in-process kfake, or devbroker
// in a process of its own) and ZooKeeper (the real server) for tests, on free
// loopback ports, and stops them when the test ends. It also creates and
// reads topics, writes and removes ZooKeeper trees, and puts a Proxy between
// a client and a server that can cut the client off.
//
// Every helper takes a testing.TB, registers its own t.Cleanup and fails the
// test (never skips it) when something it needs is missing. Each call gets its
// own ports and data directory, so tests in parallel and test binaries of
// different packages running at the same time do not interfere.
package testcluster

import (
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka starts an in-process kfake cluster and closes it when the test ends.
//
// The cluster has one broker unless opts say otherwise (kfake.NumBrokers, and
// any other kfake option, are applied after the defaults). kfake listens on
// 127.0.0.1 on random free ports; callers should not pass a kfake.ListenFn
// that binds anything else. Topics are not auto-created unless opts include
// kfake.AllowAutoTopicCreation.
func Kafka(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	all := append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("testcluster: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Brokers returns the host:port of every broker of c, for kgo.SeedBrokers or
// a daemon's broker list.
func Brokers(c *kfake.Cluster) []string {
	return c.ListenAddrs()
}

// HoldProduces makes c hold every produce request from now on until release
// is called (also when the test ends); then the held requests and those after
// them are handled as usual. held receives a value for each request held
// (up to 64 unread), so a test can wait until a write is stuck in Kafka.
func HoldProduces(tb testing.TB, c *kfake.Cluster) (held <-chan struct{}, release func()) {
	tb.Helper()
	gate := make(chan struct{})
	ch := make(chan struct{}, 64)
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	tb.Cleanup(release)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case ch <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-gate })
		return nil, nil, false // not handled: the control stays, and the broker answers
	})
	return ch, release
}

package testcluster

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicTimeout bounds CreateTopic and ReadTopic.
const topicTimeout = 15 * time.Second

// CreateTopic creates topic with partitions (replication factor 1) on the
// cluster of brokers. It fails the test on any error, the topic existing
// already among them.
func CreateTopic(tb testing.TB, brokers []string, topic string, partitions int32) {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), topicTimeout)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("testcluster: create topic %s: %v", topic, err)
	}
}

// ReadTopic reads topic from the start of every partition on the cluster of
// brokers until it has at least n records, and returns them in the order they
// were fetched (offset order within a partition). It fails the test when
// fewer than n arrive within 15 s.
func ReadTopic(tb testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		tb.Fatalf("testcluster: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), topicTimeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("testcluster: read %d of %d records of %s", len(out), n, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

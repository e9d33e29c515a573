package partition

import "github.com/twmb/franz-go/pkg/kgo"

// Kgo returns a franz-go partitioner that places every record with a
// non-empty key on f(key, n), n being the number of partitions the client
// offers, and spreads records with a nil or empty key with kgo's sticky
// strategy: one random partition until its batch is full, then another.
//
// Unlike kgo.StickyKeyPartitioner, which hashes any non-nil key, an empty
// non-nil key counts as no key here, matching the HTTP API where an absent
// and an empty key parameter mean the same thing. Keyed records require
// consistency: they wait for their partition rather than move to another.
//
// The returned partitioner is safe for concurrent use; kgo serialises calls
// to each per-topic partitioner as its contract requires.
func Kgo(f Func) kgo.Partitioner {
	return &kgoPartitioner{f: f, sticky: kgo.StickyPartitioner()}
}

type kgoPartitioner struct {
	f      Func
	sticky kgo.Partitioner
}

// ForTopic implements kgo.Partitioner.
func (p *kgoPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	tp := &kgoTopicPartitioner{f: p.f, sticky: p.sticky.ForTopic(topic)}
	tp.onNewBatch, _ = tp.sticky.(kgo.TopicPartitionerOnNewBatch)
	return tp
}

type kgoTopicPartitioner struct {
	f          Func
	sticky     kgo.TopicPartitioner
	onNewBatch kgo.TopicPartitionerOnNewBatch
}

// RequiresConsistency implements kgo.TopicPartitioner: keyed records must go
// to their hashed partition even when it is unavailable.
func (p *kgoTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return len(r.Key) > 0
}

// Partition implements kgo.TopicPartitioner.
func (p *kgoTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if len(r.Key) > 0 {
		return int(p.f(r.Key, int32(n)))
	}
	return p.sticky.Partition(r, n)
}

// OnNewBatch implements kgo.TopicPartitionerOnNewBatch, letting the sticky
// choice for unkeyed records move on when a batch fills, as
// kgo.StickyKeyPartitioner does.
func (p *kgoTopicPartitioner) OnNewBatch() {
	if p.onNewBatch != nil {
		p.onNewBatch.OnNewBatch()
	}
}

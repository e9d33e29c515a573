package partition

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKgoKeyedUsesFunc(t *testing.T) {
	for _, name := range Names() {
		f, _ := Lookup(name)
		t.Run(name, func(t *testing.T) {
			tp := Kgo(f).ForTopic("orders")
			for _, k := range randomKeys(t, 500) {
				r := &kgo.Record{Key: k}
				if !tp.RequiresConsistency(r) {
					t.Fatalf("RequiresConsistency(key %x) = false, want true", k)
				}
				for _, n := range []int{1, 3, 12, 64} {
					if got, want := tp.Partition(r, n), int(f(k, int32(n))); got != want {
						t.Fatalf("Partition(key %x, %d) = %d, want %d", k, n, got, want)
					}
				}
			}
		})
	}
}

func TestKgoUnkeyedSticks(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"nil key", nil},
		{"empty key", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A Func that fails the test if it is ever asked about an
			// unkeyed record.
			f := func(key []byte, _ int32) int32 {
				t.Errorf("Func called with key %q, want it only for non-empty keys", key)
				return 0
			}
			tp := Kgo(f).ForTopic("events")
			nb, ok := tp.(kgo.TopicPartitionerOnNewBatch)
			if !ok {
				t.Fatalf("topic partitioner %T does not implement OnNewBatch, want sticky batching", tp)
			}
			r := &kgo.Record{Key: tc.key}
			if tp.RequiresConsistency(r) {
				t.Errorf("RequiresConsistency(%s) = true, want false", tc.name)
			}

			seen := map[int]bool{}
			prev := -1
			for batch := 0; batch < 200; batch++ {
				first := tp.Partition(r, n)
				if first < 0 || first >= n {
					t.Fatalf("Partition = %d, want in [0, %d)", first, n)
				}
				for i := 0; i < 5; i++ {
					if got := tp.Partition(r, n); got != first {
						t.Fatalf("batch %d: Partition = %d, want sticky %d", batch, got, first)
					}
				}
				if first == prev {
					t.Fatalf("batch %d: got partition %d again after OnNewBatch, want a different one", batch, first)
				}
				seen[first] = true
				prev = first
				nb.OnNewBatch()
			}
			if len(seen) != n {
				t.Errorf("got %d distinct partitions over 200 batches, want all %d", len(seen), n)
			}
		})
	}
}

func TestKgoPerTopicState(t *testing.T) {
	p := Kgo(Sarama)
	a, b := p.ForTopic("a"), p.ForTopic("b")
	if a == b {
		t.Fatalf("ForTopic returned the same partitioner for two topics, want one each")
	}
	// Advancing one topic's sticky choice must not disturb the other's.
	r := &kgo.Record{}
	pinned := b.Partition(r, 1000)
	for i := 0; i < 20; i++ {
		a.(kgo.TopicPartitionerOnNewBatch).OnNewBatch()
		a.Partition(r, 1000)
	}
	if got := b.Partition(r, 1000); got != pinned {
		t.Errorf("topic b partition = %d after topic a moved on, want %d", got, pinned)
	}
}

// TestKgoProduce produces through a real client to an in-process broker and
// checks where the records landed.
func TestKgoProduce(t *testing.T) {
	const (
		topic      = "placement"
		partitions = 7
	)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(cluster.Close)

	for _, name := range Names() {
		f, _ := Lookup(name)
		t.Run(name, func(t *testing.T) {
			cl, err := kgo.NewClient(
				kgo.SeedBrokers(cluster.ListenAddrs()...),
				kgo.DefaultProduceTopic(topic),
				kgo.RecordPartitioner(Kgo(f)),
			)
			if err != nil {
				t.Fatalf("new client: %v", err)
			}
			t.Cleanup(cl.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.Cleanup(cancel)

			var recs []*kgo.Record
			for i := 0; i < 50; i++ {
				recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: []byte("v")})
			}
			recs = append(recs, &kgo.Record{Value: []byte("nil key")}, &kgo.Record{Key: []byte{}, Value: []byte("empty key")})
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			for _, r := range recs {
				if len(r.Key) == 0 {
					if r.Partition < 0 || r.Partition >= partitions {
						t.Errorf("unkeyed record in partition %d, want in [0, %d)", r.Partition, partitions)
					}
					continue
				}
				if want := f(r.Key, partitions); r.Partition != want {
					t.Errorf("record %q in partition %d, want %d", r.Key, r.Partition, want)
				}
			}
		})
	}
}

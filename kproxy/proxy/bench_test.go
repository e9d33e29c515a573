package proxy

import (
	"context"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// BenchmarkCommit runs records with 200-byte values and keys through the core as
// a door does (Admit, SetKey, SetValue, Commit, Release), in parallel, against an
// in-process broker at acks=1: allocs/op and B/op show what one record costs the
// core, the Kafka client and the in-process broker together; compare runs of the
// same code base. BenchmarkCommitHandler in kproxy/httpapi adds HTTP's part.
func BenchmarkCommit(b *testing.B) {
	c := testcluster.Kafka(b, kfake.SeedTopics(8, testTopic))
	p, err := New(context.Background(), testConfig(testcluster.Brokers(c)), logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		const keys = 64
		var names [keys]string
		var values [keys][]byte
		for i := range keys {
			names[i] = "k" + strconv.Itoa(i)
			v, err := loadgen.MsgpackBody(200, names[i], uint64(i))
			if err != nil {
				b.Error(err)
				return
			}
			values[i] = v
		}
		ctx := context.Background()
		i := 0
		for pb.Next() {
			i = (i + 1) % keys
			r, err := p.Admit(testTopic)
			if err != nil {
				b.Error(err)
				return
			}
			r.SetKey(names[i])
			if err := r.SetValue(values[i]); err != nil {
				b.Error(err)
				return
			}
			_, err = p.Commit(ctx, r)
			r.Release()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
)

// benchWriter is a reusable http.ResponseWriter that keeps only the status.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(s int)           { w.status = s }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }

// benchBody is a request body that can be read again after rewind.
type benchBody struct {
	b   []byte
	off int
}

func (r *benchBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}
func (r *benchBody) Close() error { return nil }

// BenchmarkCommitHandler runs POST /commit requests with 200-byte msgpack
// bodies and keys through kproxy's HTTP handler, in parallel, against an
// in-process broker at acks=1: ns/op is dominated by the broker and linger_ms,
// allocs/op and B/op show what one request costs the handler, the Kafka client
// and the in-process broker together (compare runs of the same code base).
func BenchmarkCommitHandler(b *testing.B) {
	c := testcluster.Kafka(b, kfake.SeedTopics(8, testTopic))
	cfg := testConfig(testcluster.Brokers(c))
	core, err := proxy.New(context.Background(), cfg, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(core.Close)
	srv, err := New(core, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		const keys = 64
		reqs := make([]*http.Request, keys)
		bodies := make([]*benchBody, keys)
		for i := range reqs {
			key := "k" + strconv.Itoa(i)
			val, err := loadgen.MsgpackBody(200, key, uint64(i))
			if err != nil {
				b.Error(err)
				return
			}
			bodies[i] = &benchBody{b: val}
			r, err := http.NewRequest(http.MethodPost, "/commit?topic="+testTopic+"&acks=1&key="+key, nil)
			if err != nil {
				b.Error(err)
				return
			}
			r.Body, r.ContentLength = bodies[i], int64(len(val))
			reqs[i] = r
		}
		w := &benchWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			i = (i + 1) % keys
			bodies[i].off = 0
			clear(w.h)
			w.status = 0
			h.ServeHTTP(w, reqs[i])
			if w.status != http.StatusOK {
				b.Errorf("got status %d, want 200", w.status)
				return
			}
		}
	})
}

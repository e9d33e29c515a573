package transfer

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// strayBackend is a backend on a raw socket: after its first answer it writes a
// second, unasked-for 200 on the same connection (a framework answering twice),
// then answers the first attempt of every later record 500 and the retries 200.
type strayBackend struct {
	ln       net.Listener
	strayed  chan struct{} // closed once the stray answer is written
	mu       sync.Mutex
	attempts map[int64]int // by offset
}

func newStrayBackend(t *testing.T) *strayBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &strayBackend{ln: ln, strayed: make(chan struct{}), attempts: map[int64]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	var once sync.Once
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					off, _ := strconv.ParseInt(req.URL.Query().Get("transid"), 10, 64)
					b.mu.Lock()
					b.attempts[off]++
					n := b.attempts[off]
					b.mu.Unlock()
					status := "200 OK"
					if off > 0 && n == 1 {
						status = "500 Internal Server Error"
					}
					if _, err := c.Write([]byte("HTTP/1.1 " + status + "\r\nContent-Length: 0\r\n\r\n")); err != nil {
						return
					}
					if off == 0 {
						once.Do(func() {
							// The stray arrives while the connection is idle in the pool.
							time.Sleep(50 * time.Millisecond)
							_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
							close(b.strayed)
						})
					}
				}
			}()
		}
	}()
	return b
}

func (b *strayBackend) attemptsOf(off int64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempts[off]
}

// TestUnsolicitedAnswerAcknowledgesNothing: a backend that wrote a 200 nobody
// asked for on a kept connection, then answers the next record 500: that record
// is not taken as delivered; it is pushed again until a real 200, and only then
// committed. The stray answer is counted.
func TestUnsolicitedAnswerAcknowledgesNothing(t *testing.T) {
	e := newEnv(t, 1)
	be := newStrayBackend(t)
	m := e.module("stray")
	m.BackendServers = []string{be.ln.Addr().String()}
	m.WorkerNum = 1 // one connection: the next push reuses the one holding the stray
	rt := startTransfer(t, e.config("a", m))

	e.produce(t, &kgo.Record{Key: []byte("k"), Value: value(t, "m", 0)})
	testwait.Eventually(t, 10*time.Second, "first record committed", func() bool { return e.committed(t, m.Name, 0) == 1 })
	select {
	case <-be.strayed:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend never wrote its stray answer")
	}
	e.produce(t, &kgo.Record{Key: []byte("k"), Value: value(t, "m", 1)})
	testwait.Eventually(t, 10*time.Second, "second record committed", func() bool { return e.committed(t, m.Name, 0) == 2 })

	if got := be.attemptsOf(1); got < 2 {
		t.Errorf("record 1 was answered 500 at its first attempt: got %d attempts, want a retry after it", got)
	}
	if got := testutil.ToFloat64(rt.tr.met.unsolicited.WithLabelValues(m.Name, m.BackendServers[0])); got != 1 {
		t.Errorf("ktransfer_unsolicited_responses_total: got %v, want 1", got)
	}
}

// TestTraceContextReachesBackend: a record's traceparent header (kproxy copies it
// from the producing request) goes along with every push of the record, by the
// default forward_headers; with forward_headers: [] it does not.
func TestTraceContextReachesBackend(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name    string
		forward []string
		want    string
	}{
		{"default", ModuleDefaults().ForwardHeaders, tp},
		{"none", []string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1)
			fails := 1
			e.be.answer = func(delivery, int) int {
				if fails > 0 { // the retry must carry it too
					fails--
					return 503
				}
				return 200
			}
			m := e.module("traced")
			m.ForwardHeaders = tc.forward
			startTransfer(t, e.config("a", m))
			e.produce(t, &kgo.Record{Key: []byte("k"), Value: value(t, "m", 0), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(tp)}}})
			testwait.Eventually(t, 10*time.Second, "record committed", func() bool { return e.committed(t, m.Name, 0) == 1 })
			ds := e.be.deliveries()
			if len(ds) != 2 {
				t.Fatalf("got %d requests, want 2 (a 503, then a 200)", len(ds))
			}
			for i, d := range ds {
				if d.trace != tc.want {
					t.Errorf("request %d: traceparent %q, want %q", i, d.trace, tc.want)
				}
			}
		})
	}
}

package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// delivery is one request the backend answered with 200.
type delivery struct {
	key       string
	seq       int
	partition int32
	offset    int64
	gen       int32 // the topic's generation (see load.gen)
	at        time.Time
}

// backendFaults sets how often the backend misbehaves; the shares add up and
// the rest of the requests succeed at once.
type backendFaults struct {
	fail     float64       // answer 500
	drop     float64       // close the connection without an answer
	stall    float64       // hold the request longer than ktransfer's read timeout, then 503
	slow     float64       // hold the request for slowFor, then 200
	stallFor time.Duration // > ktransfer's protocol.read_timeout_ms
	slowFor  time.Duration // < ktransfer's protocol.read_timeout_ms
}

// backend is the HTTP server ktransfer pushes to. It checks that each request is
// what ktransfer must send (the URI placeholders match the body), misbehaves as
// backendFaults says, records every delivery it answers with 200, and can be
// taken down (listener closed, connections refused) and brought back on the
// same address.
type backend struct {
	faults backendFaults
	addr   string

	mu         sync.Mutex
	srv        *http.Server
	rng        *rand.Rand
	deliveries []delivery
	bad        []string // requests that did not match their record

	requests, failed, dropped, stalled, slow atomic.Int64
}

func newBackend(f backendFaults) (*backend, error) {
	b := &backend{faults: f, rng: rand.New(rand.NewPCG(1, 2))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	return b, nil
}

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every open connection: new connections are
// refused until up.
func (b *backend) down() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens on the same address again.
func (b *backend) up() error {
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel has
	// not released it yet.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			b.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("backend: listen on %s again: %w", b.addr, err)
}

func (b *backend) close() { b.down() }

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	var v struct {
		Key string `msgpack:"key"`
		Seq int    `msgpack:"seq"`
		Gen int32  `msgpack:"gen"`
	}
	q := r.URL.Query()
	p, perr := strconv.ParseInt(q.Get("p"), 10, 32)
	o, oerr := strconv.ParseInt(q.Get("o"), 10, 64)
	err := msgpack.NewDecoder(r.Body).Decode(&v)
	if err == nil && r.Header.Get("Traceparent") != traceparent(v.Key, v.Seq, v.Gen) {
		err = fmt.Errorf("traceparent %q, want %q", r.Header.Get("Traceparent"), traceparent(v.Key, v.Seq, v.Gen))
	}
	if err != nil || perr != nil || oerr != nil || q.Get("key") != v.Key {
		b.mu.Lock()
		b.bad = append(b.bad, fmt.Sprintf("%s %s: body key %q: %v", r.Method, r.URL, v.Key, errors.Join(err, perr, oerr)))
		b.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}

	b.mu.Lock()
	x := b.rng.Float64()
	b.mu.Unlock()
	f := b.faults
	switch {
	case x < f.fail:
		b.failed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
		return
	case x < f.fail+f.drop:
		b.dropped.Add(1)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case x < f.fail+f.drop+f.stall:
		b.stalled.Add(1)
		time.Sleep(f.stallFor)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case x < f.fail+f.drop+f.stall+f.slow:
		b.slow.Add(1)
		time.Sleep(f.slowFor)
	}
	b.mu.Lock()
	b.deliveries = append(b.deliveries, delivery{key: v.Key, seq: v.Seq, partition: int32(p), offset: o, gen: v.Gen, at: time.Now()})
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// snapshot returns the deliveries so far, in the order they were answered,
// and the requests that did not match their record.
func (b *backend) snapshot() ([]delivery, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivery(nil), b.deliveries...), append([]string(nil), b.bad...)
}

// partitionsOf returns the partitions from which a record of the topic's
// generation gen was delivered.
func (b *backend) partitionsOf(gen int32) map[int32]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[int32]bool{}
	for _, d := range b.deliveries {
		if d.gen == gen {
			out[d.partition] = true
		}
	}
	return out
}

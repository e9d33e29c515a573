package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ack is one record kproxy answered 200 for.
type ack struct {
	key       string
	seq       int
	partition int32
	offset    int64
	acks      string
	gen       int32 // the topic's generation the record was sent to (see load.gen)
	at        time.Time
}

// load commits records through kproxy. Each worker owns its own keys and sends
// them in turn; a key's sequence number moves on only once kproxy answered 200
// for it, so every key's acknowledged records carry 0, 1, 2, ... in the order
// they were acknowledged. A request that fails is retried with the same key and
// sequence number after a pause, so the topic may hold a sequence number twice
// (a timeout whose record was written after all) but never skips one.
//
// The load can be paused (pause, resume) while the topic is deleted and created
// again; every record carries the generation of the topic it was sent to, so the
// backend's deliveries of the old and the new topic (whose offsets start again
// at 0) are told apart. Sequence numbers carry on across generations.
type load struct {
	url     string
	workers int
	keys    int           // per worker
	every   time.Duration // per worker, between requests
	client  *http.Client

	// gate is held for reading by every request in flight and for writing
	// while the load is paused; gen moves on only while it is held for writing.
	gate sync.RWMutex
	gen  atomic.Int32

	mu       sync.Mutex
	acks     []ack
	statuses map[string]int // non-200 outcomes by status or error
	attempts int
}

func newLoad(kproxy string, workers, keysPerWorker int, rate float64) *load {
	return &load{
		url:      kproxy + "/commit",
		workers:  workers,
		keys:     keysPerWorker,
		every:    time.Duration(float64(workers) / rate * float64(time.Second)),
		client:   &http.Client{Timeout: 30 * time.Second},
		statuses: map[string]int{},
	}
}

// run sends until ctx ends and returns when every worker has stopped.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := range l.workers {
		wg.Go(func() { l.worker(ctx, w) })
	}
	wg.Wait()
}

func (l *load) worker(ctx context.Context, w int) {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	next := make([]int, l.keys)
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % l.keys {
		key := fmt.Sprintf("k%03d-%03d", w, i)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			acks := []string{"1", "-1"}[rng.IntN(2)]
			l.gate.RLock()
			a, outcome := l.commit(ctx, key, next[i], acks, l.gen.Load())
			l.gate.RUnlock()
			l.mu.Lock()
			switch {
			case outcome == "":
				l.attempts++
				l.acks = append(l.acks, a)
			case ctx.Err() == nil: // not the request cut short at the end
				l.attempts++
				l.statuses[outcome]++
			}
			l.mu.Unlock()
			if outcome == "" {
				next[i]++
				break
			}
			// Back off a little so an outage is not a storm of requests.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(50+rng.IntN(150)) * time.Millisecond):
			}
		}
	}
}

// commit sends one record; outcome is "" after a 200, else the status or error.
func (l *load) commit(ctx context.Context, key string, seq int, acks string, gen int32) (ack, string) {
	body, err := msgpack.Marshal(map[string]any{"method": "chaos", "key": key, "seq": seq, "gen": gen, "pad": "0123456789abcdef0123456789abcdef"})
	if err != nil {
		return ack{}, err.Error()
	}
	u := l.url + "?topic=" + chaosTopic + "&key=" + url.QueryEscape(key) + "&acks=" + acks
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return ack{}, err.Error()
	}
	req.Header.Set("Content-Type", "application/x-msgpack")
	req.Header.Set("Traceparent", traceparent(key, seq, gen))
	resp, err := l.client.Do(req)
	if err != nil {
		return ack{}, "transport error"
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return ack{}, fmt.Sprint(resp.StatusCode)
	}
	var ok struct {
		Partition int32 `json:"partition"`
		Offset    int64 `json:"offset"`
	}
	if err := json.Unmarshal(raw, &ok); err != nil {
		return ack{}, "bad 200 body"
	}
	return ack{key: key, seq: seq, partition: ok.Partition, offset: ok.Offset, acks: acks, gen: gen, at: time.Now()}, ""
}

// pause waits until no request is in flight and holds every worker until
// resume: while paused, nothing reaches kproxy.
func (l *load) pause() { l.gate.Lock() }

// resume lets the workers send again; with nextGen, to a new generation of the
// topic.
func (l *load) resume(nextGen bool) {
	if nextGen {
		l.gen.Add(1)
	}
	l.gate.Unlock()
}

// snapshot returns the acknowledged records, in acknowledgement order, the
// number of attempts and the failed attempts by outcome.
func (l *load) snapshot() ([]ack, int, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := make(map[string]int, len(l.statuses))
	for k, v := range l.statuses {
		st[k] = v
	}
	return append([]ack(nil), l.acks...), l.attempts, st
}

// traceparent is the W3C trace context the load sends with record (key, seq,
// gen): kproxy copies it into a record header and ktransfer sends it with every
// push of the record (forward_headers), so the backend can check that each
// request carries its own record's trace.
func traceparent(key string, seq int, gen int32) string {
	h := fnv.New128a()
	fmt.Fprintf(h, "%s/%d/%d", key, seq, gen)
	return fmt.Sprintf("00-%x-%016x-01", h.Sum(nil), uint64(seq)+1)
}

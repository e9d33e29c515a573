package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks measure the generator's own cost against rawServer, which
// answers with a canned response and costs the same whichever client drives
// it; differences between the raw and net-http variants are client cost.

var benchBodies = func() [][]byte {
	bodies := make([][]byte, 1000)
	for i := range bodies {
		b, err := MsgpackBody(200, "k"+itoa(i), uint64(i))
		if err != nil {
			panic(err)
		}
		bodies[i] = b
	}
	return bodies
}()

var benchQueries = func() []string {
	q := make([]string, 1000)
	for i := range q {
		q[i] = "&key=k" + itoa(i) + "&acks=1"
	}
	return q
}()

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

func benchBody(_ int, seq uint64) (string, []byte) {
	return benchQueries[seq%1000], benchBodies[seq%1000]
}

// BenchmarkRoundTrip is one worker iteration of RunHTTP (body, two clock
// readings, round trip, tally) on one keep-alive connection, next to the same
// request made with net/http.Client.
func BenchmarkRoundTrip(b *testing.B) {
	srv := startRawServer(b, 0, respondOK)
	url := srv.url("/commit?topic=t")

	b.Run("raw", func(b *testing.B) {
		req, err := parseTarget(HTTPTarget{URL: url, Header: http.Header{"Content-Type": {"application/x-msgpack"}}, Body: benchBody})
		if err != nil {
			b.Fatal(err)
		}
		var abort atomic.Bool
		cl := newClient(context.Background(), req, &abort)
		b.Cleanup(cl.close)
		c := &clock{end: time.Now().Add(time.Hour)}
		s := new(stats)
		b.ReportAllocs()
		var seq uint64
		for b.Loop() {
			q, body := benchBody(0, seq)
			t0 := time.Now()
			status, err := cl.roundTrip(t0, q, body)
			c.count(s, t0, time.Now(), err == nil && status == 200, status, err)
			seq++
		}
		if s.ok != s.requests {
			b.Fatalf("%d of %d requests failed: %v", s.requests-s.ok, s.requests, s.firstErr)
		}
	})

	b.Run("net-http", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		b.Cleanup(client.CloseIdleConnections)
		b.ReportAllocs()
		var seq uint64
		for b.Loop() {
			q, body := benchBody(0, seq)
			if err := netHTTPPost(client, url+q, body); err != nil {
				b.Fatal(err)
			}
			seq++
		}
	})
}

func netHTTPPost(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-msgpack")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunHTTP drives 64 connections for 300 ms per iteration and
// reports the process CPU time per request (generator and canned server
// together) and the request rate, for RunHTTP and for the same closed loop
// written with net/http.Client.
func BenchmarkRunHTTP(b *testing.B) {
	const conns, d = 64, 300 * time.Millisecond
	srv := startRawServer(b, 0, respondOK)
	url := srv.url("/commit?topic=t")

	b.Run("raw", func(b *testing.B) {
		target := HTTPTarget{URL: url, Header: http.Header{"Content-Type": {"application/x-msgpack"}}, Body: benchBody}
		var reqs int64
		var cpu, wall time.Duration
		for b.Loop() {
			c0 := cpuTime(b)
			r, err := RunHTTP(context.Background(), target, conns, d)
			if err != nil {
				b.Fatal(err)
			}
			if r.Errors > 0 || r.OK != r.Requests {
				b.Fatalf("got %s, want only 200s", r)
			}
			cpu += cpuTime(b) - c0
			wall += r.Duration
			reqs += r.Requests
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(reqs), "cpu-ns/req")
		b.ReportMetric(float64(reqs)/wall.Seconds(), "req/s")
	})

	b.Run("net-http", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
		b.Cleanup(client.CloseIdleConnections)
		var reqs atomic.Int64
		var cpu, wall time.Duration
		for b.Loop() {
			c0 := cpuTime(b)
			start := time.Now()
			end := start.Add(d)
			var wg sync.WaitGroup
			for w := range conns {
				wg.Go(func() {
					var h Histogram
					for seq := uint64(0); time.Now().Before(end); seq++ {
						q, body := benchBody(w, seq)
						t0 := time.Now()
						if err := netHTTPPost(client, url+q, body); err != nil {
							b.Error(err)
							return
						}
						h.Record(time.Since(t0))
						reqs.Add(1)
					}
				})
			}
			wg.Wait()
			wall += time.Since(start)
			cpu += cpuTime(b) - c0
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(reqs.Load()), "cpu-ns/req")
		b.ReportMetric(float64(reqs.Load())/wall.Seconds(), "req/s")
	})
}

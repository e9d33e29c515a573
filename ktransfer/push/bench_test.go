package push

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// cannedServer answers every request with an empty 200 without allocating, so
// that allocs/op counts the client only.
func cannedServer(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	var mu sync.Mutex
	var conns []net.Conn // every accepted connection, closed at the end
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go serveCanned(c)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func serveCanned(c net.Conn) {
	defer c.Close()
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		var n int64
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break
			}
			if name, value, ok := bytes.Cut(line, []byte(":")); ok && http1.EqualFold(name, "content-length") {
				n, _ = http1.ParseDecimal(bytes.TrimSpace(value))
			}
		}
		if _, err := br.Discard(int(n)); err != nil {
			return
		}
		if _, err := c.Write(answer); err != nil {
			return
		}
	}
}

var benchRecord = Record{Topic: "orders", Partition: 3, Offset: 1234567, Key: []byte("user-42"), Value: bytes.Repeat([]byte("v"), 200), Method: "TestReply"}

const benchURI = "/XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&format=msgpack"

func benchPusher(b *testing.B, addrs ...string) *Pusher {
	b.Helper()
	p, err := New(Config{
		Servers: addrs, URI: benchURI,
		Headers:     []map[string]string{{"Host": "www.myhug.cn"}},
		ConnTimeout: 100e6, WriteTimeout: 100e6, ReadTimeout: 1e9,
		MaxRetries: -1, FailThreshold: 5, Cooldown: 5e9, Slow: 1e9,
	}, nil, Events{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

// BenchmarkPush is one worker pushing 200-byte records over one keep-alive
// connection.
func BenchmarkPush(b *testing.B) {
	p := benchPusher(b, cannedServer(b))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if res := p.Push(ctx, benchRecord); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkPush64 is 64 workers sharing one Pusher, with one server and with
// two, next to the same requests made through net/http's Transport for
// reference. cpu-ns/op is the CPU time the process spent per push, the
// canned server's included.
func BenchmarkPush64(b *testing.B) {
	addr := cannedServer(b)
	par := max(1, 64/runtime.GOMAXPROCS(0))
	b.Run("push", func(b *testing.B) {
		p := benchPusher(b, addr)
		parallelCPU(b, par, func(ctx context.Context) error { return p.Push(ctx, benchRecord).Err })
	})
	// Two servers: the watch of stalled servers tracks every request.
	b.Run("push-2-servers", func(b *testing.B) {
		p := benchPusher(b, addr, cannedServer(b))
		parallelCPU(b, par, func(ctx context.Context) error { return p.Push(ctx, benchRecord).Err })
	})
	b.Run("net-http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1024}
		b.Cleanup(tr.CloseIdleConnections)
		url := "http://" + addr + ExpandURI(benchURI, benchRecord)
		parallelCPU(b, par, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(benchRecord.Value))
			if err != nil {
				return err
			}
			req.Host = "www.myhug.cn"
			req.Header.Set("Content-Type", "application/x-msgpack")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		})
	})
}

// parallelCPU runs push from par goroutines per GOMAXPROCS, each with a
// context of its own, and reports allocations and the process's CPU time
// per call.
func parallelCPU(b *testing.B, par int, push func(ctx context.Context) error) {
	b.ReportAllocs()
	b.SetParallelism(par)
	c0 := cpuTime(b)
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for pb.Next() {
			if err := push(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime(b)-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process has spent.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

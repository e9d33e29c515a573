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
	"testing"

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
// reference.
func BenchmarkPush64(b *testing.B) {
	addr := cannedServer(b)
	par := max(1, 64/runtime.GOMAXPROCS(0))
	b.Run("push", func(b *testing.B) {
		p := benchPusher(b, addr)
		b.ReportAllocs()
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for pb.Next() {
				if res := p.Push(ctx, benchRecord); res.Err != nil {
					b.Error(res.Err)
					return
				}
			}
		})
	})
	// Two servers: the watch of stalled servers tracks every request.
	b.Run("push-2-servers", func(b *testing.B) {
		p := benchPusher(b, addr, cannedServer(b))
		b.ReportAllocs()
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for pb.Next() {
				if res := p.Push(ctx, benchRecord); res.Err != nil {
					b.Error(res.Err)
					return
				}
			}
		})
	})
	b.Run("net-http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1024}
		b.Cleanup(tr.CloseIdleConnections)
		url := "http://" + addr + ExpandURI(benchURI, benchRecord)
		b.ReportAllocs()
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for pb.Next() {
				req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(benchRecord.Value))
				if err != nil {
					b.Error(err)
					return
				}
				req.Host = "www.myhug.cn"
				req.Header.Set("Content-Type", "application/x-msgpack")
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
}

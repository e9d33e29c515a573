package loadgen

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// rawServer is a minimal HTTP/1.1 server on 127.0.0.1 that writes canned
// responses, for tests of framings net/http's server does not produce and as
// a cheap server for benchmarks.
type rawServer struct {
	ln       net.Listener
	answered atomic.Int64 // responses written
	accepted atomic.Int64 // connections accepted

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// startRawServer serves until the test ends. respond writes the response to
// the n-th request (from 0, over all connections) and reports whether the
// server should close the connection afterwards. After perConn responses on
// one connection (0 = unlimited) the server closes it without saying so in
// the response.
func startRawServer(tb testing.TB, perConn int, respond func(w *bufio.Writer, n int64) (closeConn bool)) *rawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	s := &rawServer{ln: ln, conns: map[net.Conn]bool{}}
	var seq atomic.Int64
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				br := bufio.NewReader(c)
				bw := bufio.NewWriter(c)
				for served := 0; perConn == 0 || served < perConn; served++ {
					if err := readRequest(br); err != nil {
						return
					}
					closeConn := respond(bw, seq.Add(1)-1)
					// Counted before the client can see the response, so
					// a test that reads it after RunHTTP returns sees it.
					s.answered.Add(1)
					if bw.Flush() != nil {
						return
					}
					if closeConn {
						return
					}
				}
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url(path string) string {
	return "http://" + s.ln.Addr().String() + path
}

// readRequest consumes one request with a Content-Length body.
func readRequest(br *bufio.Reader) error {
	length := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && http1.EqualFold(name, "content-length") {
			length, err = strconv.Atoi(string(bytes.TrimSpace(value)))
			if err != nil {
				return err
			}
		}
	}
	_, err := br.Discard(length)
	return err
}

// cannedOK is the response of the benchmark server.
const cannedOK = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\n\r\n{\"topic\":\"t\",\"partition\":0,\"offset\":123}\n"

func respondOK(w *bufio.Writer, _ int64) bool {
	w.WriteString(cannedOK)
	return false
}

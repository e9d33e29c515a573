package main

// Black-box tests of kproxy's bounds under hostile load: memory under slow
// bodies, file descriptors under idle connections, a taken ops_listen address.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// bbMetrics reads kproxy's /metrics at base and returns every unlabelled series.
func bbMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		// Unlabelled series are "NAME VALUE" lines.
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return out
}

// waitMetric polls kproxy's /metrics until cond holds for metric name.
func waitMetric(t *testing.T, p *bbProc, name string, cond func(float64) bool) {
	t.Helper()
	var v float64
	if !testwait.Within(60*time.Second, func() bool {
		var ok bool
		v, ok = bbMetrics(t, p.url)[name]
		return ok && cond(v)
	}) {
		t.Fatalf("%s: got %v, condition not met within 60s\n%s", name, v, p.Logs())
	}
}

// setKey replaces the line "key: ..." of the configuration at path.
func setKey(t *testing.T, path, key, value string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, key+":") {
			lines[i] = key + ": " + value
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dialAll opens n connections to addr, 32 at a time, and sends each head.
func dialAll(t *testing.T, addr string, n int, head string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err == nil {
				_, err = io.WriteString(c, head)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	t.Cleanup(func() { closeAll(conns) })
	if firstErr != nil {
		t.Fatalf("open %d connections: %v", n, firstErr)
	}
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// TestMemoryBoundUnderSlowBodies runs the binary from the original file with
// the connection and body-memory bounds set, and opens 1,500 connections that
// each announce a 1 MiB body and send one byte, three times. kproxy must admit
// them all (reading the body after admission) and its peak RSS (VmHWM) must
// stay under the bound the configuration documents (proxy.Config.MemoryBound).
func TestMemoryBoundUnderSlowBodies(t *testing.T) {
	const conns, rounds = 1500, 3
	c := testcluster.Kafka(t, kfake.SeedTopics(1, "bb-mem"))
	cfgPath, port, logDir := bbOriginalConfig(t, testcluster.Brokers(c),
		"max_connections: 2000\nmax_header_bytes: 8192\nmax_body_memory_bytes: 67108864\n")
	// Bodies stall for as long as the test needs them.
	setKey(t, cfgPath, "read_timeout_ms", "60000")
	cfg, err := proxy.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bound := cfg.MemoryBound()
	p := bbStart(t, cfgPath, port, logDir)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	head := "POST /commit?topic=bb-mem HTTP/1.1\r\nHost: kproxy\r\nContent-Type: application/x-msgpack\r\n" +
		"Content-Length: 1048576\r\n\r\n\x81"

	var peaks []int64
	for round := 1; round <= rounds; round++ {
		open := dialAll(t, addr, conns, head)
		waitMetric(t, p, "kproxy_inflight_requests", func(v float64) bool { return v == conns })
		m := bbMetrics(t, p.url)
		if got, want := m["kproxy_body_memory_bytes"], float64(conns*4096); got != want {
			t.Errorf("round %d: got kproxy_body_memory_bytes %v, want %v (one 4 KiB buffer per connection)", round, got, want)
		}
		peak, err := loadgen.PeakRSS(p.PID())
		if err != nil {
			t.Fatal(err)
		}
		peaks = append(peaks, peak)
		closeAll(open)
		waitMetric(t, p, "kproxy_inflight_requests", func(v float64) bool { return v == 0 })
	}
	// Still serving.
	resp, err := http.Post(p.url+"/commit?topic=bb-mem", "application/x-msgpack", strings.NewReader("\x81\xa1a\x01"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the slow bodies: got %d, want 200", resp.StatusCode)
	}
	peak := peaks[len(peaks)-1]
	t.Logf("kproxy peak RSS (VmHWM) after each round of %d connections announcing 1 MiB and sending 1 byte: %v MB; bound %d MB",
		conns, mbs(peaks), bound/1e6)
	fmt.Printf("kproxy peak RSS under %d x %d slow 1 MiB bodies: %.1f MB (bound %.1f MB)\n", rounds, conns, float64(peak)/1e6, float64(bound)/1e6)
	if peak >= bound {
		t.Errorf("peak RSS %d bytes, want below the documented bound %d", peak, bound)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, p.Logs())
	}
}

func mbs(bs []int64) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = strconv.FormatFloat(float64(b)/1e6, 'f', 1, 64)
	}
	return strings.Join(s, ", ")
}

// TestIdleConnectionsDoNotStarveClients opens three times max_connections idle
// keep-alive connections (GET /healthz, then nothing) against the binary: kproxy
// keeps its connections and descriptors within the bound by closing the longest
// idle ones, and a real client is still served.
func TestIdleConnectionsDoNotStarveClients(t *testing.T) {
	const max, idle = 1000, 3000
	c := testcluster.Kafka(t, kfake.SeedTopics(1, "bb-conns"))
	cfgPath, port, logDir := bbOriginalConfig(t, testcluster.Brokers(c), fmt.Sprintf("max_connections: %d\n", max))
	p := bbStart(t, cfgPath, port, logDir)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	conns := dialAll(t, addr, idle, "GET /healthz HTTP/1.1\r\nHost: kproxy\r\n\r\n")
	answered := 0
	for _, conn := range conns {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				answered++
			}
		}
	}
	m := bbMetrics(t, p.url)
	t.Logf("%d idle connections opened, %d answered before being closed; kproxy: %v open, %v closed to make room, %v refused",
		idle, answered, m["kproxy_connections"], m["kproxy_connections_evicted_total"], m["kproxy_connections_refused_total"])
	if m["kproxy_connections"] > max {
		t.Errorf("got %v connections open, want at most max_connections %d", m["kproxy_connections"], max)
	}
	if m["kproxy_connections_evicted_total"] < idle-max {
		t.Errorf("got %v idle connections closed to make room, want at least %d", m["kproxy_connections_evicted_total"], idle-max)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) > max+100 {
		t.Errorf("kproxy holds %d file descriptors, want about max_connections %d", len(fds), max)
	}

	// A real client gets through.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(p.url+"/commit?topic=bb-conns&key=real", "application/x-msgpack", strings.NewReader("\x81\xa1a\x01"))
	if err != nil {
		t.Fatalf("real client: %v\n%s", err, p.Logs())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("real client: got %d, want 200", resp.StatusCode)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0\n%s", code, p.Logs())
	}
}

// TestOpsListenTakenExits starts kproxy with ops_listen set to an address
// another process holds: it must stop at once with exit code 1 and say why.
func TestOpsListenTakenExits(t *testing.T) {
	taken := testproc.TakenAddr(t)
	c := testcluster.Kafka(t, kfake.SeedTopics(1, "bb"))
	cfgPath, _, logDir := bbOriginalConfig(t, testcluster.Brokers(c), "ops_listen: "+taken+"\n")
	proc := testproc.StartWith(t, testproc.Options{LogFile: filepath.Join(logDir, "kproxy.log")}, testproc.Build(t, "."), "-f", cfgPath)
	if code := proc.Wait(30 * time.Second); code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s", code, proc.Logs())
	}
	want := "ops_listen " + taken
	if out := proc.Logs(); !strings.Contains(out, want) || !strings.Contains(out, "address already in use") {
		t.Errorf("output lacks %q and the reason:\n%s", want, out)
	}
}

package testcluster

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
)

// processGone reports whether no process with pid exists.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestKafka(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        []kfake.Opt
		wantBrokers int
	}{
		{name: "default", wantBrokers: 1},
		{name: "three brokers", opts: []kfake.Opt{kfake.NumBrokers(3)}, wantBrokers: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Kafka(t, tt.opts...)
			brokers := Brokers(c)
			if len(brokers) != tt.wantBrokers {
				t.Fatalf("got %d brokers %v, want %d", len(brokers), brokers, tt.wantBrokers)
			}
			for _, b := range brokers {
				host, _, err := net.SplitHostPort(b)
				if err != nil || host != "127.0.0.1" {
					t.Errorf("got broker address %q, want 127.0.0.1:port", b)
				}
			}
			if err := c.CreateTopic("t", 2, nil); err != nil {
				t.Fatalf("create topic: %v", err)
			}

			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("t"),
				kgo.DefaultProduceTopic("t"))
			if err != nil {
				t.Fatalf("new client: %v", err)
			}
			t.Cleanup(cl.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			var got []*kgo.Record
			for len(got) == 0 {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consume: %v", err)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
				got = append(got, fs.Records()...)
			}
			if len(got) != 1 || string(got[0].Key) != "k" || string(got[0].Value) != "v" {
				t.Fatalf("got %d records (first %q=%q), want 1 record k=v", len(got), got[0].Key, got[0].Value)
			}
		})
	}
}

func TestZooKeeperServes(t *testing.T) {
	t.Parallel()
	z := StartZooKeeper(t)
	if host, _, err := net.SplitHostPort(z.Addr); err != nil || host != "127.0.0.1" {
		t.Errorf("got Addr %q, want 127.0.0.1:port", z.Addr)
	}
	if z.PID() <= 0 {
		t.Errorf("got PID %d, want > 0", z.PID())
	}
	conn := z.Conn(t)
	if _, err := conn.Create("/node", []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create: %v", err)
	}
	data, _, err := conn.Get("/node")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if string(data) != "v1" {
		t.Errorf("got %q, want %q", data, "v1")
	}
	if st, err := os.Stat(z.logPath); err != nil || st.Size() == 0 {
		t.Errorf("got server log %v (err %v), want a non-empty file", st, err)
	}
}

// Tests elsewhere rely on sessions as short as one second, which needs a
// short tickTime on the server: it grants the session timeout asked for.
func TestZooKeeperGrantsShortSessions(t *testing.T) {
	t.Parallel()
	z := StartZooKeeper(t)
	conn, err := zkconn.Connect([]string{z.Addr}, zkconn.Options{SessionTimeout: time.Second})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.WaitSession(ctx); err != nil {
		t.Fatal(err)
	}
	if got := conn.Granted(); got != time.Second {
		t.Errorf("got a session timeout of %v, want 1s", got)
	}
}

func TestZooKeeperRestartKeepsData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		down func(*ZooKeeper)
	}{
		{name: "stop", down: (*ZooKeeper).Stop},
		{name: "kill", down: (*ZooKeeper).Kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			z := StartZooKeeper(t)
			addr, pid := z.Addr, z.PID()
			conn := z.Conn(t)
			if _, err := conn.Create("/kept", []byte("data"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("create: %v", err)
			}

			tt.down(z)
			if got := z.PID(); got != 0 {
				t.Errorf("got PID %d after %s, want 0", got, tt.name)
			}
			if !processGone(pid) {
				t.Errorf("process %d still exists after %s", pid, tt.name)
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Errorf("got a connection to %s after %s, want refused", addr, tt.name)
			}

			z.Start(t)
			if z.Addr != addr {
				t.Errorf("got Addr %q after restart, want %q", z.Addr, addr)
			}
			if got := z.PID(); got == 0 || got == pid {
				t.Errorf("got PID %d after restart, want a new non-zero PID (old %d)", got, pid)
			}
			data, _, err := z.Conn(t).Get("/kept")
			if err != nil {
				t.Fatalf("get after restart: %v", err)
			}
			if string(data) != "data" {
				t.Errorf("got %q after restart, want %q", data, "data")
			}
		})
	}
}

func TestZooKeeperKillDisconnectsClient(t *testing.T) {
	t.Parallel()
	z := StartZooKeeper(t)
	conn := z.Conn(t)
	if got := conn.State(); got != zk.StateHasSession {
		t.Fatalf("got state %v, want %v", got, zk.StateHasSession)
	}
	z.Kill()
	if !testwait.Within(5*time.Second, func() bool { return conn.State() != zk.StateHasSession }) {
		t.Fatalf("got state %v 5s after Kill, want the session lost", conn.State())
	}
	// Calls fail instead of hanging while the server is down.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, _, err := conn.Get("/")
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Errorf("got Get success with the server killed, want an error")
		}
	case <-ctx.Done():
		t.Errorf("Get still blocked 5s after Kill, want an error")
	}
}

func TestZooKeeperGoneAfterCleanup(t *testing.T) {
	t.Parallel()
	var pid int
	var addr, dir string
	t.Run("run", func(t *testing.T) {
		z := StartZooKeeper(t)
		pid, addr, dir = z.PID(), z.Addr, z.Dir
		z.Conn(t)
	})
	if pid == 0 {
		t.Fatal("got PID 0 from the subtest, want the server's PID")
	}
	if !processGone(pid) {
		t.Errorf("process %d still exists after the test's cleanup", pid)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("got a connection to %s after cleanup, want refused", addr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got Stat(%s) error %v after cleanup, want not exist", dir, err)
	}
}

func TestTopics(t *testing.T) {
	t.Parallel()
	brokers := Brokers(Kafka(t))
	CreateTopic(t, brokers, "t", 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, &kgo.Record{Partition: int32(i % 3), Value: []byte{byte('a' + i)}})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got := ReadTopic(t, brokers, "t", 6)
	if len(got) != 6 {
		t.Fatalf("got %d records, want 6", len(got))
	}
	next := map[int32]int64{}
	for _, r := range got {
		if r.Offset != next[r.Partition] || r.Value[0] != byte('a'+3*int(r.Offset)+int(r.Partition)) {
			t.Errorf("got %q at %d/%d, want each partition's records in offset order", r.Value, r.Partition, r.Offset)
		}
		next[r.Partition]++
	}
}

// echoServer answers every line on a connection with the same line.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echo sends line over c and returns the answer, or the error that ended it.
func echo(c net.Conn, line string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func TestProxyCutAndHeal(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, echoServer(t))
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatalf("dial the proxy: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	before := dial()
	if got, err := echo(before, "one"); got != "one" || err != nil {
		t.Fatalf("through the proxy: got %q, %v, want %q", got, err, "one")
	}

	p.Cut()
	if got, err := echo(before, "two"); err == nil {
		t.Errorf("after Cut, the old connection: got %q, want an error", got)
	}
	if got, err := echo(dial(), "three"); err == nil {
		t.Errorf("after Cut, a new connection: got %q, want an error", got)
	}

	p.Heal()
	if got, err := echo(dial(), "four"); got != "four" || err != nil {
		t.Errorf("after Heal: got %q, %v, want %q", got, err, "four")
	}
}

func TestDevBroker(t *testing.T) {
	t.Parallel()
	addr, p := StartDevBroker(t, "-topics", "dev", "-partitions", "2")
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Errorf("got address %q, want 127.0.0.1:port", addr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("dev"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if got := ReadTopic(t, []string{addr}, "dev", 1); string(got[0].Value) != "v" {
		t.Errorf("got %q, want %q", got[0].Value, "v")
	}
	if code := p.Stop(10 * time.Second); code != 0 {
		t.Errorf("devbroker after SIGTERM: got exit code %d, want 0\n%s", code, p.Output())
	}
}

func TestHoldProduces(t *testing.T) {
	t.Parallel()
	c := Kafka(t, kfake.SeedTopics(1, "t"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(Brokers(c)...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	held, release := HoldProduces(t, c)
	done := make(chan error, 1)
	cl.Produce(context.Background(), &kgo.Record{Value: []byte("v")}, func(_ *kgo.Record, err error) { done <- err })
	testwait.Recv(t, held, 10*time.Second, "the held produce request")
	select {
	case err := <-done:
		t.Fatalf("the produce was answered (%v) while held", err)
	default:
	}
	release()
	release() // twice is fine
	if err := testwait.Recv(t, done, 10*time.Second, "the produce after release"); err != nil {
		t.Errorf("after release: got %v, want the record written", err)
	}
	if got := ReadTopic(t, Brokers(c), "t", 1); string(got[0].Value) != "v" {
		t.Errorf("got %q, want %q", got[0].Value, "v")
	}
}

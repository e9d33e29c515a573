package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr []string // substrings of the error; none means success
	}{
		{name: "defaults", args: nil},
		{name: "ipv6 loopback", args: []string{"-listen", "[::1]:9092"}},
		{name: "localhost", args: []string{"-listen", "localhost:0"}},
		{name: "remote refused", args: []string{"-listen", "0.0.0.0:9092"}, wantErr: []string{"-allow-remote"}},
		{name: "empty host refused", args: []string{"-listen", ":9092"}, wantErr: []string{"not a loopback"}},
		{name: "remote allowed", args: []string{"-listen", "0.0.0.0:9092", "-allow-remote"}},
		{name: "bad listen", args: []string{"-listen", "9092"}, wantErr: []string{`-listen "9092"`}},
		{name: "ports past 65535", args: []string{"-listen", "127.0.0.1:65535", "-brokers", "2"}, wantErr: []string{"past 65535"}},
		{name: "sync needs data dir", args: []string{"-sync"}, wantErr: []string{"-sync"}},
		{
			name:    "all problems at once",
			args:    []string{"-brokers", "0", "-partitions", "0", "-log-level", "loud"},
			wantErr: []string{"-brokers 0", "-partitions 0", `-log-level "loud"`},
		},
		{name: "stray argument", args: []string{"extra"}, wantErr: []string{"unexpected arguments"}},
		{name: "group timings", args: []string{"-group-min-session-timeout", "500ms", "-consumer-heartbeat-interval", "250ms"}},
		{
			name:    "group timings out of range",
			args:    []string{"-group-min-session-timeout", "0s", "-consumer-heartbeat-interval", "-1s"},
			wantErr: []string{"-group-min-session-timeout 0s", "-consumer-heartbeat-interval -1s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOptions(tt.args, io.Discard)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one mentioning %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got error %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestParseOptionsValues(t *testing.T) {
	o, err := parseOptions([]string{"-topics", "a, b,,c", "-log-level", "DEBUG", "-listen", "127.0.0.1:0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(o.topics, "|"), "a|b|c"; got != want {
		t.Errorf("got topics %q, want %q", got, want)
	}
	if o.host != "127.0.0.1" || o.port != 0 {
		t.Errorf("got host %q port %d, want 127.0.0.1 and 0", o.host, o.port)
	}
}

// broker is a devbroker run inside the test.
type broker struct {
	addrs   []string
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// startBroker runs devbroker with args until stop or the end of the test.
func startBroker(t *testing.T, args ...string) *broker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	b := &broker{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.Close()
		b.done <- err
	}()
	t.Cleanup(func() { b.stop(t) })

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		const prefix = "devbroker listening on "
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("got first line %q (open %v), want %q...", line, ok, prefix)
		}
		b.addrs = strings.Split(strings.TrimPrefix(line, prefix), ",")
	case <-time.After(10 * time.Second):
		t.Fatal("devbroker did not announce itself within 10s")
	}
	return b
}

// stop cancels the run, as SIGTERM does, and waits for it to return.
func (b *broker) stop(t *testing.T) {
	t.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	b.cancel()
	select {
	case err := <-b.done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("devbroker did not stop within 10s")
	}
}

func TestRunBrokers(t *testing.T) {
	b := startBroker(t, "-listen", "127.0.0.1:0", "-brokers", "3")
	if len(b.addrs) != 3 {
		t.Fatalf("got addresses %v, want 3", b.addrs)
	}
	for _, a := range b.addrs {
		if host, _, err := net.SplitHostPort(a); err != nil || host != "127.0.0.1" {
			t.Errorf("got address %q, want 127.0.0.1:port", a)
		}
	}
}

func TestRunPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-listen", "127.0.0.1:0", "-data-dir", dir, "-topics", "demo", "-partitions", "1", "-log-level", "none"}

	first := startBroker(t, args...)
	cl, err := kgo.NewClient(kgo.SeedBrokers(first.addrs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "demo", Key: []byte("k1"), Value: []byte("v1")}).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	first.stop(t)

	// The topic exists now; -topics must not make the restart fail.
	second := startBroker(t, args...)
	cl, err = kgo.NewClient(kgo.SeedBrokers(second.addrs...), kgo.ConsumeTopics("demo"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	for len(got) == 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume after restart: %v", err)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != 1 || string(got[0].Key) != "k1" || string(got[0].Value) != "v1" {
		t.Fatalf("got %d records (first %q=%q), want 1 record k1=v1", len(got), got[0].Key, got[0].Value)
	}
}

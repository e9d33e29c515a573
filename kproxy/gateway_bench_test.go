//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
)

// notifValueSize is the length of each notification's message (ASCII, so the
// record value has the same length).
const notifValueSize = 200

// BenchmarkGateways is the WebSocket gateways' part of `make bench`:
//
//	go test -run '^$' -bench BenchmarkGateways -benchtime 1x -timeout 30m ./kproxy/
//
// It builds kproxy and scripts/devbroker, starts the broker (topic "bench",
// 8 partitions) and kproxy with the devicehive gateway as separate processes
// on loopback, and measures in the same run, with the same generator:
//
//   - the direct client: 64 goroutines calling franz-go ProduceSync, acks=1;
//   - devicehive notif create: 64 WebSocket connections, each sending one
//     {"t":"notif","a":"create"} message of a 200-byte text with a key and
//     waiting for its reply (which comes once Kafka acknowledged).
//
// It prints each run with the CPU time each process spent per record (from
// /proc), so the line of kproxy in the devicehive run is the gateway's CPU
// per record, and a table with notifications/s against the direct client.
// Losing an acknowledged record fails the benchmark. BENCH_DURATION sets the
// measured time of each run (default 10s, after a 2 s warm-up).
func BenchmarkGateways(b *testing.B) {
	d := benchDuration(b)
	ctx := b.Context()
	r, wsURL := startGatewayRig(b)
	values := make([]string, benchKeys)
	for i := range values {
		v := fmt.Sprintf("notification %d ", i)
		values[i] = v + strings.Repeat("x", notifValueSize-len(v))
	}
	report("BenchmarkGateways: %d connections (direct client: goroutines), %d-byte values, %d keys, each run %s after a %s warm-up\n",
		benchConns, notifValueSize, benchKeys, d, benchWarmup)

	_, direct := r.measureRun(b, "direct client", func(d time.Duration) (loadgen.Result, error) {
		return loadgen.RunFunc(ctx, benchConns, d, func(ctx context.Context, worker int, seq uint64) error {
			i := int((seq*benchConns + uint64(worker)) % benchKeys)
			return r.client.ProduceSync(ctx, &kgo.Record{Topic: benchTopic, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(values[i])}).FirstErr()
		})
	}, d, nil)

	conns := make([]*websocket.Conn, benchConns)
	for i := range conns {
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil)
		if err != nil {
			b.Fatalf("dial %s: %v", wsURL, err)
		}
		b.Cleanup(func() { ws.Close() })
		conns[i] = ws
	}
	frames := make([][]byte, benchKeys)
	for i := range frames {
		frames[i] = fmt.Appendf(nil, `{"id":%d,"t":"notif","a":"create","p":{"t":%q,"m":%q,"key":"k%d"}}`, i, benchTopic, values[i], i)
	}
	before, err := r.topicRecords(ctx)
	if err != nil {
		b.Fatal(err)
	}
	warm, dh := r.measureRun(b, "devicehive notif create", func(d time.Duration) (loadgen.Result, error) {
		return loadgen.RunFunc(ctx, benchConns, d, func(_ context.Context, worker int, seq uint64) error {
			i := int((seq*benchConns + uint64(worker)) % benchKeys)
			return notifCreate(conns[worker], frames[i])
		})
	}, d, nil)
	after, err := r.topicRecords(ctx)
	if err != nil {
		b.Fatal(err)
	}
	acked := warm.OK + dh.OK
	report("devicehive: %d notifications acknowledged (warm-up included), topic grew by %d records\n", acked, after-before)
	if after-before < int64(acked) {
		b.Fatalf("devicehive: got %d new records in topic %s, want at least the %d acknowledged", after-before, benchTopic, acked)
	}
	rss := peakRSS(b, r.kproxy)
	r.kproxy.MustRun(b)

	report("\n%s(RSS: kproxy's peak, VmHWM; the direct client runs in the benchmark process)\n", loadgen.Table([]loadgen.Row{
		{Name: "direct franz-go ProduceSync acks=1", Result: direct},
		{Name: "devicehive notif create", Result: dh, RSS: rss, Ratios: map[string]float64{"vs direct": loadgen.Ratio(dh, direct)}},
	}))
	b.ReportMetric(direct.Rate(), "direct-records/s")
	b.ReportMetric(dh.Rate(), "devicehive-notifs/s")
	b.ReportMetric(loadgen.Ratio(dh, direct), "devicehive-vs-direct")
	b.ReportMetric(float64(rss)/(1<<20), "kproxy-peak-RSS-MiB")
}

// notifCreate sends one notif create frame and reads its reply; a reply with
// s != 0 is an error.
func notifCreate(ws *websocket.Conn, frame []byte) error {
	deadline := time.Now().Add(requestTimeout)
	if err := ws.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if err := ws.SetReadDeadline(deadline); err != nil {
		return err
	}
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return err
	}
	_, reply, err := ws.ReadMessage()
	if err != nil {
		return err
	}
	var r struct {
		S int             `json:"s"`
		P json.RawMessage `json:"p"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return fmt.Errorf("reply %s: %w", reply, err)
	}
	if r.S != 0 {
		return fmt.Errorf("notif create: s %d: %s", r.S, r.P)
	}
	return nil
}

// startGatewayRig starts the broker and kproxy with the devicehive gateway at
// /ws, both stopped in b.Cleanup, and returns the rig and the gateway's URL.
func startGatewayRig(b *testing.B) (*benchRig, string) {
	b.Helper()
	r, _ := startKproxyRig(b, "websocket:\n  devicehive_path: /ws\n")
	return r, "ws" + strings.TrimPrefix(r.kproxyURL, "http") + "/ws"
}

// measureRun runs load for the warm-up and then for d, reports both results
// and the CPU time each process spent per successful request during the
// measured run, and returns them. during, when set, runs alongside the
// measured run and is waited for. A run without a single success means the
// setup is broken, not slow, and fails the benchmark.
func (r *benchRig) measureRun(b *testing.B, name string, load func(time.Duration) (loadgen.Result, error), d time.Duration, during func() error) (warm, res loadgen.Result) {
	b.Helper()
	warm, err := load(benchWarmup)
	if err != nil {
		b.Fatalf("%s warm-up: %v", name, err)
	}
	errc := make(chan error, 1)
	if during != nil {
		go func() { errc <- during() }()
	}
	cpu0 := r.cpuTimes(b)
	res, err = load(d)
	cpu1 := r.cpuTimes(b)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	if during != nil {
		if err := <-errc; err != nil {
			b.Errorf("%s: %v", name, err)
		}
	}
	report("%s: warm-up %s\n%s: %s\n", name, warm, name, res)
	if res.OK == 0 {
		b.Fatalf("%s: no request succeeded: %s", name, res)
	}
	var cpu strings.Builder
	var total time.Duration
	for i := range cpu1 {
		used := cpu1[i].used - cpu0[i].used
		total += used
		fmt.Fprintf(&cpu, " %s %.0fus", cpu1[i].name, float64(used.Microseconds())/float64(res.OK))
	}
	report("%s: CPU per request:%s (%.2f cores busy)\n", name, cpu.String(), total.Seconds()/res.Duration.Seconds())
	return warm, res
}

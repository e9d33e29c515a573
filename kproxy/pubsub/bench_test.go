//go:build linux

package pubsub

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/loadgen"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

// The load of BenchmarkFetch.
const (
	benchTopic      = "bench"
	benchPartitions = 4
	benchRecords    = 200_000 // per partition
	benchValueSize  = 200
	benchRounds     = 3 // of each reader, alternating
)

// gatewayArg makes the test binary a pubsub gateway process (see init): the
// benchmark reads that process's CPU time apart from its client's.
const (
	gatewayArg      = "pubsub-bench-gateway"
	gatewayAnnounce = "pubsub gateway listening on "
)

func init() {
	if len(os.Args) == 3 && os.Args[1] == gatewayArg {
		if err := runBenchGateway(strings.Split(os.Args[2], ",")); err != nil {
			fmt.Fprintln(os.Stderr, "pubsub gateway:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// runBenchGateway serves a Handler with default options over brokers on a free
// loopback port until the process is killed.
func runBenchGateway(brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	h, err := New(Options{Client: cl})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("%s%s\n", gatewayAnnounce, ln.Addr())
	return http.Serve(ln, h)
}

// BenchmarkFetch reads the same records, benchPartitions partitions of
// benchRecords each, from a dev broker in a process of its own: first with a
// franz-go consumer (the direct client, the baseline), then through the pubsub
// gateway, in a process of its own, with one connection per partition
// fetching from the offset after the last record it got, as the APISIX clients
// poll. Each reads everything benchRounds times, alternating; the medians
// count. It reports records/s of both and their ratio, and CPU per record of
// the direct consumer's process and of the gateway's.
//
//	go test -run '^$' -bench BenchmarkFetch -benchtime 1x -v ./kproxy/pubsub/
func BenchmarkFetch(b *testing.B) {
	addr, _ := testcluster.StartDevBroker(b, "-partitions", fmt.Sprint(benchPartitions), "-auto-create=false", "-log-level", "error")
	brokers := strings.Split(addr, ",")
	fill(b, brokers)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	gw := testproc.StartWith(b, testproc.Options{Name: "pubsub gateway"}, self, gatewayArg, addr)
	url := "ws://" + gw.Announced(b, gatewayAnnounce, 30*time.Second) + "/"
	total := benchPartitions * benchRecords

	b.ResetTimer()
	for range b.N {
		// Alternate rounds on the two shared cores; report each side's median.
		var directs, gateways []measured
		for range benchRounds {
			directs = append(directs, measure(b, 0, func() { consumeDirect(b, brokers) }))
			gateways = append(gateways, measure(b, gw.PID(), func() { consumeGateway(b, url) }))
		}
		direct, gateway := median(directs), median(gateways)
		client := gateway.selfCPU // the WebSocket clients, in this process

		directRate := float64(total) / direct.wall.Seconds()
		gatewayRate := float64(total) / gateway.wall.Seconds()
		perRecord := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(total) }
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(w, "records %d (%d partitions, %d B values)\trecords/s\tCPU ns/record\tvs direct\t\n", total, benchPartitions, benchValueSize)
		fmt.Fprintf(w, "direct franz-go consumer\t%.0f\t%.0f\t1.00\t\n", directRate, perRecord(direct.selfCPU))
		fmt.Fprintf(w, "pubsub gateway (its process)\t%.0f\t%.0f\t%.2f\t\n", gatewayRate, perRecord(gateway.childCPU), gatewayRate/directRate)
		fmt.Fprintf(w, "pubsub WebSocket clients\t\t%.0f\t\t\n", perRecord(client))
		_ = w.Flush()
		b.ReportMetric(directRate, "direct-records/s")
		b.ReportMetric(gatewayRate, "pubsub-records/s")
		b.ReportMetric(gatewayRate/directRate, "pubsub/direct")
		b.ReportMetric(perRecord(direct.selfCPU), "direct-cpu-ns/record")
		b.ReportMetric(perRecord(gateway.childCPU), "gateway-cpu-ns/record")
	}
}

// fill creates the topic and writes benchRecords records to each partition.
func fill(b *testing.B, brokers []string) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	testcluster.CreateTopic(b, brokers, benchTopic, benchPartitions)
	value := []byte(strings.Repeat("v", benchValueSize))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range benchPartitions * benchRecords {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: benchTopic, Partition: int32(i % benchPartitions), Key: fmt.Appendf(nil, "k%d", i), Value: value},
			func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
				wg.Done()
			})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("produce: %v", firstErr)
	}
}

// measured is one read: wall time and the CPU time of this process and of
// the child process.
type measured struct {
	wall              time.Duration
	selfCPU, childCPU time.Duration
}

// measure runs fn and returns its wall time and the CPU time this process and
// process child (0: none) spent meanwhile.
func measure(b *testing.B, child int, fn func()) measured {
	b.Helper()
	cpu := func(pid int) time.Duration { // pid 0: this process
		d, err := loadgen.CPUTime(pid)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	childCPU := func() time.Duration {
		if child == 0 {
			return 0
		}
		return cpu(child)
	}
	self0, child0 := cpu(0), childCPU()
	start := time.Now()
	fn()
	return measured{wall: time.Since(start), selfCPU: cpu(0) - self0, childCPU: childCPU() - child0}
}

// median returns the run of median wall time.
func median(runs []measured) measured {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b measured) int { return cmp.Compare(a.wall, b.wall) })
	return sorted[len(sorted)/2]
}

// consumeDirect reads every record with a franz-go consumer of the partitions.
func consumeDirect(b *testing.B, brokers []string) {
	b.Helper()
	parts := map[int32]kgo.Offset{}
	for p := range int32(benchPartitions) {
		parts[p] = kgo.NewOffset().At(0)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: parts}))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got := 0
	for got < benchPartitions*benchRecords {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatalf("direct consumer after %d records: %v", got, err)
		}
		got += fs.NumRecords()
	}
}

// consumeGateway reads every record through the gateway, one connection per
// partition, each fetching from the offset after the last record it got.
func consumeGateway(b *testing.B, url string) {
	b.Helper()
	errs := make(chan error, benchPartitions)
	for p := range int32(benchPartitions) {
		go func() { errs <- fetchAll(url, p) }()
	}
	for range benchPartitions {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

func fetchAll(url string, partition int32) error {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	resp := &PubSubResp{}
	next := int64(0)
	for seq := int64(1); next < benchRecords; seq++ {
		req, err := proto.Marshal(fetchReq(seq, benchTopic, partition, next))
		if err != nil {
			return err
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, req); err != nil {
			return err
		}
		_ = ws.SetReadDeadline(time.Now().Add(time.Minute))
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(data, resp); err != nil {
			return err
		}
		msgs := resp.GetKafkaFetchResp().GetMessages()
		if resp.GetSequence() != seq || len(msgs) == 0 || msgs[0].GetOffset() != next {
			return fmt.Errorf("partition %d: fetch at %d: got %v", partition, next, resp.GetErrorResp())
		}
		next = msgs[len(msgs)-1].GetOffset() + 1
	}
	return nil
}

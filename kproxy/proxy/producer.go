package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/partition"
)

// producers holds the Kafka clients: ProducerNum clients for each acks level. A
// record with a key always goes through the same client of its level, so records
// of one key keep their order; records without a key are spread round-robin.
type producers struct {
	byAcks   [3][]*kgo.Client
	next     atomic.Uint64
	opts     [3][]kgo.Opt // the options of each level's clients
	batchMax int          // ProducerBatchMaxBytes
	log      *slog.Logger

	// Kafka refuses a whole batch that is larger than the topic's
	// max.message.bytes, the small records in it with the large one. A record
	// refused that way is sent again, once, through a client of its level
	// that holds one record at a time (so every batch it sends is that
	// record alone), by one goroutine in the order they were refused; only a
	// record refused alone gets body_too_large.
	soloMu    sync.Mutex
	solo      [3]*kgo.Client // created on first use
	soloQueue []*entry
	soloKick  chan struct{}
	soloStop  chan struct{}
	soloDone  chan struct{}
	soloOnce  sync.Once
	closed    bool
}

func compressionCodec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// newProducers creates the clients. They connect lazily, on the first record or
// health probe.
func newProducers(cfg Config, brokers []string, log *slog.Logger, extra ...kgo.Opt) (*producers, error) {
	base, err := kafkaconn.Options(brokers, cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	part, err := partition.Lookup(cfg.Partitioner)
	if err != nil {
		return nil, err
	}
	// A batch must hold the largest accepted body plus record overhead.
	batchMax := int32(1 << 20)
	if need := int32(cfg.MaxRequestSizeBytes) + 64<<10; need > batchMax {
		batchMax = need
	}
	common := append(base,
		kgo.RecordPartitioner(explicitPartitioner{partition.Kgo(part)}),
		kgo.ProducerBatchCompression(compressionCodec(cfg.Compression)),
		kgo.ProducerLinger(time.Duration(cfg.LingerMs)*time.Millisecond),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.ProducerBatchMaxBytes(batchMax),
		// Records are given up by the request's context (produce_timeout_ms); the
		// delivery timeout is a backstop for records whose request went away.
		kgo.RecordDeliveryTimeout(time.Duration(cfg.ProduceTimeoutMs)*time.Millisecond+time.Second),
		kgo.ProduceRequestTimeout(time.Duration(cfg.ProduceTimeoutMs)*time.Millisecond),
		// A missing topic fails fast (404) instead of holding the caller until the
		// produce timeout.
		kgo.UnknownTopicRetries(2),
		kgo.MetadataMinAge(500*time.Millisecond),
	)
	if cfg.AllowAutoTopicCreation {
		// The broker creates the topic only when auto.create.topics.enable is on;
		// otherwise the record still fails as an unknown topic.
		common = append(common, kgo.AllowAutoTopicCreation())
	}
	common = append(common, extra...)
	p := &producers{batchMax: int(batchMax), log: log, soloKick: make(chan struct{}, 1),
		soloStop: make(chan struct{}), soloDone: make(chan struct{})}
	go p.runSolo()
	for _, acks := range []Acks{AcksNone, AcksLeader, AcksAll} {
		opts := append([]kgo.Opt(nil), common...)
		switch acks {
		case AcksNone:
			opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
		case AcksLeader:
			opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
		case AcksAll:
			// Idempotent: a retried batch is never written twice.
			opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		}
		p.opts[acks.index()] = opts
		for i := 0; i < cfg.ProducerNum; i++ {
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				p.close()
				return nil, fmt.Errorf("create Kafka client (acks=%s): %w", acks, err)
			}
			p.byAcks[acks.index()] = append(p.byAcks[acks.index()], cl)
		}
	}
	return p, nil
}

// mayRetryAlone reports whether e, failed with err, is worth sending again
// alone: Kafka refused its batch as too large, and the record itself fits in a
// batch (a larger one the client refuses before sending, for good).
func (p *producers) mayRetryAlone(e *entry, err error) bool {
	if !errors.Is(err, kerr.MessageTooLarge) {
		return false
	}
	size := len(e.rec.Key) + len(e.rec.Value)
	for _, h := range e.rec.Headers {
		size += len(h.Key) + len(h.Value)
	}
	// The record's own encoding adds at most a few dozen bytes, a batch's 61.
	return size+128 <= p.batchMax
}

// retryAlone queues e for its level's one-record client.
func (p *producers) retryAlone(e *entry) {
	p.soloMu.Lock()
	p.soloQueue = append(p.soloQueue, e)
	p.soloMu.Unlock()
	select {
	case p.soloKick <- struct{}{}:
	default:
	}
}

// runSolo sends the queued records one by one until close, then fails what is
// left.
func (p *producers) runSolo() {
	defer close(p.soloDone)
	var batch []*entry
	for {
		select {
		case <-p.soloStop:
			p.soloMu.Lock()
			batch, p.soloQueue = p.soloQueue, nil
			p.closed = true
			p.soloMu.Unlock()
			for _, e := range batch {
				promise(&e.rec, kgo.ErrClientClosed)
			}
			return
		case <-p.soloKick:
		}
		p.soloMu.Lock()
		batch, p.soloQueue = p.soloQueue, batch[:0]
		p.soloMu.Unlock()
		for i, e := range batch {
			p.sendAlone(e)
			batch[i] = nil
		}
	}
}

// sendAlone produces e through its level's one-record client, waiting while
// that client holds an earlier record. The record keeps the partition it was
// given the first time.
func (p *producers) sendAlone(e *entry) {
	cl, err := p.soloClient(e.fl.acks)
	if err != nil {
		promise(&e.rec, err)
		return
	}
	e.rec.Offset, e.rec.ProducerID, e.rec.ProducerEpoch, e.rec.LeaderEpoch = 0, 0, 0, 0
	// Produce blocks while the client holds a record, so records go out one
	// at a time in the order Kafka refused them; close unblocks it.
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(stopContext(p.soloStop), cancel)
	cl.Produce(ctx, &e.rec, func(r *kgo.Record, err error) {
		stop()
		cancel()
		promise(r, err)
	})
}

// soloClient returns the one-record client of acks, creating it on first use.
func (p *producers) soloClient(acks Acks) (*kgo.Client, error) {
	p.soloMu.Lock()
	defer p.soloMu.Unlock()
	if p.closed {
		return nil, kgo.ErrClientClosed
	}
	if cl := p.solo[acks.index()]; cl != nil {
		return cl, nil
	}
	opts := append(append([]kgo.Opt(nil), p.opts[acks.index()]...),
		kgo.MaxBufferedRecords(1), kgo.ProducerLinger(0))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create Kafka client for records sent alone (acks=%s): %w", acks, err)
	}
	p.log.Info("a record was refused by Kafka in a batch too large: sending such records again alone", "acks", acks.String())
	p.solo[acks.index()] = cl
	return cl, nil
}

// stopContext is a context that ends when stop is closed.
type stopContext chan struct{}

func (c stopContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c stopContext) Done() <-chan struct{}       { return c }
func (c stopContext) Err() error {
	select {
	case <-c:
		return context.Canceled
	default:
		return nil
	}
}
func (c stopContext) Value(any) any { return nil }

// client picks the client for a record of acks with key.
func (p *producers) client(acks Acks, key []byte) *kgo.Client {
	cls := p.byAcks[acks.index()]
	if len(cls) == 1 {
		return cls[0]
	}
	if len(key) > 0 {
		return cls[partition.Worker(key, len(cls))]
	}
	return cls[p.next.Add(1)%uint64(len(cls))]
}

// all returns every client, those sending records alone included.
func (p *producers) all() []*kgo.Client {
	var out []*kgo.Client
	for _, cls := range p.byAcks {
		out = append(out, cls...)
	}
	p.soloMu.Lock()
	for _, cl := range p.solo {
		if cl != nil {
			out = append(out, cl)
		}
	}
	p.soloMu.Unlock()
	return out
}

// buffered returns the records waiting for Kafka over all clients.
func (p *producers) buffered() int64 {
	var n int64
	for _, cl := range p.all() {
		n += cl.BufferedProduceRecords()
	}
	return n
}

// flush waits until every buffered record is acknowledged or ctx ends.
func (p *producers) flush(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.all()))
	for i, cl := range p.all() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cl.Flush(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// close closes every client; records still buffered fail with ErrClientClosed.
func (p *producers) close() {
	p.soloOnce.Do(func() { close(p.soloStop) })
	<-p.soloDone
	for _, cl := range p.all() {
		cl.Close()
	}
}

// health tracks whether Kafka is reachable. A prober pings the brokers — every
// second while Kafka is down, every five seconds while it is up, and at once when a
// request saw a failure — so /commit can answer 503 at once instead of making every
// caller wait for the produce timeout, and recovers by itself.
type health struct {
	ping   func(ctx context.Context) error
	log    *slog.Logger
	down   atomic.Bool
	lastMu sync.Mutex
	last   error
	kick   chan struct{}
}

func newHealth(ping func(ctx context.Context) error, log *slog.Logger) *health {
	return &health{ping: ping, log: log, kick: make(chan struct{}, 1)}
}

// up reports whether Kafka answered the last probe (true before the first one).
func (h *health) up() bool { return !h.down.Load() }

// err returns the reason Kafka is down, nil when up.
func (h *health) err() error {
	if h.up() {
		return nil
	}
	h.lastMu.Lock()
	defer h.lastMu.Unlock()
	return h.last
}

// suspect asks for a probe now, after a request failed in a way that may mean
// Kafka is gone.
func (h *health) suspect() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run probes until ctx ends.
func (h *health) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
		h.probe(ctx)
		next := 5 * time.Second
		if !h.up() {
			next = time.Second
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

func (h *health) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := h.ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		h.lastMu.Lock()
		h.last = fmt.Errorf("%w: no broker answered: %v", ErrKafkaUnavailable, err)
		h.lastMu.Unlock()
		if !h.down.Swap(true) {
			h.log.Warn("kafka unreachable: answering 503 until it is back", "err", err)
		}
		return
	}
	if h.down.Swap(false) {
		h.log.Info("kafka reachable again")
	}
}

// explicitPartitioner writes a record whose Partition is set (not NoPartition) to
// that partition, and leaves every other record to the configured partitioner. A
// partition the topic does not have fails the record (see errBadPartition).
type explicitPartitioner struct{ kgo.Partitioner }

// ForTopic implements kgo.Partitioner.
func (p explicitPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	tp := p.Partitioner.ForTopic(topic)
	onNewBatch, _ := tp.(kgo.TopicPartitionerOnNewBatch)
	return &explicitTopicPartitioner{TopicPartitioner: tp, onNewBatch: onNewBatch}
}

type explicitTopicPartitioner struct {
	kgo.TopicPartitioner
	onNewBatch kgo.TopicPartitionerOnNewBatch
}

// RequiresConsistency implements kgo.TopicPartitioner: an explicit partition is
// chosen among all partitions, not only those writable now.
func (p *explicitTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition != NoPartition || p.TopicPartitioner.RequiresConsistency(r)
}

// Partition implements kgo.TopicPartitioner. With RequiresConsistency, n is the
// topic's number of partitions and the choice is the partition itself.
func (p *explicitTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition != NoPartition {
		if r.Partition < 0 || int(r.Partition) >= n {
			// kgo fails the record with "invalid record partitioning choice".
			return -1
		}
		return int(r.Partition)
	}
	return p.TopicPartitioner.Partition(r, n)
}

// OnNewBatch implements kgo.TopicPartitionerOnNewBatch for the partitioner within.
func (p *explicitTopicPartitioner) OnNewBatch() {
	if p.onNewBatch != nil {
		p.onNewBatch.OnNewBatch()
	}
}

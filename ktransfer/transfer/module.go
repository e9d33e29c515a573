package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/dispatch"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// moduleRunner runs one module in this process: it consumes the partitions the
// fleet gives it, dispatches their records to the workers and commits offsets.
type moduleRunner struct {
	m              Module
	log            *slog.Logger
	met            *metrics
	mm             *moduleMetrics // met's series of this module
	consumer       *kgo.Client
	adm            *kadm.Client
	dlq            *kgo.Client // nil without dead_letter_topic
	pusher         *push.Pusher
	pool           *dispatch.Pool
	member         fleet.Membership
	methods        map[string]bool
	releaseTimeout time.Duration

	// unknownSince is when the polls began to answer UNKNOWN_TOPIC_ID (zero
	// while they do not), and idCheckAt when confirmRecreated last read the
	// metadata; the poll loop alone uses them.
	unknownSince time.Time
	idCheckAt    time.Time

	mu      sync.Mutex
	topicID kadm.TopicID // the topic's id the consumer fetches by; zero until known
	parts   map[int32]*partRunner
	resume  map[int32]resumeState // progress of partitions lost to a fence
	resets  map[int32]OffsetReset // the last out-of-range event of each partition
	wg      sync.WaitGroup        // partition runners
}

// close releases the module's clients and workers; parts not made yet are nil.
func (mr *moduleRunner) close() {
	if mr.pool != nil {
		mr.pool.Close()
	}
	if mr.consumer != nil {
		mr.consumer.Close()
	}
	if mr.dlq != nil {
		mr.dlq.Close()
	}
	if mr.pusher != nil {
		mr.pusher.Close()
	}
}

// action is what happens to a record before any push.
type action int

const (
	actPush action = iota
	actFiltered
	actMalformedSkip
	actMalformedDeadLetter
)

// classify applies the methods filter and on_malformed.
func (mr *moduleRunner) classify(value []byte) (action, string) {
	method, ok := envelope.Method(value)
	if len(mr.methods) == 0 {
		return actPush, method
	}
	if !ok {
		switch mr.m.OnMalformed {
		case "push":
			return actPush, ""
		case "dead_letter":
			return actMalformedDeadLetter, ""
		}
		return actMalformedSkip, ""
	}
	if !mr.methods[method] {
		return actFiltered, method
	}
	return actPush, method
}

// run consumes until ctx ends, then hands every partition back and leaves the fleet.
func (mr *moduleRunner) run(ctx context.Context) {
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		mr.poll(ctx)
	}()
	go func() {
		defer bg.Done()
		mr.watchPartitions(ctx)
	}()
	claims := mr.member.Claims()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case c, ok := <-claims:
			if !ok {
				break loop
			}
			pr := newPartRunner(mr, c)
			mr.wg.Add(1)
			go func() {
				defer mr.wg.Done()
				pr.run()
			}()
		}
	}
	// Closing the membership revokes every claim (cause fleet.ErrClosed); each
	// partition runner drains, commits and releases its partition before Close
	// returns.
	mr.member.Close()
	mr.wg.Wait()
	bg.Wait()
}

// poll fetches records of every owned partition and queues them to their runners.
func (mr *moduleRunner) poll(ctx context.Context) {
	for {
		fetches := mr.consumer.PollRecords(ctx, 4096)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		unknownID := false
		fetches.EachError(func(topic string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			switch {
			case errors.Is(err, context.Canceled):
			case errors.Is(err, kerr.UnknownTopicID):
				unknownID = true
			case errors.As(err, &loss):
				if pr := mr.part(p); pr != nil {
					pr.stopFetch(resetRequest{reason: reasonTruncated, at: loss.ResetTo, err: err})
				}
			case errors.Is(err, kerr.OffsetOutOfRange):
				if pr := mr.part(p); pr != nil {
					pr.stopFetch(resetRequest{err: err})
				}
			case kerr.IsRetriable(err):
				// The client retries these itself (a leader moving, a broker
				// restarting); they are kept only for UNKNOWN_TOPIC_ID.
				mr.log.Debug("fetch failed; the client retries", "topic", topic, "partition", p, "err", err)
			default:
				mr.log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		if !unknownID {
			mr.unknownSince = time.Time{}
		} else if mr.confirmRecreated(ctx) {
			mr.topicRecreated()
		}
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			if pr := mr.part(ftp.Partition); pr != nil {
				pr.enqueue(ftp.Records)
			}
		})
	}
}

// unknownIDFor is how long the polls must answer UNKNOWN_TOPIC_ID without a
// break before the topic counts as gone when the metadata cannot tell: about
// the client's own five retries without KeepRetryableFetchErrors.
const unknownIDFor = 10 * time.Second

// idCheckInterval spaces confirmRecreated's metadata reads.
const idCheckInterval = 500 * time.Millisecond

// confirmRecreated tells whether the topic the consumer fetches by id is gone
// after a fetch answered UNKNOWN_TOPIC_ID. Kafka also answers that for a moment
// after a topic is created or a partition moves to a broker that has not
// caught up, so the answer alone proves nothing: the topic counts as
// recreated at once when the metadata gives it another id than the one the
// consumer holds, and otherwise (the topic missing, the id not known, the
// metadata unreadable) once the polls answered so for unknownIDFor.
func (mr *moduleRunner) confirmRecreated(ctx context.Context) bool {
	if mr.unknownSince.IsZero() {
		mr.unknownSince = time.Now()
	}
	if time.Since(mr.unknownSince) >= unknownIDFor {
		return true
	}
	mr.mu.Lock()
	known := mr.topicID
	mr.mu.Unlock()
	if known == (kadm.TopicID{}) || time.Since(mr.idCheckAt) < idCheckInterval {
		return false
	}
	mr.idCheckAt = time.Now()
	id, err := mr.currentTopicID(ctx)
	return err == nil && id != (kadm.TopicID{}) && id != known
}

// noteTopicID records the topic's id from the metadata when none is known:
// at the start, and after a recreation.
func (mr *moduleRunner) noteTopicID(ctx context.Context) {
	mr.mu.Lock()
	known := mr.topicID
	mr.mu.Unlock()
	if known != (kadm.TopicID{}) {
		return
	}
	id, err := mr.currentTopicID(ctx)
	if err != nil {
		return
	}
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if mr.topicID == (kadm.TopicID{}) {
		mr.topicID = id
	}
}

// currentTopicID asks Kafka for the topic's id now. It sends its own Metadata
// request: the admin client's answers come from the client's metadata cache,
// which may still hold a deleted topic's id for seconds.
func (mr *moduleRunner) currentTopicID(ctx context.Context) (kadm.TopicID, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(mr.m.Topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, mr.consumer)
	if err != nil {
		return kadm.TopicID{}, err
	}
	for _, t := range resp.Topics {
		if t.Topic != nil && *t.Topic == mr.m.Topic {
			if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
				return kadm.TopicID{}, err
			}
			return t.TopicID, nil
		}
	}
	return kadm.TopicID{}, fmt.Errorf("topic %s: not in the metadata", mr.m.Topic)
}

// topicRecreated handles a topic deleted and recreated under the running module
// (the client reports the old topic id unknown): the consumer forgets the old
// topic, and every owned partition continues in the new one from offset_reset
// once what it fetched from the old one is done. The committed offsets belong to
// the old topic; kept, they would skip the new topic's records below them.
func (mr *moduleRunner) topicRecreated() {
	mr.log.Warn("the topic was deleted and recreated: every owned partition continues in the new topic from offset_reset", "offset_reset", mr.m.OffsetReset)
	mr.unknownSince = time.Time{}
	mr.consumer.PurgeTopicsFromConsuming(mr.m.Topic)
	mr.mu.Lock()
	mr.topicID = kadm.TopicID{} // the next metadata read gives the new topic's
	parts := make([]*partRunner, 0, len(mr.parts))
	for _, pr := range mr.parts {
		parts = append(parts, pr)
	}
	mr.mu.Unlock()
	for _, pr := range parts {
		pr.stopFetch(resetRequest{reason: reasonRecreated, err: kerr.UnknownTopicID})
	}
}

// noteReset records that partition p's position moved from from to to without
// the records in between being pushed (or pushed again): warning, metric and
// /status.
func (mr *moduleRunner) noteReset(p int32, reason string, from, to int64, cause error) {
	ev := OffsetReset{Partition: p, Reason: reason, From: from, To: to, UnixMs: time.Now().UnixMilli()}
	if cause != nil {
		ev.Error = cause.Error()
	}
	args := []any{"partition", p, "reason", reason, "from", from, "to", to, "offset_reset", mr.m.OffsetReset}
	if cause != nil {
		args = append(args, "err", cause)
	}
	mr.log.Warn("offset out of range: continuing from "+offsetResetPoint(reason, mr.m.OffsetReset), args...)
	mr.met.offsetResets.WithLabelValues(mr.m.Name, reason).Inc()
	mr.mu.Lock()
	mr.resets[p] = ev
	mr.mu.Unlock()
}

// offsetResetPoint names where a partition continues after an out-of-range event.
func offsetResetPoint(reason, offsetReset string) string {
	switch {
	case reason == reasonTruncated:
		return "where the truncated log diverged"
	case offsetReset == "newest":
		return "the log end (offset_reset newest)"
	}
	return "the log start (offset_reset oldest)"
}

func (mr *moduleRunner) saveResume(p int32, rs resumeState) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	mr.resume[p] = rs
}

// takeResume returns and forgets what the process knew of p when it was fenced.
func (mr *moduleRunner) takeResume(p int32) (resumeState, bool) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	rs, ok := mr.resume[p]
	delete(mr.resume, p)
	return rs, ok
}

// watchPartitions tells the fleet the topic's partition count, now and whenever
// it grows.
func (mr *moduleRunner) watchPartitions(ctx context.Context) {
	known := int32(-1)
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = 10 * time.Second
		mr.noteTopicID(ctx)
		n, err := mr.partitionCount(ctx)
		if err != nil {
			if ctx.Err() == nil {
				mr.log.Warn("read the topic's partitions", "topic", mr.m.Topic, "err", err)
			}
			wait = 2 * time.Second
			continue
		}
		if n != known {
			mr.log.Info("topic partitions", "topic", mr.m.Topic, "partitions", n)
			known = n
			mr.member.SetPartitions(n)
		}
	}
}

func (mr *moduleRunner) partitionCount(ctx context.Context) (int32, error) {
	tds, err := mr.adm.ListTopics(ctx, mr.m.Topic)
	if err != nil {
		return 0, err
	}
	td, ok := tds[mr.m.Topic]
	if !ok || td.Err != nil {
		return 0, fmt.Errorf("topic %s: %w", mr.m.Topic, errors.Join(td.Err, errors.New("not found")))
	}
	return int32(len(td.Partitions)), nil
}

func (mr *moduleRunner) part(p int32) *partRunner {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	return mr.parts[p]
}

func (mr *moduleRunner) setPart(p int32, pr *partRunner) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if pr == nil {
		delete(mr.parts, p)
	} else {
		mr.parts[p] = pr
	}
	mr.mm.owned.Set(float64(len(mr.parts)))
}

// ModuleStatus is one module's entry in /status.
type ModuleStatus struct {
	Topic string `json:"topic"`
	// Fleet is the membership's state: fleet.Snapshot with offset_store
	// zookeeper, kgroup.Snapshot with kafka.
	Fleet      any               `json:"fleet"`
	Partitions []PartitionStatus `json:"partitions"`
	Workers    int               `json:"workers"`
	Busy       int               `json:"busy_workers"`
	Queued     int               `json:"queued"`
	// OffsetResets is the last out-of-range event of each partition since the
	// process started, by partition.
	OffsetResets []OffsetReset `json:"offset_out_of_range,omitempty"`
}

// OffsetReset is an out-of-range event in /status: partition's position moved
// from From to To without the records between being pushed (or pushed again).
type OffsetReset struct {
	Partition int32 `json:"partition"`
	// Reason is below_log_start, above_log_end, topic_recreated or log_truncated.
	Reason string `json:"reason"`
	From   int64  `json:"from"`
	To     int64  `json:"to"`
	UnixMs int64  `json:"unix_ms"`
	Error  string `json:"error,omitempty"`
}

func (mr *moduleRunner) status() ModuleStatus {
	mr.mu.Lock()
	parts := make([]*partRunner, 0, len(mr.parts))
	for _, pr := range mr.parts {
		parts = append(parts, pr)
	}
	mr.mu.Unlock()
	sort.Slice(parts, func(i, j int) bool { return parts[i].p < parts[j].p })
	mr.mu.Lock()
	resets := make([]OffsetReset, 0, len(mr.resets))
	for _, ev := range mr.resets {
		resets = append(resets, ev)
	}
	mr.mu.Unlock()
	sort.Slice(resets, func(i, j int) bool { return resets[i].Partition < resets[j].Partition })
	st := ModuleStatus{OffsetResets: resets, Topic: mr.m.Topic, Fleet: mr.member.Snapshot(), Workers: mr.m.WorkerNum, Busy: mr.pool.Busy(), Queued: mr.pool.Queued()}
	for _, pr := range parts {
		st.Partitions = append(st.Partitions, pr.status())
	}
	return st
}

// deadLetter writes rec to the dead-letter topic, retrying until Kafka has it or
// ctx ends.
func (mr *moduleRunner) deadLetter(ctx context.Context, rec *kgo.Record, cause string) error {
	out := &kgo.Record{
		Topic: mr.m.DeadLetterTopic,
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kgo.RecordHeader{
			{Key: "ktransfer-module", Value: []byte(mr.m.Name)},
			{Key: "ktransfer-source-topic", Value: []byte(rec.Topic)},
			{Key: "ktransfer-source-partition", Value: []byte(strconv.Itoa(int(rec.Partition)))},
			{Key: "ktransfer-source-offset", Value: []byte(strconv.FormatInt(rec.Offset, 10))},
			{Key: "ktransfer-error", Value: []byte(cause)},
		},
	}
	return storeRetry.Retry(ctx, func() error {
		return mr.dlq.ProduceSync(ctx, out).FirstErr()
	}, func(err error, wait time.Duration) {
		mr.log.Warn("dead-letter write failed; retrying", "dead_letter_topic", mr.m.DeadLetterTopic, "partition", rec.Partition, "offset", rec.Offset, "err", err, "retry_in", wait)
	})
}

// storeRetry spaces the attempts of the writes and reads a partition cannot
// go on without (dead-letter records, the log's offsets after an
// out-of-range fetch): from 200 ms, doubling to 5 s, until they succeed or
// the claim ends.
var storeRetry = backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}

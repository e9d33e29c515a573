package transfer

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/window"
)

// partRunner pushes one owned partition: it feeds fetched records through the
// window to the workers and commits the lowest offset not yet done.
//
// Lock order: partRunner.mu is never held while calling into the Kafka client, the
// window or the pool.
type partRunner struct {
	mr    *moduleRunner
	lease *fleet.Lease
	p     int32
	pstr  string
	log   *slog.Logger

	tracker    *window.Tracker
	pushCtx    context.Context // pushes of this partition; cancelled when fenced or abandoned
	cancelPush context.CancelCauseFunc
	jobs       sync.WaitGroup // dispatched deliveries not finished (pushed, failed or abandoned)

	mu      sync.Mutex
	pending []*kgo.Record // fetched, not yet dispatched
	next    int64         // next offset expected from the fetcher
	paused  bool
	wake    chan struct{}

	fill    prometheus.Gauge // ktransfer_window_fill of this partition
	offsetG prometheus.Gauge // ktransfer_committed_offset of this partition

	committed atomic.Int64 // last offset written to ZooKeeper
	lastErr   atomic.Value // string
	lastAt    atomic.Int64 // unix ms of the last commit
}

func newPartRunner(mr *moduleRunner, l *fleet.Lease) *partRunner {
	p := l.Partition()
	return &partRunner{
		mr:    mr,
		lease: l,
		p:     p,
		pstr:  strconv.Itoa(int(p)),
		log:   mr.log.With("partition", p),
		wake:  make(chan struct{}, 1),
	}
}

// highWater is how many fetched records may wait before fetching is paused.
func (pr *partRunner) highWater() int { return max(pr.mr.m.WindowSize, 512) }

// run owns the partition until its lease ends, then drains, commits and releases.
func (pr *partRunner) run() {
	ctx := pr.lease.Context()
	start, err := pr.startOffset(ctx)
	if err != nil {
		pr.log.Warn("cannot start the partition; handing it back", "err", err)
		pr.setErr(err)
		pr.finish(false)
		return
	}
	pr.tracker = window.New(start, pr.mr.m.WindowSize)
	pr.fill = pr.mr.met.windowFill.WithLabelValues(pr.mr.m.Name, pr.mr.m.Topic, pr.pstr)
	pr.offsetG = pr.mr.met.committed.WithLabelValues(pr.mr.m.Name, pr.mr.m.Topic, pr.pstr)
	pr.next = start
	pr.committed.Store(start)
	pr.pushCtx, pr.cancelPush = context.WithCancelCause(context.Background())
	pr.mr.setPart(pr.p, pr)
	// A partition this process paused before it last lost it stays paused in the
	// client ("paused partitions persist until resumed"): resume before adding.
	pr.mr.consumer.ResumeFetchPartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
	pr.mr.consumer.AddConsumePartitions(map[string]map[int32]kgo.Offset{pr.mr.m.Topic: {pr.p: kgo.NewOffset().At(start)}})
	pr.log.Info("partition owned", "offset", start)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pr.commitLoop(ctx)
	}()
	pr.feed(ctx)
	wg.Wait()
	pr.finish(true)
}

// startOffset reads the committed offset, or chooses and commits the initial one,
// and moves it up to the log start when retention deleted what it points at.
func (pr *partRunner) startOffset(ctx context.Context) (int64, error) {
	off, ok, err := pr.lease.LoadOffset()
	if err != nil {
		return 0, err
	}
	topic := pr.mr.m.Topic
	starts, err := pr.mr.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	so, found := starts.Lookup(topic, pr.p)
	if !found || so.Err != nil {
		return 0, errors.Join(errors.New("no start offset"), so.Err)
	}
	if !ok {
		off = so.Offset
		if pr.mr.m.InitialOffset == "newest" {
			ends, err := pr.mr.adm.ListEndOffsets(ctx, topic)
			if err != nil {
				return 0, err
			}
			eo, _ := ends.Lookup(topic, pr.p)
			if eo.Err != nil {
				return 0, eo.Err
			}
			off = eo.Offset
		}
		pr.log.Info("no committed offset: starting from the "+pr.mr.m.InitialOffset+" record", "offset", off)
	} else if off < so.Offset {
		pr.log.Warn("committed offset is below the log start (deleted by retention): continuing from the oldest record", "committed", off, "log_start", so.Offset)
		pr.mr.mm.offsetResets.Inc()
		off = so.Offset
	}
	// The offset node exists from the first moment the module owns the partition.
	if err := pr.lease.Commit(off); err != nil {
		return 0, err
	}
	return off, nil
}

// enqueue takes fetched records; fetching pauses while too many wait.
func (pr *partRunner) enqueue(recs []*kgo.Record) {
	pr.mu.Lock()
	for _, r := range recs {
		if r.Offset < pr.next {
			continue // a fetch from before this runner took over
		}
		pr.pending = append(pr.pending, r)
		pr.next = r.Offset + 1
	}
	pause := !pr.paused && len(pr.pending) >= pr.highWater()
	if pause {
		pr.paused = true
	}
	pr.mu.Unlock()
	if pause {
		pr.mr.consumer.PauseFetchPartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
	}
	select {
	case pr.wake <- struct{}{}:
	default:
	}
}

// pop returns the next fetched record, waiting for one.
func (pr *partRunner) pop(ctx context.Context) (*kgo.Record, bool) {
	for {
		pr.mu.Lock()
		if len(pr.pending) > 0 {
			r := pr.pending[0]
			pr.pending[0] = nil
			pr.pending = pr.pending[1:]
			resume := pr.paused && len(pr.pending) < pr.highWater()/2
			if resume {
				pr.paused = false
			}
			pr.mu.Unlock()
			if resume {
				pr.mr.consumer.ResumeFetchPartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
			}
			return r, true
		}
		pr.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-pr.wake:
		}
	}
}

// feed dispatches records in offset order until ctx (the lease) ends.
func (pr *partRunner) feed(ctx context.Context) {
	mr := pr.mr
	for {
		rec, ok := pr.pop(ctx)
		if !ok {
			return
		}
		if err := pr.tracker.Acquire(ctx); err != nil {
			return
		}
		pr.tracker.Add(rec.Offset)
		pr.fill.Set(float64(pr.tracker.InFlight()))
		act, method := mr.classify(rec.Value)
		switch act {
		case actFiltered:
			mr.mm.filtered.Inc()
			pr.tracker.Done(rec.Offset)
			continue
		case actMalformedSkip:
			mr.mm.malformed.Inc()
			pr.log.Warn("record value is not a msgpack map with a string method: skipped", "offset", rec.Offset)
			pr.tracker.Done(rec.Offset)
			continue
		}
		pr.jobs.Add(1)
		err := mr.pool.Submit(ctx, rec.Key, func() {
			defer pr.jobs.Done()
			pr.deliver(rec, act, method)
		})
		if err != nil {
			pr.jobs.Done()
			return // not done: the next owner pushes it
		}
	}
}

// deliver pushes one record and marks it done unless its pushes were abandoned.
func (pr *partRunner) deliver(rec *kgo.Record, act action, method string) {
	mr := pr.mr
	ctx := pr.pushCtx
	if ctx.Err() != nil {
		return
	}
	var cause string
	switch act {
	case actMalformedDeadLetter:
		cause = "value is not a msgpack map with a string method"
	default:
		began := time.Now()
		res := mr.pusher.Push(ctx, push.Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Method: method})
		if res.Err == nil {
			if pr.log.Enabled(ctx, slog.LevelDebug) {
				pr.log.Debug("pushed", "offset", rec.Offset, "key", string(rec.Key), "server", res.Server, "status", res.Status, "attempts", res.Attempts)
			}
			mr.mm.pushed.Inc()
			mr.mm.latency.Observe(time.Since(began).Seconds())
			pr.done(rec.Offset)
			return
		}
		if ctx.Err() != nil {
			return // abandoned: not done, the next owner pushes it again
		}
		cause = res.Err.Error()
		pr.setErr(res.Err)
		if mr.dlq == nil {
			if res.Permanent {
				mr.mm.permanent.Inc()
			} else {
				mr.mm.exhausted.Inc()
			}
			pr.log.Warn("record not delivered: skipped", "offset", rec.Offset, "key", string(rec.Key), "attempts", res.Attempts, "status", res.Status, "server", res.Server, "err", res.Err)
			pr.done(rec.Offset)
			return
		}
	}
	if err := mr.deadLetter(ctx, rec, cause); err != nil {
		return // abandoned while writing the dead letter
	}
	mr.mm.deadLettered.Inc()
	pr.log.Warn("record sent to the dead-letter topic", "offset", rec.Offset, "dead_letter_topic", mr.m.DeadLetterTopic, "err", cause)
	pr.done(rec.Offset)
}

func (pr *partRunner) done(offset int64) {
	pr.tracker.Done(offset)
	pr.fill.Set(float64(pr.tracker.InFlight()))
}

// commitLoop writes the committed offset when it changed, every commit interval.
func (pr *partRunner) commitLoop(ctx context.Context) {
	t := time.NewTicker(pr.mr.m.CommitInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = pr.commit()
		}
	}
}

// commit writes the committed offset when it changed.
func (pr *partRunner) commit() error {
	off := pr.tracker.Committed()
	if off == pr.committed.Load() {
		return nil
	}
	if err := pr.lease.Commit(off); err != nil {
		pr.setErr(err)
		pr.log.Warn("commit failed", "offset", off, "err", err)
		return err
	}
	pr.committed.Store(off)
	pr.lastAt.Store(time.Now().UnixMilli())
	pr.offsetG.Set(float64(off))
	return nil
}

// finalCommit commits at hand-over, retrying while ZooKeeper is briefly
// unreachable (not fenced) so a clean hand-over re-pushes nothing.
func (pr *partRunner) finalCommit() {
	for i := 0; i < 20; i++ {
		err := pr.commit()
		if err == nil || !errors.Is(err, fleet.ErrNoSession) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// finish hands the partition back. After a rebalance or shutdown the pushes in
// progress get release_timeout_ms to finish and the offset is committed; when fenced
// they stop at once and nothing is committed.
func (pr *partRunner) finish(started bool) {
	cause := context.Cause(pr.lease.Context())
	if started {
		pr.mr.consumer.RemoveConsumePartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
		pr.mr.consumer.ResumeFetchPartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
		pr.tracker.Close()
		fenced := errors.Is(cause, fleet.ErrFenced)
		if !fenced {
			idle := make(chan struct{})
			go func() {
				pr.jobs.Wait()
				close(idle)
			}()
			select {
			case <-idle:
			case <-time.After(pr.mr.releaseTimeout):
				pr.log.Warn("pushes still in progress at hand-over: abandoned, the next owner pushes them again", "in_flight", pr.tracker.InFlight())
			}
		}
		pr.cancelPush(cause)
		pr.jobs.Wait()
		if !fenced {
			pr.finalCommit()
		}
		pr.mr.setPart(pr.p, nil)
		mr := pr.mr
		mr.met.windowFill.DeleteLabelValues(mr.m.Name, mr.m.Topic, pr.pstr)
		mr.met.committed.DeleteLabelValues(mr.m.Name, mr.m.Topic, pr.pstr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pr.lease.Release(ctx); err != nil && !errors.Is(cause, fleet.ErrFenced) {
		pr.log.Warn("release partition", "err", err)
	}
	pr.log.Info("partition released", "reason", cause, "committed", pr.committed.Load())
}

func (pr *partRunner) setErr(err error) { pr.lastErr.Store(err.Error()) }

// PartitionStatus is one owned partition in /status.
type PartitionStatus struct {
	Partition  int32  `json:"partition"`
	Committed  int64  `json:"committed_offset"`
	Done       int64  `json:"done_below"`
	WindowFill int    `json:"window_fill"`
	Window     int    `json:"window_size"`
	Pending    int    `json:"fetched_waiting"`
	LastCommit int64  `json:"last_commit_unix_ms,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

func (pr *partRunner) status() PartitionStatus {
	pr.mu.Lock()
	pending := len(pr.pending)
	pr.mu.Unlock()
	s := PartitionStatus{
		Partition:  pr.p,
		Committed:  pr.committed.Load(),
		Done:       pr.tracker.Committed(),
		WindowFill: pr.tracker.InFlight(),
		Window:     pr.mr.m.WindowSize,
		Pending:    pending,
		LastCommit: pr.lastAt.Load(),
	}
	if e, ok := pr.lastErr.Load().(string); ok {
		s.LastError = e
	}
	return s
}

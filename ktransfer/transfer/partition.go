package transfer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/window"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
)

// Reasons a partition's position moved without its records being pushed, the
// reason label of ktransfer_offset_out_of_range_total and /status.
const (
	// reasonBelowStart: the committed or fetch offset is below the log start
	// (retention deleted the records).
	reasonBelowStart = "below_log_start"
	// reasonAboveEnd: the committed or fetch offset is above the log end (the
	// topic was deleted and recreated, or the log truncated).
	reasonAboveEnd = "above_log_end"
	// reasonRecreated: the topic was deleted and recreated under the running
	// module (Kafka reports a new topic id).
	reasonRecreated = "topic_recreated"
	// reasonTruncated: the log was truncated below what was fetched (an unclean
	// leader election); the client located the point exactly.
	reasonTruncated = "log_truncated"
)

// resetRequest is what the poller tells a partition runner when the fetch of its
// partition stopped because the position is no longer in the log.
type resetRequest struct {
	reason string // reasonBelowStart or reasonAboveEnd are decided by the runner
	at     int64  // reasonTruncated: where the log diverged
	err    error
}

// resumeState is what a partition runner knew when it was fenced: with it, the
// process takes the partition back where it was, when nobody committed an
// offset meanwhile.
type resumeState struct {
	written   fleet.Mark // the committed offset as this process last wrote it
	next      int64      // lowest offset not done
	doneAhead []int64    // offsets above next already done
}

// partRunner pushes one owned partition: it feeds fetched records through the
// window to the workers and commits the lowest offset not yet done.
//
// Lock order: partRunner.mu is never held while calling into the Kafka client, the
// window or the pool.
type partRunner struct {
	mr    *moduleRunner
	claim fleet.Claim
	p     int32
	pstr  string
	log   *slog.Logger

	tracker    atomic.Pointer[window.Tracker] // replaced when the position is reset
	pushCtx    *pushContext                   // pushes of this partition; cancelled when fenced or abandoned
	cancelPush context.CancelCauseFunc
	jobs       sync.WaitGroup // dispatched deliveries not finished (pushed, failed or abandoned)

	// skip holds offsets done before a fence, not to be pushed again; only the
	// feed goroutine uses it.
	skip    map[int64]bool
	skipMax int64

	mu      sync.Mutex
	pending []*kgo.Record // fetched, not yet dispatched
	next    int64         // next offset expected from the fetcher
	paused  bool
	stopped bool          // the fetch was removed for a reset; fetched records are dropped until it is added again
	reset   *resetRequest // the reset to make once pending is dispatched
	wake    chan struct{}

	fill    prometheus.Gauge // ktransfer_window_fill of this partition
	offsetG prometheus.Gauge // ktransfer_committed_offset of this partition

	committed atomic.Int64 // last offset written to the offset store
	lastErr   atomic.Value // string
	lastAt    atomic.Int64 // unix ms of the last commit
}

func newPartRunner(mr *moduleRunner, c fleet.Claim) *partRunner {
	p := c.Partition()
	return &partRunner{
		mr:    mr,
		claim: c,
		p:     p,
		pstr:  strconv.Itoa(int(p)),
		log:   mr.log.With("partition", p),
		wake:  make(chan struct{}, 1),
	}
}

// highWater is how many fetched records may wait before fetching is paused.
func (pr *partRunner) highWater() int { return max(pr.mr.m.WindowSize, 512) }

func (pr *partRunner) tr() *window.Tracker { return pr.tracker.Load() }

// run owns the partition until its claim ends, then drains, commits and releases.
func (pr *partRunner) run() {
	ctx := pr.claim.Context()
	start, err := pr.startOffset(ctx)
	if err != nil {
		pr.log.Warn("cannot start the partition; handing it back", "err", err)
		pr.setErr(err)
		pr.finish(false)
		return
	}
	pr.tracker.Store(window.New(start, pr.mr.m.WindowSize))
	pr.fill = pr.mr.met.windowFill.WithLabelValues(pr.mr.m.Name, pr.mr.m.Topic, pr.pstr)
	pr.offsetG = pr.mr.met.committed.WithLabelValues(pr.mr.m.Name, pr.mr.m.Topic, pr.pstr)
	pr.next = start
	pr.committed.Store(start)
	pr.offsetG.Set(float64(start))
	pr.pushCtx, pr.cancelPush = newPushContext(pr.claim)
	pr.mr.setPart(pr.p, pr)
	pr.addFetch(start)
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

// addFetch has the consumer fetch the partition from offset.
func (pr *partRunner) addFetch(offset int64) {
	// A partition this process paused before it last lost it stays paused in the
	// client ("paused partitions persist until resumed"): resume before adding.
	pr.mr.consumer.ResumeFetchPartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
	pr.mr.consumer.AddConsumePartitions(map[string]map[int32]kgo.Offset{pr.mr.m.Topic: {pr.p: kgo.NewOffset().At(offset)}})
}

// startOffset decides where the partition starts and commits it at once (the
// committed offset exists from the first moment the module owns the partition):
// this process's own progress when it takes back a partition it was fenced
// from and nobody committed since; else the committed offset; else, without
// one, initial_offset. A committed offset outside the log goes to offset_reset.
func (pr *partRunner) startOffset(ctx context.Context) (int64, error) {
	rs, had := pr.mr.takeResume(pr.p)
	off, ok, err := pr.claim.LoadOffset()
	mine := had && pr.claim.Resumes(rs.written)
	if err == nil {
		off, err = pr.chooseStart(ctx, off, ok, rs, had, mine)
	}
	if err != nil && mine {
		// This claim (in ZooKeeper, its rewrite of the node) is the last
		// write: the progress stays this process's for the next claim.
		if w := pr.claim.Written(); !w.IsZero() {
			rs.written = w
			pr.mr.saveResume(pr.p, rs)
		}
	}
	return off, err
}

func (pr *partRunner) chooseStart(ctx context.Context, off int64, ok bool, rs resumeState, had, mine bool) (int64, error) {
	start, end, err := pr.logBounds(ctx)
	if err != nil {
		return 0, err
	}
	switch {
	case mine && ok:
		pr.log.Info("taking the partition back where this process was before it was fenced: nobody committed since", "committed", off, "resume_at", rs.next, "done_ahead", len(rs.doneAhead))
		off = rs.next
		pr.skip = nil
		if len(rs.doneAhead) > 0 {
			pr.skip = make(map[int64]bool, len(rs.doneAhead))
			for _, o := range rs.doneAhead {
				pr.skip[o] = true
			}
			pr.skipMax = rs.doneAhead[len(rs.doneAhead)-1]
		}
	case had:
		pr.log.Info("the committed offset changed since this process was fenced (another process pushed the partition meanwhile): starting from it", "committed", off, "own_progress", rs.next)
	}
	switch {
	case !ok:
		off = start
		if pr.mr.m.InitialOffset == "newest" {
			off = end
		}
		pr.log.Info("no committed offset: starting from the "+pr.mr.m.InitialOffset+" record", "offset", off)
	case off < start:
		off, pr.skip = pr.outOfRange(reasonBelowStart, off, start, end, nil), nil
	case off > end:
		off, pr.skip = pr.outOfRange(reasonAboveEnd, off, start, end, nil), nil
	}
	if err := pr.claim.Commit(off); err != nil {
		return 0, err
	}
	return off, nil
}

// logBounds lists the partition's log start and end offsets.
func (pr *partRunner) logBounds(ctx context.Context) (start, end int64, err error) {
	topic := pr.mr.m.Topic
	lookup := func(l kadm.ListedOffsets, err error) (int64, error) {
		if err != nil {
			return 0, err
		}
		o, found := l.Lookup(topic, pr.p)
		if !found {
			return 0, fmt.Errorf("no offset of %s/%d listed", topic, pr.p)
		}
		return o.Offset, o.Err
	}
	if start, err = lookup(pr.mr.adm.ListStartOffsets(ctx, topic)); err != nil {
		return 0, 0, fmt.Errorf("log start offset: %w", err)
	}
	if end, err = lookup(pr.mr.adm.ListEndOffsets(ctx, topic)); err != nil {
		return 0, 0, fmt.Errorf("log end offset: %w", err)
	}
	return start, end, nil
}

// outOfRange reports that the partition's position from is not in the log
// [start, end] (or that the log was replaced) and returns where to continue:
// the log start or end by offset_reset. It is logged at warning level, counted
// and shown in /status.
func (pr *partRunner) outOfRange(reason string, from, start, end int64, cause error) int64 {
	to := start
	if pr.mr.m.OffsetReset == "newest" {
		to = end
	}
	pr.mr.noteReset(pr.p, reason, from, to, cause)
	return to
}

// stopFetch is the poller's reaction to a fetch that failed because the position
// is not in the log: it removes the partition from the consumer at once (so no
// stale fetch is delivered later) and leaves the decision to the feed goroutine,
// which first dispatches what was fetched before.
func (pr *partRunner) stopFetch(req resetRequest) {
	pr.mu.Lock()
	if pr.stopped {
		pr.mu.Unlock()
		return
	}
	pr.stopped = true
	pr.reset = &req
	pr.mu.Unlock()
	pr.mr.consumer.RemoveConsumePartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
	pr.poke()
}

func (pr *partRunner) poke() {
	select {
	case pr.wake <- struct{}{}:
	default:
	}
}

// resetFetch moves the partition's position after stopFetch: once every record
// fetched before is done, it decides where to continue, logs and counts it,
// starts a new window there, commits that offset through the claim and fetches
// from it. It returns false when the claim ended meanwhile.
func (pr *partRunner) resetFetch(ctx context.Context, req resetRequest) bool {
	old := pr.tr()
	if err := old.WaitIdle(ctx); err != nil {
		return false
	}
	from := old.Committed()
	to := req.at
	if req.reason != reasonTruncated {
		var start, end int64
		err := storeRetry.Retry(ctx, func() (err error) {
			start, end, err = pr.logBounds(ctx)
			return err
		}, func(err error, wait time.Duration) {
			pr.log.Warn("list the log's offsets after an out-of-range fetch; retrying", "err", err, "retry_in", wait)
		})
		if err != nil {
			return false
		}
		reason := req.reason
		if reason == "" {
			reason = reasonAboveEnd // the log lost records above its new end
			if from < start {
				reason = reasonBelowStart
			}
		}
		to = pr.outOfRange(reason, from, start, end, req.err)
	} else {
		pr.mr.noteReset(pr.p, req.reason, from, to, req.err)
	}
	old.Close()
	pr.tracker.Store(window.New(to, pr.mr.m.WindowSize))
	pr.skip = nil
	pr.fill.Set(0)
	_ = pr.commit()
	pr.mu.Lock()
	pr.pending = nil
	pr.next = to
	pr.paused = false
	pr.stopped = false
	pr.mu.Unlock()
	pr.addFetch(to)
	return true
}

// enqueue takes fetched records; fetching pauses while too many wait.
func (pr *partRunner) enqueue(recs []*kgo.Record) {
	pr.mu.Lock()
	if pr.stopped {
		pr.mu.Unlock()
		return // fetched before the fetch was removed for a reset
	}
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
	pr.poke()
}

// pop returns the next fetched record, waiting for one, or the reset to make
// once every record fetched before it is dispatched.
func (pr *partRunner) pop(ctx context.Context) (*kgo.Record, *resetRequest, bool) {
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
			return r, nil, true
		}
		if req := pr.reset; req != nil {
			pr.reset = nil
			pr.mu.Unlock()
			return nil, req, true
		}
		pr.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-pr.wake:
		}
	}
}

// feed dispatches records in offset order until ctx (the claim) ends.
func (pr *partRunner) feed(ctx context.Context) {
	mr := pr.mr
	for {
		rec, req, ok := pr.pop(ctx)
		if !ok {
			return
		}
		if req != nil {
			if !pr.resetFetch(ctx, *req) {
				return
			}
			continue
		}
		tr := pr.tr()
		if err := tr.Acquire(ctx); err != nil {
			return
		}
		tr.Add(rec.Offset)
		if pr.skip != nil {
			done := pr.skip[rec.Offset]
			if rec.Offset >= pr.skipMax {
				pr.skip = nil
			}
			if done {
				// Pushed before this process was fenced.
				pr.done(tr, rec.Offset)
				continue
			}
		}
		pr.fill.Set(float64(tr.InFlight()))
		act, method := mr.classify(rec.Value)
		switch act {
		case actFiltered:
			mr.mm.filtered.Inc()
			pr.done(tr, rec.Offset)
			continue
		case actMalformedSkip:
			mr.mm.malformed.Inc()
			pr.log.Warn("record value is not a msgpack map with a string method: skipped", "offset", rec.Offset)
			pr.done(tr, rec.Offset)
			continue
		}
		pr.jobs.Add(1)
		err := mr.pool.Submit(ctx, rec.Key, func() {
			defer pr.jobs.Done()
			pr.deliver(tr, rec, act, method)
		})
		if err != nil {
			pr.jobs.Done()
			return // not done: the next owner pushes it
		}
	}
}

// deliver pushes one record and marks it done in tr, the window it was added
// to, unless its pushes were abandoned.
func (pr *partRunner) deliver(tr *window.Tracker, rec *kgo.Record, act action, method string) {
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
		res := mr.pusher.Push(ctx, push.Record{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Method: method, Headers: rec.Headers})
		if res.Err == nil {
			if pr.log.Enabled(ctx, slog.LevelDebug) {
				pr.log.Debug("pushed", "offset", rec.Offset, "key", string(rec.Key), "server", res.Server, "status", res.Status, "attempts", res.Attempts)
			}
			mr.mm.pushed.Inc()
			mr.mm.latency.Observe(time.Since(began).Seconds())
			pr.done(tr, rec.Offset)
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
			pr.done(tr, rec.Offset)
			return
		}
	}
	if err := mr.deadLetter(ctx, rec, cause); err != nil {
		return // abandoned while writing the dead letter
	}
	mr.mm.deadLettered.Inc()
	pr.log.Warn("record sent to the dead-letter topic", "offset", rec.Offset, "dead_letter_topic", mr.m.DeadLetterTopic, "err", cause)
	pr.done(tr, rec.Offset)
}

// pushContext is the context of one partition's pushes. The runner cancels it
// when it abandons them (fenced, or hand-over past release_timeout_ms); besides,
// Err asks the claim whether the partition is still this process's and cancels
// the context at once when it is not. The pusher calls Err before every
// attempt, so no attempt starts once the fleet can tell that another process
// may own the partition, whichever goroutine would notice first (a process
// resumed after SIGSTOP runs its retry timers and its fleet's watchdog at the
// same moment).
type pushContext struct {
	context.Context
	cancel context.CancelCauseFunc
	claim  fleet.Claim
}

func newPushContext(c fleet.Claim) (*pushContext, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &pushContext{Context: ctx, cancel: cancel, claim: c}, cancel
}

// Err is nil while pushes may go on; it closes Done before it returns an error.
func (c *pushContext) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !c.claim.Live() {
		c.cancel(fleet.ErrFenced)
		return c.Context.Err()
	}
	return nil
}

func (pr *partRunner) done(tr *window.Tracker, offset int64) {
	tr.Done(offset)
	pr.fill.Set(float64(tr.InFlight()))
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
	off := pr.tr().Committed()
	if off == pr.committed.Load() {
		return nil
	}
	if err := pr.claim.Commit(off); err != nil {
		pr.setErr(err)
		reason := "failed"
		if errors.Is(err, fleet.ErrNotOwner) {
			reason = "refused"
		}
		pr.mr.met.commitFailures.WithLabelValues(pr.mr.m.Name, reason).Inc()
		pr.log.Warn("commit failed", "offset", off, "err", err)
		return err
	}
	pr.committed.Store(off)
	pr.lastAt.Store(time.Now().UnixMilli())
	pr.offsetG.Set(float64(off))
	return nil
}

// finalCommitRetry spaces the attempts of a final commit: 20 over about 5 s,
// while the offset store is briefly unreachable.
var finalCommitRetry = backoff.Policy{Initial: 250 * time.Millisecond, Attempts: 20}

// finalCommit commits at hand-over, retrying while the offset store is briefly
// unreachable (not fenced) so a clean hand-over re-pushes nothing. It runs
// after the claim ended, so only its attempts bound it.
func (pr *partRunner) finalCommit() {
	_ = finalCommitRetry.Retry(context.Background(), func() error {
		err := pr.commit()
		if err != nil && !errors.Is(err, fleet.ErrNoSession) {
			return backoff.Permanent(err)
		}
		return err
	}, nil)
}

// finish hands the partition back. After a rebalance or shutdown the pushes in
// progress get release_timeout_ms to finish and the offset is committed; when fenced
// they stop at once, nothing is committed, and what was done is remembered for
// when this process takes the partition back.
func (pr *partRunner) finish(started bool) {
	cause := context.Cause(pr.claim.Context())
	if started {
		pr.mr.consumer.RemoveConsumePartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
		pr.mr.consumer.ResumeFetchPartitions(map[string][]int32{pr.mr.m.Topic: {pr.p}})
		tr := pr.tr()
		tr.Close()
		fenced := errors.Is(cause, fleet.ErrFenced)
		if fenced {
			pr.mr.met.fenced.WithLabelValues(pr.mr.m.Name).Inc()
		} else {
			idle := make(chan struct{})
			go func() {
				pr.jobs.Wait()
				close(idle)
			}()
			select {
			case <-idle:
			case <-time.After(pr.mr.releaseTimeout):
				pr.log.Warn("pushes still in progress at hand-over: abandoned, the next owner pushes them again", "in_flight", tr.InFlight())
			}
		}
		pr.cancelPush(cause)
		pr.jobs.Wait()
		pr.mu.Lock()
		resetting := pr.stopped
		pr.mu.Unlock()
		if fenced && !resetting {
			if w := pr.claim.Written(); !w.IsZero() {
				pr.mr.saveResume(pr.p, resumeState{written: w, next: tr.Committed(), doneAhead: tr.DoneAhead()})
			}
		}
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
	if err := pr.claim.Release(ctx); err != nil && !errors.Is(cause, fleet.ErrFenced) {
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
	tr := pr.tr()
	s := PartitionStatus{
		Partition:  pr.p,
		Committed:  pr.committed.Load(),
		Done:       tr.Committed(),
		WindowFill: tr.InFlight(),
		Window:     pr.mr.m.WindowSize,
		Pending:    pending,
		LastCommit: pr.lastAt.Load(),
	}
	if e, ok := pr.lastErr.Load().(string); ok {
		s.LastError = e
	}
	return s
}

package monitor

import (
	"context"
	"maps"
	"sort"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
)

// pollOnce reads the log offsets and the timestamps lag needs, then takes one
// status sample per module partition and one history point per module. Its
// phases: list the topics the source names, read their log offsets from Kafka,
// store them, read the timestamps of the first records not yet pushed, sample.
func (c *cluster) pollOnce(parent context.Context) {
	defer func() {
		c.gen.Add(1)
		if c.polledHook != nil {
			c.polledHook()
		}
	}()
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, max(c.poll, 3*time.Second))
	defer cancel()

	// Committed offsets read before the log offsets: one above the log end
	// read after it is out of range for sure (see position).
	before := c.src.Snapshot()
	meta, counts, offsets, err := c.readLogs(ctx, topicsOf(before.Parts, before.Topics))
	if parent.Err() != nil {
		return // shutting down
	}
	c.noteErrors(err)
	want, misses := c.storeLogs(err, offsets, counts, before.Parts)
	found := c.readTimestamps(ctx, want, meta, misses)
	c.sample(time.Now(), before.Parts, found)
	c.m.pollDuration.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
}

// topicsOf lists, sorted, the topics of the partitions and group topics.
func topicsOf(parts map[committed.Key]committed.Part, gts []committed.GroupTopic) []string {
	set := map[string]bool{}
	for k := range parts {
		set[k.Topic] = true
	}
	for _, gt := range gts {
		set[gt.Topic] = true
	}
	topics := make([]string, 0, len(set))
	for t := range set {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	return topics
}

// readLogs reads the partitions of topics and their log-start and log-end
// offsets. Without topics it only checks that Kafka answers, for /readyz.
func (c *cluster) readLogs(ctx context.Context, topics []string) (map[topicPart]partMeta, map[string]int32, map[topicPart]logOffsets, error) {
	if err := c.ensureReader(); err != nil {
		return nil, nil, nil, err
	}
	if len(topics) == 0 {
		_, err := c.reader.adm.BrokerMetadata(ctx)
		return nil, nil, nil, err
	}
	meta, counts, err := c.reader.metadata(ctx, topics)
	if err != nil {
		return nil, nil, nil, err
	}
	all := make([]topicPart, 0, len(meta))
	for tp := range meta {
		all = append(all, tp)
	}
	offsets, err := c.reader.offsets(ctx, all, meta)
	return meta, counts, offsets, err
}

// noteErrors counts and logs a failed poll: Kafka errors when they start or
// change (not on every poll), and polls without a ZooKeeper session.
func (c *cluster) noteErrors(err error) {
	if err != nil {
		c.m.pollErrors.WithLabelValues(c.name, "kafka").Inc()
		if msg := err.Error(); msg != c.lastErr {
			c.log.Warn("reading Kafka offsets failed; serving the last values marked stale", "err", err)
			c.lastErr = msg
		}
	} else if c.lastErr != "" {
		c.log.Info("reading Kafka offsets works again")
		c.lastErr = ""
	}
	if !c.connected() {
		c.m.pollErrors.WithLabelValues(c.name, "zookeeper").Inc()
	}
}

// storeLogs keeps the log offsets read (the others are marked not fresh) and
// returns the record timestamps the partitions of parts need, with the partitions
// whose timestamps failed before.
func (c *cluster) storeLogs(err error, offsets map[topicPart]logOffsets, counts map[string]int32, parts map[committed.Key]committed.Part) (map[tsKey]bool, map[topicPart]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kafkaErr = err
	for tp, e := range c.logs {
		e.fresh = false
		c.logs[tp] = e
	}
	for tp, o := range offsets {
		c.logs[tp] = logEntry{logOffsets: o, fresh: true}
	}
	if counts != nil && !maps.Equal(counts, c.counts) {
		c.counts = counts
		c.countsVersion++
	}
	return c.wantTimestamps(parts), c.misses
}

// readTimestamps reads the timestamps of the records in want, those of
// partitions that failed most often first.
func (c *cluster) readTimestamps(ctx context.Context, want map[tsKey]bool, meta map[topicPart]partMeta, misses map[topicPart]int) map[tsKey]time.Time {
	found := map[tsKey]time.Time{}
	if c.reader == nil || meta == nil {
		return found
	}
	order := func(a, b topicPart) bool {
		if misses[a] != misses[b] {
			return misses[a] > misses[b]
		}
		if a.topic != b.topic {
			return a.topic < b.topic
		}
		return a.partition < b.partition
	}
	// A Fetch names each partition once, so partitions several modules read
	// at different offsets take one round per offset.
	for round := 0; len(want) > 0 && ctx.Err() == nil; round++ {
		batch := map[topicPart]int64{}
		for k := range want {
			if _, ok := batch[k.tp]; !ok {
				batch[k.tp] = k.offset
			}
		}
		got, err := c.reader.timestamps(ctx, batch, meta, order)
		if err != nil {
			c.log.Debug("reading record timestamps failed", "err", err)
		}
		for tp, off := range batch {
			k := tsKey{tp, off}
			delete(want, k)
			if ts, ok := got[tp]; ok {
				found[k] = ts
			}
		}
	}
	return found
}

// sample takes the poll's status sample of every module partition and history
// point of every module at now. before is the source's view read before the
// log offsets, found the timestamps read.
func (c *cluster) sample(now time.Time, before map[committed.Key]committed.Part, found map[tsKey]time.Time) {
	snap := c.src.Snapshot()
	parts := snap.Parts
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ts := range found {
		c.tsCache[k] = ts
	}
	c.aboveEnd = confirmAboveEnd(c.aboveEnd, before, parts, c.logs)
	c.shared.rows = nil     // out of date after this poll
	gen := c.gen.Load() + 1 // marks the partitions this poll sampled
	used := map[tsKey]bool{}
	misses := map[topicPart]int{}
	modules := map[string]Point{}
	live := c.connected()
	// One row at a time: at 80,000 partitions a slice of rows is 14 MB per poll.
	var a rowArena
	for _, k := range c.keysLocked(snap) {
		a.nums, a.times = a.nums[:0], a.times[:0]
		r := c.rowLocked(k, parts[k], live, now, &a)
		if r.Lag > 0 {
			tk := tsKey{topicPart{r.Topic, r.Partition}, r.pos}
			used[tk] = true
			if _, ok := c.tsCache[tk]; !ok {
				misses[tk.tp] = c.misses[tk.tp] + 1
			}
		}
		j := c.judged[k]
		j.timeLag, j.seen = r.TimeLagSeconds, gen
		j.samples.add(sampleOf(&r), c.window)
		j.status = j.samples.evaluate(c.window)
		c.judged[k] = j
		if r.Committed != nil {
			p := modules[r.Module]
			p.Lag += r.Lag
			p.Seconds = max(p.Seconds, r.TimeLagSeconds)
			modules[r.Module] = p
		}
	}
	c.misses = misses
	for k := range c.tsCache {
		if !used[k] {
			delete(c.tsCache, k)
		}
	}
	for k, j := range c.judged {
		if j.seen != gen {
			delete(c.judged, k)
		}
	}
	c.hist.add(now, modules)
	c.polled = true
}

// wantTimestamps lists the records whose timestamps are needed and not cached:
// for every partition with lag, the first record not yet pushed. c.mu is held.
func (c *cluster) wantTimestamps(parts map[committed.Key]committed.Part) map[tsKey]bool {
	want := map[tsKey]bool{}
	for k, p := range parts {
		if !p.HasCommit {
			continue
		}
		tp := topicPart{k.Topic, k.Partition}
		e, ok := c.logs[tp]
		if !ok || !e.fresh {
			continue
		}
		// parts was read before these log offsets: a committed offset above
		// the log end is out of range, and its lag counts from the log start.
		pos, _ := position(p.Offset, e.logOffsets, true)
		if pos >= e.end {
			continue
		}
		tk := tsKey{tp, pos}
		if _, ok := c.tsCache[tk]; !ok {
			want[tk] = true
		}
	}
	return want
}

package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// historySpan is how much of a module's lag history is kept.
const historySpan = time.Hour

// maxHistoryPoints bounds a module's history when the poll interval is very
// short; the kept span is then shorter than historySpan.
const maxHistoryPoints = 20000

// addedSettle is the pause between a partition appearing in ZooKeeper and the
// extra poll that reads its log offsets.
const addedSettle = 100 * time.Millisecond

// logEntry is a partition's last read log offsets.
type logEntry struct {
	logOffsets
	fresh bool // read by the last poll
}

// tsKey names the record whose timestamp a time lag needs.
type tsKey struct {
	tp     topicPart
	offset int64
}

// cluster monitors one cluster: a ZooKeeper watcher keeps the committed offsets
// current, a poll loop reads log offsets and record timestamps and takes the
// status samples. Rows are computed on demand from both, so a commit shows at once
// and new records within one poll interval.
type cluster struct {
	name   string
	cfg    ClusterConfig
	poll   time.Duration
	window int
	log    *slog.Logger
	extra  []kgo.Opt
	m      *metrics

	conn    *zk.Conn
	zk      *zkState
	watcher *zkWatcher

	reader    *kafkaReader // owned by the poll loop; nil until the brokers are known
	lastErr   string       // owned by the poll loop: the last logged poll error
	closeOnce sync.Once

	// mu guards the fields below.
	mu       sync.Mutex
	logs     map[topicPart]logEntry
	counts   map[string]int32 // partitions per topic, from the last metadata
	samples  map[partKey][]sample
	status   map[partKey]Status
	timeLag  map[partKey]float64 // time lag at the last poll
	tsCache  map[tsKey]time.Time
	misses   map[topicPart]int // failed timestamp reads, to ask for those first
	history  map[string]*ring  // per module
	kafkaErr error
	polled   bool // a poll finished

	// gen counts finished polls, so answers rendered from them can be reused
	// until the next one.
	gen atomic.Uint64
}

// token identifies the state rows are computed from: it changes with every
// ZooKeeper change, every poll and every session change.
func (c *cluster) token() string {
	return strconv.FormatUint(c.zk.Version(), 10) + "." + strconv.FormatUint(c.gen.Load(), 10) + "." + strconv.FormatBool(c.zkConnected())
}

func newCluster(cc ClusterConfig, poll time.Duration, window int, log *slog.Logger, m *metrics, extra []kgo.Opt) (*cluster, error) {
	log = log.With("cluster", cc.Name)
	conn, events, err := dialZK(cc.ZKHosts, time.Duration(cc.ZKSessionTimeoutMs)*time.Millisecond,
		time.Duration(cc.ZKConnectTimeoutMs)*time.Millisecond, log)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connect to ZooKeeper %v: %w", cc.Name, cc.ZKHosts, err)
	}
	c := &cluster{
		name:    cc.Name,
		cfg:     cc,
		poll:    poll,
		window:  window,
		log:     log,
		extra:   extra,
		m:       m,
		conn:    conn,
		zk:      newZKState(),
		logs:    map[topicPart]logEntry{},
		counts:  map[string]int32{},
		samples: map[partKey][]sample{},
		status:  map[partKey]Status{},
		timeLag: map[partKey]float64{},
		tsCache: map[tsKey]time.Time{},
		misses:  map[topicPart]int{},
		history: map[string]*ring{},
	}
	retry := min(poll, time.Second)
	c.watcher = &zkWatcher{conn: conn, q: events, layout: zkconsumers.New(cc.Chroot), state: c.zk, log: log, retry: retry}
	return c, nil
}

// run watches ZooKeeper and polls Kafka until ctx ends, then closes the clients.
func (c *cluster) run(ctx context.Context) {
	// Closing the connection at once ends the ZooKeeper calls the watcher and a
	// poll may be blocked in while ZooKeeper is unreachable.
	stop := context.AfterFunc(ctx, c.conn.Close)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watcher.run(ctx)
	}()
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		c.pollOnce(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		case <-c.zk.added:
			// Let a burst of appearing nodes (start-up, a new module) settle
			// into one poll.
			if !sleep(ctx, addedSettle) {
				break
			}
			select {
			case <-c.zk.added:
			default:
			}
			continue
		}
		break
	}
	c.close()
	wg.Wait()
}

// close closes the ZooKeeper and Kafka clients; safe to call twice. The Kafka
// client is only closed here once the poll loop has ended (or never started).
func (c *cluster) close() {
	c.closeOnce.Do(func() {
		c.conn.Close()
		if c.reader != nil {
			c.reader.cl.Close()
		}
	})
}

// zkConnected reports whether the ZooKeeper session is established.
func (c *cluster) zkConnected() bool { return c.conn.State() == zk.StateHasSession }

// ready is the readiness check of the cluster.
func (c *cluster) ready(context.Context) error {
	if !c.zkConnected() {
		return fmt.Errorf("cluster %s: ZooKeeper %v: %s", c.name, c.cfg.ZKHosts, c.conn.State())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kafkaErr != nil {
		return fmt.Errorf("cluster %s: %w", c.name, c.kafkaErr)
	}
	return nil
}

// ensureReader creates the Kafka client once the brokers are known.
func (c *cluster) ensureReader() error {
	if c.reader != nil {
		return nil
	}
	brokers := c.cfg.BrokerHosts
	if len(brokers) == 0 {
		var err error
		brokers, err = kafkaconn.ReadBrokers(c.conn, c.cfg.Chroot)
		if err != nil {
			return fmt.Errorf("discover brokers in ZooKeeper: %w", err)
		}
		c.log.Info("brokers discovered in ZooKeeper", "brokers", brokers)
	}
	opts, err := kafkaconn.Options(brokers, c.cfg.Kafka, c.log)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, c.extra...)...)
	if err != nil {
		return fmt.Errorf("create Kafka client: %w", err)
	}
	c.reader = newKafkaReader(cl)
	return nil
}

// pollOnce reads the log offsets and the timestamps lag needs, then takes one
// status sample and one history point per module.
func (c *cluster) pollOnce(parent context.Context) {
	defer c.gen.Add(1)
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, max(c.poll, 3*time.Second))
	defer cancel()

	parts, gts := c.zk.snapshot()
	topicSet := map[string]bool{}
	for k := range parts {
		topicSet[k.topic] = true
	}
	for _, gt := range gts {
		topicSet[gt.topic] = true
	}
	topics := make([]string, 0, len(topicSet))
	for t := range topicSet {
		topics = append(topics, t)
	}
	sort.Strings(topics)

	var (
		meta    map[topicPart]partMeta
		counts  map[string]int32
		offsets map[topicPart]logOffsets
		err     = c.ensureReader()
	)
	switch {
	case err != nil:
	case len(topics) == 0:
		// Nothing to read, but /readyz should still tell whether Kafka answers.
		_, err = c.reader.adm.BrokerMetadata(ctx)
	default:
		meta, counts, err = c.reader.metadata(ctx, topics)
		if err == nil {
			all := make([]topicPart, 0, len(meta))
			for tp := range meta {
				all = append(all, tp)
			}
			offsets, err = c.reader.offsets(ctx, all, meta)
		}
	}
	if parent.Err() != nil {
		return // shutting down
	}
	if err != nil {
		c.m.pollErrors.WithLabelValues(c.name, "kafka").Inc()
		// Logged when the failure starts or changes, not on every poll.
		if msg := err.Error(); msg != c.lastErr {
			c.log.Warn("reading Kafka offsets failed; serving the last values marked stale", "err", err)
			c.lastErr = msg
		}
	} else if c.lastErr != "" {
		c.log.Info("reading Kafka offsets works again")
		c.lastErr = ""
	}
	if !c.zkConnected() {
		c.m.pollErrors.WithLabelValues(c.name, "zookeeper").Inc()
	}

	c.mu.Lock()
	c.kafkaErr = err
	for tp, e := range c.logs {
		e.fresh = false
		c.logs[tp] = e
	}
	for tp, o := range offsets {
		c.logs[tp] = logEntry{logOffsets: o, fresh: true}
	}
	if counts != nil {
		c.counts = counts
	}
	want := c.wantTimestamps(parts)
	misses := c.misses
	c.mu.Unlock()

	found := map[tsKey]time.Time{}
	if c.reader != nil && meta != nil {
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
	}

	now := time.Now()
	parts, gts = c.zk.snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ts := range found {
		c.tsCache[k] = ts
	}
	rows := c.rowsLocked(parts, gts, now)
	used := map[tsKey]bool{}
	misses = map[topicPart]int{}
	seen := map[partKey]bool{}
	type agg struct {
		lag     int64
		seconds float64
	}
	modules := map[string]*agg{}
	for i := range rows {
		r := &rows[i]
		k := partKey{r.Module, r.Topic, r.Partition}
		seen[k] = true
		if r.Lag > 0 && r.LogStart != nil && r.Committed != nil {
			tk := tsKey{topicPart{r.Topic, r.Partition}, max(*r.Committed, *r.LogStart)}
			used[tk] = true
			if _, ok := c.tsCache[tk]; !ok {
				misses[tk.tp] = c.misses[tk.tp] + 1
			}
		}
		c.timeLag[k] = r.TimeLagSeconds
		s := sample{hasCommit: r.Committed != nil, hasOwner: r.Owner != "", lag: r.Lag}
		if r.Committed != nil {
			s.committed = *r.Committed
		}
		ss := append(c.samples[k], s)
		if len(ss) > c.window {
			ss = append(ss[:0:0], ss[len(ss)-c.window:]...)
		}
		c.samples[k] = ss
		c.status[k] = evaluate(ss, c.window)
		if r.Committed != nil {
			a := modules[r.Module]
			if a == nil {
				a = &agg{}
				modules[r.Module] = a
			}
			a.lag += r.Lag
			a.seconds = max(a.seconds, r.TimeLagSeconds)
		}
	}
	c.misses = misses
	for k := range c.tsCache {
		if !used[k] {
			delete(c.tsCache, k)
		}
	}
	for k := range c.samples {
		if !seen[k] {
			delete(c.samples, k)
			delete(c.status, k)
			delete(c.timeLag, k)
		}
	}
	for mod, a := range modules {
		h := c.history[mod]
		if h == nil {
			h = newRing(min(int(historySpan/c.poll)+1, maxHistoryPoints))
			c.history[mod] = h
		}
		h.add(Point{Time: now, Lag: a.lag, Seconds: a.seconds})
	}
	for mod, h := range c.history {
		if last, ok := h.last(); ok && now.Sub(last.Time) > historySpan {
			delete(c.history, mod)
		}
	}
	c.polled = true
	c.m.pollDuration.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
}

// wantTimestamps lists the records whose timestamps are needed and not cached:
// for every partition with lag, the first record not yet pushed. c.mu is held.
func (c *cluster) wantTimestamps(parts map[partKey]zkPart) map[tsKey]bool {
	want := map[tsKey]bool{}
	for k, p := range parts {
		if !p.hasCommit {
			continue
		}
		tp := topicPart{k.topic, k.partition}
		e, ok := c.logs[tp]
		if !ok || !e.fresh {
			continue
		}
		pos := max(p.committed, e.start)
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

// rows returns the cluster's current rows, computed from the latest committed
// offsets and the last polled log offsets.
func (c *cluster) rows(now time.Time) []PartitionLag {
	parts, gts := c.zk.snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rowsLocked(parts, gts, now)
}

// rowsLocked computes the rows. Every partition with an offset or owner node is a
// row, and so is every partition of a topic a group has a directory for (without
// an offset node it has no commit yet). c.mu is held.
func (c *cluster) rowsLocked(parts map[partKey]zkPart, gts []groupTopic, now time.Time) []PartitionLag {
	keys := make(map[partKey]bool, len(parts))
	for k := range parts {
		keys[k] = true
	}
	for _, gt := range gts {
		for p := int32(0); p < c.counts[gt.topic]; p++ {
			keys[partKey{gt.group, gt.topic, p}] = true
		}
	}
	zkOK := c.zkConnected()
	rows := make([]PartitionLag, 0, len(keys))
	for k := range keys {
		p := parts[k]
		tp := topicPart{k.topic, k.partition}
		e, known := c.logs[tp]
		r := PartitionLag{
			Cluster:   c.name,
			Module:    k.group,
			Topic:     k.topic,
			Partition: k.partition,
			NoCommit:  !p.hasCommit,
			Owner:     p.owner,
			Stale:     !zkOK || !known || !e.fresh || !c.polled,
			Status:    c.status[k],
		}
		if known {
			r.LogStart, r.LogEnd = ptr(e.start), ptr(e.end)
		}
		if p.hasCommit {
			r.Committed = ptr(p.committed)
			r.LastCommit = ptr(p.commitTime.UTC())
			if known {
				pos := max(p.committed, e.start)
				r.Lag = max(0, e.end-pos)
				if r.Lag > 0 {
					if ts, ok := c.tsCache[tsKey{tp, pos}]; ok {
						r.TimeLagSeconds = max(0, now.Sub(ts).Seconds())
					} else {
						r.TimeLagSeconds = c.timeLag[k]
					}
				}
			}
		}
		rows = append(rows, r)
	}
	sortRows(rows)
	return rows
}

func ptr[T any](v T) *T { return &v }

// sortRows orders rows by cluster, module, topic and partition number.
func sortRows(rows []PartitionLag) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := &rows[i], &rows[j]
		switch {
		case a.Cluster != b.Cluster:
			return a.Cluster < b.Cluster
		case a.Module != b.Module:
			return a.Module < b.Module
		case a.Topic != b.Topic:
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
}

// historySince returns the module's points of the last d, oldest first.
func (c *cluster) historySince(d time.Duration, now time.Time) map[string][]Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]Point, len(c.history))
	for mod, h := range c.history {
		pts := h.since(now.Add(-d))
		if len(pts) > 0 {
			out[c.name+"/"+mod] = pts
		}
	}
	return out
}

// ring is a bounded list of points, oldest overwritten first.
type ring struct {
	pts  []Point
	next int
	full bool
}

func newRing(n int) *ring { return &ring{pts: make([]Point, n)} }

func (r *ring) add(p Point) {
	r.pts[r.next] = p
	r.next++
	if r.next == len(r.pts) {
		r.next, r.full = 0, true
	}
}

func (r *ring) last() (Point, bool) {
	if !r.full && r.next == 0 {
		return Point{}, false
	}
	return r.pts[(r.next+len(r.pts)-1)%len(r.pts)], true
}

// since returns the points at or after t, oldest first.
func (r *ring) since(t time.Time) []Point {
	var all []Point
	if r.full {
		all = append(all, r.pts[r.next:]...)
	}
	all = append(all, r.pts[:r.next]...)
	i := sort.Search(len(all), func(i int) bool { return !all[i].Time.Before(t) })
	return append([]Point(nil), all[i:]...)
}

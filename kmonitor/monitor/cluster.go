package monitor

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// historySpan is how much of a module's lag history is kept.
const historySpan = time.Hour

// historyPoints bounds the points History returns over all modules: every poll
// of the hour (720 at 5 s) for up to 138 modules, every second one for 200,
// five for each of 20,000, never an answer of gigabytes.
const historyPoints = 100000

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

// judged is what the polls judged of a module partition; the zero value is
// a partition no poll has seen (status OK, time lag 0).
type judged struct {
	samples samples
	status  Status
	timeLag float64 // time lag at the last poll
	seen    uint64  // the poll (cluster.gen) that sampled it last
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

	conn    *zkconn.Conn
	zk      *zkState
	watcher *zkWatcher

	reader    *kafkaReader // owned by the poll loop; nil until the brokers are known
	lastErr   string       // owned by the poll loop: the last logged poll error
	closeOnce sync.Once

	// mu guards the fields below.
	mu      sync.Mutex
	logs    map[topicPart]logEntry
	counts  map[string]int32   // partitions per topic, from the last metadata
	judged  map[partKey]judged // per module partition, from the polls
	tsCache map[tsKey]time.Time
	misses  map[topicPart]int // failed timestamp reads, to ask for those first
	hist    *history
	// aboveEnd holds the committed offsets polls found above the log end,
	// with how many polls in a row (see confirmOutOfRange).
	aboveEnd map[partKey]aboveEnd
	kafkaErr error
	polled   bool // a poll finished

	// gen counts finished polls, so answers rendered from them can be reused
	// until the next one.
	gen atomic.Uint64
	// overCap is the number of groups max_groups left out at the last read.
	overCap atomic.Int64
	// polledHook, when set, is called after every poll (answers rendered
	// before are out of date).
	polledHook func()

	// shared are the rows sharedRows returns; c.mu guards them.
	shared struct {
		rows  []PartitionLag
		token string
		at    time.Time
	}

	// keys are the module partitions of the ZooKeeper state at keysVersion
	// with the partition counts of countsVersion; c.mu guards them.
	keys          []partKey
	keysVersion   uint64
	countsVersion uint64
	keysCounts    uint64
}

// token identifies the state rows are computed from: it changes with every
// ZooKeeper change, every poll and every session change.
func (c *cluster) token() string {
	return strconv.FormatUint(c.zk.Version(), 10) + "." + strconv.FormatUint(c.gen.Load(), 10) + "." + strconv.FormatBool(c.zkConnected())
}

func newCluster(cc ClusterConfig, poll time.Duration, window int, log *slog.Logger, m *metrics, extra []kgo.Opt) (*cluster, error) {
	log = log.With("cluster", cc.Name)
	filter, err := newGroupFilter(cc.Groups, cc.MaxGroups)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
	}
	conn, events, err := dialZK(cc.ZKHosts, time.Duration(cc.ZKSessionTimeoutMs)*time.Millisecond,
		time.Duration(cc.ZKConnectTimeoutMs)*time.Millisecond, log)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: connect to ZooKeeper %v: %w", cc.Name, cc.ZKHosts, err)
	}
	c := &cluster{
		name:     cc.Name,
		cfg:      cc,
		poll:     poll,
		window:   window,
		log:      log,
		extra:    extra,
		m:        m,
		conn:     conn,
		zk:       newZKState(),
		logs:     map[topicPart]logEntry{},
		counts:   map[string]int32{},
		judged:   map[partKey]judged{},
		tsCache:  map[tsKey]time.Time{},
		misses:   map[topicPart]int{},
		hist:     newHistory(min(int(historySpan/poll)+1, maxHistoryPoints)),
		aboveEnd: map[partKey]aboveEnd{},
	}
	for _, state := range []string{"tracked", "filtered", "over_cap"} {
		m.groups.WithLabelValues(cc.Name, state).Set(0)
	}
	retry := min(poll, time.Second)
	c.watcher = &zkWatcher{conn: conn, q: events, layout: zkconsumers.New(cc.Chroot), state: c.zk, log: log, retry: retry,
		filter: filter, report: c.admitted}
	return c, nil
}

// admitted exports which groups the watcher monitors and warns when max_groups
// starts (or stops) leaving groups out.
func (c *cluster) admitted(a admission) {
	c.m.groups.WithLabelValues(c.name, "tracked").Set(float64(len(a.keep)))
	c.m.groups.WithLabelValues(c.name, "filtered").Set(float64(a.filtered))
	c.m.groups.WithLabelValues(c.name, "over_cap").Set(float64(a.overCap))
	switch before := c.overCap.Swap(int64(a.overCap)); {
	case a.overCap > 0 && before == 0:
		c.log.Warn("max_groups reached: further consumer groups are not monitored; raise max_groups or leave groups out with groups.deny",
			"max_groups", c.cfg.MaxGroups, "monitored", len(a.keep), "not_monitored", a.overCap)
	case a.overCap == 0 && before > 0:
		c.log.Info("every allowed consumer group is monitored again", "monitored", len(a.keep))
	}
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
		brokers, err = kafkaconn.ReadBrokers(c.conn.Conn, c.cfg.Chroot)
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
// status sample per module partition and one history point per module. Its
// phases: list the topics ZooKeeper names, read their log offsets from Kafka,
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
	before := c.zk.snapshot()
	meta, counts, offsets, err := c.readLogs(ctx, topicsOf(before.parts, before.topics))
	if parent.Err() != nil {
		return // shutting down
	}
	c.noteErrors(err)
	want, misses := c.storeLogs(err, offsets, counts, before.parts)
	found := c.readTimestamps(ctx, want, meta, misses)
	c.sample(time.Now(), before.parts, found)
	c.m.pollDuration.WithLabelValues(c.name).Observe(time.Since(start).Seconds())
}

// topicsOf lists, sorted, the topics of the partitions and group topics.
func topicsOf(parts map[partKey]zkPart, gts []groupTopic) []string {
	set := map[string]bool{}
	for k := range parts {
		set[k.topic] = true
	}
	for _, gt := range gts {
		set[gt.topic] = true
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
	if !c.zkConnected() {
		c.m.pollErrors.WithLabelValues(c.name, "zookeeper").Inc()
	}
}

// storeLogs keeps the log offsets read (the others are marked not fresh) and
// returns the record timestamps the partitions of parts need, with the partitions
// whose timestamps failed before.
func (c *cluster) storeLogs(err error, offsets map[topicPart]logOffsets, counts map[string]int32, parts map[partKey]zkPart) (map[tsKey]bool, map[topicPart]int) {
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
// point of every module at now. before is the state of ZooKeeper read before the
// log offsets, found the timestamps read.
func (c *cluster) sample(now time.Time, before map[partKey]zkPart, found map[tsKey]time.Time) {
	snap := c.zk.snapshot()
	parts := snap.parts
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ts := range found {
		c.tsCache[k] = ts
	}
	c.confirmOutOfRange(before, parts)
	c.shared.rows = nil     // out of date after this poll
	gen := c.gen.Load() + 1 // marks the partitions this poll sampled
	used := map[tsKey]bool{}
	misses := map[topicPart]int{}
	modules := map[string]Point{}
	zkOK := c.zkConnected()
	// One row at a time: at 80,000 partitions a slice of rows is 14 MB per poll.
	var a rowArena
	for _, k := range c.keysLocked(snap) {
		a.nums, a.times = a.nums[:0], a.times[:0]
		r := c.rowLocked(k, parts[k], zkOK, now, &a)
		if r.Lag > 0 {
			tk := tsKey{topicPart{r.Topic, r.Partition}, r.pos}
			used[tk] = true
			if _, ok := c.tsCache[tk]; !ok {
				misses[tk.tp] = c.misses[tk.tp] + 1
			}
		}
		s := sample{hasCommit: r.Committed != nil, hasOwner: r.Owner != "", lag: r.Lag, oor: r.OutOfRange}
		if r.Committed != nil {
			s.committed = *r.Committed
		}
		j := c.judged[k]
		j.timeLag, j.seen = r.TimeLagSeconds, gen
		j.samples.add(s, c.window)
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

// aboveEnd is a committed offset found above the log end by polls in a row.
type aboveEnd struct {
	offset int64
	polls  int
}

// confirmPolls is the number of polls in a row that must find a committed
// offset above the log end before it counts as out of range: for a moment after
// a leader change the new leader's high watermark can lag behind the old one's,
// and one such read must not report a whole log of lag.
const confirmPolls = 2

// confirmed reports whether a confirms committed offset off out of range.
func (a aboveEnd) confirmed(off int64) bool { return a.offset == off && a.polls >= confirmPolls }

// confirmOutOfRange notes the committed offsets that lie above the log end just
// read although they were read before it and have not changed since; found so
// by confirmPolls polls in a row, they are out of range (see position). A
// partition whose log offsets could not be read keeps its note while its
// committed offset stays. c.mu is held.
func (c *cluster) confirmOutOfRange(before, after map[partKey]zkPart) {
	next := map[partKey]aboveEnd{}
	for k, p := range after {
		if !p.hasCommit {
			continue
		}
		e, ok := c.logs[topicPart{k.topic, k.partition}]
		switch {
		case !ok:
		case !e.fresh:
			if a, noted := c.aboveEnd[k]; noted && a.offset == p.committed {
				next[k] = a
			}
		default:
			if b, ok := before[k]; ok && b.hasCommit && b.committed == p.committed && p.committed > e.end {
				a := aboveEnd{offset: p.committed, polls: 1}
				if prev := c.aboveEnd[k]; prev.offset == p.committed {
					a.polls = min(prev.polls+1, confirmPolls)
				}
				next[k] = a
			}
		}
	}
	c.aboveEnd = next
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
		// parts was read before these log offsets: a committed offset above
		// the log end is out of range, and its lag counts from the log start.
		pos, _ := position(p.committed, e.logOffsets, true)
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
	snap := c.zk.snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rowsLocked(snap, now)
}

// sharedRows returns rows as rows does, shared between the answers rendered
// from one state: rows computed from the current state at most secondsMaxAge
// ago (their time lags that old) are reused. Callers must not modify them.
// (Each answer computing its own rows costs 14 MB at 80,000 partitions.)
func (c *cluster) sharedRows(now time.Time) []PartitionLag {
	token := c.token() // before the state is read: rows newer than it only cost a recomputation
	snap := c.zk.snapshot()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shared.rows != nil && c.shared.token == token && now.Sub(c.shared.at) <= secondsMaxAge && !now.Before(c.shared.at) {
		return c.shared.rows
	}
	rows := c.rowsLocked(snap, now)
	c.shared.rows, c.shared.token, c.shared.at = rows, token, now
	return rows
}

// rowsLocked computes the rows. Every partition with an offset or owner node is a
// row, and so is every partition of a topic a group has a directory for (without
// an offset node it has no commit yet). c.mu is held.
func (c *cluster) rowsLocked(snap *zkSnapshot, now time.Time) []PartitionLag {
	parts := snap.parts
	keys := c.keysLocked(snap)
	a := rowArena{nums: make([]int64, 0, 3*len(keys)), times: make([]time.Time, 0, len(parts))}
	zkOK := c.zkConnected()
	rows := make([]PartitionLag, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, c.rowLocked(k, parts[k], zkOK, now, &a))
	}
	return rows
}

// keysLocked lists the module partitions rows are computed for, sorted by
// module, topic and partition number; the list is shared until ZooKeeper or a
// partition count changes, and must not be modified. c.mu is held.
func (c *cluster) keysLocked(snap *zkSnapshot) []partKey {
	if c.keys == nil || snap.version != c.keysVersion || c.countsVersion != c.keysCounts {
		c.keys = listKeys(snap.parts, snap.topics, c.counts)
		c.keysVersion, c.keysCounts = snap.version, c.countsVersion
	}
	return c.keys
}

// listKeys lists the module partitions of parts and gts, sorted.
func listKeys(parts map[partKey]zkPart, gts []groupTopic, counts map[string]int32) []partKey {
	// Every partition of a group topic is a row, then every other partition
	// with a node: one with a number past the topic's count, or of a topic
	// whose directory is gone.
	counted := make(map[groupTopic]int32, len(gts))
	n := 0
	for _, gt := range gts {
		counted[gt] = counts[gt.topic]
		n += int(counts[gt.topic])
	}
	for k := range parts {
		if k.partition >= counted[groupTopic{k.group, k.topic}] {
			n++
		}
	}
	keys := make([]partKey, 0, n)
	for _, gt := range gts {
		for p := range counted[gt] {
			keys = append(keys, partKey{gt.group, gt.topic, p})
		}
	}
	for k := range parts {
		if k.partition >= counted[groupTopic{k.group, k.topic}] {
			keys = append(keys, k)
		}
	}
	// Sorting the keys, not the rows, moves a fifth of the bytes.
	slices.SortFunc(keys, func(a, b partKey) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	return keys
}

// rowArena holds the values rows point to, so a row costs no allocation of its
// own.
type rowArena struct {
	nums  []int64
	times []time.Time
}

func (a *rowArena) num(v int64) *int64 {
	a.nums = append(a.nums, v)
	return &a.nums[len(a.nums)-1]
}

func (a *rowArena) time(v time.Time) *time.Time {
	a.times = append(a.times, v)
	return &a.times[len(a.times)-1]
}

// rowLocked computes the row of k from what ZooKeeper says of it (p) and the
// last poll. c.mu is held.
func (c *cluster) rowLocked(k partKey, p zkPart, zkOK bool, now time.Time, a *rowArena) PartitionLag {
	tp := topicPart{k.topic, k.partition}
	e, known := c.logs[tp]
	j := c.judged[k] // the zero value before the first poll: OK
	r := PartitionLag{
		Cluster:   c.name,
		Module:    k.group,
		Topic:     k.topic,
		Partition: k.partition,
		NoCommit:  !p.hasCommit,
		Owner:     p.owner,
		Stale:     !zkOK || !known || !e.fresh || !c.polled,
		Status:    j.status,
	}
	if known {
		r.LogStart, r.LogEnd = a.num(e.start), a.num(e.end)
	}
	if !p.hasCommit {
		return r
	}
	r.Committed = a.num(p.committed)
	r.LastCommit = a.time(p.commitTime.UTC())
	if !known {
		return r
	}
	r.pos, r.OutOfRange = position(p.committed, e.logOffsets, c.aboveEnd[k].confirmed(p.committed))
	r.Lag = max(0, e.end-r.pos)
	if r.Lag > 0 {
		if ts, ok := c.tsCache[tsKey{tp, r.pos}]; ok {
			r.TimeLagSeconds = max(0, now.Sub(ts).Seconds())
		} else {
			r.TimeLagSeconds = j.timeLag
		}
	}
	return r
}

// historySince returns the modules' points of the last d, oldest first, at
// most limit per module (see history.since).
func (c *cluster) historySince(d time.Duration, now time.Time, limit int) map[string][]Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]Point{}
	for mod, pts := range c.hist.since(now.Add(-d), limit) {
		out[c.name+"/"+mod] = pts
	}
	return out
}

// historyModules returns the number of modules with history.
func (c *cluster) historyModules() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hist.modules()
}

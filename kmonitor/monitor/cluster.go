package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/kafkagroups"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/zkwatch"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
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

// addedSettle is the pause between a partition appearing at the source and the
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

// cluster monitors one cluster: a source (the ZooKeeper watcher, the Kafka
// group reader or both merged, as offset_source says) keeps the committed
// offsets current, a poll loop reads log offsets and record timestamps and
// takes the status samples. Rows are computed on demand from
// both, so a commit shows at once and new records within one poll interval.
type cluster struct {
	name   string
	cfg    ClusterConfig
	poll   time.Duration
	window int
	log    *slog.Logger
	extra  []kgo.Opt
	m      *metrics

	src committed.Source
	// zk and groups are the parts of src: the ZooKeeper watcher and the Kafka
	// group reader, nil when offset_source does not use them.
	zk     *zkwatch.Watcher
	groups *kafkagroups.Source
	// brokers discovers the Kafka brokers when the section names none.
	brokers func() ([]string, error)

	// admMu guards adm: what each part of the source last told of its groups
	// (keys "zookeeper", "kafka").
	admMu sync.Mutex
	adm   map[string]committed.Admission

	reader    *kafkaReader // owned by the poll loop; nil until the brokers are known
	lastErr   string       // owned by the poll loop: the last logged poll error
	closeOnce sync.Once

	// mu guards the fields below.
	mu      sync.Mutex
	logs    map[topicPart]logEntry
	counts  map[string]int32         // partitions per topic, from the last metadata
	judged  map[committed.Key]judged // per module partition, from the polls
	tsCache map[tsKey]time.Time
	misses  map[topicPart]int // failed timestamp reads, to ask for those first
	hist    *history
	// aboveEnd holds the committed offsets polls found above the log end,
	// with how many polls in a row (see confirmAboveEnd).
	aboveEnd map[committed.Key]aboveEnd
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

	// keys are the module partitions of the source's snapshot at keysVersion
	// with the partition counts of countsVersion; c.mu guards them.
	keys          []committed.Key
	keysVersion   uint64
	countsVersion uint64
	keysCounts    uint64
}

// token identifies the state rows are computed from: it changes with every
// change at the source, every poll and every change of the source's
// reachability.
func (c *cluster) token() string {
	return strconv.FormatUint(c.src.Version(), 10) + "." + strconv.FormatUint(c.gen.Load(), 10) + "." + strconv.FormatBool(c.connected())
}

func newCluster(cc ClusterConfig, poll time.Duration, window int, log *slog.Logger, m *metrics, extra []kgo.Opt) (*cluster, error) {
	log = log.With("cluster", cc.Name)
	c := &cluster{
		name:     cc.Name,
		cfg:      cc,
		poll:     poll,
		window:   window,
		log:      log,
		extra:    extra,
		m:        m,
		logs:     map[topicPart]logEntry{},
		counts:   map[string]int32{},
		judged:   map[committed.Key]judged{},
		tsCache:  map[tsKey]time.Time{},
		misses:   map[topicPart]int{},
		hist:     newHistory(min(int(historySpan/poll)+1, maxHistoryPoints)),
		aboveEnd: map[committed.Key]aboveEnd{},
	}
	if err := c.openSource(); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
	}
	for _, state := range []string{"tracked", "filtered", "over_cap"} {
		m.groups.WithLabelValues(cc.Name, state).Set(0)
	}
	return c, nil
}

// openSource creates the cluster's source of committed offsets, as
// offset_source says: the ZooKeeper watcher of the section's ensemble and
// chroot (which also discovers the brokers), the reader of Kafka's consumer
// groups, or both merged (committed.Merge; ZooKeeper first, so Kafka wins
// ties).
func (c *cluster) openSource() error {
	cc := c.cfg
	filter, err := committed.NewFilter(cc.Groups.Allow, cc.Groups.Deny, cc.MaxGroups)
	if err != nil {
		return err
	}
	c.adm = map[string]committed.Admission{}
	src := cc.Source()
	if src != SourceKafka {
		c.zk, err = zkwatch.New(zkwatch.Config{
			Hosts:          cc.ZKHosts,
			Chroot:         cc.Chroot,
			SessionTimeout: time.Duration(cc.ZKSessionTimeoutMs) * time.Millisecond,
			ConnectTimeout: time.Duration(cc.ZKConnectTimeoutMs) * time.Millisecond,
			Retry:          min(c.poll, time.Second),
			Filter:         filter,
			Report:         c.admitted(SourceZooKeeper),
		}, c.log)
		if err != nil {
			return err
		}
		c.src, c.brokers = c.zk, c.zk.Brokers
	} else if len(cc.ZKHosts) > 0 {
		c.log.Warn("zk_hosts is not used: offset_source is kafka", "zk_hosts", cc.ZKHosts)
	}
	if src != SourceZooKeeper {
		opts, err := kafkaconn.Options(cc.BrokerHosts, cc.Kafka, c.log)
		if err == nil {
			c.groups, err = kafkagroups.New(kafkagroups.Config{Opts: append(opts, c.extra...), Filter: filter,
				Report: c.admitted(SourceKafka)}, c.log.With("source", "kafka"))
		}
		if err != nil {
			if c.zk != nil {
				c.zk.Close()
			}
			return err
		}
		c.src = c.groups
		if c.zk != nil {
			c.src = committed.Merge(c.zk, c.groups)
		}
	}
	c.log.Info("offset source", "offset_source", src)
	return nil
}

// admitted returns the report function of the source part from: it exports
// which groups the source follows and warns when max_groups starts (or stops)
// leaving groups out. With both parts, a group either follows counts once as
// tracked; filtered and over_cap add up the two parts' counts.
func (c *cluster) admitted(from string) func(committed.Admission) {
	return func(a committed.Admission) {
		c.admMu.Lock()
		c.adm[from] = a
		tracked, filtered, overCap := len(a.Keep), a.Filtered, a.OverCap
		if len(c.adm) > 1 {
			names := map[string]bool{}
			filtered, overCap = 0, 0
			for _, b := range c.adm {
				for _, n := range b.Keep {
					names[n] = true
				}
				filtered += b.Filtered
				overCap += b.OverCap
			}
			tracked = len(names)
		}
		c.admMu.Unlock()
		c.m.groups.WithLabelValues(c.name, "tracked").Set(float64(tracked))
		c.m.groups.WithLabelValues(c.name, "filtered").Set(float64(filtered))
		c.m.groups.WithLabelValues(c.name, "over_cap").Set(float64(overCap))
		switch before := c.overCap.Swap(int64(overCap)); {
		case overCap > 0 && before == 0:
			c.log.Warn("max_groups reached: further consumer groups are not monitored; raise max_groups or leave groups out with groups.deny",
				"max_groups", c.cfg.MaxGroups, "monitored", tracked, "not_monitored", overCap)
		case overCap == 0 && before > 0:
			c.log.Info("every allowed consumer group is monitored again", "monitored", tracked)
		}
	}
}

// run runs the source and polls Kafka until ctx ends, then closes the clients.
func (c *cluster) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { c.src.Run(ctx) })
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		c.pollOnce(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		case <-c.src.Added():
			// Let a burst of appearing nodes (start-up, a new module) settle
			// into one poll.
			if !backoff.Sleep(ctx, addedSettle) {
				break
			}
			select {
			case <-c.src.Added():
			default:
			}
			continue
		}
		break
	}
	c.close()
	wg.Wait()
}

// close closes the source's and the Kafka clients; safe to call twice. The
// Kafka client is only closed here once the poll loop has ended (or never
// started).
func (c *cluster) close() {
	c.closeOnce.Do(func() {
		c.src.Close()
		if c.reader != nil {
			c.reader.cl.Close()
		}
	})
}

// connected reports whether the source is reachable (the ZooKeeper session is
// established, the last read of Kafka's groups succeeded); while it is not,
// rows are stale.
func (c *cluster) connected() bool { return c.src.Err() == nil }

// ready is the readiness check of the cluster.
func (c *cluster) ready(context.Context) error {
	if err := c.src.Err(); err != nil {
		return fmt.Errorf("cluster %s: %w", c.name, err)
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
		if c.brokers == nil {
			return fmt.Errorf("no broker_hosts, and no ZooKeeper to discover them in")
		}
		var err error
		brokers, err = c.brokers()
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

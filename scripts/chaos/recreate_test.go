package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// probe reads what the checks compare the deliveries with: the topic's log
// offsets from the broker and the module's committed offsets from its store
// (ZooKeeper's offset nodes, or the Kafka group's offsets through the admin
// client, as an independent reader sees them). It also deletes and creates the
// topic, as an operator's admin tool would.
type probe struct {
	adm    *kadm.Client
	conn   *zk.Conn // nil with storeKafka
	layout zkconsumers.Layout
}

// newProbe connects to the broker and, with storeZooKeeper, to ZooKeeper; the
// clients reconnect after a restart and are closed when the test ends.
func (s *system) newProbe(t *testing.T) *probe {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokerAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	pr := &probe{adm: kadm.NewClient(cl), layout: zkconsumers.New(chroot)}
	if s.store == storeZooKeeper {
		pr.conn = s.zk.Conn(t)
	}
	return pr
}

// offsets fills r's log start, log end and committed offset of every partition;
// what it cannot read, and every partition without a committed offset, goes to
// r.waiting. It returns false when a read failed (a partition without a commit
// is no failure: r.committed lacks it).
func (pr *probe) offsets(r *result) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	starts, serr := pr.adm.ListStartOffsets(ctx, chaosTopic)
	ends, eerr := pr.adm.ListEndOffsets(ctx, chaosTopic)
	r.logStart, r.logEnd = map[int32]int64{}, map[int32]int64{}
	ok := serr == nil && eerr == nil
	if !ok {
		r.waiting = append(r.waiting, fmt.Sprintf("list offsets: %v %v", serr, eerr))
	}
	for p := int32(0); p < partitions; p++ {
		if o, found := starts.Lookup(chaosTopic, p); found && o.Err == nil {
			r.logStart[p] = o.Offset
		}
		if o, found := ends.Lookup(chaosTopic, p); found && o.Err == nil {
			r.logEnd[p] = o.Offset
		} else {
			r.waiting = append(r.waiting, fmt.Sprintf("partition %d: no log end offset", p))
			ok = false
		}
	}
	var err error
	if pr.conn != nil {
		r.committed, err = pr.zkCommitted()
	} else {
		r.committed, err = pr.groupCommitted(ctx)
	}
	if err != nil {
		r.waiting = append(r.waiting, err.Error())
		return false
	}
	for p := int32(0); p < partitions; p++ {
		if _, found := r.committed[p]; !found {
			r.waiting = append(r.waiting, fmt.Sprintf("partition %d: no committed offset", p))
		}
	}
	return ok
}

// zkCommitted reads the module's offset nodes; a partition without one is
// left out.
func (pr *probe) zkCommitted() (map[int32]int64, error) {
	out := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		data, _, err := pr.conn.Get(pr.layout.Offset(chaosModule, chaosTopic, p))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partition %d: offset node: %w", p, err)
		}
		if out[p], err = zkconsumers.DecodeOffset(data); err != nil {
			return nil, fmt.Errorf("partition %d: offset node %q: %w", p, data, err)
		}
	}
	return out, nil
}

// groupCommitted reads the module's Kafka group offsets with franz-go's admin
// client; a partition without a commit (Kafka drops a deleted topic's) is
// left out.
func (pr *probe) groupCommitted(ctx context.Context) (map[int32]int64, error) {
	resps, err := pr.adm.FetchOffsets(ctx, chaosModule)
	if err != nil {
		return nil, fmt.Errorf("group %s: fetch offsets: %w", chaosModule, err)
	}
	out := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		o, found := resps.Lookup(chaosTopic, p)
		switch {
		case !found || (o.Err == nil && o.At < 0):
		case o.Err != nil:
			return nil, fmt.Errorf("group %s partition %d: fetch offset: %w", chaosModule, p, o.Err)
		default:
			out[p] = o.At
		}
	}
	return out, nil
}

// recreate deletes the topic and creates it again with the same name and
// partition count. The broker does not auto-create topics (see startBroker),
// so the creation must be this one.
func (pr *probe) recreate(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The broker deletes the topic before it answers.
	if _, err := pr.adm.DeleteTopic(ctx, chaosTopic); err != nil {
		t.Fatalf("delete topic %s: %v", chaosTopic, err)
	}
	resp, err := pr.adm.CreateTopic(ctx, partitions, 1, nil, chaosTopic)
	if err != nil {
		t.Fatalf("create topic %s again: %v", chaosTopic, err)
	}
	if resp.NumPartitions != partitions {
		t.Fatalf("topic %s created again with %d partitions, want %d", chaosTopic, resp.NumPartitions, partitions)
	}
}

// recreation is what the topic-recreated fault saw. Its fields after done are
// written by the watch goroutine and read after wait.
type recreation struct {
	gen        int32         // the new topic's generation (load.gen)
	oldRecords int64         // records in the deleted topic, each delivered before the deletion
	catchUp    time.Duration // from pausing the load until the old topic was delivered and committed

	done chan struct{} // closed when the watch ends
	// moved is how long after the recreation every partition's committed
	// offset had left the old topic's (ktransfer noticed the new topic); -1:
	// not within the watch.
	moved time.Duration
	// resumed is how long after the recreation a record of the new topic had
	// been delivered from every partition; -1: not within the watch.
	resumed time.Duration
	// maxLag is the highest module lag kmonitor's /delay showed during the
	// watch (-1: never read).
	maxLag int64
	// judged counts kmonitor's rows of partitions whose committed offset lay
	// above the new log end, from the judgedPoll-th poll in a row that found it
	// so, by what they showed; early counts the other rows of such partitions
	// (earlier polls, stale rows), where kmonitor may rightly still show the
	// partition in range (it confirms over two polls).
	judged, early map[string]int
	wrong         []string // judged rows that showed lag 0 and OK
	// noCommit counts kmonitor's rows of partitions that had no committed
	// offset (Kafka drops a deleted topic's group offsets with it), by what
	// they showed.
	noCommit map[string]int
}

// judgedPoll is the first of kmonitor's polls in a row finding a committed
// offset above the log end whose row is judged: kmonitor counts the offset out
// of range once two polls in a row found it so (its confirmPolls), and one
// more poll leaves room for a sample taken while the second one was answered.
const judgedPoll = 3

// wait waits for the end of the watch and returns maxLag.
func (rc *recreation) wait() int64 {
	<-rc.done
	return rc.maxLag
}

// recreateTopic is the topic-recreated fault: the topic the module consumes
// is deleted and created again (same name, same partition count) under the
// running fleet. The load pauses first and the pipeline catches up (every
// acknowledged record delivered, every record of the topic delivered, the
// committed offsets at the log end, kproxy holding no record), so the deletion
// takes no undelivered record with it and the end checks keep their full
// strength: every record kproxy answered 200 for must reach the backend. The
// load resumes at once with the next generation, its sequence numbers carrying
// on; the committed offsets then point above the new topic's log end (with
// Kafka: are gone, dropped with the topic) until ktransfer notices the new
// topic, which a goroutine watches (see watchOutOfRange) while the schedule
// goes on.
func (s *system) recreateTopic(t *testing.T, ld *load) faultRecord {
	t.Helper()
	pausedAt := time.Now()
	ld.pause()
	paused := true
	defer func() {
		if paused {
			ld.resume(false)
		}
	}()
	old := s.catchUp(t, ld)
	rc := &recreation{
		gen: ld.gen.Load() + 1, catchUp: time.Since(pausedAt),
		done: make(chan struct{}), moved: -1, resumed: -1, maxLag: -1, judged: map[string]int{}, early: map[string]int{}, noCommit: map[string]int{},
	}
	for p, end := range old.logEnd {
		rc.oldRecords += end - old.logStart[p]
	}
	f := faultRecord{name: "topic recreated", kind: "topic recreated", injected: time.Now(), recreated: rc}
	s.probe.recreate(t)
	f.repaired = time.Now()
	ld.resume(true)
	paused = false
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(rc.done)
		s.watchOutOfRange(ctx, rc, old.committed, f.repaired)
	}()
	t.Cleanup(func() {
		cancel()
		<-rc.done
	})
	return f
}

// catchUp waits, with the load paused, until every acknowledged record was
// delivered, every record of the topic was delivered, the committed offsets
// equal the log end and kproxy holds no record for Kafka; it fails the test
// after a minute.
func (s *system) catchUp(t *testing.T, ld *load) *result {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := &result{gen: ld.gen.Load()}
		r.acks, r.attempts, r.failures = ld.snapshot()
		r.deliveries, _ = s.be.snapshot()
		r.analyse()
		s.probe.offsets(r)
		r.waiting = append(r.waiting, r.pendingDelivery()...)
		if n, err := s.kproxyBuffered(); err != nil || n != 0 {
			r.waiting = append(r.waiting, fmt.Sprintf("kproxy_buffered_records %d (%v)", n, err))
		}
		if len(r.waiting) == 0 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("load paused for the topic recreation: the pipeline did not catch up within a minute:\n  %s", strings.Join(r.waiting[:min(len(r.waiting), 20)], "\n  "))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// kproxyBuffered reads kproxy_buffered_records from kproxy's /metrics: records
// handed to the Kafka clients and not yet acknowledged (a request that timed out
// may leave one behind, to be written later).
func (s *system) kproxyBuffered() (int64, error) {
	code, body := get(s.kproxyURL + "/metrics")
	if code != http.StatusOK {
		return -1, fmt.Errorf("kproxy /metrics: status %d", code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "kproxy_buffered_records "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return -1, errors.New("kproxy /metrics: no kproxy_buffered_records")
}

// watchOutOfRange samples, from the recreation until every partition's
// committed offset has left the old topic's and every partition delivered a
// record of the new topic (at most 45 s, or until ctx ends), the committed
// offsets, the new log end and kmonitor's rows; the next fault waits for it,
// so each fault's recovery is seen on its own. (With Kafka the two differ:
// the group's claims restart in the new topic and commit its log start within
// seconds, while the module's fetch client still holds the old topic for a
// while.) A partition without a committed offset has not left the old one
// yet: Kafka drops a deleted topic's group offsets with it, so with
// storeKafka every partition is so until ktransfer commits in the new topic;
// kmonitor's rows of it are tallied (noCommit). A partition whose committed
// offset is still the old topic's and above the new log end is out of range; kmonitor's row of it is judged once kmonitor's own polls
// found it so judgedPoll times in a row (fresh rows, committed offset above
// their log end; a poll is told from the one before by its log end, which
// the running load moves on): it must not show lag 0 and OK.
func (s *system) watchOutOfRange(ctx context.Context, rc *recreation, oldCommitted map[int32]int64, recreatedAt time.Time) {
	polls := map[int32][]int64{} // per partition, the log ends of kmonitor's polls in a row finding it above
	for deadline := recreatedAt.Add(45 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(250 * time.Millisecond) {
		r := &result{}
		read := s.probe.offsets(r)
		rows, err := monitorRows(s.kmonitorURL)
		now := time.Now()
		rc.maxLag = max(rc.maxLag, s.monitorLag())
		if !read || err != nil {
			continue
		}
		moved := 0
		for p := int32(0); p < partitions; p++ {
			c, committed := r.committed[p]
			if !committed {
				rc.noCommit[rowText(rows, p)]++
				delete(polls, p)
				continue
			}
			if c != oldCommitted[p] {
				moved++
			}
			if c != oldCommitted[p] || c <= r.logEnd[p] {
				delete(polls, p)
				continue
			}
			row, ok := rows[p]
			if !ok {
				rc.early["no row"]++
				delete(polls, p)
				continue
			}
			seen := fmt.Sprintf("%s, lag %s", row.Status, map[bool]string{true: "0", false: "> 0"}[row.Lag == 0])
			if row.Stale || row.Committed == nil || *row.Committed != c || row.LogEnd == nil || *row.LogEnd >= c {
				if row.Stale {
					seen += ", stale"
				}
				rc.early[seen]++
				delete(polls, p)
				continue
			}
			if ends := polls[p]; len(ends) == 0 || ends[len(ends)-1] != *row.LogEnd {
				polls[p] = append(ends, *row.LogEnd)
			}
			if len(polls[p]) < judgedPoll {
				rc.early[seen]++
				continue
			}
			rc.judged[seen]++
			if row.Lag == 0 && row.Status == "OK" {
				rc.wrong = append(rc.wrong, fmt.Sprintf("+%s partition %d: committed offset %d above the log end %d (kmonitor's poll %d in a row to find it so); kmonitor showed lag 0, OK",
					now.Sub(recreatedAt).Round(time.Millisecond), p, c, *row.LogEnd, len(polls[p])))
			}
		}
		if moved == partitions && rc.moved < 0 {
			rc.moved = now.Sub(recreatedAt)
		}
		if rc.resumed < 0 && len(s.be.partitionsOf(rc.gen)) == partitions {
			rc.resumed = now.Sub(recreatedAt)
		}
		if rc.moved >= 0 && rc.resumed >= 0 {
			return
		}
	}
}

// rowText describes kmonitor's row of partition p for a tally: status, lag,
// committed offset (none, or the one it shows), stale.
func rowText(rows map[int32]lagRow, p int32) string {
	row, ok := rows[p]
	if !ok {
		return "no row"
	}
	out := fmt.Sprintf("%s, lag %s", row.Status, map[bool]string{true: "0", false: "> 0"}[row.Lag == 0])
	if row.Committed == nil {
		out += ", no commit"
	} else {
		out += fmt.Sprintf(", committed %d", *row.Committed)
	}
	if row.Stale {
		out += ", stale"
	}
	return out
}

// counts formats a tally as "a ×3, b ×1", most frequent first.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(out, "; ")
}

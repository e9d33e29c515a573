package kafkagroups

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// ktMeta is metadata as ktransfer's Kafka offset store writes it.
const ktMeta = `{"instance":"host1-4242-9f3a1c07","time":"2026-11-28T10:39:46.123Z"}`

// newSource returns a Source of the brokers with filter (all groups when
// nil), closed when the test ends.
func newSource(t *testing.T, brokers []string, filter *committed.Filter, report func(committed.Admission)) *Source {
	t.Helper()
	if filter == nil {
		var err error
		if filter, err = committed.NewFilter(nil, nil, 10000); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Opts: []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RetryTimeout(2 * time.Second)}, Filter: filter, Report: report}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// poll polls s once within 5 s.
func poll(t *testing.T, s *Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Poll(ctx)
}

// admin returns an admin client of brokers, closed when the test ends.
func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// commit commits group's offset of topic/partition with metadata meta, as an
// administrator (the group must have no members).
func commit(t *testing.T, adm *kadm.Client, group, topic string, p int32, off int64, meta string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: p, At: off, LeaderEpoch: -1, Metadata: meta})
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("commit %s %s/%d at %d: %v", group, topic, p, off, err)
	}
}

// TestOffsetsAndCommitTimes: committed offsets are read with their metadata;
// ktransfer's metadata gives the commit time and the committer, other
// metadata is opaque and the time is when the source saw the offset change
// (unknown at the first read); a poll that finds nothing new makes no new
// version.
func TestOffsetsAndCommitTimes(t *testing.T) {
	t.Parallel()
	k := testcluster.Kafka(t, kfake.SeedTopics(2, "t"))
	brokers := testcluster.Brokers(k)
	adm := admin(t, brokers)
	commit(t, adm, "kt", "t", 0, 5, ktMeta)
	commit(t, adm, "kt", "t", 1, 3, "member-1-opaque")
	s := newSource(t, brokers, nil, nil)
	if err := s.Err(); err == nil {
		t.Error("Err before the first poll: got nil, want not read yet")
	}
	poll(t, s)
	if err := s.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	metaAt := time.Date(2026, 11, 28, 10, 39, 46, 123000000, time.UTC)
	want := map[committed.Key]committed.Part{
		{Group: "kt", Topic: "t", Partition: 0}: {Offset: 5, HasCommit: true, CommitTime: metaAt, CommittedBy: "host1-4242-9f3a1c07"},
		{Group: "kt", Topic: "t", Partition: 1}: {Offset: 3, HasCommit: true},
	}
	snap := s.Snapshot()
	checkParts(t, "first poll", snap.Parts, want)
	if !slices.Equal(snap.Topics, []committed.GroupTopic{{Group: "kt", Topic: "t"}}) {
		t.Errorf("topics: got %v, want kt/t", snap.Topics)
	}

	v := s.Version()
	poll(t, s)
	if s.Version() != v {
		t.Errorf("a poll without changes: got version %d, want %d", s.Version(), v)
	}

	seen := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return seen }
	commit(t, adm, "kt", "t", 1, 4, "member-1-opaque")
	poll(t, s)
	want[committed.Key{Group: "kt", Topic: "t", Partition: 1}] = committed.Part{Offset: 4, HasCommit: true, CommitTime: seen}
	checkParts(t, "after a commit with opaque metadata", s.Snapshot().Parts, want)

	// The same offset committed again with new metadata is a new commit.
	commit(t, adm, "kt", "t", 0, 5, `{"instance":"host2-1-b","time":"2026-11-28T10:40:00Z"}`)
	poll(t, s)
	want[committed.Key{Group: "kt", Topic: "t", Partition: 0}] = committed.Part{Offset: 5, HasCommit: true,
		CommitTime: time.Date(2026, 11, 28, 10, 40, 0, 0, time.UTC), CommittedBy: "host2-1-b"}
	checkParts(t, "after a commit with new metadata", s.Snapshot().Parts, want)

	// A deleted group drops out.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.DeleteGroup(ctx, "kt"); err != nil {
		t.Fatal(err)
	}
	poll(t, s)
	if snap := s.Snapshot(); len(snap.Parts) != 0 || len(snap.Topics) != 0 {
		t.Errorf("deleted group: got parts %v topics %v, want none", snap.Parts, snap.Topics)
	}
}

func checkParts(t *testing.T, when string, got, want map[committed.Key]committed.Part) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d parts %v, want %d %v", when, len(got), got, len(want), want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.Offset != w.Offset || g.HasCommit != w.HasCommit || !g.CommitTime.Equal(w.CommitTime) ||
			g.CommittedBy != w.CommittedBy || g.Owner != w.Owner {
			t.Errorf("%s: %v: got %+v (present %v), want %+v", when, k, g, ok, w)
		}
	}
}

// member joins group as a consumer of topic with client id, over the classic
// protocol or KIP-848's; it leaves when the test ends.
func member(t *testing.T, brokers []string, group, topic, clientID string, next bool) *kgo.Client {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID(clientID), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(100 * time.Millisecond)}
	if next {
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()), kgo.ServerSideBalancer())
	} else {
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			cl.PollFetches(ctx)
			cancel()
		}
	}()
	t.Cleanup(func() {
		once.Do(func() { close(stop) })
		<-done
		cl.Close()
	})
	return cl
}

// TestOwnersAreMembers: a partition's owner is the member it is assigned to,
// over the classic protocol (DescribeGroups) and KIP-848's
// (ConsumerGroupDescribe); the topics members subscribe to are the group's
// before any commit; a group whose members left has no owners.
func TestOwnersAreMembers(t *testing.T) {
	t.Parallel()
	k := testcluster.Kafka(t, kfake.SeedTopics(2, "c", "n"))
	brokers := testcluster.Brokers(k)
	s := newSource(t, brokers, nil, nil)
	classic := member(t, brokers, "g-classic", "c", "kt-classic", false)
	member(t, brokers, "g-next", "n", "kt-next", true)
	owned := func(group, topic, prefix string) bool {
		parts := s.Snapshot().Parts
		for p := int32(0); p < 2; p++ {
			o := parts[committed.Key{Group: group, Topic: topic, Partition: p}].Owner
			if !strings.HasPrefix(o, prefix) {
				return false
			}
			host, port, err := net.SplitHostPort(strings.TrimPrefix(o, prefix))
			if _, perr := strconv.Atoi(port); err != nil || host != "" || perr != nil {
				return false
			}
		}
		return true
	}
	testwait.Eventually(t, 20*time.Second, "owners of both groups named after their members", func() bool {
		poll(t, s)
		return owned("g-classic", "c", "kt-classic@127.0.0.1") && owned("g-next", "n", "kt-next@127.0.0.1")
	})
	topics := s.Snapshot().Topics
	slices.SortFunc(topics, func(a, b committed.GroupTopic) int { return strings.Compare(a.Group, b.Group) })
	if want := []committed.GroupTopic{{Group: "g-classic", Topic: "c"}, {Group: "g-next", Topic: "n"}}; !slices.Equal(topics, want) {
		t.Errorf("topics: got %v, want %v", topics, want)
	}
	for k, p := range s.Snapshot().Parts {
		if p.HasCommit {
			t.Errorf("%v: got a commit %+v, want none (nobody committed)", k, p)
		}
	}

	// The classic member commits, then leaves: the commit stays, the owner goes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var commitErr error
	classic.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{"c": {0: {Epoch: -1, Offset: 0}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err == nil {
				err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
			}
			commitErr = err
		})
	if commitErr != nil {
		t.Fatalf("the member's commit: %v", commitErr)
	}
	classic.LeaveGroup()
	testwait.Eventually(t, 20*time.Second, "no owner after the member left", func() bool {
		poll(t, s)
		p := s.Snapshot().Parts[committed.Key{Group: "g-classic", Topic: "c", Partition: 0}]
		return p.HasCommit && p.Offset == 0 && p.Owner == ""
	})
	if err := s.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
}

// TestRequestsPerPoll: a poll of 60 groups on two brokers sends one ListGroups
// per broker, one OffsetFetch per coordinator naming all of its groups, and
// no describe for groups without members.
func TestRequestsPerPoll(t *testing.T) {
	t.Parallel()
	k := testcluster.Kafka(t, kfake.NumBrokers(2), kfake.SeedTopics(1, "t"))
	brokers := testcluster.Brokers(k)
	adm := admin(t, brokers)
	const groups = 60
	coordinators := map[int32]bool{}
	for g := range groups {
		name := fmt.Sprintf("g%02d", g)
		commit(t, adm, name, "t", 0, int64(g), "")
		coordinators[k.CoordinatorFor(name)] = true
	}
	s := newSource(t, brokers, nil, nil)
	poll(t, s) // connects, finds the coordinators
	var mu sync.Mutex
	counts := map[int16]int{}
	fetchedGroups := 0
	var counting atomic.Bool
	for _, key := range []kmsg.Key{kmsg.ListGroups, kmsg.OffsetFetch, kmsg.DescribeGroups, kmsg.ConsumerGroupDescribe} {
		k.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			k.KeepControl()
			if counting.Load() {
				mu.Lock()
				counts[req.Key()]++
				if of, ok := req.(*kmsg.OffsetFetchRequest); ok {
					fetchedGroups += len(of.Groups)
				}
				mu.Unlock()
			}
			return nil, nil, false
		})
	}
	counting.Store(true)
	poll(t, s)
	counting.Store(false)
	mu.Lock()
	defer mu.Unlock()
	if counts[int16(kmsg.ListGroups)] != 2 {
		t.Errorf("ListGroups requests: got %d, want 2 (one per broker)", counts[int16(kmsg.ListGroups)])
	}
	if got := counts[int16(kmsg.OffsetFetch)]; got != len(coordinators) || fetchedGroups != groups {
		t.Errorf("OffsetFetch: got %d requests naming %d groups, want %d (one per coordinator) naming %d", got, fetchedGroups, len(coordinators), groups)
	}
	if n := counts[int16(kmsg.DescribeGroups)] + counts[int16(kmsg.ConsumerGroupDescribe)]; n != 0 {
		t.Errorf("describe requests for groups without members: got %d, want 0", n)
	}
	if got := len(s.Snapshot().Parts); got != groups {
		t.Errorf("got %d parts, want %d", got, groups)
	}
}

// TestFilter: groups.deny and max_groups choose the groups read; the report
// says what they left out.
func TestFilter(t *testing.T) {
	t.Parallel()
	k := testcluster.Kafka(t, kfake.SeedTopics(1, "t"))
	brokers := testcluster.Brokers(k)
	adm := admin(t, brokers)
	for _, g := range []string{"a1", "a2", "console-consumer-7"} {
		commit(t, adm, g, "t", 0, 1, "")
	}
	f, err := committed.NewFilter(nil, []string{"console-consumer-[0-9]+"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got committed.Admission
	s := newSource(t, brokers, f, func(a committed.Admission) { got = a })
	poll(t, s)
	if !slices.Equal(got.Keep, []string{"a1"}) || got.Filtered != 1 || got.OverCap != 1 {
		t.Errorf("admission: got %+v, want a1 kept, 1 filtered, 1 over the cap", got)
	}
	parts := s.Snapshot().Parts
	if _, ok := parts[committed.Key{Group: "a1", Topic: "t"}]; !ok || len(parts) != 1 {
		t.Errorf("parts: got %v, want only a1's", parts)
	}
}

// TestBrokerDown: while the broker is down the values read last stay and Err
// says why; after the broker is back on its port (with its data), a poll
// reads again and sees new commits.
func TestBrokerDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	brokers := k.ListenAddrs()
	_, portStr, _ := net.SplitHostPort(brokers[0])
	port, _ := strconv.Atoi(portStr)
	adm := admin(t, brokers)
	commit(t, adm, "kt", "t", 0, 7, ktMeta)
	s := newSource(t, brokers, nil, nil)
	poll(t, s)
	key := committed.Key{Group: "kt", Topic: "t"}
	if p := s.Snapshot().Parts[key]; p.Offset != 7 || s.Err() != nil {
		t.Fatalf("before: got %+v, err %v", p, s.Err())
	}
	k.Close()
	poll(t, s)
	if s.Err() == nil {
		t.Error("broker down: got Err nil, want why")
	}
	if p := s.Snapshot().Parts[key]; p.Offset != 7 || !p.HasCommit {
		t.Errorf("broker down: got %+v, want the last values", p)
	}
	k2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatalf("restart the broker on port %d: %v", port, err)
	}
	t.Cleanup(k2.Close)
	testwait.Eventually(t, 30*time.Second, "reads again", func() bool {
		poll(t, s)
		return s.Err() == nil
	})
	commit(t, adm, "kt", "t", 0, 9, ktMeta)
	poll(t, s)
	if p := s.Snapshot().Parts[key]; p.Offset != 9 {
		t.Errorf("after the restart: got %+v, want offset 9", p)
	}
}

// TestOwnerName: how a member is named.
func TestOwnerName(t *testing.T) {
	inst := "static-1"
	empty := ""
	for _, tc := range []struct {
		instance          *string
		client, member, h string
		want              string
	}{
		{nil, "host1-4242-9f3a1c07", "m-1", "/10.0.0.5", "host1-4242-9f3a1c07@10.0.0.5"},
		{&inst, "kgo", "m-1", "/10.0.0.5", "static-1@10.0.0.5"},
		{&empty, "", "m-1", "10.0.0.5:3456", "m-1@10.0.0.5:3456"},
		{nil, "kgo", "m-1", "", "kgo"},
		{nil, "", "", "", "?"},
	} {
		if got := ownerName(tc.instance, tc.client, tc.member, tc.h); got != tc.want {
			t.Errorf("ownerName(%v, %q, %q, %q): got %q, want %q", tc.instance, tc.client, tc.member, tc.h, got, tc.want)
		}
	}
}

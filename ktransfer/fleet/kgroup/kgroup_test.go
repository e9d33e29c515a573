package kgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/commitmeta"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

const (
	topic = "events"
	group = "mod"
)

// cluster is kfake with the topic, group sessions allowed down to 500 ms and
// consumer-protocol heartbeats every 250 ms (kfake applies the broker's
// heartbeat interval, not the group's); classicOnly hides the consumer
// protocol (a Kafka 3.9 broker).
func cluster(t *testing.T, partitions int32, classicOnly bool) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{
		kfake.SeedTopics(partitions, topic),
		kfake.GroupMinSessionTimeout(500 * time.Millisecond),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "250"}),
	}
	if classicOnly {
		v := kversion.Stable()
		v.SetMaxKeyVersion(int16(kmsg.ConsumerGroupHeartbeat), -1)
		opts = append(opts, kfake.MaxVersions(v))
	}
	return testcluster.Kafka(t, opts...)
}

// engine stands in for ktransfer's engine: it takes every claim, and releases
// a revoked or fenced one when release lets it (immediately by default).
type engine struct {
	t       *testing.T
	m       *Member
	mu      sync.Mutex
	claims  []*Claim // every claim received, in order
	hold    chan struct{}
	stopped chan struct{}
}

func (e *engine) all() []*Claim {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.claims)
}

// live returns the claims not yet ended, by partition.
func (e *engine) live() map[int32]*Claim {
	out := map[int32]*Claim{}
	for _, c := range e.all() {
		if c.Context().Err() == nil {
			out[c.Partition()] = c
		}
	}
	return out
}

func (e *engine) owned() []int32 {
	var ps []int32
	for p := range e.live() {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

type memberOpt func(*Config)

func join(t *testing.T, c *kfake.Cluster, instance, protocol string, opts ...memberOpt) *engine {
	t.Helper()
	cfg := Config{
		Group: group, Topic: topic, Instance: instance, Protocol: protocol,
		SessionTimeout: 3 * time.Second, ReleaseWait: 10 * time.Second, RetryInterval: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testwait.LogTo(t), &slog.HandlerOptions{Level: slog.LevelInfo})).With("instance", instance),
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := Join([]kgo.Opt{kgo.SeedBrokers(testcluster.Brokers(c)...)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{t: t, m: m, stopped: make(chan struct{})}
	go func() {
		defer close(e.stopped)
		for cl := range m.Claims() {
			c := cl.(*Claim)
			e.mu.Lock()
			e.claims = append(e.claims, c)
			e.mu.Unlock()
			go func() {
				<-c.Context().Done()
				e.mu.Lock()
				hold := e.hold
				e.mu.Unlock()
				if hold != nil && !errors.Is(context.Cause(c.Context()), fleet.ErrFenced) {
					<-hold
				}
				_ = c.Release(context.Background())
			}()
		}
	}()
	t.Cleanup(func() {
		e.close()
	})
	return e
}

func (e *engine) close() {
	done := make(chan struct{})
	go func() {
		e.m.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		e.t.Errorf("Close did not return")
	}
	<-e.stopped
}

// fetch reads the group's committed offset and metadata of partition p.
func fetch(t *testing.T, c *kfake.Cluster, p int32) (int64, string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testcluster.Brokers(c)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	os, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := os.Lookup(topic, p)
	if !ok {
		return -1, ""
	}
	return r.At, r.Metadata
}

func TestProtocolChoice(t *testing.T) {
	for _, tc := range []struct {
		name        string
		classicOnly bool
		protocol    string
		want        string
	}{
		{"auto, broker with the consumer protocol", false, ProtocolAuto, ProtocolConsumer},
		{"auto, broker without it", true, ProtocolAuto, ProtocolClassic},
		{"pinned classic", false, ProtocolClassic, ProtocolClassic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster(t, 2, tc.classicOnly)
			e := join(t, c, "a", tc.protocol)
			testwait.Eventually(t, 15*time.Second, "both partitions claimed", func() bool { return len(e.owned()) == 2 })
			s := e.m.Snapshot().(Snapshot)
			if s.Protocol != tc.want || s.MemberID == "" || s.Generation < 0 || fmt.Sprint(s.Assigned) != "[0 1]" {
				t.Errorf("snapshot %+v, want protocol %s, a member id and generation, partitions [0 1]", s, tc.want)
			}
		})
	}
}

func protocols(t *testing.T, fn func(t *testing.T, protocol string)) {
	for _, p := range []string{ProtocolConsumer, ProtocolClassic} {
		t.Run(p, func(t *testing.T) { fn(t, p) })
	}
}

// TestRevocationWaitsForRelease: a second member joins; the partitions moving
// to it are revoked at the first, and the second gets them only once the
// first released them, after its final commit, which the second then reads.
func TestRevocationWaitsForRelease(t *testing.T) {
	protocols(t, func(t *testing.T, protocol string) {
		c := cluster(t, 4, false)
		a := join(t, c, "a", protocol)
		testwait.Eventually(t, 15*time.Second, "a owns every partition", func() bool { return len(a.owned()) == 4 })
		for p, cl := range a.live() {
			if err := cl.Commit(int64(10 + p)); err != nil {
				t.Fatalf("commit partition %d: %v", p, err)
			}
		}
		hold := make(chan struct{})
		a.mu.Lock()
		a.hold = hold
		a.mu.Unlock()
		claimsOfA := a.live()

		b := join(t, c, "b", protocol)
		var revoked []*Claim
		testwait.Eventually(t, 20*time.Second, "a's claims revoked", func() bool {
			revoked = nil
			for _, cl := range claimsOfA {
				if cl.Context().Err() != nil {
					revoked = append(revoked, cl)
				}
			}
			return len(revoked) == 2
		})
		for _, cl := range revoked {
			if cause := context.Cause(cl.Context()); !errors.Is(cause, fleet.ErrRevoked) {
				t.Errorf("partition %d: cause %v, want ErrRevoked", cl.Partition(), cause)
			}
			// The final commit of a revoked claim is accepted.
			if err := cl.Commit(int64(100 + cl.Partition())); err != nil {
				t.Errorf("final commit of revoked partition %d: %v", cl.Partition(), err)
			}
		}
		time.Sleep(time.Second)
		if got := b.owned(); len(got) != 0 {
			t.Fatalf("b owns %v while a has not released the revoked partitions", got)
		}
		close(hold)
		testwait.Eventually(t, 20*time.Second, "b owns two partitions", func() bool { return len(b.owned()) == 2 })
		for _, cl := range revoked {
			p := cl.Partition()
			bc := b.live()[p]
			if bc == nil {
				t.Fatalf("b does not own revoked partition %d (owns %v)", p, b.owned())
			}
			off, ok, err := bc.LoadOffset()
			if err != nil || !ok || off != int64(100+p) {
				t.Errorf("b reads partition %d at %d (ok %v, %v), want a's final commit %d", p, off, ok, err, 100+p)
			}
			// a's released claim commits nothing more.
			if err := cl.Commit(1); !errors.Is(err, fleet.ErrNotOwner) {
				t.Errorf("commit of a released claim: got %v, want ErrNotOwner", err)
			}
		}
		_, meta := fetch(t, c, revoked[0].Partition())
		if m, err := commitmeta.Decode(meta); err != nil || m.Instance != "a" || time.Since(m.Time) > time.Minute {
			t.Errorf("commit metadata %q: %+v, %v; want instance a and a recent time", meta, m, err)
		}
	})
}

// TestCloseHandsOver: a member that leaves revokes its claims with ErrClosed,
// and the other member takes every partition.
func TestCloseHandsOver(t *testing.T) {
	protocols(t, func(t *testing.T, protocol string) {
		c := cluster(t, 4, false)
		a := join(t, c, "a", protocol)
		b := join(t, c, "b", protocol)
		testwait.Eventually(t, 20*time.Second, "spread", func() bool { return len(a.owned()) == 2 && len(b.owned()) == 2 })
		claimsOfA := a.live()
		a.close()
		for p, cl := range claimsOfA {
			if cause := context.Cause(cl.Context()); !errors.Is(cause, fleet.ErrClosed) {
				t.Errorf("partition %d: cause %v, want ErrClosed", p, cause)
			}
		}
		testwait.Eventually(t, 20*time.Second, "b owns every partition", func() bool { return len(b.owned()) == 4 })
	})
}

// dropHeartbeats closes the connection of every heartbeat of the member with
// id until stop is closed.
func dropHeartbeats(c *kfake.Cluster, id func() string, stop <-chan struct{}) {
	for _, key := range []kmsg.Key{kmsg.Heartbeat, kmsg.ConsumerGroupHeartbeat} {
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			select {
			case <-stop:
				c.DropControl()
				return nil, nil, false
			default:
			}
			c.KeepControl()
			var member string
			switch r := req.(type) {
			case *kmsg.HeartbeatRequest:
				member = r.MemberID
			case *kmsg.ConsumerGroupHeartbeatRequest:
				member = r.MemberID
			}
			if member != id() {
				return nil, nil, false
			}
			return nil, errors.New("dropped"), true
		})
	}
}

// isMember tells whether the group has a member with id.
func isMember(t *testing.T, c *kfake.Cluster, protocol, id string) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testcluster.Brokers(c)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if protocol == ProtocolConsumer {
		gs, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range gs[group].Members {
			if m.MemberID == id {
				return true
			}
		}
		return false
	}
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range gs[group].Members {
		if m.MemberID == id {
			return true
		}
	}
	return false
}

// TestKafkaRefusesRemovedMember: a member whose heartbeats do not reach the
// coordinator is removed after its session timeout; with its own silence
// watch off, its claim still looks live, and the coordinator refuses the
// commit: the claim and every other claim of the member are fenced, and the
// committed offset does not move.
func TestKafkaRefusesRemovedMember(t *testing.T) {
	protocols(t, func(t *testing.T, protocol string) {
		c := cluster(t, 2, false)
		a := join(t, c, "a", protocol, func(cfg *Config) { cfg.fenceAfter = -1; cfg.SessionTimeout = time.Second })
		testwait.Eventually(t, 15*time.Second, "a owns both partitions", func() bool { return len(a.owned()) == 2 })
		claims := a.live()
		if err := claims[0].Commit(5); err != nil {
			t.Fatal(err)
		}
		id, _ := a.m.cl.Load().GroupMetadata()
		stop := make(chan struct{})
		defer close(stop)
		dropHeartbeats(c, func() string { return id }, stop)
		// Commits would keep the member alive (kfake, and Kafka's classic
		// protocol, count them as a sign of life): wait for the removal first.
		testwait.Eventually(t, 20*time.Second, "a removed from the group", func() bool { return !isMember(t, c, protocol, id) })
		err := claims[0].Commit(7)
		if !errors.Is(err, fleet.ErrNotOwner) {
			t.Fatalf("commit of a removed member: got %v, want ErrNotOwner", err)
		}
		t.Logf("refused: %v", err)
		for p, cl := range claims {
			if cause := context.Cause(cl.Context()); !errors.Is(cause, fleet.ErrFenced) || cl.Live() {
				t.Errorf("partition %d: cause %v, live %v; want fenced", p, cause, cl.Live())
			}
		}
		if err := claims[1].Commit(9); !errors.Is(err, fleet.ErrNotOwner) {
			t.Errorf("commit of the other claim: got %v, want ErrNotOwner", err)
		}
		if off, _ := fetch(t, c, 0); off != 5 {
			t.Errorf("committed offset of partition 0: %d, want 5", off)
		}
		if off, _ := fetch(t, c, 1); off != -1 {
			t.Errorf("committed offset of partition 1: %d, want none", off)
		}
	})
}

// TestSilenceFences: when the coordinator answers no heartbeat for 2/3 of the
// session timeout, every claim is fenced at once; when it answers again, the
// partitions still assigned are claimed again, and the new claims see that
// nobody committed since.
func TestSilenceFences(t *testing.T) {
	protocols(t, func(t *testing.T, protocol string) {
		c := cluster(t, 2, false)
		a := join(t, c, "a", protocol, func(cfg *Config) { cfg.SessionTimeout = 6 * time.Second })
		testwait.Eventually(t, 15*time.Second, "a owns both partitions", func() bool { return len(a.owned()) == 2 })
		before := a.live()
		for p, cl := range before {
			if err := cl.Commit(int64(20 + p)); err != nil {
				t.Fatal(err)
			}
		}
		id, _ := a.m.cl.Load().GroupMetadata()
		stop := make(chan struct{})
		dropHeartbeats(c, func() string { return id }, stop)
		testwait.Eventually(t, 15*time.Second, "fenced", func() bool {
			for _, cl := range before {
				if cl.Live() {
					return false
				}
			}
			return true
		})
		close(stop)
		for p, cl := range before {
			if cause := context.Cause(cl.Context()); !errors.Is(cause, fleet.ErrFenced) {
				t.Errorf("partition %d: cause %v, want ErrFenced", p, cause)
			}
			if err := cl.Commit(1); !errors.Is(err, fleet.ErrNotOwner) {
				t.Errorf("commit of fenced partition %d: got %v, want ErrNotOwner", p, err)
			}
		}
		testwait.Eventually(t, 30*time.Second, "claimed again", func() bool { return len(a.owned()) == 2 })
		for p, cl := range a.live() {
			off, ok, err := cl.LoadOffset()
			if err != nil || !ok || off != int64(20+p) {
				t.Fatalf("partition %d: LoadOffset %d %v %v, want %d", p, off, ok, err, 20+p)
			}
			if !cl.Resumes(before[p].Written()) {
				t.Errorf("partition %d: the new claim does not resume the fenced one's commit", p)
			}
			if err := cl.Commit(int64(30 + p)); err != nil {
				t.Errorf("partition %d: commit of the new claim: %v", p, err)
			}
		}
	})
}

// TestImport: a partition without an offset in the group takes the imported
// one; a partition with one keeps it.
func TestImport(t *testing.T) {
	c := cluster(t, 2, false)
	imported := func(_ context.Context, p int32) (int64, bool, error) {
		if p == 1 {
			return 42, true, nil
		}
		return 0, false, nil
	}
	a := join(t, c, "a", ProtocolAuto, func(cfg *Config) { cfg.Import = imported })
	testwait.Eventually(t, 15*time.Second, "a owns both partitions", func() bool { return len(a.owned()) == 2 })
	cl := a.live()
	if off, ok, err := cl[1].LoadOffset(); err != nil || !ok || off != 42 {
		t.Errorf("partition 1: %d %v %v, want the imported 42", off, ok, err)
	}
	if off, ok, err := cl[0].LoadOffset(); err != nil || ok {
		t.Errorf("partition 0: %d %v %v, want none", off, ok, err)
	}
	if err := cl[0].Commit(3); err != nil {
		t.Fatal(err)
	}
	a.close()
	failing := func(context.Context, int32) (int64, bool, error) { return 0, false, errors.New("ZooKeeper down") }
	b := join(t, c, "b", ProtocolAuto, func(cfg *Config) { cfg.Import = failing })
	testwait.Eventually(t, 15*time.Second, "b owns both partitions", func() bool { return len(b.owned()) == 2 })
	if off, ok, err := b.live()[0].LoadOffset(); err != nil || !ok || off != 3 {
		t.Errorf("partition 0 with an offset in the group: %d %v %v, want 3 without asking the import", off, ok, err)
	}
	if _, _, err := b.live()[1].LoadOffset(); err == nil {
		t.Errorf("partition 1 without an offset and a failing import: no error")
	}
}

// TestCommitOfAnotherMemberRefused: a claim made for a member id the group
// client no longer has (it was removed and joined again as a new member) is
// refused by the member itself, before anything reaches Kafka — the new
// member id and epoch would let Kafka take the commit — while the claims of
// the current member commit in the same batch.
func TestCommitOfAnotherMemberRefused(t *testing.T) {
	protocols(t, func(t *testing.T, protocol string) {
		c := cluster(t, 2, false)
		a := join(t, c, "a", protocol)
		testwait.Eventually(t, 15*time.Second, "a owns both partitions", func() bool { return len(a.owned()) == 2 })
		good := a.live()[0]
		stale := a.m.newClaim(1, "a-member-that-left")
		errs := make(chan error, 2)
		go func() { errs <- stale.Commit(99) }()
		go func() { errs <- good.Commit(5) }()
		var refused, ok int
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case errors.Is(err, fleet.ErrNotOwner) && strings.Contains(err.Error(), errOtherMember.Error()):
				refused++
			default:
				t.Errorf("unexpected commit error: %v", err)
			}
		}
		if refused != 1 || ok != 1 {
			t.Fatalf("got %d refused, %d committed; want one of each", refused, ok)
		}
		if stale.Live() {
			t.Error("the stale claim is still live after its refusal")
		}
		if off, _ := fetch(t, c, 1); off != -1 {
			t.Errorf("partition 1 committed at %d, want nothing", off)
		}
		if off, _ := fetch(t, c, 0); off != 5 {
			t.Errorf("partition 0 committed at %d, want 5", off)
		}
		if !good.Live() {
			t.Error("the current member's claim was fenced too")
		}
	})
}

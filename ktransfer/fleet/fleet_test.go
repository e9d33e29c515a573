package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// sessionTimeout is short so that expiry tests take seconds; the test server
// grants 1 s to 60 s.
const sessionTimeout = 2 * time.Second

func TestAssign(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
		id   string
		n    int32
		want []int32
	}{
		{"alone owns all", []string{"a"}, "a", 4, []int32{0, 1, 2, 3}},
		{"first of three", []string{"a", "b", "c"}, "a", 8, []int32{0, 3, 6}},
		{"second of three", []string{"a", "b", "c"}, "b", 8, []int32{1, 4, 7}},
		{"third of three", []string{"a", "b", "c"}, "c", 8, []int32{2, 5}},
		{"more instances than partitions", []string{"a", "b", "c"}, "c", 2, nil},
		{"not registered", []string{"a", "b"}, "x", 8, nil},
		{"no partitions yet", []string{"a"}, "a", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := assign(tc.ids, tc.id, tc.n); !slices.Equal(got, tc.want) {
				t.Errorf("assign(%v, %q, %d) = %v, want %v", tc.ids, tc.id, tc.n, got, tc.want)
			}
		})
	}
}

func TestJoinRejectsBadNames(t *testing.T) {
	tests := []struct{ name, group, topic, id string }{
		{"empty group", "", "t", "a"},
		{"slash in topic", "g", "a/b", "a"},
		{"dot-dot instance", "g", "t", ".."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Join(context.Background(), nil, zkconsumers.New("/"), tc.group, tc.topic, tc.id, nil)
			if err == nil {
				m.Close()
				t.Fatalf("Join(%q, %q, %q): got no error, want one", tc.group, tc.topic, tc.id)
			}
		})
	}
}

// TestFleet runs the scenarios that share one ZooKeeper server, each in its own
// consumer group.
func TestFleet(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	t.Run("Layout", func(t *testing.T) { t.Parallel(); testLayout(t, z) })
	t.Run("CommitAndReload", func(t *testing.T) { t.Parallel(); testCommitAndReload(t, z) })
	t.Run("Fencing", func(t *testing.T) { t.Parallel(); testFencing(t, z) })
	t.Run("SpreadAndLeave", func(t *testing.T) { t.Parallel(); testSpreadAndLeave(t, z) })
	t.Run("CrashTakeover", func(t *testing.T) { t.Parallel(); testCrashTakeover(t, z) })
	t.Run("CloseTimeout", func(t *testing.T) { t.Parallel(); testCloseTimeout(t, z) })
	t.Run("NegotiatedTimeout", func(t *testing.T) { t.Parallel(); testNegotiatedTimeout(t, z) })
}

// testLayout checks the nodes against the Kafka 0.8 layout the SPEC fixes, and
// that a lone member owns every partition, also after the topic grew.
func testLayout(t *testing.T, z *testcluster.ZooKeeper) {
	log := testLog(t, "a")
	layout := zkconsumers.New("/mq/test_cluster")
	const group, topic = "layout", "events.v1"
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, e := join(t, sess, layout, group, topic, "a", nil, log, func(e *engine) { e.advance = false })
	m.SetPartitions(3)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1, 2}}))

	conn := z.Conn(t)
	data, st, err := conn.Get("/mq/test_cluster/consumers/layout/ids/a")
	if err != nil {
		t.Fatalf("ids node: %v", err)
	}
	if st.EphemeralOwner != sess.SessionID() {
		t.Errorf("ids node ephemeral owner: got %x, want session %x", st.EphemeralOwner, sess.SessionID())
	}
	var reg zkconsumers.Registration
	if err := json.Unmarshal(data, &reg); err != nil {
		t.Fatalf("ids node %q: %v", data, err)
	}
	ms, err := strconv.ParseInt(reg.Timestamp, 10, 64)
	if err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		t.Errorf("ids node timestamp: got %q, want milliseconds of about now", reg.Timestamp)
	}
	if reg.Version != 1 || reg.Pattern != "static" || len(reg.Subscription) != 1 || reg.Subscription[topic] != 1 {
		t.Errorf("ids node: got %s, want version 1, pattern static, subscription {%q: 1}", data, topic)
	}

	for p := range int32(3) {
		owner := fmt.Sprintf("/mq/test_cluster/consumers/layout/owners/events.v1/%d", p)
		data, st, err := conn.Get(owner)
		if err != nil {
			t.Fatalf("owner node: %v", err)
		}
		if string(data) != "a" || st.EphemeralOwner != sess.SessionID() {
			t.Errorf("%s: got data %q, ephemeral owner %x; want \"a\", %x", owner, data, st.EphemeralOwner, sess.SessionID())
		}
		offset := fmt.Sprintf("/mq/test_cluster/consumers/layout/offsets/events.v1/%d", p)
		data, st, err = conn.Get(offset)
		if err != nil {
			t.Fatalf("offset node: %v", err)
		}
		if want := strconv.Itoa(1000 * int(p)); string(data) != want || st.EphemeralOwner != 0 {
			t.Errorf("%s: got data %q, ephemeral owner %x; want %q, persistent", offset, data, st.EphemeralOwner, want)
		}
	}

	snap := m.Snapshot()
	if snap.Session != "connected" || !snap.Registered || snap.Partitions != 3 ||
		!slices.Equal(snap.Instances, []string{"a"}) || !slices.Equal(snap.Desired, []int32{0, 1, 2}) || !slices.Equal(snap.Owned, []int32{0, 1, 2}) {
		t.Errorf("Snapshot: got %+v, want connected, registered, 3 partitions, instances [a], desired and owned [0 1 2]", snap)
	}

	m.SetPartitions(5)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1, 2, 3, 4}}))

	m.Close()
	if got := e.owned(); len(got) != 0 {
		t.Errorf("after Close the engine still owns %v", got)
	}
	if ok, _, err := conn.Exists("/mq/test_cluster/consumers/layout/ids/a"); err != nil || ok {
		t.Errorf("ids node after Close: exists %v (%v), want gone", ok, err)
	}
	got, err := owners(conn, layout, group, topic, 5)
	if err != nil {
		t.Fatal(err)
	}
	for p, o := range got {
		if o != "" {
			t.Errorf("owner node of partition %d after Close: got %q, want gone", p, o)
		}
	}
	for p := range int32(5) {
		if ok, _, err := conn.Exists(layout.Offset(group, topic, p)); err != nil || !ok {
			t.Errorf("offset node of partition %d after Close: exists %v (%v), want kept", p, ok, err)
		}
	}
	if _, ok := <-m.Leases(); ok {
		t.Error("Leases delivered a lease after Close, want it closed")
	}
}

// testCommitAndReload drives one lease by hand: unchanged offsets are not
// written, a released lease commits nothing, and the next lease of the partition
// reads what the previous one committed.
func testCommitAndReload(t *testing.T, z *testcluster.ZooKeeper) {
	log := testLog(t, "a")
	layout := zkconsumers.New("/")
	const group, topic = "commit", "t"
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, err := Join(context.Background(), sess, layout, group, topic, "a", log, WithCloseTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.SetPartitions(1)
	l := receive(t, m)
	conn := z.Conn(t)
	node := layout.Offset(group, topic, 0)

	if off, ok, err := l.LoadOffset(); err != nil || ok {
		t.Fatalf("LoadOffset of a new partition: got %d, %v, %v; want not found", off, ok, err)
	}
	if err := l.Commit(-1); err == nil {
		t.Error("Commit(-1): got no error, want one")
	}
	steps := []struct {
		off         int64
		wantVersion int32
	}{
		{5, 0}, // creates the node
		{5, 0}, // unchanged: no write
		{6, 1},
		{6, 1},
		{4, 2}, // going back is the engine's business; it is written
	}
	for _, s := range steps {
		if err := l.Commit(s.off); err != nil {
			t.Fatalf("Commit(%d): %v", s.off, err)
		}
		data, st, err := conn.Get(node)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != strconv.FormatInt(s.off, 10) || st.Version != s.wantVersion {
			t.Errorf("after Commit(%d): node holds %q at version %d, want %q at version %d", s.off, data, st.Version, strconv.FormatInt(s.off, 10), s.wantVersion)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, ErrRevoked) {
		t.Errorf("cause after Release: got %v, want ErrRevoked", cause)
	}
	if err := l.Commit(9); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Commit after Release: got %v, want ErrNotOwner", err)
	}

	// Still the partition's instance: the member takes it again.
	l2 := receive(t, m)
	if l2 == l {
		t.Fatal("got the released lease again")
	}
	off, ok, err := l2.LoadOffset()
	if err != nil || !ok || off != 4 {
		t.Errorf("LoadOffset of the next lease: got %d, %v, %v; want 4, true, nil", off, ok, err)
	}
	if err := l2.Commit(4); err != nil {
		t.Errorf("Commit of the loaded offset: %v", err)
	}
	if err := l2.Commit(7); err != nil {
		t.Errorf("Commit(7) on the next lease: %v", err)
	}
	if data, _, err := conn.Get(node); err != nil || string(data) != "7" {
		t.Errorf("offset node: got %q (%v), want \"7\"", data, err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Errorf("Release of the next lease: %v", err)
	}
}

// receive waits for the member's next lease.
func receive(t *testing.T, m *Member) *Lease {
	t.Helper()
	select {
	case l, ok := <-m.Leases():
		if !ok {
			t.Fatal("Leases closed, want a lease")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("no lease after 10s; member state %+v", m.Snapshot())
	}
	return nil
}

// testFencing: a lease whose owner or offset node someone else changed must not
// write, and the member takes the partition back once it is free again.
func testFencing(t *testing.T, z *testcluster.ZooKeeper) {
	tests := []struct {
		name string
		// intrude changes the nodes; it returns the holder the member then waits
		// for, or "" when the partition is free at once.
		intrude func(t *testing.T, conn *zk.Conn, owner, offset string) string
	}{
		{"owner node deleted", func(t *testing.T, conn *zk.Conn, owner, _ string) string {
			mustDelete(t, conn, owner)
			return ""
		}},
		{"owner node recreated by another instance", func(t *testing.T, conn *zk.Conn, owner, _ string) string {
			mustDelete(t, conn, owner)
			if _, err := conn.Create(owner, []byte("intruder"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
			return "intruder"
		}},
		{"partition claimed by another instance", func(t *testing.T, conn *zk.Conn, owner, offset string) string {
			// What a member taking the partition does: its own owner node, then
			// both nodes rewritten. The owner node's version then equals ours.
			mustDelete(t, conn, owner)
			if _, err := conn.Create(owner, []byte("intruder"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
			data, st, err := conn.Get(offset)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Multi(&zk.SetDataRequest{Path: owner, Data: []byte("intruder"), Version: 0},
				&zk.SetDataRequest{Path: offset, Data: data, Version: st.Version}); err != nil {
				t.Fatal(err)
			}
			return "intruder"
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := testLog(t, "a")
			layout := zkconsumers.New("/")
			group, topic := fmt.Sprintf("fencing%d", i), "t"
			sess := connect(t, z.Addr, sessionTimeout, log)
			m, err := Join(context.Background(), sess, layout, group, topic, "a", log, WithCloseTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			m.SetPartitions(1)
			l := receive(t, m)
			if err := l.Commit(10); err != nil {
				t.Fatal(err)
			}
			conn := z.ConnTimeout(t, sessionTimeout)
			owner, offset := layout.Owner(group, topic, 0), layout.Offset(group, topic, 0)
			holder := tc.intrude(t, conn, owner, offset)
			before, stBefore, err := conn.Get(offset)
			if err != nil {
				t.Fatal(err)
			}

			err = l.Commit(11)
			if !errors.Is(err, ErrNotOwner) {
				t.Fatalf("Commit after the intrusion: got %v, want ErrNotOwner", err)
			}
			after, stAfter, err := conn.Get(offset)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(before) || stAfter.Version != stBefore.Version {
				t.Errorf("offset node after the refused Commit: %q version %d, want %q version %d", after, stAfter.Version, before, stBefore.Version)
			}
			if cause := context.Cause(l.Context()); !errors.Is(cause, ErrFenced) {
				t.Errorf("lease cause: got %v, want ErrFenced", cause)
			}
			if err := l.Commit(12); !errors.Is(err, ErrNotOwner) {
				t.Errorf("second Commit: got %v, want ErrNotOwner", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := l.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}

			if holder != "" {
				testwait.Until(t, 5*time.Second, func() error {
					if got := m.Snapshot().Waiting[0]; got != holder {
						return fmt.Errorf("member waits for %q, want %q", got, holder)
					}
					return nil
				})
				if data, _, err := conn.Get(owner); err != nil || string(data) != holder {
					t.Fatalf("owner node after Release: %q (%v), want the intruder's %q kept", data, err, holder)
				}
				mustDelete(t, conn, owner)
			}
			l2 := receive(t, m)
			off, ok, err := l2.LoadOffset()
			if err != nil || !ok || off != 10 {
				t.Errorf("LoadOffset of the new lease: got %d, %v, %v; want 10, true, nil", off, ok, err)
			}
			if err := l2.Commit(13); err != nil {
				t.Errorf("Commit on the new lease: %v", err)
			}
			if err := l2.Release(ctx); err != nil {
				t.Errorf("Release of the new lease: %v", err)
			}
		})
	}
}

func mustDelete(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	if err := conn.Delete(p, -1); err != nil {
		t.Fatalf("delete %s: %v", p, err)
	}
}

// testSpreadAndLeave: three members split 8 partitions 3/3/2 without a partition
// ever pushed by two at once, and one leaving cleanly hands its partitions over
// with their offsets.
func testSpreadAndLeave(t *testing.T, z *testcluster.ZooKeeper) {
	layout := zkconsumers.New("/spread")
	const group, topic = "spread", "t"
	reg := newRegistry()
	engines := map[string]*engine{}
	members := map[string]*Member{}
	for i, id := range []string{"a", "b", "c"} {
		log := testLog(t, id)
		sess := connect(t, z.Addr, sessionTimeout, log)
		m, e := join(t, sess, layout, group, topic, id, reg, log, nil)
		m.SetPartitions(8)
		engines[id], members[id] = e, m
		if i == 0 {
			testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1, 2, 3, 4, 5, 6, 7}}))
		}
	}
	a, b, c := engines["a"], engines["b"], engines["c"]
	testwait.Until(t, 15*time.Second, wantOwned(map[*engine][]int32{a: {0, 3, 6}, b: {1, 4, 7}, c: {2, 5}}))
	conn := z.Conn(t)
	testwait.Until(t, 5*time.Second, func() error {
		got, err := owners(conn, layout, group, topic, 8)
		if err != nil {
			return err
		}
		want := map[int32]string{0: "a", 1: "b", 2: "c", 3: "a", 4: "b", 5: "c", 6: "a", 7: "b"}
		for p, o := range want {
			if got[p] != o {
				return fmt.Errorf("owner nodes: got %v, want %v", got, want)
			}
		}
		return nil
	})

	members["c"].Close()
	testwait.Until(t, 15*time.Second, wantOwned(map[*engine][]int32{a: {0, 2, 4, 6}, b: {1, 3, 5, 7}, c: nil}))
	for _, l := range c.leases() {
		if cause, ok := c.cause(l); !ok || !errors.Is(cause, ErrClosed) {
			t.Errorf("c's lease of partition %d: cause %v, want ErrClosed", l.Partition(), cause)
		}
	}
	if snap := members["a"].Snapshot(); !slices.Equal(snap.Instances, []string{"a", "b"}) {
		t.Errorf("a's view of the instances: got %v, want [a b]", snap.Instances)
	}
	reg.check(t)
}

// testCrashTakeover: a member whose host vanishes (its connection cut, nothing
// released) is fenced before its session expires, the others take its
// partitions within the session timeout and a few seconds, and it rejoins with a
// new session once it is reachable again.
func testCrashTakeover(t *testing.T, z *testcluster.ZooKeeper) {
	layout := zkconsumers.New("/crash")
	const group, topic = "crash", "t"
	reg := newRegistry()
	logA, logB := testLog(t, "a"), testLog(t, "b")
	px := testcluster.NewProxy(t, z.Addr)
	sessA := connect(t, px.Addr(), sessionTimeout, logA)
	sessB := connect(t, z.Addr, sessionTimeout, logB)
	ma, a := join(t, sessA, layout, group, topic, "a", reg, logA, nil)
	mb, b := join(t, sessB, layout, group, topic, "b", reg, logB, nil)
	ma.SetPartitions(8)
	mb.SetPartitions(8)
	testwait.Until(t, 15*time.Second, wantOwned(map[*engine][]int32{a: {0, 2, 4, 6}, b: {1, 3, 5, 7}}))
	old := a.lease(0)
	firstSession := sessA.SessionID()

	cut := time.Now()
	px.Cut()
	testwait.Until(t, sessionTimeout+5*time.Second, func() error {
		if got := a.owned(); len(got) > 0 {
			return fmt.Errorf("a still pushes %v after the cut", got)
		}
		return nil
	})
	fenced := time.Since(cut)
	if cause := context.Cause(old.Context()); !errors.Is(cause, ErrFenced) {
		t.Errorf("a's lease cause: got %v, want ErrFenced", cause)
	}
	if err := old.Commit(1 << 40); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Commit on a fenced lease: got %v, want ErrNotOwner", err)
	}
	testwait.Until(t, sessionTimeout+10*time.Second, wantOwned(map[*engine][]int32{b: {0, 1, 2, 3, 4, 5, 6, 7}}))
	t.Logf("after the cut: a fenced in %v, b owns everything after %v (session timeout %v)", fenced.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond), sessionTimeout)
	if s := ma.Snapshot().Session; s == "connected" {
		t.Errorf("a's session state while cut off: got %q, want not connected", s)
	}

	px.Heal()
	testwait.Until(t, 20*time.Second, wantOwned(map[*engine][]int32{a: {0, 2, 4, 6}, b: {1, 3, 5, 7}}))
	if sessA.SessionID() == firstSession {
		t.Errorf("a's session after the heal: got the old %x, want a new one", firstSession)
	}
	if err := old.Commit(1 << 40); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Commit on the old lease after the rejoin: got %v, want ErrNotOwner", err)
	}
	reg.check(t)
}

// testCloseTimeout: an engine that never releases does not block Close forever,
// and the partitions are freed for others.
func testCloseTimeout(t *testing.T, z *testcluster.ZooKeeper) {
	log := testLog(t, "a")
	layout := zkconsumers.New("/")
	const group, topic = "hang", "t"
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, e := join(t, sess, layout, group, topic, "a", nil, log, func(e *engine) { e.hold = make(chan struct{}) }, WithCloseTimeout(300*time.Millisecond))
	m.SetPartitions(2)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1}}))
	l := e.lease(0)

	start := time.Now()
	m.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a close timeout of 300ms", d)
	}
	conn := z.Conn(t)
	got, err := owners(conn, layout, group, topic, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "" || got[1] != "" {
		t.Errorf("owner nodes after Close: got %v, want both gone", got)
	}
	if err := l.Commit(99); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Commit after Close deleted the owner node: got %v, want ErrNotOwner", err)
	}
}

// testNegotiatedTimeout: fencing follows the timeout the server grants, which
// may differ from the one requested.
func testNegotiatedTimeout(t *testing.T, z *testcluster.ZooKeeper) {
	sess := connect(t, z.Addr, 300*time.Millisecond, nil)
	if got := sess.Timeout(); got != time.Second {
		t.Errorf("Timeout with 300ms requested from a server granting at least 1s: got %v, want 1s", got)
	}
	if err := sess.Err(); err != nil {
		t.Errorf("Err while connected: %v", err)
	}
}

// TestServerOutage stops the ZooKeeper server for longer than the session
// timeout: the leases are fenced at once, nothing is committed meanwhile, and
// the member owns its partitions again with new leases after the restart. It
// also checks that closing everything leaves no goroutine behind.
func TestServerOutage(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	log := testLog(t, "a")
	base := runtime.NumGoroutine()
	layout := zkconsumers.New("/")
	const group, topic = "outage", "t"
	sess, err := Connect([]string{z.Addr}, sessionTimeout, 100*time.Millisecond, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	m, err := Join(context.Background(), sess, layout, group, topic, "a", log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e := newEngine("a", m, nil)
	go e.run()
	m.SetPartitions(4)
	testwait.Until(t, 15*time.Second, wantOwned(map[*engine][]int32{e: {0, 1, 2, 3}}))
	old := e.leases()

	z.Stop()
	stopped := time.Now()
	testwait.Until(t, 2*sessionTimeout, func() error {
		for _, l := range old {
			if cause, ok := e.cause(l); !ok || !errors.Is(cause, ErrFenced) {
				return fmt.Errorf("lease of partition %d: ended %v, cause %v; want ended with ErrFenced", l.Partition(), ok, cause)
			}
		}
		return nil
	})
	t.Logf("fenced %v after the server stopped", time.Since(stopped).Round(time.Millisecond))
	if err := old[0].Commit(1 << 40); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Commit while ZooKeeper is down: got %v, want ErrNotOwner", err)
	}
	if err := sess.Err(); !errors.Is(err, ErrNoSession) {
		t.Errorf("Session.Err while ZooKeeper is down: got %v, want ErrNoSession", err)
	}
	// The outage lasts longer than the session timeout.
	time.Sleep(time.Until(stopped.Add(sessionTimeout + 500*time.Millisecond)))
	z.Start(t)

	testwait.Until(t, 20*time.Second, func() error {
		if err := wantOwned(map[*engine][]int32{e: {0, 1, 2, 3}})(); err != nil {
			return err
		}
		for p := range int32(4) {
			if slices.Contains(old, e.lease(p)) {
				return fmt.Errorf("partition %d is still pushed under its old lease", p)
			}
		}
		return nil
	})
	l := e.lease(0)
	if err := l.Commit(1 << 40); err != nil {
		t.Errorf("Commit on the new lease: %v", err)
	}
	if err := old[0].Commit(1 << 41); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Commit on the old lease after the restart: got %v, want ErrNotOwner", err)
	}
	if snap := m.Snapshot(); snap.Session != "connected" || !snap.Registered {
		t.Errorf("Snapshot after the restart: got %+v, want connected and registered", snap)
	}

	m.Close()
	e.wait()
	sess.Close()
	testwait.Until(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > base {
			return fmt.Errorf("goroutines: got %d, want at most %d as before the session", n, base)
		}
		return nil
	})
}

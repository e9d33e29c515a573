package zkwatch

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/committed"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

const chroot = "/mq/test"

var layout = zkconsumers.New(chroot)

// reports records what a Watcher reported of its groups.
type reports struct {
	mu   sync.Mutex
	last committed.Admission
	n    int
}

func (r *reports) report(a committed.Admission) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.n = a, r.n+1
}

func (r *reports) get() (committed.Admission, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.n
}

// watch runs a Watcher of z's chroot until the test ends.
func watch(t *testing.T, z *testcluster.ZooKeeper, maxGroups int, session time.Duration) (*Watcher, *reports) {
	t.Helper()
	f, err := committed.NewFilter(nil, []string{"console-.*"}, maxGroups)
	if err != nil {
		t.Fatal(err)
	}
	rep := &reports{}
	w, err := New(Config{Hosts: []string{z.Addr}, Chroot: chroot, SessionTimeout: session, Retry: 100 * time.Millisecond,
		Filter: f, Report: rep.report}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		w.Close()
	})
	return w, rep
}

// view returns the Watcher's parts and sorted topics.
func view(w *Watcher) (map[committed.Key]committed.Part, []committed.GroupTopic) {
	s := w.Snapshot()
	topics := slices.Clone(s.Topics)
	slices.SortFunc(topics, func(a, b committed.GroupTopic) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic))
	})
	return s.Parts, topics
}

// TestWatcherFollowsTheLayout: offsets, owners and registrations show in the
// view as they are written, changed and deleted, with the commit time of the
// offset node; nodes that are not partitions and unreadable offsets are left
// out.
func TestWatcherFollowsTheLayout(t *testing.T) {
	t.Parallel()
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)
	testcluster.Write(t, conn, layout.Offset("m", "t", 0), zkconsumers.EncodeOffset(5))
	testcluster.Write(t, conn, layout.Owner("m", "t", 0), []byte("host-1"))
	testcluster.Write(t, conn, layout.ID("m", "host-1"), zkconsumers.NewRegistration("u", time.Now()).Encode())
	testcluster.Write(t, conn, layout.OffsetsTopic("m", "t")+"/05", []byte("3")) // not a partition name
	testcluster.Write(t, conn, layout.Offset("m", "t", 1), []byte("five"))       // unreadable
	testcluster.Write(t, conn, layout.Offset("console-1", "t", 0), []byte("1"))  // filtered out
	w, rep := watch(t, z, 10, 4*time.Second)

	k0, k1 := committed.Key{Group: "m", Topic: "t", Partition: 0}, committed.Key{Group: "m", Topic: "t", Partition: 1}
	_, st, err := conn.Get(layout.Offset("m", "t", 0))
	if err != nil {
		t.Fatal(err)
	}
	want0 := committed.Part{Offset: 5, HasCommit: true, CommitTime: time.UnixMilli(st.Mtime), Owner: "host-1"}
	testwait.Eventually(t, 10*time.Second, "the offset, its owner and both topics", func() bool {
		parts, topics := view(w)
		return len(parts) == 1 && parts[k0] == want0 &&
			slices.Equal(topics, []committed.GroupTopic{{Group: "m", Topic: "t"}, {Group: "m", Topic: "u"}})
	})
	if err := w.Err(); err != nil {
		t.Errorf("connected: got Err %v, want nil", err)
	}
	if a, n := rep.get(); n == 0 || !slices.Equal(a.Keep, []string{"m"}) || a.Filtered != 1 || a.OverCap != 0 {
		t.Errorf("got report %+v (%d reports), want m kept, 1 filtered", a, n)
	}

	version := w.Version()
	testcluster.Write(t, conn, layout.Offset("m", "t", 0), zkconsumers.EncodeOffset(9))
	testcluster.Write(t, conn, layout.Offset("m", "t", 1), zkconsumers.EncodeOffset(2))
	if err := conn.Delete(layout.Owner("m", "t", 0), -1); err != nil {
		t.Fatal(err)
	}
	testwait.Eventually(t, 10*time.Second, "the new offsets, no owner", func() bool {
		parts, _ := view(w)
		return parts[k0].Offset == 9 && parts[k0].Owner == "" && parts[k1].HasCommit && parts[k1].Offset == 2
	})
	if w.Version() == version {
		t.Error("got the same version after changes")
	}

	testcluster.RemoveTree(t, conn, layout.IDs("m"))
	testwait.Eventually(t, 10*time.Second, "the registration's topic gone", func() bool {
		_, topics := view(w)
		return slices.Equal(topics, []committed.GroupTopic{{Group: "m", Topic: "t"}})
	})
	testcluster.RemoveTree(t, conn, layout.Group("m"))
	testwait.Eventually(t, 10*time.Second, "the group gone", func() bool {
		parts, topics := view(w)
		return len(parts) == 0 && len(topics) == 0
	})
	testcluster.Write(t, conn, layout.Offset("m", "t", 3), zkconsumers.EncodeOffset(1))
	select {
	case <-w.Added():
	case <-time.After(10 * time.Second):
		t.Fatal("a partition that appeared was not signalled")
	}
	testwait.Eventually(t, 10*time.Second, "the group back", func() bool {
		parts, _ := view(w)
		return parts[committed.Key{Group: "m", Topic: "t", Partition: 3}].Offset == 1
	})
}

// TestWatcherCap: max_groups bounds the groups followed, in name order, and
// groups followed stay when a new one comes.
func TestWatcherCap(t *testing.T) {
	t.Parallel()
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)
	for _, g := range []string{"b", "c", "d"} {
		testcluster.Write(t, conn, layout.Offset(g, "t", 0), zkconsumers.EncodeOffset(1))
	}
	w, rep := watch(t, z, 2, 4*time.Second)
	groups := func() []string {
		parts, _ := view(w)
		var gs []string
		for k := range parts {
			gs = append(gs, k.Group)
		}
		slices.Sort(gs)
		return gs
	}
	testwait.Eventually(t, 10*time.Second, "b and c followed", func() bool { return slices.Equal(groups(), []string{"b", "c"}) })
	if a, _ := rep.get(); a.OverCap != 1 {
		t.Errorf("got %d groups over the cap, want 1", a.OverCap)
	}
	testcluster.Write(t, conn, layout.Offset("a", "t", 0), zkconsumers.EncodeOffset(1))
	testwait.Eventually(t, 10*time.Second, "a counted over the cap", func() bool { a, _ := rep.get(); return a.OverCap == 2 })
	if got := groups(); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("after a new group: got %v, want b and c still", got)
	}
}

// TestWatcherAfterRestart: while ZooKeeper is down the view keeps its values
// and Err says why; once it is back, the watches hold again and later writes
// show. The brokers registered in the chroot are read through the same client.
func TestWatcherAfterRestart(t *testing.T) {
	t.Parallel()
	z := testcluster.StartZooKeeper(t)
	conn := z.Conn(t)
	testcluster.Write(t, conn, layout.Offset("m", "t", 0), zkconsumers.EncodeOffset(5))
	testcluster.Write(t, conn, fmt.Sprintf("%s/brokers/ids/0", chroot), []byte(`{"host":"127.0.0.1","port":9092}`))
	w, _ := watch(t, z, 10, time.Second)
	k := committed.Key{Group: "m", Topic: "t", Partition: 0}
	testwait.Eventually(t, 10*time.Second, "the offset", func() bool { parts, _ := view(w); return parts[k].Offset == 5 })
	if got, err := w.Brokers(); err != nil || !slices.Equal(got, []string{"127.0.0.1:9092"}) {
		t.Errorf("Brokers: got %v, %v, want [127.0.0.1:9092]", got, err)
	}

	z.Stop()
	testwait.Eventually(t, 10*time.Second, "Err reports the lost session", func() bool { return w.Err() != nil })
	if parts, _ := view(w); parts[k].Offset != 5 {
		t.Errorf("while ZooKeeper is down: got %+v, want the last value kept", parts[k])
	}
	z.Start(t)
	conn = z.Conn(t)
	testwait.Eventually(t, 20*time.Second, "a session again", func() bool { return w.Err() == nil })
	testcluster.Write(t, conn, layout.Offset("m", "t", 0), zkconsumers.EncodeOffset(8))
	testwait.Eventually(t, 10*time.Second, "a write after the new session", func() bool { parts, _ := view(w); return parts[k].Offset == 8 })
}

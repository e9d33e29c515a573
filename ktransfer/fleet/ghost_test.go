package fleet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

func TestNewMemberRejectsBadNames(t *testing.T) {
	tests := []struct{ name, group, topic, id, want string }{
		{"slash in instance id", "g", "t", "a/b", `instance id "a/b" must not contain '/'`},
		{"control character in group", "g\x01", "t", "a", `group "g\x01" contains U+0001`},
		{"dot topic", "g", ".", "a", `topic "." is not a ZooKeeper node name`},
		{"no session", "g", "t", "a", "no ZooKeeper session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewMember(nil, zkconsumers.New("/"), tc.group, tc.topic, tc.id, nil)
			if err == nil {
				m.Close()
				t.Fatalf("got a member, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := NewMember(nil, zkconsumers.New("/mq/\x01"), "g", "t", "a", nil); err == nil || !strings.Contains(err.Error(), "chroot") {
		t.Errorf("chroot with a control character: got %v, want an error naming the chroot", err)
	}
}

// TestGhostNodes plants persistent nodes where only live instances' ephemeral
// nodes belong, before a module ever ran: a ghost instance under ids/ and a ghost
// owner under owners/. The member ignores the one and replaces the other, and
// owns every partition; with zk_auth the migration deletes both.
func TestGhostNodes(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	for _, withAuth := range []bool{false, true} {
		name := "without zk_auth"
		if withAuth {
			name = "with zk_auth"
		}
		t.Run(name, func(t *testing.T) {
			log, rec := recordLog(t, "a")
			layout := zkconsumers.New("/ghosts")
			group, topic := "g-"+strings.ReplaceAll(name, " ", "-"), "t"
			open := rawConn(t, z)
			ghostID := layout.ID(group, "ghost")
			ghostOwner := layout.Owner(group, topic, 1)
			mkOpen(t, open, ghostID, string(zkconsumers.NewRegistration(topic, time.Now()).Encode()))
			mkOpen(t, open, ghostOwner, "ghost")

			sess := connect(t, z.Addr, sessionTimeout, log)
			var opts []Option
			if withAuth {
				opts = append(opts, WithAuth(alice))
			}
			m, e := join(t, sess, layout, group, topic, "a", nil, log, nil, opts...)
			m.SetPartitions(4)
			testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1, 2, 3}}))
			if got := m.Snapshot().Instances; len(got) != 1 || got[0] != "a" {
				t.Errorf("instances: got %v, want [a] (the ghost left out)", got)
			}
			data, st, err := open.Get(ghostOwner)
			if err != nil || string(data) != "a" || st.EphemeralOwner != sess.SessionID() {
				t.Errorf("owner node of partition 1: %q ephemeral owner %x (%v), want a's ephemeral node", data, st.EphemeralOwner, err)
			}
			exists, _, err := open.Exists(ghostID)
			if err != nil {
				t.Fatal(err)
			}
			logged := rec.String()
			if withAuth {
				if exists {
					t.Errorf("ghost instance %s: still there, want the migration to delete it", ghostID)
				}
				for _, p := range []string{ghostID, ghostOwner} {
					if !strings.Contains(logged, "persistent node where only a live instance's ephemeral node belongs: deleted") || !strings.Contains(logged, "path="+p) {
						t.Errorf("no warning naming the deleted ghost %s:\n%s", p, logged)
					}
				}
				return
			}
			if !exists {
				t.Errorf("ghost instance %s: deleted, want it left alone (only ignored) without zk_auth", ghostID)
			}
			for _, want := range []string{"persistent node among the registered instances: ignored", "path=" + ghostID, "owner node is stale: replacing it", "path=" + ghostOwner} {
				if !strings.Contains(logged, want) {
					t.Errorf("log lacks %q:\n%s", want, logged)
				}
			}
		})
	}
}

// TestGhostOwnInstanceID: a persistent node at this instance's own ids path
// would keep it from registering for ever; the member deletes it.
func TestGhostOwnInstanceID(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	log := testLog(t, "a")
	layout := zkconsumers.New("/")
	const group, topic = "own", "t"
	open := rawConn(t, z)
	mkOpen(t, open, layout.ID(group, "a"), "{}")
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, e := join(t, sess, layout, group, topic, "a", nil, log, nil)
	m.SetPartitions(2)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1}}))
	if _, st, err := open.Get(layout.ID(group, "a")); err != nil || st.EphemeralOwner != sess.SessionID() {
		t.Errorf("ids node: %v, want this session's ephemeral node", err)
	}
}

// TestOrphanOwner: an ephemeral owner node naming an instance that is not
// registered is respected for the grace a leaving member needs, then replaced;
// one naming a registered instance is never taken.
func TestOrphanOwner(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	log, rec := recordLog(t, "a")
	layout := zkconsumers.New("/")
	const group, topic = "orphan", "t"
	other := z.ConnTimeout(t, 10*time.Second)
	mkOpen(t, other, layout.OwnersTopic(group, topic), "")
	if _, err := other.Create(layout.Owner(group, topic, 0), []byte("gone"), zk.FlagEphemeral, openACL); err != nil {
		t.Fatal(err)
	}
	sess := connect(t, z.Addr, sessionTimeout, log)
	const grace = 1500 * time.Millisecond
	began := time.Now()
	m, e := join(t, sess, layout, group, topic, "a", nil, log, nil, func(m *Member) { m.staleAfter = grace })
	m.SetPartitions(2)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {1}}))
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1}}))
	if waited := time.Since(began); waited < grace {
		t.Errorf("took the orphan's partition after %v, want no sooner than the grace %v", waited, grace)
	}
	if !strings.Contains(rec.String(), `has not been registered for`) {
		t.Errorf("no warning on replacing the orphan owner node:\n%s", rec.String())
	}
}

// TestLeaseVersions: a lease's Found equals the previous lease's Written when
// nobody wrote the offset node in between, and differs when someone did.
func TestLeaseVersions(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	log := testLog(t, "a")
	layout := zkconsumers.New("/")
	const group, topic = "versions", "t"
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, err := Join(context.Background(), sess, layout, group, topic, "a", log, WithCloseTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.SetPartitions(1)
	conn := z.Conn(t)
	node := layout.Offset(group, topic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l := receive(t, m)
	if !l.Found().IsZero() {
		t.Errorf("Found of a partition without offset node: got %v, want zero", l.Found())
	}
	for _, off := range []int64{5, 8} { // create, then set
		if err := l.Commit(off); err != nil {
			t.Fatal(err)
		}
		_, st, err := conn.Get(node)
		if err != nil {
			t.Fatal(err)
		}
		if w := l.Written(); w.zxid != st.Mzxid || w.offset != off || w.pending {
			t.Errorf("Written after Commit(%d): got %v, want the node's zxid 0x%x", off, w, st.Mzxid)
		}
	}
	written := l.Written()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := receive(t, m)
	if got := l2.Found(); !written.Unchanged(got) {
		t.Errorf("Found of the next lease: got %v, want unchanged from the previous lease's Written %v", got, written)
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Set(node, []byte("3"), -1); err != nil {
		t.Fatal(err)
	}
	l3 := receive(t, m)
	if got := l3.Found(); l2.Written().Unchanged(got) || got.IsZero() {
		t.Errorf("Found after someone else wrote the node: got %v, want it changed from %v", got, l2.Written())
	}
	if err := l3.Release(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestNodeVersionUnchanged: a write of unknown outcome counts as the lease's own
// only when the node shows exactly its result.
func TestNodeVersionUnchanged(t *testing.T) {
	known := NodeVersion{zxid: 10, version: 3, offset: 50}
	pending := NodeVersion{zxid: 10, version: 4, offset: 60, pending: true}
	tests := []struct {
		name string
		w, f NodeVersion
		want bool
	}{
		{"same write", known, known, true},
		{"written since", known, NodeVersion{zxid: 12, version: 4, offset: 50}, false},
		{"unknown write", NodeVersion{}, known, false},
		{"no node", known, NodeVersion{}, false},
		{"pending write did not happen", pending, NodeVersion{zxid: 10, version: 3, offset: 50}, true},
		{"pending write happened", pending, NodeVersion{zxid: 11, version: 4, offset: 60}, true},
		{"claimed by another since", pending, NodeVersion{zxid: 11, version: 4, offset: 50}, false},
		{"claimed and committed by another", pending, NodeVersion{zxid: 13, version: 5, offset: 60}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.Unchanged(tc.f); got != tc.want {
				t.Errorf("%v.Unchanged(%v) = %v, want %v", tc.w, tc.f, got, tc.want)
			}
		})
	}
}

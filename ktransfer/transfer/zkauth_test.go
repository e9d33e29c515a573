package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/fleet"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// TestZKAuth runs two tenants' modules in one process: one with its module
// file's credential, one with the main file's. Both push and commit; their
// offsets carry their own tenant's ACL, /status names the users and no
// password; and a process configured for a module another tenant protected
// refuses to start, naming the node.
func TestZKAuth(t *testing.T) {
	alice := fleet.Auth{User: "alice", Password: "alice-zk-secret"}
	bob := fleet.Auth{User: "bob", Password: "bob-zk-secret"}
	e := newEnv(t, 2)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: value(t, "m", i)})
	}
	e.produce(t, recs...)
	ma, mb := e.module("tenant_a"), e.module("tenant_b")
	ma.ZKAuth = alice
	cfg := e.config("a", ma, mb)
	cfg.ZKAuth = bob
	rt := startTransfer(t, cfg)

	ends := e.endOffsets(t)
	testwait.Eventually(t, 30*time.Second, "both modules committed the log end", func() bool {
		for _, m := range []string{ma.Name, mb.Name} {
			for p, end := range ends {
				if e.committed(t, m, p) != end {
					return false
				}
			}
		}
		return true
	})

	layout := zkconsumers.New(chroot)
	for _, tc := range []struct {
		module string
		owner  fleet.Auth
		other  fleet.Auth
	}{{ma.Name, alice, bob}, {mb.Name, bob, alice}} {
		t.Run("ACL of "+tc.module, func(t *testing.T) {
			admin := authConn(t, e, tc.owner)
			for p := range int32(2) {
				node := layout.Offset(tc.module, e.topic, p)
				got, _, err := admin.GetACL(node)
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.owner.ACL(); !sameACL(got, want) {
					t.Errorf("ACL of %s: got %v, want %v", node, got, want)
				}
			}
			node := layout.Offset(tc.module, e.topic, 0)
			if _, err := authConn(t, e, tc.other).Set(node, []byte("0"), -1); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("SetData on %s as %s: got %v, want %v", node, tc.other, err, zk.ErrNoAuth)
			}
		})
	}
	got, _, err := e.zkConn.Children(layout.Consumers())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"tenant_a", "tenant_b"}) {
		t.Errorf("modules under %s: got %v, want [tenant_a tenant_b]", layout.Consumers(), got)
	}

	status, err := json.Marshal(rt.tr.Status())
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Modules map[string]struct {
			Fleet struct {
				AuthUser string `json:"zk_auth_user"`
			} `json:"fleet"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(status, &st); err != nil {
		t.Fatal(err)
	}
	if a, b := st.Modules[ma.Name].Fleet.AuthUser, st.Modules[mb.Name].Fleet.AuthUser; a != "alice" || b != "bob" {
		t.Errorf("/status zk_auth_user: got %q and %q, want alice and bob", a, b)
	}
	for _, secret := range []string{alice.Password, bob.Password} {
		if strings.Contains(string(status), secret) {
			t.Errorf("/status shows a password: %s", status)
		}
	}

	t.Run("another tenant's module", func(t *testing.T) {
		carol := fleet.Auth{User: "carol", Password: "carol-zk-secret"}
		cc := authConn(t, e, carol)
		group := layout.Group("taken")
		if _, err := cc.Create(group, nil, zk.FlagPersistent, carol.ACL()); err != nil {
			t.Fatal(err)
		}
		cfg := e.config("b", e.module("taken"))
		cfg.ZKAuth = bob
		tr, err := New(context.Background(), cfg, logging.Discard())
		if err == nil {
			tr.Close()
			t.Fatal("New: got no error, want the module protected by another tenant reported")
		}
		if !errors.Is(err, fleet.ErrForeignACL) || !strings.Contains(err.Error(), group) || !strings.Contains(err.Error(), "module taken") {
			t.Errorf("New: got %v, want ErrForeignACL naming module taken and node %s", err, group)
		}
		if strings.Contains(err.Error(), bob.Password) || strings.Contains(err.Error(), carol.Password) {
			t.Errorf("New: got %v, which shows a password", err)
		}
	})
}

// authConn returns a ZooKeeper client of the env's server holding a.
func authConn(t *testing.T, e *env, a fleet.Auth) *zk.Conn {
	t.Helper()
	conn := e.zk.Conn(t)
	if err := conn.AddAuth("digest", []byte(a.User+":"+a.Password)); err != nil {
		t.Fatal(err)
	}
	return conn
}

func sameACL(got, want []zk.ACL) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// TestGhostNodesBeforeFirstStart plants a ghost instance (a persistent node under
// ids/) and a ghost owner (a persistent node under owners/) before the module
// ever ran, with and without zk_auth: every partition is pushed to the log end.
func TestGhostNodesBeforeFirstStart(t *testing.T) {
	for _, withAuth := range []bool{false, true} {
		name := "without zk_auth"
		if withAuth {
			name = "with zk_auth"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 4)
			var recs []*kgo.Record
			for i := range 200 {
				recs = append(recs, &kgo.Record{Key: []byte{byte('a' + i%9)}, Partition: int32(i % 4), Value: value(t, "m", i)})
			}
			e.produce(t, recs...)
			m := e.module("haunted")
			layout := zkconsumers.New(chroot)
			for _, n := range []struct{ path, data string }{
				{layout.ID(m.Name, "ghost-1"), string(zkconsumers.NewRegistration(e.topic, time.Now()).Encode())},
				{layout.Owner(m.Name, e.topic, 1), "ghost-1"},
				{layout.Owner(m.Name, e.topic, 2), "a"}, // even naming the live instance
			} {
				mkPath(t, e.zkConn, n.path, n.data)
			}
			cfg := e.config("a", m)
			if withAuth {
				cfg.ZKAuth = fleet.Auth{User: "alice", Password: "alice-zk-secret"}
			}
			startTransfer(t, cfg)
			ends := e.endOffsets(t)
			testwait.Eventually(t, 30*time.Second, "every partition committed at the log end", func() bool {
				for p, end := range ends {
					if e.committed(t, m.Name, p) != end {
						return false
					}
				}
				return true
			})
			pushed := map[int32]int{}
			for _, d := range e.be.deliveries() {
				pushed[d.partition]++
			}
			for p := range int32(4) {
				if pushed[p] != 50 {
					t.Errorf("partition %d: %d records pushed, want 50", p, pushed[p])
				}
			}
			exists, _, err := e.zkConn.Exists(layout.ID(m.Name, "ghost-1"))
			if err != nil {
				t.Fatal(err)
			}
			if exists == withAuth {
				t.Errorf("ghost instance exists %v after the start, want %v (deleted only by the zk_auth migration)", exists, !withAuth)
			}
		})
	}
}

// mkPath creates p as a persistent open node with data, and its missing parents.
func mkPath(t *testing.T, conn *zk.Conn, p, data string) {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		var d []byte
		if i == len(parts)-1 {
			d = []byte(data)
		}
		if _, err := conn.Create(cur, d, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", cur, err)
		}
	}
}

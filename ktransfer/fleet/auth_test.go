package fleet

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testcluster"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// digestID is the ACL id ZooKeeper's digest scheme derives from user and
// password, computed here independently of go-zookeeper's DigestACL.
func digestID(user, password string) string {
	sum := sha1.Sum([]byte(user + ":" + password))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

func TestAuthACL(t *testing.T) {
	tests := []struct {
		name string
		auth Auth
		want []zk.ACL
	}{
		{"none: open", Auth{}, []zk.ACL{{Perms: zk.PermAll, Scheme: "world", ID: "anyone"}}},
		{"digest ALL and world READ", Auth{User: "alice", Password: "s3cret"}, []zk.ACL{
			{Perms: zk.PermAll, Scheme: "digest", ID: digestID("alice", "s3cret")},
			{Perms: zk.PermRead, Scheme: "world", ID: "anyone"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.auth.ACL(); !slices.Equal(got, tc.want) {
				t.Errorf("ACL(): got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAuthHidesPassword: however an Auth, or a configuration holding one, is
// printed, logged or encoded, the password does not show; the user does.
func TestAuthHidesPassword(t *testing.T) {
	const password = "pa55-w0rd-not-to-leak"
	a := Auth{User: "alice", Password: password}
	type config struct {
		Name string
		Auth Auth
		Ptr  *Auth
	}
	c := config{Name: "m", Auth: a, Ptr: &a}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "auth", a, "config", c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "auth", a, "config", c)
	jsonBytes, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":          fmt.Sprintf("%v", a),
		"%+v":         fmt.Sprintf("%+v", a),
		"%#v":         fmt.Sprintf("%#v", a),
		"%s":          fmt.Sprintf("%s", a),
		"%q":          fmt.Sprintf("%q", a),
		"%x":          fmt.Sprintf("%x", a),
		"%+v struct":  fmt.Sprintf("%+v", c),
		"%#v struct":  fmt.Sprintf("%#v", c),
		"error %v":    fmt.Errorf("with %v", a).Error(),
		"slog text":   text.String(),
		"slog json":   js.String(),
		"json":        string(jsonBytes),
		"Sprint":      fmt.Sprint(a),
		"String":      a.String(),
		"Print value": fmt.Sprintln(c.Auth, *c.Ptr),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, password) {
				t.Errorf("got %q, which shows the password", out)
			}
			if !strings.Contains(out, "alice") {
				t.Errorf("got %q, want the user alice named", out)
			}
		})
	}
	if got := (Auth{}).String(); got != "none" {
		t.Errorf("zero Auth: got %q, want \"none\"", got)
	}
}

func TestACLFits(t *testing.T) {
	want := Auth{User: "alice", Password: "pw"}.ACL()
	super := zk.ACL{Perms: zk.PermAll, Scheme: "digest", ID: digestID("super", "x")}
	tests := []struct {
		name string
		have []zk.ACL
		fits bool
	}{
		{"the same", want, true},
		{"the same, other order", []zk.ACL{want[1], want[0]}, true},
		{"an extra identity kept", append(slices.Clone(want), super), true},
		{"open", openACL, false},
		{"open besides ours", append(slices.Clone(want), openACL...), false},
		{"world may write", []zk.ACL{want[0], {Perms: zk.PermRead | zk.PermWrite, Scheme: "world", ID: "anyone"}}, false},
		{"no world read", want[:1], false},
		{"another tenant", []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: digestID("carol", "pw")}, want[1]}, false},
		{"our user, other password", []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: digestID("alice", "old")}, want[1]}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := aclFits(tc.have, want); got != tc.fits {
				t.Errorf("aclFits(%v): got %v, want %v", tc.have, got, tc.fits)
			}
		})
	}
}

func TestFormatACL(t *testing.T) {
	acl := append(Auth{User: "alice", Password: "pw"}.ACL(), zk.ACL{Perms: zk.PermRead | zk.PermCreate, Scheme: "ip", ID: "10.0.0.1"})
	got := formatACL(acl)
	if want := "[digest:alice=ALL, world:anyone=r, ip:10.0.0.1=rc]"; got != want {
		t.Errorf("formatACL: got %q, want %q", got, want)
	}
	if hash := strings.TrimPrefix(digestID("alice", "pw"), "alice:"); strings.Contains(got, hash) {
		t.Errorf("formatACL: got %q, which shows the password hash", got)
	}
}

// TestAuth runs the ZooKeeper scenarios of zk_auth on one server, one after
// another: the last restarts the server.
func TestAuth(t *testing.T) {
	z := testcluster.StartZooKeeper(t)
	t.Run("OpenWithoutAuth", func(t *testing.T) { testOpenWithoutAuth(t, z) })
	t.Run("PerModule", func(t *testing.T) { testPerModule(t, z) })
	t.Run("Migration", func(t *testing.T) { testMigration(t, z) })
	t.Run("ForeignACL", func(t *testing.T) { testForeignACL(t, z) })
	t.Run("ProtectedAcrossRestart", func(t *testing.T) { testProtectedAcrossRestart(t, z) })
}

var (
	alice = Auth{User: "alice", Password: "alice-pw"}
	bob   = Auth{User: "bob", Password: "bob-pw"}
	carol = Auth{User: "carol", Password: "carol-pw"}
)

// rawConn returns a plain ZooKeeper client holding the given credentials (none
// when empty), as another tenant or a tool would use.
func rawConn(t *testing.T, z *testcluster.ZooKeeper, creds ...Auth) *zk.Conn {
	t.Helper()
	conn := z.Conn(t)
	for _, a := range creds {
		if err := conn.AddAuth("digest", []byte(a.User+":"+a.Password)); err != nil {
			t.Fatalf("AddAuth %s: %v", a, err)
		}
	}
	return conn
}

// moduleNodes lists every node a member creates for its module.
func moduleNodes(layout zkconsumers.Layout, group, topic, instance string, partitions int32) []string {
	nodes := []string{
		layout.Group(group),
		layout.IDs(group),
		layout.ID(group, instance),
		layout.Group(group) + "/owners",
		layout.OwnersTopic(group, topic),
		layout.OffsetsRoot(group),
		layout.OffsetsTopic(group, topic),
	}
	for p := range partitions {
		nodes = append(nodes, layout.Owner(group, topic, p), layout.Offset(group, topic, p))
	}
	return nodes
}

// checkACL fails the test unless every node has exactly the ACL want. ZooKeeper
// shows a digest entry's hash only to a client with ADMIN permission on the
// node (others read USER:x), so conn must hold the credential of want.
func checkACL(t *testing.T, conn *zk.Conn, want []zk.ACL, nodes ...string) {
	t.Helper()
	for _, p := range nodes {
		got, _, err := conn.GetACL(p)
		if err != nil {
			t.Errorf("ACL of %s: %v", p, err)
			continue
		}
		same := len(got) == len(want)
		for _, w := range want {
			same = same && slices.Contains(got, w)
		}
		if !same {
			t.Errorf("ACL of %s: got %s, want %s", p, formatACL(got), formatACL(want))
		}
	}
}

// offsetOf reads a partition's offset node.
func offsetOf(conn *zk.Conn, layout zkconsumers.Layout, group, topic string, p int32) (int64, error) {
	data, _, err := conn.Get(layout.Offset(group, topic, p))
	if err != nil {
		return 0, err
	}
	return zkconsumers.DecodeOffset(data)
}

// advancing is an eventually condition: the partition's committed offset
// passes after.
func advancing(conn *zk.Conn, layout zkconsumers.Layout, group, topic string, p int32, after int64) func() error {
	return func() error {
		off, err := offsetOf(conn, layout, group, topic, p)
		if err != nil {
			return err
		}
		if off <= after {
			return fmt.Errorf("offset of %s/%d: got %d, want above %d", group, p, off, after)
		}
		return nil
	}
}

// testOpenWithoutAuth: without credentials nothing changes, every node is open.
func testOpenWithoutAuth(t *testing.T, z *testcluster.ZooKeeper) {
	log := testLog(t, "a")
	layout := zkconsumers.New("/open")
	const group, topic = "plain", "t"
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, e := join(t, sess, layout, group, topic, "a", nil, log, nil)
	m.SetPartitions(2)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1}}))
	conn := rawConn(t, z)
	testwait.Until(t, 5*time.Second, advancing(conn, layout, group, topic, 1, 1000))
	checkACL(t, conn, openACL, append(moduleNodes(layout, group, topic, "a", 2), "/open", "/open/consumers")...)
	if got := m.Snapshot().AuthUser; got != "" {
		t.Errorf("Snapshot.AuthUser without credentials: got %q, want empty", got)
	}
}

// intrusion is a change another client tries on a protected module.
type intrusion struct {
	name string
	do   func(conn *zk.Conn) error
}

// intrusions returns the writes a client without the module's credentials must
// be refused on the module's nodes.
func intrusions(layout zkconsumers.Layout, group, topic string) []intrusion {
	offset := layout.Offset(group, topic, 0)
	return []intrusion{
		{"SetData on the offset", func(c *zk.Conn) error {
			_, err := c.Set(offset, []byte("0"), -1)
			return err
		}},
		{"Delete the offset", func(c *zk.Conn) error { return c.Delete(offset, -1) }},
		{"Create under ids", func(c *zk.Conn) error {
			_, err := c.Create(layout.ID(group, "intruder"), nil, zk.FlagEphemeral, openACL)
			return err
		}},
		{"Create under owners", func(c *zk.Conn) error {
			_, err := c.Create(layout.Owner(group, topic, 7), []byte("intruder"), zk.FlagEphemeral, openACL)
			return err
		}},
		{"Create under offsets", func(c *zk.Conn) error {
			_, err := c.Create(layout.OffsetsTopic(group, "other"), nil, zk.FlagPersistent, openACL)
			return err
		}},
		{"SetACL on the offset", func(c *zk.Conn) error {
			_, err := c.SetACL(offset, openACL, -1)
			return err
		}},
		{"SetACL on the group", func(c *zk.Conn) error {
			_, err := c.SetACL(layout.Group(group), openACL, -1)
			return err
		}},
	}
}

// testPerModule: two modules on one session with different credentials; each
// tenant's client is refused on the other's module and allowed on its own.
func testPerModule(t *testing.T, z *testcluster.ZooKeeper) {
	log := testLog(t, "a")
	layout := zkconsumers.New("/tenants")
	const topic = "t"
	sess := connect(t, z.Addr, sessionTimeout, log)
	ma, ea := join(t, sess, layout, "tenant-a", topic, "a", nil, log, nil, WithAuth(alice))
	mb, eb := join(t, sess, layout, "tenant-b", topic, "a", nil, log, nil, WithAuth(bob))
	ma.SetPartitions(1)
	mb.SetPartitions(1)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{ea: {0}, eb: {0}}))
	open := rawConn(t, z)
	testwait.Until(t, 5*time.Second, advancing(open, layout, "tenant-a", topic, 0, 0))
	testwait.Until(t, 5*time.Second, advancing(open, layout, "tenant-b", topic, 0, 0))
	checkACL(t, rawConn(t, z, alice), alice.ACL(), moduleNodes(layout, "tenant-a", topic, "a", 1)...)
	checkACL(t, rawConn(t, z, bob), bob.ACL(), moduleNodes(layout, "tenant-b", topic, "a", 1)...)
	checkACL(t, open, openACL, "/tenants", "/tenants/consumers")
	if got := ma.Snapshot().AuthUser; got != "alice" {
		t.Errorf("tenant-a Snapshot.AuthUser: got %q, want alice", got)
	}

	creds := map[string]Auth{"tenant-a": alice, "tenant-b": bob}
	clients := map[string]*zk.Conn{"tenant-a": rawConn(t, z, alice), "tenant-b": rawConn(t, z, bob)}
	for _, tc := range []struct{ client, module string }{{"tenant-b", "tenant-a"}, {"tenant-a", "tenant-b"}} {
		conn := clients[tc.client]
		for _, in := range intrusions(layout, tc.module, topic) {
			t.Run(tc.client+" on "+tc.module+": "+in.name, func(t *testing.T) {
				if err := in.do(conn); !errors.Is(err, zk.ErrNoAuth) {
					t.Errorf("got %v, want %v", err, zk.ErrNoAuth)
				}
			})
		}
		// Its own module is writable for it: the refusals above are about the
		// credentials, not a server that refuses everything.
		own := layout.OffsetsRoot(tc.client) + "/probe"
		if _, err := conn.Create(own, nil, zk.FlagPersistent, creds[tc.client].ACL()); err != nil {
			t.Errorf("%s creating %s in its own module: got %v, want success", tc.client, own, err)
		} else if err := conn.Delete(own, -1); err != nil {
			t.Errorf("%s deleting %s: got %v, want success", tc.client, own, err)
		}
	}
	testwait.Until(t, 5*time.Second, advancing(open, layout, "tenant-a", topic, 0, mustOffset(t, open, layout, "tenant-a", topic, 0)))
	testwait.Until(t, 5*time.Second, advancing(open, layout, "tenant-b", topic, 0, mustOffset(t, open, layout, "tenant-b", topic, 0)))
}

func mustOffset(t *testing.T, conn *zk.Conn, layout zkconsumers.Layout, group, topic string, p int32) int64 {
	t.Helper()
	off, err := offsetOf(conn, layout, group, topic, p)
	if err != nil {
		t.Fatalf("offset of %s/%d: %v", group, p, err)
	}
	return off
}

// mkOpen creates p with data and its missing parents, all with the open ACL, as
// a ktransfer without zk_auth did.
func mkOpen(t *testing.T, conn *zk.Conn, p, data string) {
	t.Helper()
	mkACL(t, conn, p, data, openACL, openACL)
}

// mkACL creates p with data and acl, and its missing parents with parentACL.
func mkACL(t *testing.T, conn *zk.Conn, p, data string, acl, parentACL []zk.ACL) {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := range parts {
		cur := "/" + strings.Join(parts[:i+1], "/")
		a, d := parentACL, []byte(nil)
		if i == len(parts)-1 {
			a, d = acl, []byte(data)
		}
		if _, err := conn.Create(cur, d, zk.FlagPersistent, a); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", cur, err)
		}
	}
}

// recordLog is testLog that also keeps the lines, for checks on what was logged.
func recordLog(t *testing.T, name string) (*slog.Logger, *testwait.Log) {
	t.Helper()
	rec := &testwait.Log{}
	h := slog.NewTextHandler(io.MultiWriter(testwait.LogTo(t), rec), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h).With("member", name), rec
}

// testMigration: a module whose nodes were created open, before zk_auth, gets
// them protected when a member with credentials starts; its offsets are kept,
// and the shared parents and a neighbouring module stay open.
func testMigration(t *testing.T, z *testcluster.ZooKeeper) {
	log, rec := recordLog(t, "a")
	layout := zkconsumers.New("/mig")
	const group, neighbour, topic = "legacy", "neighbour", "t"
	open := rawConn(t, z)
	for _, n := range []struct{ path, data string }{
		{layout.Offset(group, topic, 0), "42"},
		{layout.Offset(group, topic, 1), "7"},
		{layout.Offset(group, "retired", 0), "5"}, // a topic the module no longer pushes
		{layout.OwnersTopic(group, topic), ""},
		{layout.IDs(group), ""},
		{layout.Offset(neighbour, topic, 0), "3"},
	} {
		mkOpen(t, open, n.path, n.data)
	}

	sess := connect(t, z.Addr, sessionTimeout, log)
	m, e := join(t, sess, layout, group, topic, "a", nil, log, func(e *engine) { e.advance = false }, WithAuth(alice))
	m.SetPartitions(2)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1}}))
	for p, want := range map[int32]int64{0: 42, 1: 7} {
		if got := mustOffset(t, open, layout, group, topic, p); got != want {
			t.Errorf("offset of partition %d after the migration: got %d, want %d", p, got, want)
		}
	}
	checkACL(t, rawConn(t, z, alice), alice.ACL(), append(moduleNodes(layout, group, topic, "a", 2),
		layout.OffsetsTopic(group, "retired"), layout.Offset(group, "retired", 0))...)
	checkACL(t, open, openACL, "/mig", "/mig/consumers", layout.Group(neighbour), layout.Offset(neighbour, topic, 0))
	if _, err := open.Set(layout.Offset(group, topic, 0), []byte("0"), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("SetData without credentials after the migration: got %v, want %v", err, zk.ErrNoAuth)
	}
	logged := rec.String()
	if want := "path=" + layout.Offset(group, topic, 0); !strings.Contains(logged, "existing ZooKeeper node protected with zk_auth") || !strings.Contains(logged, want) {
		t.Errorf("log: got no info line on protecting %s; log:\n%s", want, logged)
	}
	if strings.Contains(logged, alice.Password) {
		t.Errorf("log shows the password:\n%s", logged)
	}
	// Once protected, a second pass changes nothing and logs nothing.
	before := strings.Count(rec.String(), "existing ZooKeeper node protected")
	if err := SecureGroup(sess, layout, group, alice, log); err != nil {
		t.Errorf("SecureGroup again: %v", err)
	}
	if after := strings.Count(rec.String(), "existing ZooKeeper node protected"); after != before {
		t.Errorf("SecureGroup again: got %d more nodes changed, want 0", after-before)
	}
}

// testForeignACL: a module of the same name that another tenant protected is
// neither changed nor joined; the error names the node and shows no secret.
func testForeignACL(t *testing.T, z *testcluster.ZooKeeper) {
	log, rec := recordLog(t, "a")
	layout := zkconsumers.New("/foreign")
	const group, topic = "taken", "t"
	carolConn := rawConn(t, z, carol)
	mkACL(t, carolConn, layout.Offset(group, topic, 0), "9", carol.ACL(), openACL)
	if _, err := carolConn.SetACL(layout.Group(group), carol.ACL(), -1); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{layout.OffsetsRoot(group), layout.OffsetsTopic(group, topic)} {
		if _, err := carolConn.SetACL(p, carol.ACL(), -1); err != nil {
			t.Fatal(err)
		}
	}
	sess := connect(t, z.Addr, sessionTimeout, log)

	err := SecureGroup(sess, layout, group, alice, log)
	if !errors.Is(err, ErrForeignACL) || !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("SecureGroup on another tenant's module: got %v, want ErrForeignACL and zk.ErrNoAuth", err)
	}
	msg := err.Error()
	carolHash := strings.TrimPrefix(digestID(carol.User, carol.Password), "carol:")
	for _, want := range []string{layout.Group(group), "digest:carol=ALL", `"alice"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	for _, secret := range []string{alice.Password, carol.Password, carolHash} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows the secret %q", msg, secret)
		}
	}

	m, err := Join(t.Context(), sess, layout, group, topic, "a", log, WithAuth(alice))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.SetPartitions(1)
	testwait.Until(t, 10*time.Second, func() error {
		if got := m.Snapshot().LastError; !strings.Contains(got, layout.Group(group)) || !strings.Contains(got, ErrForeignACL.Error()) {
			return fmt.Errorf("member's last error: got %q, want ErrForeignACL naming %s", got, layout.Group(group))
		}
		return nil
	})
	if snap := m.Snapshot(); snap.Registered || len(snap.Owned) > 0 {
		t.Errorf("member on another tenant's module: got registered %v, owned %v; want neither", snap.Registered, snap.Owned)
	}
	checkACL(t, carolConn, carol.ACL(), layout.Group(group), layout.Offset(group, topic, 0))
	if got := mustOffset(t, carolConn, layout, group, topic, 0); got != 9 {
		t.Errorf("the other tenant's offset: got %d, want 9 untouched", got)
	}
	if strings.Contains(rec.String(), alice.Password) {
		t.Errorf("log shows the password:\n%s", rec.String())
	}
}

// testProtectedAcrossRestart: with credentials, every node of the module is
// protected; clients without them, with a wrong password or as another user may
// read but not change anything; the member's own commits keep working, also
// after the ZooKeeper server restarted (the client re-sends the credentials
// before anything else on the new connection).
func testProtectedAcrossRestart(t *testing.T, z *testcluster.ZooKeeper) {
	log, rec := recordLog(t, "a")
	layout := zkconsumers.New("/secure")
	const group, topic = "secure", "t"
	sess := connect(t, z.Addr, sessionTimeout, log)
	m, e := join(t, sess, layout, group, topic, "a", nil, log, nil, WithAuth(alice))
	m.SetPartitions(2)
	testwait.Until(t, 10*time.Second, wantOwned(map[*engine][]int32{e: {0, 1}}))
	open := rawConn(t, z)
	testwait.Until(t, 5*time.Second, advancing(open, layout, group, topic, 1, 1000))
	admin := rawConn(t, z, alice)
	checkACL(t, admin, alice.ACL(), moduleNodes(layout, group, topic, "a", 2)...)
	checkACL(t, open, openACL, "/secure", "/secure/consumers")

	clients := []struct {
		name string
		conn *zk.Conn
	}{
		{"no credentials", open},
		{"wrong password", rawConn(t, z, Auth{User: alice.User, Password: "wrong"})},
		{"another user", rawConn(t, z, bob)},
	}
	for _, c := range clients {
		for _, in := range intrusions(layout, group, topic) {
			t.Run(c.name+": "+in.name, func(t *testing.T) {
				if err := in.do(c.conn); !errors.Is(err, zk.ErrNoAuth) {
					t.Errorf("got %v, want %v", err, zk.ErrNoAuth)
				}
			})
		}
		t.Run(c.name+": reads", func(t *testing.T) {
			data, _, err := c.conn.Get(layout.Offset(group, topic, 0))
			if err != nil {
				t.Fatalf("Get offset: got %v, want it readable", err)
			}
			if _, err := zkconsumers.DecodeOffset(data); err != nil {
				t.Errorf("Get offset: %v", err)
			}
			ids, _, err := c.conn.Children(layout.IDs(group))
			if err != nil || !slices.Equal(ids, []string{"a"}) {
				t.Errorf("Children of ids: got %v, %v; want [a]", ids, err)
			}
		})
	}
	if got, err := owners(open, layout, group, topic, 2); err != nil || got[0] != "a" || got[1] != "a" {
		t.Errorf("owner nodes after the intrusions: got %v, %v; want both \"a\"", got, err)
	}
	testwait.Until(t, 5*time.Second, advancing(open, layout, group, topic, 0, mustOffset(t, open, layout, group, topic, 0)))

	z.Stop()
	z.Start(t)
	var base int64
	testwait.Until(t, 30*time.Second, func() error {
		var err error
		base, err = offsetOf(open, layout, group, topic, 0)
		return err
	})
	testwait.Until(t, 30*time.Second, func() error {
		if err := wantOwned(map[*engine][]int32{e: {0, 1}})(); err != nil {
			return err
		}
		if snap := m.Snapshot(); !snap.Registered {
			return fmt.Errorf("member not registered again: %+v", snap)
		}
		return advancing(open, layout, group, topic, 0, base)()
	})
	checkACL(t, admin, alice.ACL(), moduleNodes(layout, group, topic, "a", 2)...)
	if _, err := rawConn(t, z).Set(layout.Offset(group, topic, 0), []byte("0"), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("SetData without credentials after the restart: got %v, want %v", err, zk.ErrNoAuth)
	}
	logged := rec.String()
	if strings.Contains(logged, zk.ErrNoAuth.Error()) {
		t.Errorf("the member was refused by ZooKeeper (credentials not sent first?); log:\n%s", logged)
	}
	if strings.Contains(logged, alice.Password) {
		t.Errorf("log shows the password:\n%s", logged)
	}
}

package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/zkconsumers"
)

// digestScheme is the ZooKeeper authentication scheme of Auth.
const digestScheme = "digest"

// openACL is the ACL of nodes shared by every module ({chroot}, {chroot}/consumers)
// and of every node when a module has no credentials: anyone may do anything.
var openACL = zk.WorldACL(zk.PermAll)

// Auth is a ZooKeeper digest credential (the zk_auth keys). When it is set, the
// nodes of a module — {chroot}/consumers/{group} and everything below it — get
// the ACL digest(user:password) ALL plus world READ, so only holders of the
// credential change them while kmonitor and other readers (Burrow) still read
// them without one. The zero Auth means no authentication and open nodes, as
// before zk_auth existed.
//
// Its formatting (fmt verbs, slog, JSON) shows the user only, never the
// password.
type Auth struct {
	// User is the digest user name; it must not contain ':'.
	User string `key:"user"`
	// Password is the digest password.
	Password string `key:"password"`
}

// Enabled tells whether a credential is set.
func (a Auth) Enabled() bool { return a.User != "" || a.Password != "" }

// ACL returns the ACL of a module's nodes under a: digest(user:password) with
// every permission and world with READ, or the open ACL (world ALL) when a is
// not set.
func (a Auth) ACL() []zk.ACL {
	if !a.Enabled() {
		return slices.Clone(openACL)
	}
	return append(zk.DigestACL(zk.PermAll, a.User, a.Password), zk.WorldACL(zk.PermRead)...)
}

// String names the credential without its password: "digest:USER", or "none".
func (a Auth) String() string {
	if !a.Enabled() {
		return "none"
	}
	return digestScheme + ":" + a.User
}

// Format prints String for every verb, %+v and %#v included, so the password
// never reaches a log line or an error message through fmt.
func (a Auth) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// LogValue is String, for slog.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }

// MarshalJSON encodes String, for status and configuration dumps.
func (a Auth) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// Authenticate adds a's credential to the session's ZooKeeper connection, once
// per distinct credential; a process may hold several (one per module). The
// client re-sends every added credential on each new connection before any
// queued request (go-zookeeper v1.0.4: resendZkAuth runs before the send loop
// starts), so the identities survive reconnects and new sessions. A zero Auth
// does nothing. Authenticate blocks until the server answered; concurrent
// calls run one after another.
func (s *Session) Authenticate(a Auth) error {
	if !a.Enabled() {
		return nil
	}
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.auths[a] {
		return nil
	}
	if err := s.conn.AddAuth(digestScheme, []byte(a.User+":"+a.Password)); err != nil {
		return fmt.Errorf("authenticate to ZooKeeper as %s: %w", a, err)
	}
	if s.auths == nil {
		s.auths = map[Auth]bool{}
	}
	s.auths[a] = true
	return nil
}

// SecureGroup gives every existing node of group — {chroot}/consumers/{group}
// and all below it — the ACL of a, after authenticating the session with it.
// It is the migration of a module whose nodes were created before zk_auth was
// set: a node whose ACL already grants a every permission and everybody else at
// most READ is left alone; any other node gets a.ACL() through SetACL, logged
// at info level. A persistent node where only live instances' ephemeral nodes
// belong ({group}/ids/{instance}, {group}/owners/{topic}/{partition}) is a ghost
// that would hold a partition for ever: it is deleted, with a warning naming it,
// instead. A node whose ACL these credentials may not read or change
// makes SecureGroup fail with an error wrapping ErrForeignACL and zk.ErrNoAuth
// that names the node: another tenant's module of the same name, or one
// protected with other credentials. A zero Auth, or a group without nodes,
// does nothing. log nil means no logging.
func SecureGroup(sess *Session, layout zkconsumers.Layout, group string, a Auth, log *slog.Logger) error {
	if !a.Enabled() {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := sess.Authenticate(a); err != nil {
		return err
	}
	conn := sess.conn.Conn
	want := a.ACL()
	foreign := func(p string, acl []zk.ACL, err error) error {
		have := "unreadable"
		if acl != nil {
			have = formatACL(acl)
		}
		return fmt.Errorf("%w: ZooKeeper node %s (ACL %s) may not be changed with zk_auth user %q: it belongs to another tenant's module of the same name, or was protected with other credentials: %w", ErrForeignACL, p, have, a.User, err)
	}
	stack := []string{layout.Group(group)}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		acl, st, err := conn.GetACL(p)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue
		case errors.Is(err, zk.ErrNoAuth):
			return foreign(p, nil, err)
		case err != nil:
			return fmt.Errorf("read the ACL of %s: %w", p, err)
		}
		if st.EphemeralOwner == 0 && ghostPath(layout, group, p) {
			// Only a live instance's ephemeral node belongs here: a persistent
			// one would hold a partition (or a place in the assignment) for
			// ever. Protecting it would keep it; delete it instead.
			if err := deleteTree(conn, p); err != nil {
				if errors.Is(err, zk.ErrNoAuth) {
					return foreign(p, acl, err)
				}
				return fmt.Errorf("delete the persistent node %s: %w", p, err)
			}
			log.Warn("persistent node where only a live instance's ephemeral node belongs: deleted", "path", p)
			continue
		}
		if !aclFits(acl, want) {
			_, err := conn.SetACL(p, want, st.Aversion)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				continue
			case errors.Is(err, zk.ErrNoAuth):
				return foreign(p, acl, err)
			case err != nil:
				return fmt.Errorf("set the ACL of %s: %w", p, err)
			}
			log.Info("existing ZooKeeper node protected with zk_auth", "path", p, "acl_was", formatACL(acl), "acl", formatACL(want))
		}
		children, _, err := conn.Children(p)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue
		case errors.Is(err, zk.ErrNoAuth):
			return foreign(p, acl, err)
		case err != nil:
			return fmt.Errorf("list %s: %w", p, err)
		}
		slices.Sort(children)
		for _, c := range slices.Backward(children) {
			stack = append(stack, p+"/"+c)
		}
	}
	return nil
}

// ghostPath tells whether p is where only ephemeral nodes of live instances
// belong: {group}/ids/{instance} or {group}/owners/{topic}/{partition}.
func ghostPath(layout zkconsumers.Layout, group, p string) bool {
	rel, ok := strings.CutPrefix(p, layout.Group(group)+"/")
	if !ok {
		return false
	}
	parts := strings.Split(rel, "/")
	return (len(parts) == 2 && parts[0] == "ids") || (len(parts) == 3 && parts[0] == "owners")
}

// aclFits tells whether have holds every entry of want and grants world no more
// than READ: extra entries an operator added (a super user, say) are kept.
func aclFits(have, want []zk.ACL) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	for _, h := range have {
		if h.Scheme == "world" && h.Perms&^zk.PermRead != 0 {
			return false
		}
	}
	return true
}

// formatACL describes an ACL for logs and errors, as SCHEME:ID=PERMS entries.
// A digest entry shows its user but not its password hash.
func formatACL(acl []zk.ACL) string {
	parts := make([]string, len(acl))
	for i, e := range acl {
		id := e.ID
		if e.Scheme == digestScheme {
			id, _, _ = strings.Cut(id, ":")
		}
		parts[i] = fmt.Sprintf("%s:%s=%s", e.Scheme, id, formatPerms(e.Perms))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func formatPerms(p int32) string {
	if p == zk.PermAll {
		return "ALL"
	}
	var b strings.Builder
	for _, f := range []struct {
		bit  int32
		name string
	}{{zk.PermRead, "r"}, {zk.PermWrite, "w"}, {zk.PermCreate, "c"}, {zk.PermDelete, "d"}, {zk.PermAdmin, "a"}} {
		if p&f.bit != 0 {
			b.WriteString(f.name)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

package testcluster

import (
	"errors"
	"path"
	"testing"

	"github.com/go-zookeeper/zk"
)

// Write writes data to node through conn, creating the node, and its missing
// parents (empty, open to all), when it does not exist. It fails the test on
// any other error.
func Write(tb testing.TB, conn *zk.Conn, node string, data []byte) {
	tb.Helper()
	if dir := path.Dir(node); dir != "/" && dir != "." {
		if ok, _, err := conn.Exists(dir); err != nil || !ok {
			Write(tb, conn, dir, nil)
		}
	}
	_, err := conn.Create(node, data, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = conn.Set(node, data, -1)
	}
	if err != nil {
		tb.Fatalf("testcluster: write %s: %v", node, err)
	}
}

// RemoveTree deletes node and everything below it through conn; nodes already
// gone are fine. It fails the test on any other error.
func RemoveTree(tb testing.TB, conn *zk.Conn, node string) {
	tb.Helper()
	kids, _, err := conn.Children(node)
	if errors.Is(err, zk.ErrNoNode) {
		return
	}
	if err != nil {
		tb.Fatalf("testcluster: list %s: %v", node, err)
	}
	for _, k := range kids {
		RemoveTree(tb, conn, path.Join(node, k))
	}
	if err := conn.Delete(node, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		tb.Fatalf("testcluster: delete %s: %v", node, err)
	}
}

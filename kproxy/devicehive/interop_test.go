//go:build linux

package devicehive

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInteropNodeClient drives the gateway with a client nobody here wrote
// the WebSocket code of: the npm ws package in Node (testdata/interop, with
// package.json and package-lock.json pinning it), speaking the protocol as
// upstream's users do and matching replies by refid. It subscribes, creates
// notifications (a string and an object) and receives them, asks for
// health, sends a batch, gets error replies and unsubscribes. It is skipped
// only when the npm registry cannot be reached.
func TestInteropNodeClient(t *testing.T) {
	node := lookPath(t, "node")
	npm := lookPath(t, "npm")
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "client.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "interop", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runIn(t, dir, 5*time.Minute, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"); err != nil {
		for _, s := range []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH"} {
			if bytes.Contains(out, []byte(s)) {
				t.Skipf("npm registry unreachable, the Node client cannot be installed: %v\n%s", err, out)
			}
		}
		t.Fatalf("npm ci: %v\n%s", err, out)
	}

	g := startGateway(t, setup{})
	g.createTopic(t, "interop", 2)
	out, err := runIn(t, dir, 2*time.Minute, node, "client.js", g.url, "interop", "node-group")
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, out)
	}
	steps := map[string][]map[string]any{}
	for line := range strings.Lines(string(out)) {
		var s map[string]any
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("client printed %q: %v\n%s", line, err, out)
		}
		steps[s["step"].(string)] = append(steps[s["step"].(string)], s)
	}
	check := func(step string, i int, want map[string]any) {
		t.Helper()
		got := steps[step]
		if len(got) <= i {
			t.Errorf("step %s #%d missing:\n%s", step, i, out)
			return
		}
		for k, v := range want {
			if g, _ := json.Marshal(got[i][k]); string(g) != mustJSON(v) {
				t.Errorf("step %s #%d: %s is %s, want %s", step, i, k, g, mustJSON(v))
			}
		}
	}
	check("subscribe", 0, map[string]any{"s": 0, "id": 1, "refid": 1, "p": []string{"interop"}})
	check("notif_create", 0, map[string]any{"s": 0, "id": "n1", "refid": "n1"})
	check("notif", 0, map[string]any{"t": "notif", "p": "hello from node", "topic": "interop", "key": nil})
	check("notif_create", 1, map[string]any{"s": 0, "refid": "n2"})
	check("notif", 1, map[string]any{"p": `{"custom_message":"msg"}`, "topic": "interop"})
	check("health", 0, map[string]any{"s": 0, "p": map[string]any{"consumers": []any{
		map[string]any{"ws": 1, "topics": []string{"interop"}, "consumer_groups": []string{"node-group"}}}}})
	check("batch", 0, map[string]any{"ids": []int{4, 5}, "s": []int{0, 0}})
	check("bad_json", 0, map[string]any{"s": 400, "code": CodeBadJSON})
	check("unknown_type", 0, map[string]any{"s": 400, "code": CodeUnknownType, "refid": 7})
	check("denied", 0, map[string]any{"s": 403, "code": "topic_not_allowed", "refid": 8})
	check("unsubscribe", 0, map[string]any{"s": 0, "p": []string{"interop"}})
	if len(steps["done"]) != 1 {
		t.Errorf("the client did not finish:\n%s", out)
	}
	// Both notifications are in Kafka where the acknowledgements said.
	for i, want := range []string{"hello from node", `{"custom_message":"msg"}`} {
		ack, _ := steps["notif_create"][i]["p"].(map[string]any)
		n := steps["notif"][i]
		if ack == nil || ack["partition"] != n["partition"] || ack["offset"] != n["offset"] || n["p"] != want {
			t.Errorf("notification %d: acknowledged at %v, delivered as %v", i, ack, n)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// lookPath finds a command the interop test needs or fails saying how to get it.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v); install it: apt-get install -y nodejs npm", name, err)
	}
	return p
}

// runIn runs a command in dir in its own process group, killed when it
// outlives timeout or the test, and returns its output.
func runIn(t *testing.T, dir string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if err := cmd.Wait(); err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

package transfer

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/push"
)

// FuzzParseStatusRanges feeds arbitrary retry_on_status entries to
// ParseStatusRanges. Each entry gives either one range within 100..599 or one
// problem naming it; an accepted range written back as "LO" or "LO-HI" parses
// to itself; and "LO-HI" built from any two integers is accepted exactly when
// 100 <= LO <= HI <= 599.
func FuzzParseStatusRanges(f *testing.F) {
	for _, s := range []string{"429", "500-599", " 408 ", "500 - 599", "99", "600", "599-500", "-5", "5-", "+429", "0429", "500-599-600", "abc", "", "1e2", "٤٢٩"} {
		f.Add(s, "503", 100, 599)
	}
	f.Fuzz(func(t *testing.T, a, b string, lo, hi int) {
		list := []string{a, b}
		out, err := ParseStatusRanges(list)
		var problems []error
		if err != nil {
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				problems = j.Unwrap()
			} else {
				problems = []error{err}
			}
		}
		if len(out)+len(problems) != len(list) {
			t.Fatalf("ParseStatusRanges(%q) = %v, %v; want one range or one problem per entry", list, out, err)
		}
		for _, p := range problems {
			named := false
			for _, s := range list {
				named = named || strings.Contains(p.Error(), strconv.Quote(s))
			}
			if !named {
				t.Fatalf("ParseStatusRanges(%q): problem %q names no entry", list, p)
			}
		}
		for _, r := range out {
			if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
				t.Fatalf("ParseStatusRanges(%q) gives range %d-%d, want within 100..599", list, r.Lo, r.Hi)
			}
			text := strconv.Itoa(r.Lo) + "-" + strconv.Itoa(r.Hi)
			if r.Lo == r.Hi {
				text = strconv.Itoa(r.Lo)
			}
			back, err := ParseStatusRanges([]string{text})
			if err != nil || len(back) != 1 || back[0] != r {
				t.Fatalf("ParseStatusRanges(%q) = %v, %v; want [%v]", text, back, err, r)
			}
		}

		text := strconv.Itoa(lo) + "-" + strconv.Itoa(hi)
		got, err := ParseStatusRanges([]string{text})
		if valid := 100 <= lo && lo <= hi && hi <= 599; valid != (err == nil) {
			t.Fatalf("ParseStatusRanges(%q) = %v, %v; want accepted=%v", text, got, err, valid)
		}
		if err == nil && (len(got) != 1 || got[0] != push.StatusRange{Lo: lo, Hi: hi}) {
			t.Fatalf("ParseStatusRanges(%q) = %v, want [{%d %d}]", text, got, lo, hi)
		}
	})
}

// FuzzLoadModule feeds arbitrary module files to LoadModule. A file it accepts
// must start: its retry_on_status parses and push.New, given the module the way
// the module runner gives it, accepts the protocol section and servers. A
// module that passes `ktransfer -t` and then fails at start-up, or a problem
// reported without naming the file, is a failure.
func FuzzLoadModule(f *testing.F) {
	for _, s := range []string{
		"topic: t\nbackend_servers: [127.0.0.1:8080]\n",
		"topic: test_topic\nmethods: [TestUserName, TestReply]\nprotocol:\n  name: http\n  uri: /XXX/{#TOPIC}?key={#KEY}&transid={#TRANSID}&format=msgpack\n  headers:\n    - host: www.myhug.cn\n  write_timeout_ms: 100\n  conn_timeout_ms: 100\nworker_num: 100\nwindow_size: 200\nmax_retry_times: -1\nfail_retry_interval_ms: 200\nbackend_servers:\n  - 10.1.2.1:80\n  - http://10.1.2.2:8080/base\n",
		"topic: t\nbackend_servers: [\"b:80\"]\nretry_on_status: [408, 429, \"500-599\"]\non_malformed: dead_letter\ndead_letter_topic: dlq\n",
		"topic: t\nbackend_servers: [b:80]\nprotocol: {uri: /a, headers: [{X-A: \"1\"}, {Host: h}]}\n",
		"topic: t\nbackend_servers: [b:80, \"http://b:80/p\"]\nprotocol: {read_timeout_ms: 922337203685, write_timeout_ms: 1}\nfail_retry_backoff_max_ms: 922337203685\n",
		"topic: [1]\nworker_num: x\n",
		// Files -t once accepted and the push client then refused at start.
		"topiC: 0\nBACkend_servers: 0:0",
		"topic: t\nbackend_servers: [b:80]\nprotocol: {uri: \"/a b\"}\n",
		"topic: t\nbackend_servers: [b:80]\nprotocol: {headers: [{\"Bad Name\": v}]}\n",
		"topic: t\nbackend_servers: [b:80]\nprotocol: {headers: [{Content-Length: \"5\"}]}\n",
		"topic: t\nbackend_servers: [\"a b:80\", \"http://b:80/?q\"]\n",
		"topic: t\nbackend_servers: [b:80]\nprotocol: {read_timeout_ms: 9223372036854775807}\nfail_retry_backoff_max_ms: 9223372036854775807\n",
		"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz_module.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadModule(path)
		if err != nil {
			var joined interface{ Unwrap() []error }
			problems := []error{err}
			if errors.As(err, &joined) {
				problems = joined.Unwrap()
			}
			for _, p := range problems {
				if !strings.Contains(p.Error(), "fuzz_module.yaml") {
					t.Fatalf("module file %q: problem %q does not name the file", data, p)
				}
			}
			return
		}
		if m.Name != "fuzz_module" || m.Topic == "" || !strings.HasPrefix(m.Protocol.URI, "/") || len(m.BackendServers) == 0 {
			t.Fatalf("module file %q accepted as %+v", data, m)
		}
		pc, err := m.pushConfig()
		if err != nil {
			t.Fatalf("module file %q accepted, but retry_on_status: %v", data, err)
		}
		p, err := push.New(pc, nil, push.Events{})
		if err != nil {
			t.Fatalf("module file %q passes the check, but the module cannot start: %v", data, err)
		}
		p.Close()
	})
}

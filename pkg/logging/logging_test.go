package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// allLevels are the levels a daemon logs at, lowest first, with the name each is
// printed as.
var allLevels = []struct {
	level slog.Level
	name  string
}{
	{slog.LevelDebug, "DEBUG"},
	{LevelTrace, "TRACE"},
	{slog.LevelInfo, "INFO"},
	{slog.LevelWarn, "WARN"},
	{slog.LevelError, "ERROR"},
	{LevelFatal, "FATAL"},
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		n         int
		want      slog.Level
		wantNames []string // levels written by a logger at n
	}{
		{n: -1, want: levelOff, wantNames: nil},
		{n: 0, want: levelOff, wantNames: nil},
		{n: 1, want: LevelFatal, wantNames: []string{"FATAL"}},
		{n: 2, want: slog.LevelWarn, wantNames: []string{"WARN", "ERROR", "FATAL"}},
		{n: 3, want: slog.LevelWarn, wantNames: []string{"WARN", "ERROR", "FATAL"}},
		{n: 4, want: slog.LevelInfo, wantNames: []string{"INFO", "WARN", "ERROR", "FATAL"}},
		{n: 7, want: slog.LevelInfo, wantNames: []string{"INFO", "WARN", "ERROR", "FATAL"}},
		{n: 8, want: LevelTrace, wantNames: []string{"TRACE", "INFO", "WARN", "ERROR", "FATAL"}},
		{n: 15, want: LevelTrace, wantNames: []string{"TRACE", "INFO", "WARN", "ERROR", "FATAL"}},
		{n: 16, want: slog.LevelDebug, wantNames: []string{"DEBUG", "TRACE", "INFO", "WARN", "ERROR", "FATAL"}},
		{n: 31, want: slog.LevelDebug, wantNames: []string{"DEBUG", "TRACE", "INFO", "WARN", "ERROR", "FATAL"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			if got := SlogLevel(tt.n); got != tt.want {
				t.Errorf("SlogLevel(%d): got %v, want %v", tt.n, got, tt.want)
			}
			var buf bytes.Buffer
			log := New(&buf, Config{Level: tt.n, Format: "json"}, "d")
			for _, lv := range allLevels {
				log.Log(context.Background(), lv.level, "msg-"+lv.name)
			}
			var gotNames []string
			for _, rec := range decodeJSONLines(t, buf.Bytes()) {
				gotNames = append(gotNames, rec["level"].(string))
			}
			if strings.Join(gotNames, ",") != strings.Join(tt.wantNames, ",") {
				t.Errorf("log_level %d wrote levels %v, want %v\n%s", tt.n, gotNames, tt.wantNames, buf.String())
			}
			if tt.n <= 0 && buf.Len() != 0 {
				t.Errorf("log_level %d: got output %q, want none", tt.n, buf.String())
			}
		})
	}
}

func TestNewFormats(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		log := New(&buf, Config{Level: 16, Format: "json"}, "kproxy")
		log.Log(context.Background(), LevelTrace, "tracing", "k", 1)
		log.Log(context.Background(), LevelFatal, "dying")
		recs := decodeJSONLines(t, buf.Bytes())
		if len(recs) != 2 {
			t.Fatalf("got %d records, want 2:\n%s", len(recs), buf.String())
		}
		want := []map[string]any{
			{"level": "TRACE", "msg": "tracing", "daemon": "kproxy", "k": float64(1)},
			{"level": "FATAL", "msg": "dying", "daemon": "kproxy"},
		}
		for i, w := range want {
			for k, v := range w {
				if recs[i][k] != v {
					t.Errorf("record %d key %q: got %v, want %v", i, k, recs[i][k], v)
				}
			}
			if _, ok := recs[i]["time"]; !ok {
				t.Errorf("record %d: got no time, want one", i)
			}
		}
	})
	for _, format := range []string{"text", ""} {
		t.Run("text "+format, func(t *testing.T) {
			var buf bytes.Buffer
			log := New(&buf, Config{Level: 16, Format: format}, "kproxy")
			log.Log(context.Background(), LevelTrace, "tracing", "k", 1)
			log.Log(context.Background(), LevelFatal, "dying")
			log.Debug("debugging")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			want := []string{
				`level=TRACE msg=tracing daemon=kproxy k=1`,
				`level=FATAL msg=dying daemon=kproxy`,
				`level=DEBUG msg=debugging daemon=kproxy`,
			}
			if len(lines) != len(want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
			}
			for i, w := range want {
				if !strings.HasPrefix(lines[i], "time=") || !strings.HasSuffix(lines[i], " "+w) {
					t.Errorf("line %d: got %q, want time=... %s", i, lines[i], w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	got := Defaults()
	want := Config{Dir: "-", Level: 4, Format: "text"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDiscardAndEnabled(t *testing.T) {
	if Enabled(Discard(), LevelFatal) {
		t.Error("Discard: got fatal enabled, want disabled")
	}
	log := New(&bytes.Buffer{}, Config{Level: 4}, "d")
	if !Enabled(log, slog.LevelInfo) {
		t.Error("log_level 4: got info disabled, want enabled")
	}
	if Enabled(log, LevelTrace) {
		t.Error("log_level 4: got trace enabled, want disabled")
	}
}

func TestOpenStderr(t *testing.T) {
	for _, dir := range []string{"-", ""} {
		t.Run(fmt.Sprintf("%q", dir), func(t *testing.T) {
			out, err := Open(dir, "kproxy")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { out.Close() })
			if out.Path() != "" {
				t.Errorf("Path: got %q, want \"\"", out.Path())
			}
			if out.w != os.Stderr {
				t.Errorf("writer: got %v, want os.Stderr", out.w)
			}
			if err := out.Reopen(); err != nil {
				t.Errorf("Reopen on stderr: got %v, want nil", err)
			}
		})
	}
}

func TestOpenDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	out, err := Open(dir, "kproxy")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { out.Close() })
	want := filepath.Join(dir, "kproxy.log")
	if out.Path() != want {
		t.Errorf("Path: got %q, want %q", out.Path(), want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("log file not created: %v", err)
	}
	New(out, Config{Level: 4}, "kproxy").Info("hello")
	if got := readFile(t, want); !strings.Contains(got, "msg=hello") {
		t.Errorf("log file: got %q, want it to contain msg=hello", got)
	}
}

func TestOpenDirFails(t *testing.T) {
	// A regular file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Open(filepath.Join(file, "sub"), "kproxy")
	if err == nil {
		out.Close()
		t.Fatal("Open under a regular file: got nil error, want one")
	}
	if !strings.Contains(err.Error(), "log_dir") {
		t.Errorf("got error %q, want it to name log_dir", err)
	}
}

func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	out, err := Open(dir, "kproxy")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { out.Close() })
	log := New(out, Config{Level: 4}, "kproxy")

	log.Info("before")
	rotated := out.Path() + ".1"
	if err := os.Rename(out.Path(), rotated); err != nil {
		t.Fatal(err)
	}
	log.Info("between") // still the old, renamed file
	if err := out.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	log.Info("after")

	old := readFile(t, rotated)
	cur := readFile(t, out.Path())
	for _, m := range []string{"msg=before", "msg=between"} {
		if !strings.Contains(old, m) {
			t.Errorf("rotated file: got %q, want it to contain %s", old, m)
		}
		if strings.Contains(cur, m) {
			t.Errorf("new file: got %q, want no %s", cur, m)
		}
	}
	if !strings.Contains(cur, "msg=after") {
		t.Errorf("new file: got %q, want it to contain msg=after", cur)
	}
	if strings.Contains(old, "msg=after") {
		t.Errorf("rotated file: got %q, want no msg=after", old)
	}
}

func TestReopenAppends(t *testing.T) {
	dir := t.TempDir()
	out, err := Open(dir, "kproxy")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { out.Close() })
	fmt.Fprintln(out, "one")
	if err := out.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	fmt.Fprintln(out, "two")
	if got, want := readFile(t, out.Path()), "one\ntwo\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	out, err := Open(dir, "kproxy")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { out.Close() })
	path := out.Path()
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	// A directory in the file's place makes the reopen fail.
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := out.Reopen(); err == nil {
		t.Fatal("Reopen onto a directory: got nil error, want one")
	}
	fmt.Fprintln(out, "still here")
	if got := readFile(t, rotated); got != "still here\n" {
		t.Errorf("old file: got %q, want %q", got, "still here\n")
	}
}

func TestCloseTwice(t *testing.T) {
	out, err := Open(t.TempDir(), "kproxy")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Errorf("first Close: got %v, want nil", err)
	}
	if err := out.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if out.w != os.Stderr {
		t.Errorf("writer after Close: got %v, want os.Stderr", out.w)
	}
}

// TestConcurrentWritesDuringReopen rotates the file repeatedly while loggers write;
// every line must land whole in exactly one of the files.
func TestConcurrentWritesDuringReopen(t *testing.T) {
	dir := t.TempDir()
	out, err := Open(dir, "kproxy")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { out.Close() })
	log := New(out, Config{Level: 4, Format: "json"}, "kproxy")

	const writers, perWriter, rotations = 4, 300, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				log.Info("line", "w", w, "i", i)
			}
		})
	}
	var files []string
	for r := range rotations {
		rotated := fmt.Sprintf("%s.%d", out.Path(), r)
		if err := os.Rename(out.Path(), rotated); err != nil {
			t.Fatal(err)
		}
		files = append(files, rotated)
		if err := out.Reopen(); err != nil {
			t.Fatalf("Reopen %d: %v", r, err)
		}
	}
	wg.Wait()
	files = append(files, out.Path())

	seen := map[string]bool{}
	for _, f := range files {
		for _, rec := range decodeJSONLines(t, []byte(readFile(t, f))) {
			key := fmt.Sprint(rec["w"], "/", rec["i"])
			if seen[key] {
				t.Errorf("line %s written twice", key)
			}
			seen[key] = true
		}
	}
	if len(seen) != writers*perWriter {
		t.Errorf("got %d distinct lines over %d files, want %d", len(seen), len(files), writers*perWriter)
	}
}

// decodeJSONLines decodes one JSON object per line, failing on a broken line.
func decodeJSONLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		recs = append(recs, m)
	}
	return recs
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

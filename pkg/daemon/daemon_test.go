package daemon

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testwait"
)

// The tests in this file send signals to the test process, so none of them runs
// in parallel with another.

const name = "testd"

// fakeProgram is a Program of one component whose Serve is the test's run
// and whose Drain and Reload, when set, the test's drain and reload.
type fakeProgram struct {
	logCfg  logging.Config
	timeout time.Duration
	run     func(ctx context.Context, log *slog.Logger) error
	drain   func(ctx context.Context) error
	reload  func() error
}

func (p *fakeProgram) Logging() logging.Config        { return p.logCfg }
func (p *fakeProgram) ShutdownTimeout() time.Duration { return p.timeout }
func (p *fakeProgram) Setup(_ context.Context, log *slog.Logger, r *Runner) error {
	r.Add(Component{Name: "fake", Serve: func(ctx context.Context) error { return p.run(ctx, log) },
		Drain: p.drain, Reload: p.reload})
	return nil
}

// loaderOf returns a Loader that yields prog or err and records the path it got.
func loaderOf(prog Program, err error, gotPath *string) Loader {
	return func(path string) (Program, error) {
		if gotPath != nil {
			*gotPath = path
		}
		return prog, err
	}
}

// neverLoad is a Loader for cases that must fail before loading.
func neverLoad(t *testing.T) Loader {
	t.Helper()
	return func(path string) (Program, error) {
		t.Errorf("loader called with %q, want no call", path)
		return nil, errors.New("unexpected load")
	}
}

// catchSignals registers the test itself for the signals it sends, so a signal
// that arrives while Main is not listening cannot kill the test binary.
func catchSignals(t *testing.T) {
	t.Helper()
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(ch) })
}

func kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatalf("send %v: %v", sig, err)
	}
}

// startMain runs Main with prog in a goroutine and returns its exit code channel. Should Main still run when the test ends (after a failure), it is
// stopped with SIGTERM so that it cannot take the next test's signals.
func startMain(t *testing.T, prog Program) <-chan int {
	t.Helper()
	catchSignals(t)
	code := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		code <- Main(name, []string{"-f", "conf.yaml"}, io.Discard, io.Discard, loaderOf(prog, nil, nil))
	}()
	t.Cleanup(func() {
		for range 2 {
			select {
			case <-done:
				return
			default:
			}
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			select {
			case <-done:
				return
			case <-time.After(10 * time.Second):
			}
		}
		t.Error("Main still running after the test ended")
	})
	return code
}

// waitCode waits up to timeout for Main's exit code.
func waitCode(t *testing.T, code <-chan int, timeout time.Duration) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(timeout):
		t.Fatalf("Main did not return within %v", timeout)
		return -1
	}
}

// waitEntered waits until Run was entered, which is after Main registered for signals.
func waitEntered(t *testing.T, entered <-chan struct{}) {
	t.Helper()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Program.Run was not entered within 10s")
	}
}

func logConfig(t *testing.T) (logging.Config, string) {
	t.Helper()
	dir := t.TempDir()
	return logging.Config{Dir: dir, Level: 4, Format: "text"}, filepath.Join(dir, name+".log")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: got %q, want it to contain %q", what, got, w)
		}
	}
}

func TestMainCommandLine(t *testing.T) {
	valid := &fakeProgram{run: func(context.Context, *slog.Logger) error {
		t.Error("Run called, want no call")
		return nil
	}}
	tests := []struct {
		name       string
		args       []string
		load       func(t *testing.T) Loader
		wantCode   int
		wantStdout string   // exact
		wantStderr []string // substrings
	}{
		{
			name:       "no -f",
			args:       nil,
			load:       neverLoad,
			wantCode:   2,
			wantStderr: []string{name + ": no configuration file: use -f FILE", "usage: " + name + " -f FILE"},
		},
		{
			name:       "-t without -f",
			args:       []string{"-t"},
			load:       neverLoad,
			wantCode:   2,
			wantStderr: []string{"no configuration file"},
		},
		{
			name:       "extra argument",
			args:       []string{"-f", "conf.yaml", "extra"},
			load:       neverLoad,
			wantCode:   2,
			wantStderr: []string{`unexpected argument "extra"`, "usage: "},
		},
		{
			name:       "unknown flag",
			args:       []string{"-x"},
			load:       neverLoad,
			wantCode:   2,
			wantStderr: []string{"flag provided but not defined: -x", "usage: "},
		},
		{
			name:       "-f without value",
			args:       []string{"-f"},
			load:       neverLoad,
			wantCode:   2,
			wantStderr: []string{"flag needs an argument: -f"},
		},
		{
			name:       "help",
			args:       []string{"-h"},
			load:       neverLoad,
			wantCode:   0,
			wantStderr: []string{"usage: " + name + " -f FILE [-t]", name + " --version"},
		},
		{
			name:       "check valid",
			args:       []string{"-t", "-f", "conf.yaml"},
			load:       func(*testing.T) Loader { return loaderOf(valid, nil, nil) },
			wantCode:   0,
			wantStdout: "configuration conf.yaml is valid\n",
		},
		{
			name:       "check valid with --config",
			args:       []string{"--config", "other.yaml", "-t"},
			load:       func(*testing.T) Loader { return loaderOf(valid, nil, nil) },
			wantCode:   0,
			wantStdout: "configuration other.yaml is valid\n",
		},
		{
			name: "check invalid",
			args: []string{"-t", "-f", "conf.yaml"},
			load: func(*testing.T) Loader {
				return loaderOf(nil, errors.Join(errors.New("kafka.sasl.user: is required"), errors.New("port: must be > 0")), nil)
			},
			wantCode:   1,
			wantStderr: []string{"configuration conf.yaml is invalid:\n", "kafka.sasl.user: is required\nport: must be > 0"},
		},
		{
			name:       "run with invalid configuration",
			args:       []string{"-f", "conf.yaml"},
			load:       func(*testing.T) Loader { return loaderOf(nil, errors.New("port: must be > 0"), nil) },
			wantCode:   1,
			wantStderr: []string{name + ": configuration conf.yaml is invalid:\nport: must be > 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := Main(name, tt.args, &stdout, &stderr, tt.load(t))
			if got != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", got, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout: got %q, want %q", stdout.String(), tt.wantStdout)
			}
			wantContains(t, "stderr", stderr.String(), tt.wantStderr...)
		})
	}
}

func TestMainCheckPassesPath(t *testing.T) {
	var got string
	prog := &fakeProgram{}
	if code := Main(name, []string{"-t", "-f", "/etc/x/conf.yaml"}, &bytes.Buffer{}, &bytes.Buffer{}, loaderOf(prog, nil, &got)); code != 0 {
		t.Fatalf("exit code: got %d, want 0", code)
	}
	if got != "/etc/x/conf.yaml" {
		t.Errorf("loader path: got %q, want /etc/x/conf.yaml", got)
	}
}

func TestMainVersion(t *testing.T) {
	old := Version
	Version = "v1.2.3"
	t.Cleanup(func() { Version = old })
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--version", "-f", "conf.yaml"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(name, args, &stdout, &stderr, neverLoad(t)); code != 0 {
				t.Errorf("exit code: got %d, want 0", code)
			}
			want := name + " " + FullVersion() + "\n"
			if stdout.String() != want {
				t.Errorf("stdout: got %q, want %q", stdout.String(), want)
			}
			if !strings.HasPrefix(stdout.String(), name+" v1.2.3") {
				t.Errorf("stdout: got %q, want it to start with %q", stdout.String(), name+" v1.2.3")
			}
		})
	}
}

func TestFullVersion(t *testing.T) {
	old := Version
	Version = "v9.8.7"
	t.Cleanup(func() { Version = old })
	got := FullVersion()
	if got != "v9.8.7" && !strings.HasPrefix(got, "v9.8.7 (") {
		t.Errorf("got %q, want v9.8.7 or v9.8.7 (revision)", got)
	}
}

func TestMainRunExits(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantLog  []string
	}{
		{name: "clean", err: nil, wantCode: 0, wantLog: []string{"msg=started", "msg=stopped"}},
		{name: "error", err: errors.New("kafka unreachable"), wantCode: 1,
			wantLog: []string{"msg=started", `level=FATAL msg="stopped with an error"`, `err="kafka unreachable"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc, logPath := logConfig(t)
			prog := &fakeProgram{logCfg: lc, timeout: time.Second,
				run: func(context.Context, *slog.Logger) error { return tt.err }}
			code := startMain(t, prog)
			if got := waitCode(t, code, 10*time.Second); got != tt.wantCode {
				t.Errorf("exit code: got %d, want %d", got, tt.wantCode)
			}
			wantContains(t, "log file", readFile(t, logPath), tt.wantLog...)
		})
	}
}

func TestMainLogDirFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	prog := &fakeProgram{logCfg: logging.Config{Dir: filepath.Join(file, "logs"), Level: 4},
		run: func(context.Context, *slog.Logger) error {
			t.Error("Run called, want no call")
			return nil
		}}
	var stderr bytes.Buffer
	if code := Main(name, []string{"-f", "conf.yaml"}, &bytes.Buffer{}, &stderr, loaderOf(prog, nil, nil)); code != 1 {
		t.Errorf("exit code: got %d, want 1", code)
	}
	wantContains(t, "stderr", stderr.String(), name+": create log_dir")
}

// TestMainSignalShutdown sends a real termination signal while Run blocks on ctx.
func TestMainSignalShutdown(t *testing.T) {
	tests := []struct {
		name     string
		sig      syscall.Signal
		runErr   error
		wantCode int
		wantLog  []string
	}{
		{name: "SIGTERM", sig: syscall.SIGTERM, wantCode: 0,
			wantLog: []string{"msg=started", `msg="shutting down" daemon=` + name + ` signal=terminated shutdown_timeout=1m0s`, "msg=stopped"}},
		{name: "SIGINT", sig: syscall.SIGINT, wantCode: 0,
			wantLog: []string{`msg="shutting down" daemon=` + name + ` signal=interrupt`, "msg=stopped"}},
		{name: "SIGTERM, Run fails", sig: syscall.SIGTERM, runErr: errors.New("flush failed"), wantCode: 1,
			wantLog: []string{"msg=\"shutting down\"", `msg="stopped with an error" daemon=` + name + ` err="flush failed"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc, logPath := logConfig(t)
			entered := make(chan struct{})
			ctxErr := make(chan error, 1)
			prog := &fakeProgram{logCfg: lc, timeout: time.Minute,
				run: func(ctx context.Context, _ *slog.Logger) error {
					close(entered)
					<-ctx.Done()
					ctxErr <- ctx.Err()
					return tt.runErr
				}}
			code := startMain(t, prog)
			waitEntered(t, entered)
			kill(t, tt.sig)
			if got := waitCode(t, code, 10*time.Second); got != tt.wantCode {
				t.Errorf("exit code: got %d, want %d", got, tt.wantCode)
			}
			if err := <-ctxErr; !errors.Is(err, context.Canceled) {
				t.Errorf("Run's context ended with %v, want context.Canceled", err)
			}
			wantContains(t, "log file", readFile(t, logPath), tt.wantLog...)
		})
	}
}

// TestMainSIGHUPReopens rotates the log file and checks that SIGHUP moves logging
// to a new file and then runs the reload hooks, while the daemon keeps running.
func TestMainSIGHUPReopens(t *testing.T) {
	lc, logPath := logConfig(t)
	entered := make(chan struct{})
	reloads := make(chan struct{}, 4)
	prog := &fakeProgram{logCfg: lc, timeout: time.Minute,
		run: func(ctx context.Context, log *slog.Logger) error {
			close(entered)
			<-ctx.Done()
			log.Info("draining")
			return nil
		},
		reload: func() error {
			reloads <- struct{}{}
			return errors.New("bad certificate")
		}}
	code := startMain(t, prog)
	waitEntered(t, entered)
	testwait.Eventually(t, 5*time.Second, "started logged", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "msg=started")
	})

	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	kill(t, syscall.SIGHUP)
	testwait.Eventually(t, 5*time.Second, "new log file with reopen message", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `msg="log file reopened" daemon=`+name+` path=`+logPath)
	})
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("the reload hook did not run within 5s of SIGHUP")
	}
	// The hook's failure is logged in the new file, after the reopen line.
	testwait.Eventually(t, 5*time.Second, "reload failure logged", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `level=WARN msg="reload failed: the previous settings stay in use" daemon=`+name+` component=fake err="bad certificate"`)
	})
	select {
	case c := <-code:
		t.Fatalf("Main returned %d after SIGHUP, want it to keep running", c)
	default:
	}

	kill(t, syscall.SIGTERM)
	if got := waitCode(t, code, 10*time.Second); got != 0 {
		t.Errorf("exit code: got %d, want 0", got)
	}
	cur := readFile(t, logPath)
	old := readFile(t, rotated)
	wantContains(t, "new log file", cur, "msg=draining", "msg=stopped")
	wantContains(t, "rotated log file", old, "msg=started")
	if strings.Contains(old, "reopened") || strings.Contains(old, "stopped") {
		t.Errorf("rotated log file: got %q, want nothing logged after the reopen", old)
	}
}

// TestMainSecondSignal checks that a second signal during a hanging drain exits
// with 1 at once instead of waiting for the backstop.
func TestMainSecondSignal(t *testing.T) {
	lc, logPath := logConfig(t)
	entered := make(chan struct{})
	draining := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	prog := &fakeProgram{logCfg: lc, timeout: time.Minute,
		run: func(ctx context.Context, _ *slog.Logger) error {
			close(entered)
			<-ctx.Done()
			close(draining)
			<-release
			return nil
		}}
	code := startMain(t, prog)
	waitEntered(t, entered)
	kill(t, syscall.SIGTERM)
	select {
	case <-draining:
	case <-time.After(10 * time.Second):
		t.Fatal("Run's context was not cancelled within 10s of SIGTERM")
	}
	kill(t, syscall.SIGTERM)
	// The backstop is a minute away, so returning here is the second signal's doing.
	if got := waitCode(t, code, 10*time.Second); got != 1 {
		t.Errorf("exit code: got %d, want 1", got)
	}
	wantContains(t, "log file", readFile(t, logPath), `msg="second signal: exiting at once" daemon=`+name+` signal=terminated`)
}

// TestMainShutdownBackstop checks that Main gives up on a drain that ignores its
// context: after ShutdownTimeout plus the fixed 5 s slack it exits with 1.
func TestMainShutdownBackstop(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 5 s shutdown backstop")
	}
	lc, logPath := logConfig(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	const timeout = 100 * time.Millisecond
	prog := &fakeProgram{logCfg: lc, timeout: timeout,
		run: func(ctx context.Context, _ *slog.Logger) error {
			close(entered)
			<-ctx.Done()
			return nil
		},
		drain: func(context.Context) error {
			<-release
			return nil
		}}
	code := startMain(t, prog)
	waitEntered(t, entered)
	start := time.Now()
	kill(t, syscall.SIGTERM)
	if got := waitCode(t, code, 30*time.Second); got != 1 {
		t.Errorf("exit code: got %d, want 1", got)
	}
	if elapsed := time.Since(start); elapsed < timeout+5*time.Second {
		t.Errorf("Main returned after %v, want not before ShutdownTimeout + 5s", elapsed)
	}
	wantContains(t, "log file", readFile(t, logPath),
		`level=FATAL msg="shutdown did not finish in time" daemon=`+name+` shutdown_timeout=100ms`)
}

// TestMainServeIgnoresContext: a component whose Serve does not return after
// SIGTERM is given up at shutdown_timeout, with exit code 1 and a line naming
// it, before the backstop.
func TestMainServeIgnoresContext(t *testing.T) {
	lc, logPath := logConfig(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	prog := &fakeProgram{logCfg: lc, timeout: 100 * time.Millisecond,
		run: func(context.Context, *slog.Logger) error {
			close(entered)
			<-release
			return nil
		}}
	code := startMain(t, prog)
	waitEntered(t, entered)
	kill(t, syscall.SIGTERM)
	if got := waitCode(t, code, 30*time.Second); got != 1 {
		t.Errorf("exit code: got %d, want 1", got)
	}
	log := readFile(t, logPath)
	wantContains(t, "log file", log, `msg=drained daemon=`+name+` took=`, `ok=false`,
		`level=FATAL msg="stopped with an error" daemon=`+name+` err="fake did not drain within shutdown_timeout 100ms"`)
	if strings.Contains(log, "shutdown did not finish in time") {
		t.Errorf("log file: got the backstop's line, want the runner's:\n%s", log)
	}
}

// warningProgram is a fakeProgram whose configuration has warnings.
type warningProgram struct {
	fakeProgram
	warnings []string
}

func (p *warningProgram) Warnings() []string { return p.warnings }

// TestMainWarnings: a valid configuration's warnings are printed by -t after
// "is valid", and logged at warning level by a run.
func TestMainWarnings(t *testing.T) {
	lc, logPath := logConfig(t)
	prog := &warningProgram{
		fakeProgram: fakeProgram{logCfg: lc, timeout: time.Second, run: func(context.Context, *slog.Logger) error { return nil }},
		warnings:    []string{"m.yaml: protocol.read_timeout_ms: 0 with 4 backend_servers"},
	}
	var stdout, stderr strings.Builder
	if code := Main(name, []string{"-t", "-f", "conf.yaml"}, &stdout, &stderr, loaderOf(prog, nil, nil)); code != 0 {
		t.Fatalf("-t: exit code %d, want 0", code)
	}
	if stdout.String() != "configuration conf.yaml is valid\n" || stderr.String() != "warning: "+prog.warnings[0]+"\n" {
		t.Errorf("-t: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	if got := waitCode(t, startMain(t, prog), 10*time.Second); got != 0 {
		t.Fatalf("run: exit code %d, want 0", got)
	}
	wantContains(t, "log file", readFile(t, logPath), `level=WARN msg="m.yaml: protocol.read_timeout_ms: 0 with 4 backend_servers"`)
}

// TestMainCommands: a first argument naming a command runs it with the rest of
// the arguments and returns its exit code; the usage lists every command; other
// first arguments keep their meaning.
func TestMainCommands(t *testing.T) {
	var got []string
	cmds := []Command{{
		Name:     "migrate",
		Synopsis: "migrate -f FILE [--dry-run]",
		Run: func(ctx context.Context, args []string, stdout, _ io.Writer) int {
			if ctx.Err() != nil {
				t.Error("command context done before the command ran")
			}
			got = args
			io.WriteString(stdout, "migrated\n")
			return 3
		},
	}}
	var stdout, stderr bytes.Buffer
	if code := Main(name, []string{"migrate", "-f", "x.yaml", "--dry-run"}, &stdout, &stderr, neverLoad(t), cmds...); code != 3 {
		t.Errorf("exit code: got %d, want the command's 3", code)
	}
	if strings.Join(got, " ") != "-f x.yaml --dry-run" || stdout.String() != "migrated\n" {
		t.Errorf("command got args %q and wrote %q, want \"-f x.yaml --dry-run\" and \"migrated\\n\"", got, stdout.String())
	}

	stdout.Reset()
	got = nil
	if code := Main(name, []string{"-h"}, &stdout, &stderr, neverLoad(t), cmds...); code != 0 {
		t.Errorf("-h: exit code %d, want 0", code)
	}
	wantContains(t, "usage", stderr.String(), "usage: "+name+" -f FILE [-t]", name+" migrate -f FILE [--dry-run]")

	stderr.Reset()
	if code := Main(name, []string{"-f", "x.yaml", "migrate"}, &stdout, &stderr, neverLoad(t), cmds...); code != 2 {
		t.Errorf("command name after flags: exit code %d, want 2 (an unexpected argument)", code)
	}
	wantContains(t, "stderr", stderr.String(), `unexpected argument "migrate"`)
	if got != nil {
		t.Errorf("command ran with %q, want no run", got)
	}
}

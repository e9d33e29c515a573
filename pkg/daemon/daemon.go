// Package daemon is the process frame the three daemons share: the command line
// (-f/--config FILE, -t to check the configuration, --version, and a daemon's
// subcommands such as `ktransfer migrate-offsets`), logging set-up, signal
// handling (SIGTERM/SIGINT start a bounded graceful shutdown, a second signal
// exits at once, SIGHUP reopens the log file and runs the reload hooks), the
// exit code, and the Runner that takes every daemon's components through one
// lifecycle: serve, stop in order (stop accepting, drain, flush, commit,
// release), close.
//
// A daemon's main.go is a Loader and a Program whose Setup makes the core and
// adds its components to the Runner; the core stays testable without a
// process, by running a Runner of its own.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

// Version is the release, set at build time with
// -ldflags "-X github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon.Version=v1.2.3".
var Version = "dev"

// Program is a loaded, valid configuration that can run as a daemon.
type Program interface {
	// Logging returns the log_dir/log_level/log_format settings.
	Logging() logging.Config
	// ShutdownTimeout bounds the Runner's stop stage after the first signal.
	ShutdownTimeout() time.Duration
	// Setup makes the daemon's core and adds its components to r, in the
	// order they stop (see Runner); Main then runs r. ctx ends at the first
	// SIGINT or SIGTERM, so a Setup that waits for a server gives up. When
	// Setup fails, the Close functions of the components it added run.
	Setup(ctx context.Context, log *slog.Logger, r *Runner) error
}

// Warner is implemented by a Program whose configuration is valid but has
// settings worth a second look: -t prints each warning on stderr after
// "configuration FILE is valid", and a run logs each at warning level.
type Warner interface {
	Warnings() []string
}

// Loader reads and validates the configuration file at path.
type Loader func(path string) (Program, error)

// Command is a one-off operation of a daemon's binary beside running the
// daemon: `NAME COMMAND ARGS...` (ktransfer migrate-offsets -f FILE). It parses
// its own arguments.
type Command struct {
	// Name is the word that follows the program name.
	Name string
	// Synopsis is the usage line after the program name, such as
	// "migrate-offsets -f FILE [--module M] [--dry-run]".
	Synopsis string
	// Run runs the command with the arguments after its name. ctx ends at the
	// first SIGINT or SIGTERM. It returns the exit code: 0 success, 1 failure,
	// 2 usage error.
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// Main runs the daemon name with args (without the program name) and returns the
// process exit code: 0 after a clean run or a valid check, 1 on a configuration or
// runtime error, 2 on a usage error. When args start with the name of one of
// cmds, that command runs instead of the daemon.
func Main(name string, args []string, stdout, stderr io.Writer, load Loader, cmds ...Command) int {
	if len(args) > 0 {
		for _, c := range cmds {
			if args[0] == c.Name {
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return c.Run(ctx, args[1:], stdout, stderr)
			}
		}
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	fs.StringVar(&path, "f", "", "configuration `FILE` (YAML)")
	fs.StringVar(&path, "config", "", "configuration `FILE` (YAML), same as -f")
	check := fs.Bool("t", false, "check the configuration and exit")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s -f FILE [-t]\n       %s --version\n", name, name)
		for _, c := range cmds {
			fmt.Fprintf(stderr, "       %s %s\n", name, c.Synopsis)
		}
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "%s %s\n", name, FullVersion())
		return 0
	}
	if path == "" {
		fmt.Fprintf(stderr, "%s: no configuration file: use -f FILE\n", name)
		fs.Usage()
		return 2
	}
	prog, err := load(path)
	if *check {
		if err != nil {
			fmt.Fprintf(stderr, "configuration %s is invalid:\n%v\n", path, err)
			return 1
		}
		fmt.Fprintf(stdout, "configuration %s is valid\n", path)
		if w, ok := prog.(Warner); ok {
			for _, msg := range w.Warnings() {
				fmt.Fprintf(stderr, "warning: %s\n", msg)
			}
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: configuration %s is invalid:\n%v\n", name, path, err)
		return 1
	}
	return run(name, prog, stderr)
}

func run(name string, prog Program, stderr io.Writer) int {
	lc := prog.Logging()
	out, err := logging.Open(lc.Dir, name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer out.Close()
	log := logging.New(out, lc, name)
	if w, ok := prog.(Warner); ok {
		for _, msg := range w.Warnings() {
			log.Warn(msg)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	r := NewRunner(log, prog.ShutdownTimeout())
	done := make(chan error, 1)
	go func() {
		if err := prog.Setup(ctx, log, r); err != nil {
			r.Close()
			done <- err
			return
		}
		done <- r.Run(ctx)
	}()

	log.Info("started", "version", FullVersion(), "pid", os.Getpid())
	var deadline <-chan time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Log(context.Background(), logging.LevelFatal, "stopped with an error", "err", err)
				return 1
			}
			log.Info("stopped")
			return 0
		case <-deadline:
			log.Log(context.Background(), logging.LevelFatal, "shutdown did not finish in time", "shutdown_timeout", prog.ShutdownTimeout())
			return 1
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				if err := out.Reopen(); err != nil {
					log.Warn("reopen log file", "err", err)
				} else {
					log.Info("log file reopened", "path", out.Path())
				}
				// The reload hooks log what they did, and Reload their failures.
				_ = r.Reload()
			case ctx.Err() == nil:
				log.Info("shutting down", "signal", sig.String(), "shutdown_timeout", prog.ShutdownTimeout())
				cancel()
				// The Runner bounds the stop stage; this is the backstop should
				// a Drain or a Close ignore its bound.
				deadline = time.After(prog.ShutdownTimeout() + 5*time.Second)
			default:
				log.Warn("second signal: exiting at once", "signal", sig.String())
				return 1
			}
		}
	}
}

// FullVersion returns Version with the VCS revision the binary was built from, when
// the Go toolchain recorded one.
func FullVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return Version
	}
	return Version + " (" + rev + dirty + ")"
}

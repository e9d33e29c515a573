// Package logging builds the daemons' log/slog loggers from the original
// configuration keys: log_dir (write NAME.log there; "-" or empty means stderr) and
// log_level (0 off, 1 fatal, 2 warning, 4 notice/info, 8 trace, 16 debug; a message
// is written when its level number is at most log_level). A log file is reopened on
// Reopen, which the daemons call on SIGHUP so logrotate can move it away.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Levels beyond slog's four, in the original's scale.
const (
	// LevelTrace sits between info (4, notice) and debug (16).
	LevelTrace = slog.Level(-2)
	// LevelFatal is logged just before a daemon gives up.
	LevelFatal = slog.Level(12)
	// levelOff is above every level: nothing is written.
	levelOff = slog.Level(1 << 20)
)

// Config holds the logging keys every daemon accepts.
type Config struct {
	// Dir is the directory of NAME.log; "-" or "" logs to stderr. Key log_dir.
	Dir string `key:"log_dir"`
	// Level is the original numeric level, default 4 (notice). Key log_level.
	Level int `key:"log_level"`
	// Format is "text" (default) or "json". Key log_format.
	Format string `key:"log_format"`
}

// Defaults returns the logging defaults: stderr, level 4, text.
func Defaults() Config { return Config{Dir: "-", Level: 4, Format: "text"} }

// SlogLevel maps an original log_level to the lowest slog level that is written.
func SlogLevel(n int) slog.Level {
	switch {
	case n <= 0:
		return levelOff
	case n < 2:
		return LevelFatal
	case n < 4:
		return slog.LevelWarn
	case n < 8:
		return slog.LevelInfo
	case n < 16:
		return LevelTrace
	default:
		return slog.LevelDebug
	}
}

// Output is the destination of a daemon's log: stderr or a file that can be reopened.
// It is safe for concurrent use.
type Output struct {
	mu   sync.Mutex
	path string // "" = stderr
	f    *os.File
	w    io.Writer
}

// Open returns the output for name in dir ("-" or "" = stderr), creating dir.
func Open(dir, name string) (*Output, error) {
	if dir == "" || dir == "-" {
		return &Output{w: os.Stderr}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log_dir %s: %w", dir, err)
	}
	o := &Output{path: filepath.Join(dir, name+".log")}
	if err := o.Reopen(); err != nil {
		return nil, err
	}
	return o, nil
}

// Path returns the log file's path, "" for stderr.
func (o *Output) Path() string { return o.path }

// Write writes one log record.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// Reopen closes and reopens the log file (after logrotate moved it). It does
// nothing for stderr. On failure the old file stays in use.
func (o *Output) Reopen() error {
	if o.path == "" {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	o.mu.Lock()
	old := o.f
	o.f, o.w = f, f
	o.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the log file; later writes go to stderr. Safe to call twice.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var err error
	if o.f != nil {
		err = o.f.Close()
		o.f = nil
	}
	o.w = os.Stderr
	return err
}

// New returns a logger writing to out at the configured level and format, with the
// daemon's name as attribute "daemon".
func New(out io.Writer, cfg Config, name string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: SlogLevel(cfg.Level), ReplaceAttr: levelNames}
	var h slog.Handler
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(out, opts)
	} else {
		h = slog.NewTextHandler(out, opts)
	}
	return slog.New(h).With("daemon", name)
}

// levelNames prints the two extra levels by name instead of "DEBUG+2".
func levelNames(_ []string, a slog.Attr) slog.Attr {
	if a.Key != slog.LevelKey {
		return a
	}
	switch lv, _ := a.Value.Any().(slog.Level); lv {
	case LevelTrace:
		a.Value = slog.StringValue("TRACE")
	case LevelFatal:
		a.Value = slog.StringValue("FATAL")
	}
	return a
}

// Discard is a logger that writes nothing, for tests and libraries.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Enabled is shorthand for l.Enabled(context.Background(), lv).
func Enabled(l *slog.Logger, lv slog.Level) bool { return l.Enabled(context.Background(), lv) }

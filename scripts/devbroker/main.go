// Command devbroker runs a small Kafka broker (kfake) for local development:
// in memory by default, or persisted to a directory across restarts.
//
// It prints "devbroker listening on HOST:PORT[,...]" on standard output once
// it accepts connections and runs until SIGINT or SIGTERM, then closes the
// cluster cleanly so persisted data is flushed. Logs go to standard error.
//
// Usage:
//
//	go run ./scripts/devbroker [-listen 127.0.0.1:9092] [-brokers 1] [-data-dir DIR [-sync]]
//	    [-partitions 8] [-topics a,b] [-auto-create=true] [-log-level warn] [-allow-remote]
//	    [-group-min-session-timeout 1s] [-consumer-heartbeat-interval 1s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "devbroker:", err)
		os.Exit(1)
	}
}

// options are devbroker's command line settings.
type options struct {
	listen      string
	brokers     int
	dataDir     string
	sync        bool
	partitions  int
	topics      []string
	autoCreate  bool
	logLevel    kfake.LogLevel
	allowRemote bool
	// minSession is the shortest group session timeout the broker accepts
	// (group.min.session.timeout.ms).
	minSession time.Duration
	// heartbeat is how often members of consumer-protocol (KIP-848) groups
	// heartbeat: kfake applies this broker-level interval to every group,
	// where Kafka honours a group's own consumer.heartbeat.interval.ms.
	heartbeat time.Duration

	host string // from listen
	port int    // from listen; 0 picks free ports
}

var logLevels = map[string]kfake.LogLevel{
	"none":  kfake.LogLevelNone,
	"error": kfake.LogLevelError,
	"warn":  kfake.LogLevelWarn,
	"info":  kfake.LogLevelInfo,
	"debug": kfake.LogLevelDebug,
}

// parseOptions parses and checks the command line, reporting every problem
// at once.
func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("devbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var topics, level string
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9092", "`host:port` of the first broker; further brokers use the following ports (port 0: free ports)")
	fs.IntVar(&o.brokers, "brokers", 1, "number of brokers")
	fs.StringVar(&o.dataDir, "data-dir", "", "persist the cluster to this `directory` (empty: in memory only)")
	fs.BoolVar(&o.sync, "sync", false, "fsync every write (needs -data-dir)")
	fs.IntVar(&o.partitions, "partitions", 8, "partitions of auto-created topics and of -topics")
	fs.StringVar(&topics, "topics", "", "comma-separated `topics` to create at start; existing ones are kept")
	fs.BoolVar(&o.autoCreate, "auto-create", true, "create topics when clients ask for unknown ones")
	fs.StringVar(&level, "log-level", "warn", "log `level`: none, error, warn, info or debug")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow -listen on an address other than loopback")
	fs.DurationVar(&o.minSession, "group-min-session-timeout", time.Second, "shortest group session timeout accepted (group.min.session.timeout.ms)")
	fs.DurationVar(&o.heartbeat, "consumer-heartbeat-interval", time.Second,
		"heartbeat interval of every consumer-protocol group (group.consumer.heartbeat.interval.ms; short enough for sessions of a few seconds, such as ktransfer's group_session_timeout_ms)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	host, portStr, err := net.SplitHostPort(o.listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("-listen %q: %w", o.listen, err))
	} else {
		o.host = host
		o.port, err = strconv.Atoi(portStr)
		if err != nil || o.port < 0 || o.port > 65535 {
			errs = append(errs, fmt.Errorf("-listen %q: port must be a number from 0 to 65535", o.listen))
		} else if o.port > 0 && o.brokers > 0 && o.port+o.brokers-1 > 65535 {
			errs = append(errs, fmt.Errorf("-listen %q with -brokers %d: ports run past 65535", o.listen, o.brokers))
		}
		if !o.allowRemote && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("-listen %q: %q is not a loopback address; pass -allow-remote to listen on it", o.listen, host))
		}
	}
	if o.brokers < 1 {
		errs = append(errs, fmt.Errorf("-brokers %d: must be at least 1", o.brokers))
	}
	if o.partitions < 1 {
		errs = append(errs, fmt.Errorf("-partitions %d: must be at least 1", o.partitions))
	}
	if o.minSession < time.Millisecond {
		errs = append(errs, fmt.Errorf("-group-min-session-timeout %v: must be at least 1ms", o.minSession))
	}
	if o.heartbeat < time.Millisecond {
		errs = append(errs, fmt.Errorf("-consumer-heartbeat-interval %v: must be at least 1ms", o.heartbeat))
	}
	if o.sync && o.dataDir == "" {
		errs = append(errs, errors.New("-sync: needs -data-dir"))
	}
	for _, name := range strings.Split(topics, ",") {
		if name = strings.TrimSpace(name); name != "" {
			o.topics = append(o.topics, name)
		}
	}
	var ok bool
	if o.logLevel, ok = logLevels[strings.ToLower(level)]; !ok {
		errs = append(errs, fmt.Errorf("-log-level %q: must be none, error, warn, info or debug", level))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// run starts the cluster, announces it on stdout and serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slogLevel(o.logLevel)}))

	host := o.host
	opts := []kfake.Opt{
		kfake.NumBrokers(o.brokers),
		kfake.DefaultNumPartitions(o.partitions),
		kfake.GroupMinSessionTimeout(o.minSession),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": strconv.FormatInt(o.heartbeat.Milliseconds(), 10)}),
		// kfake always asks for 127.0.0.1; this listens on -listen's host.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
	}
	if o.port > 0 {
		ports := make([]int, o.brokers)
		for i := range ports {
			ports[i] = o.port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	}
	if o.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if o.dataDir != "" {
		opts = append(opts, kfake.DataDir(o.dataDir))
		if o.sync {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	if o.logLevel != kfake.LogLevelNone {
		opts = append(opts, kfake.WithLogger(&slogAdapter{logger: logger, level: o.logLevel}))
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	defer c.Close()

	// Topics go in after the start rather than through kfake.SeedTopics,
	// which is ignored when state is loaded from -data-dir.
	for _, topic := range o.topics {
		err := c.CreateTopic(topic, int32(o.partitions), nil)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			logger.Info("topic exists", "topic", topic)
		case err != nil:
			return fmt.Errorf("create topic %q: %w", topic, err)
		default:
			logger.Info("topic created", "topic", topic, "partitions", o.partitions)
		}
	}

	if _, err := fmt.Fprintf(stdout, "devbroker listening on %s\n", strings.Join(c.ListenAddrs(), ",")); err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	<-ctx.Done()
	logger.Info("shutting down")
	c.Close() // flushes persisted state before run returns
	return nil
}

// slogLevel maps a kfake level to the slog level that lets it through.
func slogLevel(l kfake.LogLevel) slog.Level {
	switch l {
	case kfake.LogLevelDebug:
		return slog.LevelDebug
	case kfake.LogLevelInfo:
		return slog.LevelInfo
	case kfake.LogLevelWarn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// slogAdapter passes kfake's printf-style log lines to slog, dropping those
// above level.
type slogAdapter struct {
	logger *slog.Logger
	level  kfake.LogLevel
}

// Logf implements kfake.Logger.
func (a *slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	if level > a.level || level == kfake.LogLevelNone {
		return
	}
	a.logger.Log(context.Background(), slogLevel(level), fmt.Sprintf(format, args...), "module", "kfake")
}

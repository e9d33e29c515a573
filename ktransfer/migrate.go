package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/transfer"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
)

// migrateSynopsis is the usage line of `ktransfer migrate-offsets`.
const migrateSynopsis = "migrate-offsets -f FILE [--module M] [--dry-run]"

// migrateCommand is `ktransfer migrate-offsets`: the modules' ZooKeeper
// offsets into their Kafka consumer groups (transfer.MigrateOffsets).
var migrateCommand = daemon.Command{
	Name:     "migrate-offsets",
	Synopsis: migrateSynopsis,
	Run:      runMigrate,
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ktransfer migrate-offsets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	fs.StringVar(&path, "f", "", "configuration `FILE` (YAML), the fleet's main file")
	fs.StringVar(&path, "config", "", "configuration `FILE` (YAML), same as -f")
	var modules []string
	fs.Func("module", "migrate only module `M` (repeatable; default: every module of module_enabled)", func(s string) error {
		modules = append(modules, s)
		return nil
	})
	dry := fs.Bool("dry-run", false, "read both stores and show what would be done; change nothing")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ktransfer %s\n\n"+
			"Copies each module's offsets from ZooKeeper ({zk_chroot}/consumers/{module}/offsets/{topic}/{partition})\n"+
			"into its Kafka consumer group, for a fleet moving to offset_store: kafka. Stop every process of\n"+
			"the module first: a module with live instances in ZooKeeper or live members in its group is refused.\n"+
			"A group offset committed after the ZooKeeper one was written is kept. Prints a table of every partition.\n\n",
			migrateSynopsis)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ktransfer migrate-offsets: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if path == "" {
		fmt.Fprintf(stderr, "ktransfer migrate-offsets: no configuration file: use -f FILE\n")
		fs.Usage()
		return 2
	}
	cfg, err := transfer.LoadConfig(path)
	if err != nil {
		fmt.Fprintf(stderr, "ktransfer migrate-offsets: configuration %s is invalid:\n%v\n", path, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rows, err := transfer.MigrateOffsets(ctx, cfg, transfer.MigrateOptions{Modules: modules, DryRun: *dry}, log)
	if len(rows) > 0 {
		if werr := transfer.WriteMigrationTable(stdout, rows, *dry); werr != nil {
			fmt.Fprintf(stderr, "ktransfer migrate-offsets: %v\n", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ktransfer migrate-offsets: %v\n", err)
		return 1
	}
	switch {
	case *dry:
		fmt.Fprintln(stdout, "dry run: nothing was changed")
	case len(rows) == 0:
		fmt.Fprintln(stdout, "no offsets in ZooKeeper or Kafka for these modules: nothing to do")
	default:
		fmt.Fprintf(stdout, "done: set offset_store: kafka in %s and start the fleet\n", path)
	}
	return 0
}

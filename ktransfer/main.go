// Command ktransfer pushes Kafka records to HTTP backends, per module, as a fleet
// of processes sharing the work through ZooKeeper or, with offset_store kafka,
// through a Kafka consumer group per module. Run it as
// `ktransfer -f conf/ktransfer.yaml`; `ktransfer -t -f conf/ktransfer.yaml` checks the
// main file and every enabled module file; `ktransfer migrate-offsets -f
// conf/ktransfer.yaml [--module M] [--dry-run]` copies the modules' ZooKeeper
// offsets into their Kafka consumer groups.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/ktransfer/transfer"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

type program struct{ cfg transfer.Config }

func (p program) Logging() logging.Config        { return p.cfg.Config }
func (p program) ShutdownTimeout() time.Duration { return p.cfg.Shutdown }
func (p program) Warnings() []string             { return p.cfg.Warnings }

// Setup joins the fleet (transfer.New) and adds the transfer's components to
// r (transfer.Transfer.Register).
func (p program) Setup(ctx context.Context, log *slog.Logger, r *daemon.Runner) error {
	t, err := transfer.New(ctx, p.cfg, log.With("instance", p.cfg.InstanceID))
	if err != nil {
		return err
	}
	t.Register(r)
	return nil
}

func main() {
	os.Exit(daemon.Main("ktransfer", os.Args[1:], os.Stdout, os.Stderr, func(path string) (daemon.Program, error) {
		cfg, err := transfer.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		return program{cfg}, nil
	}, migrateCommand))
}

// Command kmonitor is the lag monitor: it follows the modules' committed offsets
// in ZooKeeper or in Kafka's consumer groups (offset_source), polls the log
// offsets from Kafka and serves /delay (JSON or Zabbix), /lag, /metrics,
// /healthz, /readyz and, at /, a dashboard page. Run it as
// `kmonitor -f kmonitor.yaml`; `kmonitor -t -f kmonitor.yaml` checks the file.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/monitor"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kmonitor/web"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

type program struct{ cfg monitor.Config }

func (p program) Logging() logging.Config        { return p.cfg.Base.Config }
func (p program) ShutdownTimeout() time.Duration { return p.cfg.Base.Shutdown }

// Setup makes the monitor, mounts the dashboard at / and adds the monitor's
// components to r (monitor.Monitor.Register).
func (p program) Setup(_ context.Context, log *slog.Logger, r *daemon.Runner) error {
	m, err := monitor.New(p.cfg, log)
	if err != nil {
		return err
	}
	m.Handle("/", web.Handler(m))
	ln, err := m.Listen()
	if err != nil {
		return err
	}
	m.Register(r, ln)
	return nil
}

func main() {
	os.Exit(daemon.Main("kmonitor", os.Args[1:], os.Stdout, os.Stderr, func(path string) (daemon.Program, error) {
		cfg, err := monitor.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		return program{cfg}, nil
	}))
}

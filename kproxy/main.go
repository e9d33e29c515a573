// Command kproxy is the HTTP commit proxy: POST /commit?topic=T&key=K&acks=A writes
// the request body as one Kafka record and the status code tells whether Kafka has
// it. Run it as `kproxy -f kproxy.yaml`; `kproxy -t -f kproxy.yaml` checks the file.
// SIGHUP reopens the log file and, when kproxy serves HTTPS, reads the TLS files
// again.
package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/httpapi"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

type program struct{ cfg proxy.Config }

func (p program) Logging() logging.Config        { return p.cfg.Config }
func (p program) ShutdownTimeout() time.Duration { return p.cfg.Shutdown }

// Setup makes the core, its HTTP front and the WebSocket gateways, and adds
// the front's components to r (httpapi.Server.Register).
func (p program) Setup(ctx context.Context, log *slog.Logger, r *daemon.Runner) error {
	gateways := p.cfg.WebSocket.MemoryBound(p.cfg.MaxConnections)
	bound := p.cfg.MemoryBound() + gateways
	if os.Getenv("GOMEMLIMIT") == "" {
		// Collect garbage before the process grows past what the configuration
		// bounds its live memory to.
		debug.SetMemoryLimit(bound)
	}
	log.Info("memory bound", "bytes", bound, "max_connections", p.cfg.MaxConnections,
		"max_header_bytes", p.cfg.MaxHeaderBytes, "max_body_memory_bytes", p.cfg.MaxBodyMemoryBytes,
		"websocket_gateways_bytes", gateways)
	core, err := proxy.New(ctx, p.cfg, log)
	if err != nil {
		return err
	}
	srv, err := httpapi.New(core, log)
	if err != nil {
		core.Close()
		return err
	}
	if err := mountGateways(srv, core, log); err != nil {
		core.Close()
		return err
	}
	return srv.Register(r, nil)
}

func main() {
	os.Exit(daemon.Main("kproxy", os.Args[1:], os.Stdout, os.Stderr, func(path string) (daemon.Program, error) {
		cfg, err := proxy.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		return program{cfg}, nil
	}))
}

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
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/httpapi"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

type program struct{ cfg proxy.Config }

func (p program) Logging() logging.Config        { return p.cfg.Config }
func (p program) ShutdownTimeout() time.Duration { return p.cfg.Shutdown }

func (p program) Run(ctx context.Context, log *slog.Logger) error {
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
	if p.cfg.TLS.Enabled() {
		defer reloadTLSOnSIGHUP(srv)()
	}
	return srv.Run(ctx)
}

// reloadTLSOnSIGHUP reads the TLS files again on every SIGHUP (pkg/daemon reopens
// the log file on the same signal) until the returned stop is called. A failed
// reload is logged by ReloadTLS and keeps the previous certificate.
func reloadTLSOnSIGHUP(srv *httpapi.Server) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-hup:
				_ = srv.ReloadTLS()
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
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

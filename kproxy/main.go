// Command kproxy is the HTTP commit proxy: POST /commit?topic=T&key=K&acks=A writes
// the request body as one Kafka record and the status code tells whether Kafka has
// it. Run it as `kproxy -f kproxy.yaml`; `kproxy -t -f kproxy.yaml` checks the file.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/daemon"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

type program struct{ cfg proxy.Config }

func (p program) Logging() logging.Config        { return p.cfg.Config }
func (p program) ShutdownTimeout() time.Duration { return p.cfg.Shutdown }

func (p program) Run(ctx context.Context, log *slog.Logger) error {
	px, err := proxy.New(ctx, p.cfg, log)
	if err != nil {
		return err
	}
	return px.Run(ctx)
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

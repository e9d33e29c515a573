// Package proxy is kproxy's core, the same for every front door: the Kafka clients,
// the admission of a record (authentication, topic rules, backpressure, Kafka's
// health), Commit, which writes one record and answers only after Kafka
// acknowledged it at the requested acks level, and CommitBatch, which does the
// same for each record of a batch. Both have a form that calls back instead of
// waiting (CommitAsync, CommitBatchAsync), for doors that serve many requests
// on one goroutine. It knows no transport: a door
// (kproxy/httpapi for POST /commit, the WebSocket gateways) parses its requests,
// calls Admit and Commit, and maps the errors defined here to its own answers.
package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/kafkaconn"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

// Proxy is kproxy's core. Create it with New; run RunHealth while serving; end with
// StartDrain, then Shutdown. Its methods are safe for concurrent use.
type Proxy struct {
	cfg            Config
	log            *slog.Logger
	brokers        []string // seed brokers, configured or discovered
	prod           *producers
	health         *health
	metrics        *metrics
	reg            *prometheus.Registry
	ready          *opshttp.Ready
	topics         *topicRules
	topicCache     sync.Map // topic -> bool
	topicCacheSize atomic.Int64
	tokens         []tokenDigest
	defaultAcks    Acks
	produceTimeout time.Duration
	inflight       atomic.Int64
	mem            bodyMemory
	sweep          *sweeper // gives up commits at produce_timeout_ms
	draining       atomic.Bool
	purging        sync.Map       // topic -> true while its purge runs
	failLogs       sync.Map       // machine code -> *Throttle of "not acknowledged" lines
	bg             sync.WaitGroup // background purges
	closeOnce      sync.Once
}

// New creates the core from a checked configuration. Brokers come from
// broker_hosts or, when that is empty, from ZooKeeper. extra options are appended
// to every Kafka client's options (tests use them for hooks). The Kafka clients
// connect lazily, on the first record or health probe.
func New(ctx context.Context, cfg Config, log *slog.Logger, extra ...kgo.Opt) (*Proxy, error) {
	topics, err := newTopicRules(cfg.Topics)
	if err != nil {
		return nil, err
	}
	acks, err := ParseAcks(cfg.DefaultAcks)
	if err != nil {
		return nil, fmt.Errorf("default_acks: %w", err)
	}
	if cfg.TLS.Enabled() {
		// The listener reads the files again; refuse to start on files that broke
		// since the configuration was checked.
		if _, err := cfg.TLS.ServerConfig(); err != nil {
			return nil, err
		}
	}
	brokers := cfg.BrokerHosts
	if len(brokers) == 0 {
		brokers, err = kafkaconn.DiscoverBrokers(ctx, cfg.ZKHosts, cfg.ZKChroot, time.Duration(cfg.ZKTimeoutMs)*time.Millisecond)
		if err != nil {
			return nil, fmt.Errorf("discover brokers: %w", err)
		}
		log.Info("brokers discovered in ZooKeeper", "brokers", brokers, "chroot", cfg.ZKChroot)
	}
	prod, err := newProducers(cfg, brokers, log, extra...)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:            cfg,
		log:            log,
		brokers:        brokers,
		prod:           prod,
		reg:            opshttp.NewRegistry(),
		ready:          &opshttp.Ready{},
		topics:         topics,
		defaultAcks:    acks,
		produceTimeout: time.Duration(cfg.ProduceTimeoutMs) * time.Millisecond,
		tokens:         digestTokens(cfg.Auth.Tokens),
	}
	p.mem.limit = cfg.MaxBodyMemoryBytes
	p.sweep = newSweeper(p.produceTimeout, p.expire)
	probe := prod.byAcks[AcksLeader.index()][0]
	p.health = newHealth(probe.Ping, log)
	p.metrics = newMetrics(p.reg, p)
	p.ready.Add("kafka", func(context.Context) error { return p.health.err() })
	p.ready.Add("serving", func(context.Context) error {
		if p.draining.Load() {
			return ErrShuttingDown
		}
		return nil
	})
	return p, nil
}

// Config returns the configuration the core was created with.
func (p *Proxy) Config() Config { return p.cfg }

// DefaultAcks returns the acks level of requests that name none (default_acks).
func (p *Proxy) DefaultAcks() Acks { return p.defaultAcks }

// Registry returns the Prometheus registry behind /metrics; doors register their
// own series in it.
func (p *Proxy) Registry() *prometheus.Registry { return p.reg }

// Ready returns the readiness checks behind /readyz: Kafka reachable, not draining.
func (p *Proxy) Ready() *opshttp.Ready { return p.ready }

// RunHealth probes Kafka until ctx ends (see health), so that an outage gives
// immediate ErrKafkaUnavailable answers and recovery is noticed by itself. The
// server runs it while it serves.
func (p *Proxy) RunHealth(ctx context.Context) { p.health.run(ctx) }

// StartDrain makes Admit refuse new records with ErrShuttingDown and /readyz
// answer 503; records already admitted go on. It is called when kproxy stops
// accepting work.
func (p *Proxy) StartDrain() { p.draining.Store(true) }

// Draining reports whether StartDrain was called.
func (p *Proxy) Draining() bool { return p.draining.Load() }

// Shutdown waits until the Kafka clients acknowledged every record they hold or
// ctx ends, then closes them. Call it after the doors stopped committing.
func (p *Proxy) Shutdown(ctx context.Context) error {
	var err error
	if ferr := p.prod.flush(ctx); ferr != nil {
		err = fmt.Errorf("flush Kafka clients (%d records buffered): %w", p.prod.buffered(), ferr)
	}
	p.Close()
	return err
}

// Close closes the Kafka clients; records they still hold fail. It is safe to
// call more than once.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.bg.Wait()
		p.prod.close()
		p.sweep.close()
	})
}

// Package pubsub serves the Apache APISIX pubsub protocol over WebSocket: each
// binary frame holds one PubSubReq (ping, list offsets, fetch records of one
// partition) and is answered with one PubSubResp carrying its sequence, in the
// order the requests came, records read straight from Kafka through a shared
// franz-go client.
//
// Unlike APISIX, a fetch answer starts exactly at the requested offset (never
// with records before it), records of compressed batches are served, every
// request gets an answer, and Kafka errors name the topic and partition.
//
// Handler is an http.Handler for one path of kproxy's server; authentication,
// topic rules, limits, logging and metrics come in through Options. The
// protocol's messages (PubSubReq, PubSubResp, ...) are generated from
// pubsub.proto.
package pubsub

//go:generate protoc --plugin=protoc-gen-go=./protoc-gen-go.sh --go_out=. --go_opt=paths=source_relative pubsub.proto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
)

// Defaults of Options' zero values.
const (
	DefaultMaxConnections = 1024
	DefaultMaxFrameBytes  = 64 << 10
	DefaultMaxInFlight    = 8
	DefaultFetchMaxBytes  = 1 << 20
	DefaultFetchMaxWait   = 500 * time.Millisecond
	DefaultRequestTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
)

// Options configure a Handler. Zero values take the defaults above.
type Options struct {
	// Client is the franz-go client every offset lookup and fetch goes
	// through; required. It needs no consumer options (no topics, no group):
	// the handler sends ListOffsets, Metadata and Fetch requests itself. The
	// handler never closes it.
	Client *kgo.Client

	// Authorize decides whether an upgrade request may connect (check the
	// Bearer token, of the Authorization header or of ?access_token=); false
	// answers 401 before the upgrade. Nil lets everyone in.
	Authorize func(r *http.Request) bool

	// TopicAllowed returns nil when clients may read topic, else an error
	// whose text is sent to the client (in an ErrorResp with code 403). Nil
	// allows every topic except internal ones (names starting with "__").
	TopicAllowed func(topic string) error

	// CheckOrigin decides whether a browser page of the request's Origin may
	// connect (403 otherwise). Nil allows every origin: APISIX does, and
	// authentication is by token, never by cookie.
	CheckOrigin func(r *http.Request) bool

	// MaxConnections bounds open connections; more upgrades get 503.
	// Default DefaultMaxConnections.
	MaxConnections int

	// MaxFrameBytes bounds one received frame; a larger one closes the
	// connection with status 1009 (message too big). Default
	// DefaultMaxFrameBytes.
	MaxFrameBytes int64

	// MaxInFlight bounds the requests of one connection read and not yet
	// answered: beyond it the connection is not read until an answer is
	// written, so a client that sends without reading holds at most this many
	// answers in memory. Default DefaultMaxInFlight.
	MaxInFlight int

	// FetchMaxBytes bounds the record batches one fetch answer is read
	// from, counted as Kafka stores them (compressed or not), as Kafka's own
	// fetch limit: whole batches, but always the batch of the requested
	// offset and the record after it, however large. Default
	// DefaultFetchMaxBytes.
	FetchMaxBytes int32

	// FetchMaxWait is how long a fetch at the log end waits for new records
	// before it answers with none. Default DefaultFetchMaxWait.
	FetchMaxWait time.Duration

	// RequestTimeout bounds the Kafka requests of one command; past it the
	// answer is an ErrorResp with code 504. Default DefaultRequestTimeout.
	RequestTimeout time.Duration

	// WriteTimeout bounds writing one answer; a client that does not read
	// for that long is disconnected. Default DefaultWriteTimeout.
	WriteTimeout time.Duration

	// Logger receives connection and error logs; nil discards them.
	Logger *slog.Logger

	// Registerer receives the kproxy_pubsub_* metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// withDefaults returns o with zero values replaced by defaults, or an error
// naming every negative value.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("pubsub: Options.Client is nil"))
	}
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("pubsub: Options.%s: %d is negative", name, v))
		}
	}
	neg("MaxConnections", int64(o.MaxConnections))
	neg("MaxFrameBytes", o.MaxFrameBytes)
	neg("MaxInFlight", int64(o.MaxInFlight))
	neg("FetchMaxBytes", int64(o.FetchMaxBytes))
	neg("FetchMaxWait", int64(o.FetchMaxWait))
	neg("RequestTimeout", int64(o.RequestTimeout))
	neg("WriteTimeout", int64(o.WriteTimeout))
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	maxConns, maxInFlight, fetchBytes := int64(o.MaxConnections), int64(o.MaxInFlight), int64(o.FetchMaxBytes)
	def(&maxConns, DefaultMaxConnections)
	def(&maxInFlight, DefaultMaxInFlight)
	def(&fetchBytes, DefaultFetchMaxBytes)
	def(&o.MaxFrameBytes, DefaultMaxFrameBytes)
	o.MaxConnections, o.MaxInFlight, o.FetchMaxBytes = int(maxConns), int(maxInFlight), int32(fetchBytes)
	for _, d := range []struct {
		v *time.Duration
		d time.Duration
	}{{&o.FetchMaxWait, DefaultFetchMaxWait}, {&o.RequestTimeout, DefaultRequestTimeout}, {&o.WriteTimeout, DefaultWriteTimeout}} {
		if *d.v == 0 {
			*d.v = d.d
		}
	}
	if o.TopicAllowed == nil {
		o.TopicAllowed = denyInternal
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	return o, nil
}

// denyInternal is the topic rule without Options.TopicAllowed.
func denyInternal(topic string) error {
	if strings.HasPrefix(topic, "__") {
		return errors.New("internal topics (names starting with __) are not served")
	}
	return nil
}

// Handler serves the pubsub protocol on upgraded WebSocket connections. Create
// it with New; it is safe for concurrent use. Shutdown ends its connections.
type Handler struct {
	opts    Options
	reader  *reader
	gate    *wsgate.Gate[*conn]
	metrics *metrics
	log     *slog.Logger
}

// New returns a Handler, or an error when opts lack the client, hold a
// negative limit or the metrics cannot be registered.
func New(opts Options) (*Handler, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		opts:   opts,
		reader: newReader(opts.Client, opts.FetchMaxBytes, opts.FetchMaxWait),
		log:    opts.Logger,
	}
	h.gate, err = wsgate.New(wsgate.Options[*conn]{
		Name:             "pubsub",
		MetricPrefix:     "kproxy_pubsub",
		Open:             func(s *wsgate.Socket) *conn { return newConn(h, s) },
		Authorize:        opts.Authorize,
		CheckOrigin:      opts.CheckOrigin,
		MaxConnections:   opts.MaxConnections,
		MaxFrameBytes:    opts.MaxFrameBytes,
		HandshakeTimeout: opts.WriteTimeout,
		FramesHelp:       "Frames received by command (undecodable and text frames included).",
		SentBytesHelp:    "Bytes of answers written (frame payloads).",
		FrameTypes:       []string{inPing, inEmpty, inListOffset, inFetch, inNoCommand, inUndecodable, inText},
		Logger:           opts.Logger,
		Registerer:       opts.Registerer,
	})
	if err != nil {
		return nil, err
	}
	if h.metrics, err = newMetrics(opts.Registerer, h.gate.Metrics()); err != nil {
		return nil, fmt.Errorf("pubsub: register metrics: %w", err)
	}
	return h, nil
}

// ServeHTTP upgrades a GET with the WebSocket handshake and serves the
// connection until either side closes it. Before the upgrade it answers 405
// to other methods, 426 to a request without the handshake, 401 when
// Options.Authorize refuses, and 503 at MaxConnections or while shutting
// down; each with a JSON body {"error","code"} as kproxy's other answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.gate.ServeHTTP(w, r)
}

// Shutdown refuses new upgrades, stops reading requests on every connection,
// lets the requests already read get their answers, closes each connection
// with status 1001 (going away) and waits for them. When ctx ends first the
// remaining connections are closed at once and ctx's error is returned.
// Calling it again is safe.
func (h *Handler) Shutdown(ctx context.Context) error { return h.gate.Shutdown(ctx) }

// Connections returns the number of open connections.
func (h *Handler) Connections() int { return h.gate.Connections() }

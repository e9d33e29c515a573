// Package devicehive serves the devicehive ws-kafka-proxy protocol over
// WebSocket: JSON text frames holding one message {"id","t","a","p"} or an
// array of them, handled in order, each answered with one reply carrying the
// request's id as "id" and "refid", its "t" and "a", a status "s" (0 ok) and a
// payload "p" (the reason when "s" is not 0). The messages create and list
// topics, join and leave Kafka consumer groups (topic subscribe, topic
// unsubscribe), produce records (notif create) and report the subscriptions
// (health); the records of a subscription arrive as frames of notifications
// [{"id":N,"t":"notif","p":"value",...}].
//
// Unlike upstream, a notif create is answered, and only once Kafka
// acknowledged the record (through kproxy's core, with its topic rules,
// backpressure and timeouts); notifications carry their topic, partition,
// offset and key; upgrades can require a token; and a slow client holds a
// bounded amount of memory.
//
// Handler is an http.Handler for one path of kproxy's server.
package devicehive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/wsgate"
)

// Defaults of Options' zero values.
const (
	DefaultMaxConnections    = 1024
	DefaultMaxFrameBytes     = 1 << 20
	DefaultMaxSubscriptions  = 4
	DefaultSendQueueBytes    = 256 << 10
	DefaultMaxNotifsPerFrame = 100
	DefaultWriteTimeout      = 10 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultJoinTimeout       = 30 * time.Second
	DefaultPingInterval      = 30 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultSessionTimeout    = 30 * time.Second
)

// Options configure a Handler. Zero values take the defaults above.
type Options struct {
	// Core is kproxy's core: notif create goes through its Admit and Commit,
	// topic names through its topic rules, upgrades through its tokens, and
	// every Kafka client the handler opens is made by its NewKafkaClient.
	// Required; the handler never closes it.
	Core *proxy.Proxy

	// DefaultGroup is the consumer group of a subscribe that names none; ""
	// refuses such a subscribe.
	DefaultGroup string

	// StartAtOldest makes a consumer group without committed offsets start at
	// the log start; by default it starts at the log end, as upstream.
	StartAtOldest bool

	// AllowTopicCreate lets clients create topics (that the topic rules allow).
	AllowTopicCreate bool

	// MaxConnections bounds open connections; more upgrades get 503.
	MaxConnections int

	// MaxFrameBytes bounds one received frame; a larger one closes the
	// connection with status 1009 (message too big).
	MaxFrameBytes int64

	// MaxSubscriptions bounds the consumer groups one connection is a member
	// of at once; each membership is a Kafka client of its own.
	MaxSubscriptions int

	// SendQueueBytes bounds the keys and values of the notifications waiting
	// to be written to one connection. When a consumer's next batch does not
	// fit, the consumer stops fetching (franz-go PauseFetchTopics) until the
	// writer has made room; a batch always fits an empty queue.
	SendQueueBytes int

	// MaxNotifsPerFrame bounds the notifications of one frame.
	MaxNotifsPerFrame int

	// WriteTimeout bounds writing one frame; a client that reads nothing for
	// that long is disconnected, which also ends its consumer groups'
	// memberships and so hands their partitions to the other members.
	WriteTimeout time.Duration

	// RequestTimeout bounds the Kafka requests of one message (topic create,
	// topic list, the topic check of a subscribe). notif create is bounded by
	// the core's produce_timeout_ms instead.
	RequestTimeout time.Duration

	// JoinTimeout bounds the wait of a subscribe for its first partition
	// assignment; past it the answer is an error and the membership ends.
	JoinTimeout time.Duration

	// PingInterval is how often an idle connection is pinged; a client that
	// sends nothing, pongs included, for two intervals is disconnected.
	PingInterval time.Duration

	// HeartbeatInterval and SessionTimeout are the consumer group members'
	// (Kafka's heartbeat.interval.ms and session.timeout.ms).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration

	// MemberOpts are appended to the options of every group member's Kafka
	// client (tests add hooks).
	MemberOpts []kgo.Opt

	// CheckOrigin decides whether a browser page of the request's Origin may
	// connect (403 otherwise). Nil allows every origin: authentication is by
	// token, never by cookie.
	CheckOrigin func(r *http.Request) bool

	// Logger receives connection and error logs; nil discards them.
	Logger *slog.Logger

	// Registerer receives the kproxy_devicehive_* metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// withDefaults returns o with zero values replaced by defaults, or an error
// naming every missing or negative value.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Core == nil {
		errs = append(errs, errors.New("devicehive: Options.Core is nil"))
	}
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"MaxConnections", int64(o.MaxConnections)}, {"MaxFrameBytes", o.MaxFrameBytes},
		{"MaxSubscriptions", int64(o.MaxSubscriptions)}, {"SendQueueBytes", int64(o.SendQueueBytes)},
		{"MaxNotifsPerFrame", int64(o.MaxNotifsPerFrame)}, {"WriteTimeout", int64(o.WriteTimeout)},
		{"RequestTimeout", int64(o.RequestTimeout)}, {"JoinTimeout", int64(o.JoinTimeout)},
		{"PingInterval", int64(o.PingInterval)}, {"HeartbeatInterval", int64(o.HeartbeatInterval)},
		{"SessionTimeout", int64(o.SessionTimeout)},
	} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("devicehive: Options.%s: %d is negative", v.name, v.v))
		}
	}
	if len(errs) > 0 {
		return o, errors.Join(errs...)
	}
	setInt(&o.MaxConnections, DefaultMaxConnections)
	setInt(&o.MaxSubscriptions, DefaultMaxSubscriptions)
	setInt(&o.SendQueueBytes, DefaultSendQueueBytes)
	setInt(&o.MaxNotifsPerFrame, DefaultMaxNotifsPerFrame)
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	for _, d := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&o.WriteTimeout, DefaultWriteTimeout}, {&o.RequestTimeout, DefaultRequestTimeout},
		{&o.JoinTimeout, DefaultJoinTimeout}, {&o.PingInterval, DefaultPingInterval},
		{&o.HeartbeatInterval, DefaultHeartbeatInterval}, {&o.SessionTimeout, DefaultSessionTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.d
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	return o, nil
}

func setInt(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

// Handler serves the devicehive protocol on upgraded WebSocket connections.
// Create it with New; it is safe for concurrent use. Shutdown ends its
// connections and their consumer group memberships.
type Handler struct {
	opts    Options
	core    *proxy.Proxy
	admin   *kgo.Client // topic create, topic list, topic checks
	gate    *wsgate.Gate[*conn]
	metrics *metrics
	log     *slog.Logger
	closed  sync.Once
}

// New returns a Handler, or an error when opts lack the core, hold a negative
// value, or the metrics cannot be registered.
func New(opts Options) (*Handler, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, core: opts.Core, log: opts.Logger}
	h.gate, err = wsgate.New(wsgate.Options[*conn]{
		Name:             "devicehive",
		MetricPrefix:     "kproxy_devicehive",
		Open:             func(s *wsgate.Socket) *conn { return newConn(h, s) },
		Authorize:        opts.Core.AuthorizedUpgrade,
		CheckOrigin:      opts.CheckOrigin,
		MaxConnections:   opts.MaxConnections,
		MaxFrameBytes:    opts.MaxFrameBytes,
		HandshakeTimeout: opts.WriteTimeout,
		// Leaving a group may wait for a rebalance in progress; do not hold
		// the process past its shutdown much longer for that.
		AbortWait:     time.Second,
		IDKey:         "ws", // the number health reports
		ClosedHelp:    "Closed devicehive connections by reason (stalled: the client read nothing for write_timeout_ms).",
		FramesHelp:    "Frames received by kind: message (one), batch (an array), invalid (not JSON).",
		SentBytesHelp: "Bytes of frames written (replies and notifications).",
		FrameTypes:    []string{frameSingle, frameBatch, frameInvalid},
		CloseReasons: []string{wsgate.ClosedByClient, wsgate.ClosedReadErr, wsgate.ClosedTooLarge, wsgate.ClosedWriteErr,
			wsgate.ClosedStalled, wsgate.ClosedIdle, wsgate.ClosedShutdown},
		Logger:     opts.Logger,
		Registerer: opts.Registerer,
	})
	if err != nil {
		return nil, err
	}
	if h.metrics, err = newMetrics(opts.Registerer, h.gate.Metrics()); err != nil {
		return nil, fmt.Errorf("devicehive: register metrics: %w", err)
	}
	if h.admin, err = opts.Core.NewKafkaClient(); err != nil {
		return nil, fmt.Errorf("devicehive: %w", err)
	}
	return h, nil
}

// ServeHTTP upgrades a GET with the WebSocket handshake and serves the
// connection until either side closes it. Before the upgrade it answers 405
// to other methods, 426 to a request without the handshake, 401 when a token
// is required and missing or wrong (Authorization: Bearer, or ?access_token=
// for browsers), and 503 while shutting down or at MaxConnections; each with a
// JSON body {"error","code"} as kproxy's other answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.gate.ServeHTTP(w, r)
}

// Shutdown refuses new upgrades and ends every connection: it stops reading
// requests (a message being handled gets its reply), leaves each connection's
// consumer groups, committing the offsets of the records sent, closes the
// connection with status 1001 (going away) and waits for all of that. When
// ctx ends first the remaining connections are closed at once, their group
// members get one more second to leave, and ctx's error is returned. Then it
// closes the handler's own Kafka client. Calling it again is safe.
func (h *Handler) Shutdown(ctx context.Context) error {
	err := h.gate.Shutdown(ctx)
	h.closed.Do(h.admin.Close)
	return err
}

// Connections returns the number of open connections.
func (h *Handler) Connections() int { return h.gate.Connections() }

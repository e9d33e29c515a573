// Package push delivers one record to a module's HTTP backends: URI placeholders,
// headers, timeouts, round-robin servers with failing ones benched, retries with
// backoff, Retry-After and retry_on_status.
package push

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/backoff"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// DefaultMaxResponseBytes is Config.MaxResponseBytes when it is 0.
const DefaultMaxResponseBytes = 64 << 10

// maxRetryAfter caps the pause a Retry-After answer can impose.
const maxRetryAfter = 5 * time.Minute

// userAgent is sent unless a User-Agent header is configured.
const userAgent = "ktransfer"

// Config describes how a module's records are pushed. Only Servers and URI are
// required; the zero value of every other field is valid.
type Config struct {
	// Servers are the backends, used round-robin: "host:port" (plain HTTP) or an
	// http:// or https:// base URL whose path prefixes URI.
	Servers []string
	// URI is the request path and query with placeholders {#TOPIC} {#PARTITION}
	// {#TRANSID} {#KEY} {#METHOD} (see ExpandURI). It must start with "/".
	URI string
	// Headers are one-entry maps of header name to value, names in any case.
	// Host sets the request's Host header (default: the server's host:port).
	// Content-Type defaults to application/x-msgpack and User-Agent to
	// ktransfer; Content-Length and Transfer-Encoding cannot be set.
	Headers []map[string]string
	// ForwardHeaders are record headers sent as HTTP headers of the same name on
	// every push of the record (W3C traceparent and tracestate carry a trace from
	// the producer to the backend). Names match the record's in any case; the
	// first record header of a name is sent; a value with control characters or
	// longer than MaxForwardedValue is not. Empty: none.
	ForwardHeaders []string
	// ConnTimeout bounds connecting: the TCP dial and, for https, the TLS
	// handshake. 0 = no limit.
	ConnTimeout time.Duration
	// WriteTimeout bounds sending the request, head and body. 0 = no limit.
	WriteTimeout time.Duration
	// ReadTimeout bounds the time from the request written to the response read
	// (status, headers and the body, as far as it is read). 0 = no limit.
	ReadTimeout time.Duration
	// MaxRetries is the number of retries after the first attempt; -1 retries
	// until the record is delivered, fails permanently or the context ends.
	MaxRetries int
	// RetryInterval is the pause before a retry.
	RetryInterval time.Duration
	// BackoffMax, when above RetryInterval, makes the pauses grow: retry n waits
	// a random time between half and all of RetryInterval*2^(n-1) (1 ms is used
	// for a RetryInterval of 0), capped at BackoffMax, and never less than
	// RetryInterval (a backoff.Policy with Initial RetryInterval and Max
	// BackoffMax). A Retry-After answer sets the pause instead.
	BackoffMax time.Duration
	// RetryOn lists the statuses worth a retry; an answer with any other non-2xx
	// status fails the push at once (Result.Permanent). Empty: every failure is
	// retried. Transport errors and timeouts are always retried.
	RetryOn []StatusRange
	// FailThreshold consecutive retryable failures of a server take it out of
	// the rotation for Cooldown; then one probe request is let through, and its
	// success puts the server back while its failure benches it again. When all
	// servers are benched, the one benched longest ago is used. 0 = never bench.
	FailThreshold int
	// Cooldown is how long a server stays benched.
	Cooldown time.Duration
	// Slow, when positive, logs a delivered push that took longer at warning
	// level (expected_processing_time_ms). With more than one server it is also
	// the stall bound (at least 1 s): a server that has owed an answer that long
	// without giving any, while another server answers, gets no new requests,
	// and its requests waiting longer are abandoned and retried elsewhere,
	// whatever the timeouts (see ErrAbandoned and stall.go).
	Slow time.Duration
	// MaxResponseBytes is how much of a response body is read so that its
	// connection can carry the next request; a longer body closes the connection
	// instead. 0 = DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// TLS is the base configuration for https:// servers; nil = system roots.
	// ServerName defaults to the server's host.
	TLS *tls.Config
}

// StatusRange is an inclusive range of HTTP statuses; a single status has Lo == Hi.
type StatusRange struct{ Lo, Hi int }

// Record is what is pushed: the body is Value; the rest fills the URI.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	// Method fills {#METHOD}; empty becomes "*".
	Method string
	// Headers are the record's headers; those named in Config.ForwardHeaders
	// are sent.
	Headers []kgo.RecordHeader
}

// Result is the outcome of a push.
type Result struct {
	// Attempts is the number of requests answered or failed (0 when the context
	// ended before the first).
	Attempts int
	// Status is the last HTTP status, 0 if none was received.
	Status int
	// Err is nil when the record was delivered (2xx). Otherwise it is the last
	// attempt's error (a *StatusError, or a transport error, wrapping
	// ErrTimeout for timeouts), or the context's error when it ended first.
	Err error
	// Permanent reports a failure with a status outside Config.RetryOn.
	Permanent bool
	// Server is the server of the last attempt, as configured.
	Server string
}

// Events are optional callbacks, called from the pushing goroutine; any may be
// nil. They must be safe for concurrent use when several goroutines push.
type Events struct {
	// Attempt is called after every attempt: status 0 when none was received,
	// err nil on a 2xx.
	Attempt func(server string, status int, err error, took time.Duration)
	// Retry is called before the pause preceding a retry; attempt is the number
	// of attempts made so far (1 before the first retry).
	Retry func(attempt int, wait time.Duration)
	// Unsolicited is called when a server sent bytes no request asked for:
	// found on an idle connection before it carried a request (which then goes
	// out on another connection), or after an answer. The connection is closed
	// and a warning logged; it is a protocol error of the server.
	Unsolicited func(server string)
	// HeaderDropped is called when a record header named in ForwardHeaders was
	// not sent: its value has control characters or is too long.
	HeaderDropped func(name string)
}

// Pusher pushes records to one module's servers. It is safe for concurrent use;
// its connections are shared by all pushing goroutines.
type Pusher struct {
	cfg     Config
	log     *slog.Logger
	ev      Events
	uri     template
	servers []*server
	host    string   // configured Host header, "" = the server's
	head    []byte   // header lines after Host, up to Content-Length
	forward []string // Config.ForwardHeaders as written, checked
	maxBody int64
	dialer  net.Dialer
	next    atomic.Uint64
	now     func() time.Time // the clock of benching

	// The watch of stalled servers (stall.go), with more than one server.
	epoch      time.Time     // origin of the flights' times
	stallAfter time.Duration // the stall bound; 0 = not watched
	watching   atomic.Bool   // the watch was started, or will not be (closed)
	watchMu    sync.Mutex
	watchStop  chan struct{}
	watchDone  chan struct{}
	closed     bool // Close was called: no watch starts

	beforeExchange func(c *conn) // tests: runs when an attempt has its connection
}

// New checks cfg, reporting every problem at once, and returns a Pusher.
func New(cfg Config, log *slog.Logger, ev Events) (*Pusher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pusher{cfg: cfg, log: log, ev: ev, maxBody: cfg.MaxResponseBytes, now: time.Now}
	if p.maxBody == 0 {
		p.maxBody = DefaultMaxResponseBytes
	}
	var errs []error
	bad := func(field string, value any, rule string) {
		errs = append(errs, fmt.Errorf("%s: %v %s", field, value, rule))
	}
	if len(cfg.Servers) == 0 {
		bad("servers", "[]", "must list at least one server")
	}
	for _, s := range cfg.Servers {
		sv, err := parseServer(s, cfg.TLS)
		if err != nil {
			bad("servers", strconv.Quote(s), fmt.Sprintf("is not host:port or an http(s) URL: %v", err))
			continue
		}
		p.servers = append(p.servers, sv)
	}
	if err := CheckURI(cfg.URI); err != nil {
		bad("uri", strconv.Quote(cfg.URI), err.Error())
	}
	p.uri = compileURI(cfg.URI)
	errs = append(errs, p.buildHead()...)
	errs = append(errs, p.buildForward()...)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"conn_timeout", cfg.ConnTimeout}, {"write_timeout", cfg.WriteTimeout},
		{"read_timeout", cfg.ReadTimeout}, {"retry_interval", cfg.RetryInterval},
		{"backoff_max", cfg.BackoffMax}, {"cooldown", cfg.Cooldown}, {"slow", cfg.Slow},
	} {
		if d.v < 0 {
			bad(d.name, d.v, "must not be negative")
		}
	}
	if cfg.MaxRetries < -1 {
		bad("max_retries", cfg.MaxRetries, "must be -1 (forever) or more")
	}
	for _, r := range cfg.RetryOn {
		if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
			bad("retry_on", fmt.Sprintf("%d-%d", r.Lo, r.Hi), "is not a range within 100..599")
		}
	}
	if cfg.FailThreshold < 0 {
		bad("fail_threshold", cfg.FailThreshold, "must not be negative")
	}
	if cfg.MaxResponseBytes < 0 {
		bad("max_response_bytes", cfg.MaxResponseBytes, "must not be negative")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	p.dialer = net.Dialer{Timeout: cfg.ConnTimeout, KeepAlive: 30 * time.Second}
	p.epoch = time.Now()
	if len(p.servers) > 1 {
		p.stallAfter = max(cfg.Slow, minStallAfter)
	}
	return p, nil
}

// CheckServer tells why New would refuse s as a backend server (it must be
// HOST:PORT or an http:// or https:// base URL); nil when it would not.
func CheckServer(s string) error {
	_, err := parseServer(s, nil)
	return err
}

// CheckURI tells why New would refuse uri as the request URI template (it must
// start with /, hold no spaces or control characters, and in its path, before
// the first ?, have two hex digits after every %); nil when it would not.
func CheckURI(uri string) error {
	var rules []string
	if !strings.HasPrefix(uri, "/") {
		rules = append(rules, "must start with /")
	}
	if strings.ContainsFunc(uri, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		rules = append(rules, "must not contain spaces or control characters")
	}
	path, _, _ := strings.Cut(uri, "?")
	if _, err := url.PathUnescape(path); err != nil {
		// Servers refuse such a path (net/http: 400); % is written %25.
		rules = append(rules, "must write % as %25 in its path (% starts an escape of two hex digits there)")
	}
	if len(rules) == 0 {
		return nil
	}
	return errors.New(strings.Join(rules, " and "))
}

// CheckHeaders returns one error for each configured header New would refuse:
// a name that is not a token, a value with control characters, Content-Length
// or Transfer-Encoding (set from the body), a Host that is not a host.
func CheckHeaders(headers []map[string]string) []error {
	p := &Pusher{cfg: Config{Headers: headers}}
	return p.buildHead()
}

// buildHead renders the configured headers once.
func (p *Pusher) buildHead() []error {
	var errs []error
	var head []byte
	hasType, hasAgent := false, false
	for i, m := range p.cfg.Headers {
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		}) {
			name, value := textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(m[k])
			switch {
			case !http1.IsToken(name):
				errs = append(errs, fmt.Errorf("headers[%d]: %q is not a header name", i, k))
				continue
			case !http1.ValidFieldValue(value):
				errs = append(errs, fmt.Errorf("headers[%d]: %s value %q contains control characters", i, name, value))
				continue
			case name == "Content-Length" || name == "Transfer-Encoding":
				errs = append(errs, fmt.Errorf("headers[%d]: %s is set from the body and cannot be configured", i, name))
				continue
			case name == "Host":
				if value == "" || strings.ContainsAny(value, " \t/") {
					errs = append(errs, fmt.Errorf("headers[%d]: Host %q is not a host", i, value))
				}
				p.host = value
				continue
			case name == "Content-Type":
				hasType = true
			case name == "User-Agent":
				hasAgent = true
			}
			head = http1.AppendField(head, name, value)
		}
	}
	if !hasType {
		head = http1.AppendField(head, "Content-Type", "application/x-msgpack")
	}
	if !hasAgent {
		head = http1.AppendField(head, "User-Agent", userAgent)
	}
	p.head = head
	return errs
}

// Close closes the idle connections and ends the watch of stalled servers;
// connections in use are closed when their request ends. Pushing after Close
// still works, on new connections that are closed after each request, without
// the watch. Close is safe to call more than once.
func (p *Pusher) Close() {
	p.stopWatch()
	for _, s := range p.servers {
		s.closeIdle(true)
	}
}

// Push delivers r: it tries until a 2xx answer, a permanent failure, the last
// retry, or the end of ctx (then Result.Err is ctx's error). Each attempt goes
// to the next server in the rotation. Push is safe for concurrent use.
func (p *Pusher) Push(ctx context.Context, r Record) Result {
	var res Result
	start := time.Now()
	idx := p.next.Add(1) - 1
	if p.stallAfter > 0 && !p.watching.Load() {
		p.startWatch()
	}
	abandons := 0
	for {
		if err := ctx.Err(); err != nil {
			res.Err = err
			return res
		}
		i, probe := p.pick(idx)
		s := p.servers[i]
		t0 := time.Now()
		resp, err := p.attempt(ctx, s, &r, t0, p.patience(abandons))
		took := time.Since(t0)
		res.Server = s.name
		if err != nil && ctx.Err() != nil {
			// Cut short by the caller: says nothing about the server.
			if probe {
				s.probe.Store(false)
			}
			res.Err = ctx.Err()
			return res
		}
		res.Attempts++
		res.Status = resp.status
		if err == nil && resp.status/100 == 2 {
			p.succeeded(s, probe)
			if p.ev.Attempt != nil {
				p.ev.Attempt(s.name, resp.status, nil, took)
			}
			if p.cfg.Slow > 0 {
				if d := time.Since(start); d > p.cfg.Slow {
					p.log.LogAttrs(ctx, slog.LevelWarn, "push slower than expected",
						slog.String("topic", r.Topic), slog.Int("partition", int(r.Partition)),
						slog.Int64("offset", r.Offset), slog.String("server", s.name),
						slog.Int("attempts", res.Attempts), slog.Duration("took", d),
						slog.Duration("expected", p.cfg.Slow))
				}
			}
			res.Err = nil
			return res
		}
		if err == nil {
			err = &StatusError{Code: resp.status, Body: resp.body}
		}
		res.Err = err
		res.Permanent = resp.status != 0 && !p.retryable(resp.status)
		abandoned := errors.Is(err, ErrAbandoned)
		if abandoned {
			abandons++
		}
		if p.stallAfter > 0 && resp.status == 0 && !errors.Is(err, errEarlyAnswer) && !s.owes.Load() {
			s.owes.Store(true)
		}
		p.failed(s, probe, res.Permanent, abandoned)
		if p.ev.Attempt != nil {
			p.ev.Attempt(s.name, resp.status, err, took)
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "push attempt failed",
			slog.String("topic", r.Topic), slog.Int("partition", int(r.Partition)),
			slog.Int64("offset", r.Offset), slog.String("server", s.name),
			slog.Int("status", resp.status), slog.Int("attempt", res.Attempts),
			slog.Duration("took", took), slog.Bool("permanent", res.Permanent),
			slog.Any("err", err))
		if res.Permanent || (p.cfg.MaxRetries >= 0 && res.Attempts > p.cfg.MaxRetries) {
			return res
		}
		wait := resp.retryAfter
		if wait < 0 {
			wait = p.backoff(res.Attempts)
		}
		if p.ev.Retry != nil {
			p.ev.Retry(res.Attempts, wait)
		}
		if !backoff.Sleep(ctx, wait) {
			res.Err = ctx.Err()
			return res
		}
		idx = uint64(i) + 1
	}
}

// retryable reports whether a failed answer with status is worth a retry.
func (p *Pusher) retryable(status int) bool {
	if len(p.cfg.RetryOn) == 0 {
		return true
	}
	for _, r := range p.cfg.RetryOn {
		if r.Lo <= status && status <= r.Hi {
			return true
		}
	}
	return false
}

// backoff returns the pause before retry n (1 = the first): the policy that
// RetryInterval and BackoffMax describe.
func (p *Pusher) backoff(n int) time.Duration {
	return backoff.Policy{Initial: p.cfg.RetryInterval, Max: p.cfg.BackoffMax}.Delay(n)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date,
// capped at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 63); err == nil {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(n) * time.Second
	} else {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0, false
		}
		d = max(t.Sub(now), 0)
	}
	return min(d, maxRetryAfter), true
}

// pick returns the server for the attempt at rotation position idx: the first
// one from there that is not stalled and is in the rotation or due for its
// probe, else the one benched longest ago.
func (p *Pusher) pick(idx uint64) (i int, probe bool) {
	n := uint64(len(p.servers))
	if p.cfg.FailThreshold <= 0 && p.stallAfter == 0 {
		return int(idx % n), false
	}
	var now int64
	best, bestUntil := -1, int64(math.MaxInt64)
	for k := range n {
		j := int((idx + k) % n)
		s := p.servers[j]
		if s.stalled.Load() {
			continue
		}
		u := s.until.Load()
		if u == 0 {
			return j, false
		}
		if now == 0 {
			now = p.now().UnixNano()
		}
		if ok, probe := s.available(now); ok {
			return j, probe
		}
		if u < bestUntil {
			best, bestUntil = j, u
		}
	}
	if best < 0 {
		// Every server stalled: a server is only stalled while another
		// answers, so the marks are a moment old.
		return int(idx % n), false
	}
	return best, false
}

// succeeded puts s back in the rotation.
func (p *Pusher) succeeded(s *server, probe bool) {
	if p.cfg.FailThreshold <= 0 {
		return
	}
	if s.fails.Load() != 0 {
		s.fails.Store(0)
	}
	if s.until.Load() != 0 && s.until.Swap(0) != 0 {
		p.log.Info("push server back in rotation", slog.String("server", s.name))
	}
	if probe {
		s.probe.Store(false)
	}
}

// failed counts a failure of s and benches it at the threshold, or at once when
// it was benched already (a failed probe, or used because all were benched) or
// the attempt was abandoned (the server was silent while another answered).
// Permanent failures are about the record, not the server, and are not counted.
func (p *Pusher) failed(s *server, probe, permanent, abandoned bool) {
	if p.cfg.FailThreshold <= 0 {
		return
	}
	if !permanent {
		f := s.fails.Add(1)
		if int(f) >= p.cfg.FailThreshold || s.until.Load() != 0 || abandoned {
			until := p.now().Add(p.cfg.Cooldown).UnixNano()
			if s.until.Swap(until) == 0 {
				p.log.Warn("push server benched", slog.String("server", s.name),
					slog.Int("failures", int(f)), slog.Duration("cooldown", p.cfg.Cooldown))
			}
		}
	}
	if probe {
		s.probe.Store(false)
	}
}

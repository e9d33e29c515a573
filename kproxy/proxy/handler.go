package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// pending is one request's record on its way to Kafka, pooled with its buffers.
// The struct goes back to the pool only after its promise ran, so a late
// acknowledgement after a 504 never touches a recycled request.
type pending struct {
	rec     kgo.Record
	err     error
	done    chan struct{}
	timer   *time.Timer
	buf     []byte // body buffer, reused for bodies up to maxPooledBody
	key     []byte
	promise func(*kgo.Record, error) // bound once: a method value allocates
}

// maxPooledBody bounds the body buffers kept in the pool, so a few large bodies do
// not pin memory.
const maxPooledBody = 64 << 10

var pendingPool = sync.Pool{New: func() any {
	pd := &pending{done: make(chan struct{}, 1)}
	pd.promise = func(_ *kgo.Record, err error) {
		pd.err = err
		pd.done <- struct{}{}
	}
	pd.timer = time.NewTimer(time.Hour)
	pd.timer.Stop()
	return pd
}}

// release returns pd to the pool; only after its promise ran.
func (pd *pending) release() {
	pd.rec, pd.err = kgo.Record{}, nil
	if cap(pd.buf) > maxPooledBody {
		pd.buf = nil
	}
	pendingPool.Put(pd)
}

// commit handles POST /commit?topic=T&key=K&acks=A.
func (p *Proxy) commit(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		p.fail(w, fmt.Errorf("%w: got %s", ErrMethodNotAllowed, r.Method))
		return
	}
	if !p.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kproxy"`)
		p.fail(w, ErrUnauthorized)
		return
	}
	if p.draining.Load() {
		p.fail(w, ErrShuttingDown)
		return
	}
	params, err := parseCommitQuery(r.URL.RawQuery, p.defaultAcks)
	if err != nil {
		p.fail(w, err)
		return
	}
	if !p.topicAllowed(params.topic) {
		p.fail(w, fmt.Errorf("%w: %q is refused by this kproxy's topic rules", ErrTopicNotAllowed, params.topic))
		return
	}
	pd := pendingPool.Get().(*pending)
	body, err := p.readBody(w, r, pd.buf)
	if err != nil {
		pd.release()
		p.fail(w, err)
		return
	}
	pd.buf = body
	if p.cfg.ValidateMsgpack {
		if err := envelope.Validate(body); err != nil {
			pd.release()
			p.fail(w, fmt.Errorf("%w: %v", ErrInvalidMsgpack, err))
			return
		}
	}
	if n := p.inflight.Add(1); n > int64(p.cfg.ReqPoolSize) {
		p.inflight.Add(-1)
		pd.release()
		p.fail(w, fmt.Errorf("%w (%d requests in progress, req_pool_size %d)", ErrBackpressure, n-1, p.cfg.ReqPoolSize))
		return
	}
	defer p.inflight.Add(-1)
	if err := p.health.err(); err != nil {
		pd.release()
		p.fail(w, err)
		return
	}

	pd.rec = kgo.Record{Topic: params.topic, Value: body}
	if params.key != "" {
		pd.key = append(pd.key[:0], params.key...)
		pd.rec.Key = pd.key
	}
	// The request's context ends when the handler returns: after a 504 the client
	// drops the record if it has not been sent yet. A record already sent (an
	// idempotent batch cannot be recalled) keeps its pending struct until its
	// promise runs; the struct is then left to the garbage collector.
	p.prod.client(params.acks, pd.rec.Key).TryProduce(r.Context(), &pd.rec, pd.promise)
	pd.timer.Reset(p.produceTimeout)
	select {
	case <-pd.done:
		pd.timer.Stop()
	case <-pd.timer.C:
		p.metrics.produceErrs.WithLabelValues("kafka_timeout").Inc()
		p.health.suspect()
		p.fail(w, fmt.Errorf("%w (produce_timeout_ms %d)", ErrTimeout, p.cfg.ProduceTimeoutMs))
		return
	case <-r.Context().Done():
		// The caller went away; nobody reads an answer.
		p.metrics.request(499, "client_gone")
		return
	}
	err, partition, offset := pd.err, pd.rec.Partition, pd.rec.Offset
	pd.release()
	if err != nil {
		p.produceFailed(w, params, err)
		return
	}
	if params.acks == AcksNone {
		offset = -1
	}
	p.metrics.latencyByAck[params.acks.index()].Observe(time.Since(start).Seconds())
	p.metrics.bodyBytes.Add(float64(len(body)))
	p.metrics.ok.Inc()
	writeSuccess(w, params.topic, partition, offset)
}

// produceFailed answers a request whose record Kafka did not acknowledge.
func (p *Proxy) produceFailed(w http.ResponseWriter, params commitParams, err error) {
	status, code := classify(err)
	p.metrics.produceErrs.WithLabelValues(code).Inc()
	if errors.Is(err, kerr.UnknownTopicID) {
		// The topic was deleted and created again under a new ID: the client keeps
		// failing it until it forgets the old one. The caller gets 503 and its
		// retry finds the new topic (or 404 if it is really gone).
		p.purgeTopic(p.prod.client(params.acks, []byte(params.key)), params.topic)
		err = fmt.Errorf("%w: topic %q was deleted or recreated in Kafka: %v", ErrKafkaUnavailable, params.topic, err)
	} else if status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		p.health.suspect()
	}
	p.log.Warn("record not acknowledged", "topic", params.topic, "acks", params.acks.String(), "status", status, "code", code, "err", err)
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		err = fmt.Errorf("%w (max_buffered_records %d)", ErrBackpressure, p.cfg.MaxBufferedRecords)
	case code == "unknown_topic":
		err = fmt.Errorf("%w %q: Kafka does not have it and does not create it", ErrUnknownTopic, params.topic)
	case code == "body_too_large":
		err = fmt.Errorf("%w: Kafka refused the record as too large: %v", ErrBodyTooLarge, err)
	case code == "kafka_unavailable":
		err = fmt.Errorf("%w: %v", ErrKafkaUnavailable, err)
	case code == "kafka_timeout":
		err = fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	p.fail(w, err)
}

// purgeTopic makes cl forget topic, once at a time per topic, in the background:
// purging waits for the client's metadata loop.
func (p *Proxy) purgeTopic(cl *kgo.Client, topic string) {
	if _, busy := p.purging.LoadOrStore(topic, true); busy {
		return
	}
	p.log.Warn("topic has a new ID in Kafka: dropping the client's view of it", "topic", topic)
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		defer p.purging.Delete(topic)
		cl.PurgeTopicsFromProducing(topic)
	}()
}

// readBody reads the whole body, bounded by max_request_size_bytes, into buf when
// it is large enough. The bound holds while reading: a declared length over it is
// refused before any byte is read, and a chunked body is refused at the first byte
// past it; that connection is closed after the answer (net/http reads on for at
// most 256 KiB or until read_timeout_ms, so the client can read the 413).
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	limit := int64(p.cfg.MaxRequestSizeBytes)
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes, max_request_size_bytes is %d", ErrBodyTooLarge, r.ContentLength, limit)
	}
	if r.ContentLength == 0 {
		return nil, ErrEmptyBody
	}
	if r.ContentLength > 0 {
		if int64(cap(buf)) >= r.ContentLength {
			buf = buf[:r.ContentLength]
		} else {
			buf = make([]byte, r.ContentLength)
		}
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBodyRead, err)
		}
		return buf, nil
	}
	// Chunked: no length is known in advance. MaxBytesReader fails the read past
	// the limit and marks the connection to be closed after the answer.
	buf, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("%w: more than max_request_size_bytes %d", ErrBodyTooLarge, limit)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBodyRead, err)
	}
	if len(buf) == 0 {
		return nil, ErrEmptyBody
	}
	return buf, nil
}

// authorized checks the Bearer token when auth.tokens is set.
func (p *Proxy) authorized(r *http.Request) bool {
	if len(p.tokens) == 0 {
		return true
	}
	// The scheme name is case-insensitive (RFC 9110, 11.1).
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := []byte(strings.TrimSpace(tok))
	match := 0
	for _, want := range p.tokens {
		// Compare with every token so the time taken does not tell which matched.
		match |= subtle.ConstantTimeCompare(got, want)
	}
	return match == 1
}

// topicAllowed applies the topic rules, caching answers for a bounded number of
// names so the regular expressions run once per topic, not per request.
func (p *Proxy) topicAllowed(topic string) bool {
	if v, ok := p.topicCache.Load(topic); ok {
		return v.(bool)
	}
	ok := p.topics.allowed(topic)
	if p.topicCacheSize.Add(1) <= maxTopicCache {
		p.topicCache.Store(topic, ok)
	} else {
		p.topicCacheSize.Add(-1)
	}
	return ok
}

// maxTopicCache bounds the topic decision cache: names come from callers.
const maxTopicCache = 10000

// fail writes the JSON error answer for err and counts it.
func (p *Proxy) fail(w http.ResponseWriter, err error) {
	status, code := classify(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(p.cfg.RetryAfterSec))
	}
	p.metrics.request(status, code)
	writeError(w, status, code, err.Error())
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(errorBody{Error: msg, Code: code})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

var successBuf = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// writeSuccess writes {"topic":"T","partition":P,"offset":O}. The topic needs no
// escaping: ValidTopic allows only [a-zA-Z0-9._-].
func writeSuccess(w http.ResponseWriter, topic string, partition int32, offset int64) {
	bp := successBuf.Get().(*[]byte)
	b := append((*bp)[:0], `{"topic":"`...)
	b = append(b, topic...)
	b = append(b, `","partition":`...)
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	*bp = b
	successBuf.Put(bp)
}

var jsonContentType = []string{"application/json"}

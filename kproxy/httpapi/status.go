package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
)

// Errors of the HTTP doors themselves; everything else comes from the core.
var (
	// ErrNotFound means the path is not served (404).
	ErrNotFound = errors.New("no such endpoint")
	// ErrMethodNotAllowed means a method other than POST was used on /commit (405).
	ErrMethodNotAllowed = errors.New("only POST is allowed")
)

// Status maps an error of an HTTP door to its HTTP status and machine code. It is
// the one place that decides HTTP statuses: the doors' own errors here, the
// core's through proxy.Code.
func Status(err error) (status int, code string) {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	}
	code = proxy.Code(err)
	switch code {
	case proxy.CodeMissingTopic, proxy.CodeInvalidTopic, proxy.CodeInvalidKey, proxy.CodeInvalidAcks,
		proxy.CodeEmptyBody, proxy.CodeBodyRead, proxy.CodeInvalidMsgpack, proxy.CodeInvalidBatch, proxy.CodeInvalidHeader:
		return http.StatusBadRequest, code
	case proxy.CodeUnauthorized:
		return http.StatusUnauthorized, code
	case proxy.CodeTopicNotAllowed:
		return http.StatusForbidden, code
	case proxy.CodeUnknownTopic, proxy.CodeUnknownPartition:
		return http.StatusNotFound, code
	case proxy.CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge, code
	case proxy.CodeKafkaTimeout:
		return http.StatusGatewayTimeout, code
	case proxy.CodeCanceled:
		// Nobody reads it; counted as nginx does.
		return 499, code
	default: // backpressure, shutting_down, kafka_unavailable
		return http.StatusServiceUnavailable, code
	}
}

// fail writes the JSON error answer for err and counts it.
func (s *Server) fail(w http.ResponseWriter, err error) {
	status, code := Status(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	s.metrics.request(status, code)
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

// writeSuccess writes {"topic":"T","partition":P,"offset":O}.
func writeSuccess(w http.ResponseWriter, topic string, partition int32, offset int64) {
	bp := successBuf.Get().(*[]byte)
	b := appendSuccessBody((*bp)[:0], topic, partition, offset)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	if len(b) < len(contentLengths) {
		h["Content-Length"] = contentLengths[len(b)]
	} else {
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	*bp = b
	successBuf.Put(bp)
}

// appendSuccessBody appends {"topic":"T","partition":P,"offset":O}\n. The
// topic needs no escaping: proxy.ValidTopic allows only [a-zA-Z0-9._-].
func appendSuccessBody(b []byte, topic string, partition int32, offset int64) []byte {
	b = append(b, `{"topic":"`...)
	b = append(b, topic...)
	b = append(b, `","partition":`...)
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, offset, 10)
	return append(b, "}\n"...)
}

var jsonContentType = []string{"application/json"}

// contentLengths holds the Content-Length header values of success answers, so
// that writing one allocates nothing. net/http does not change header values;
// a handler adding one to the slice gets a copy (its capacity is 1).
var contentLengths = func() (out [512][]string) {
	for i := range out {
		out[i] = []string{strconv.Itoa(i)}[:1:1]
	}
	return out
}()

// metrics are the HTTP doors' series.
type metrics struct {
	requests     *prometheus.CounterVec // by status code and machine code
	requestCache sync.Map               // "status/code" -> prometheus.Counter
	ok           prometheus.Counter     // requests{status="200",code="ok"}, the hot path

	batches      *prometheus.CounterVec // /batch requests by status and code
	batchCache   sync.Map               // "status/code" -> prometheus.Counter
	records      *prometheus.CounterVec // records of /batch requests by code
	recordsCache sync.Map               // code -> prometheus.Counter
	recordsOK    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_requests_total",
			Help: "Requests to /commit by HTTP status and machine code (ok for 200).",
		}, []string{"status", "code"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_batch_requests_total",
			Help: "Requests to /batch by HTTP status and machine code (ok for 200, partial for 207).",
		}, []string{"status", "code"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_batch_records_total",
			Help: "Records of /batch requests that went to Kafka, by outcome: ok or the machine code of the failure.",
		}, []string{"code"}),
	}
	m.ok = m.requests.WithLabelValues("200", "ok")
	m.recordsOK = m.records.WithLabelValues("ok")
	reg.MustRegister(m.requests, m.batches, m.records)
	return m
}

// batch counts one finished /batch request and, when it went to Kafka (b not
// nil), its records by outcome.
func (m *metrics) batch(status int, code string, b *proxy.Batch) {
	cached(&m.batchCache, m.batches, strconv.Itoa(status), code).Inc()
	if b == nil {
		return
	}
	m.recordsOK.Add(float64(b.Len() - b.Failed()))
	if b.Failed() == 0 {
		return
	}
	for i := 0; i < b.Len(); i++ {
		if _, err := b.Result(i); err != nil {
			cached(&m.recordsCache, m.records, proxy.Code(err)).Inc()
		}
	}
}

// cached returns the counter of vec for labels, kept in cache so that a label
// pair is hashed once.
func cached(cache *sync.Map, vec *prometheus.CounterVec, labels ...string) prometheus.Counter {
	key := strings.Join(labels, "/")
	c, ok := cache.Load(key)
	if !ok {
		c, _ = cache.LoadOrStore(key, vec.WithLabelValues(labels...))
	}
	return c.(prometheus.Counter)
}

// request counts one finished request; the counter per label pair is cached so
// the hot path does not hash labels.
func (m *metrics) request(status int, code string) {
	cached(&m.requestCache, m.requests, strconv.Itoa(status), code).Inc()
}

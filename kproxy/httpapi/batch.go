package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// batchSink receives the records parseBatch finds; *proxy.Batch is one.
type batchSink interface {
	Grow(n int) error
	Add(key, value []byte) error
	AddHeader(name string, value []byte) error
}

// The fields of a record in a batch body.
const (
	fieldKey     = "key"
	fieldValue   = "value"
	fieldHeaders = "headers"
)

// parseBatch walks body, one msgpack array of maps
// {"key": str|bin|nil (optional), "value": any msgpack value,
// "headers": {str: str|bin} or nil (optional)}, and adds a record to sink for
// each map, in order: its key and value are the exact bytes of the body, with
// no copy and no re-encoding, and its headers follow the reqHeaders ones the
// request gave. Anything else is an error wrapping proxy.ErrInvalidBatch
// (or proxy.ErrInvalidHeader, or proxy.ErrBodyTooLarge for more than
// maxRecords records) that names the record and the byte: the door then
// writes none of the records. It allocates only the headers' names and
// errors.
func parseBatch(body []byte, maxRecords, reqHeaders int, sink batchSink) error {
	n, off, ok := envelope.ArrayHeader(body, 0)
	if !ok {
		if _, err := envelope.Next(body, 0); err != nil {
			return fmt.Errorf("%w: %v", proxy.ErrInvalidBatch, err)
		}
		return fmt.Errorf("%w: the body is a msgpack %s, not an array of records", proxy.ErrInvalidBatch, kind(body[0]))
	}
	switch {
	case n == 0:
		return fmt.Errorf("%w: the array holds no records", proxy.ErrInvalidBatch)
	case n > maxRecords:
		return fmt.Errorf("%w: %d records, max_batch_records is %d", proxy.ErrBodyTooLarge, n, maxRecords)
	}
	if err := sink.Grow(n); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		var err error
		if off, err = parseRecord(body, off, i, reqHeaders, sink); err != nil {
			return err
		}
	}
	if off != len(body) {
		return fmt.Errorf("%w: %d bytes after the array, at byte %d", proxy.ErrInvalidBatch, len(body)-off, off)
	}
	return nil
}

// parseRecord reads record i, the map at body[off], into sink and returns the
// offset after it.
func parseRecord(body []byte, off, i, reqHeaders int, sink batchSink) (int, error) {
	start := off
	pairs, off, ok := envelope.MapHeader(body, off)
	if !ok {
		if _, err := envelope.Next(body, start); err != nil {
			return 0, fmt.Errorf("%w: record %d: %v", proxy.ErrInvalidBatch, i, err)
		}
		return 0, fmt.Errorf("%w: record %d at byte %d is a msgpack %s, not a map", proxy.ErrInvalidBatch, i, start, kind(body[start]))
	}
	var key, value []byte
	hasKey, hasValue, hasHeaders := false, false, false
	headersAt := -1
	for p := 0; p < pairs; p++ {
		ks, ke, isStr, ok := envelope.Bytes(body, off)
		if !ok || !isStr {
			return 0, fmt.Errorf("%w: record %d: a field name at byte %d is not a string", proxy.ErrInvalidBatch, i, off)
		}
		name := body[ks:ke]
		off = ke
		var seen *bool
		switch string(name) {
		case fieldKey:
			seen = &hasKey
		case fieldValue:
			seen = &hasValue
		case fieldHeaders:
			seen = &hasHeaders
		default:
			return 0, fmt.Errorf("%w: record %d: unknown field %s at byte %d (the fields are key, value and headers)",
				proxy.ErrInvalidBatch, i, strconv.Quote(string(name)), ks)
		}
		if *seen {
			return 0, fmt.Errorf("%w: record %d: field %s given twice", proxy.ErrInvalidBatch, i, name)
		}
		*seen = true
		end, err := envelope.Next(body, off)
		if err != nil {
			return 0, fmt.Errorf("%w: record %d: field %s: %v", proxy.ErrInvalidBatch, i, name, err)
		}
		switch string(name) {
		case fieldKey:
			if !envelope.IsNil(body, off) {
				s, e, _, ok := envelope.Bytes(body, off)
				if !ok {
					return 0, fmt.Errorf("%w: record %d: the key at byte %d is a msgpack %s, not a string or binary",
						proxy.ErrInvalidBatch, i, off, kind(body[off]))
				}
				key = body[s:e]
			}
		case fieldValue:
			value = body[off:end]
		case fieldHeaders:
			headersAt = off
		}
		off = end
	}
	if !hasValue {
		return 0, fmt.Errorf("%w: record %d at byte %d has no value", proxy.ErrInvalidBatch, i, start)
	}
	if err := sink.Add(key, value); err != nil {
		return 0, err
	}
	if headersAt >= 0 {
		if err := parseHeaders(body, headersAt, i, reqHeaders, sink); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// parseHeaders adds the headers map at body[off] of record i to sink.
func parseHeaders(body []byte, off, i, reqHeaders int, sink batchSink) error {
	if envelope.IsNil(body, off) {
		return nil
	}
	pairs, off, ok := envelope.MapHeader(body, off)
	if !ok {
		return fmt.Errorf("%w: record %d: headers at byte %d are a msgpack %s, not a map", proxy.ErrInvalidBatch, i, off, kind(body[off]))
	}
	if reqHeaders+pairs > proxy.MaxRecordHeaders {
		return fmt.Errorf("%w: record %d: %d headers (%d of them from the request), at most %d are allowed",
			proxy.ErrInvalidHeader, i, reqHeaders+pairs, reqHeaders, proxy.MaxRecordHeaders)
	}
	for p := 0; p < pairs; p++ {
		ns, ne, isStr, ok := envelope.Bytes(body, off)
		if !ok || !isStr {
			return fmt.Errorf("%w: record %d: a header name at byte %d is not a string", proxy.ErrInvalidBatch, i, off)
		}
		vs, ve, _, ok := envelope.Bytes(body, ne)
		if !ok {
			return fmt.Errorf("%w: record %d: the value of header %s at byte %d is not a string or binary",
				proxy.ErrInvalidBatch, i, strconv.Quote(string(body[ns:ne])), ne)
		}
		name, value := string(body[ns:ne]), body[vs:ve]
		if err := proxy.CheckHeader(name, value); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if err := sink.AddHeader(name, value); err != nil {
			return err
		}
		off = ve
	}
	return nil
}

// kind names the msgpack type whose first byte is c, for errors.
func kind(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0, c >= 0xcc && c <= 0xd3:
		return "integer"
	case c <= 0x8f, c == 0xde, c == 0xdf:
		return "map"
	case c <= 0x9f, c == 0xdc, c == 0xdd:
		return "array"
	case c <= 0xbf, c >= 0xd9 && c <= 0xdb:
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2, c == 0xc3:
		return "boolean"
	case c >= 0xc4 && c <= 0xc6:
		return "binary"
	case c == 0xca, c == 0xcb:
		return "float"
	default:
		return "extension"
	}
}

// batch handles POST /batch?topic=T&acks=A: the body is a msgpack array of
// records (parseBatch), each written to T as /commit writes its body, and the
// answer lists each record's partition and offset, or its failure, in order.
// The batch is admitted (slot, health) before a byte of the body is read, and
// a body that is not a well-formed batch writes nothing.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuseBatch(w, r, fmt.Errorf("%w: got %s", ErrMethodNotAllowed, r.Method))
		return
	}
	if !s.core.Authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kproxy"`)
		s.refuseBatch(w, r, proxy.ErrUnauthorized)
		return
	}
	if s.core.Draining() {
		s.refuseBatch(w, r, proxy.ErrShuttingDown)
		return
	}
	params, err := parseCommitQuery(r.URL.RawQuery, s.core.DefaultAcks())
	if err != nil {
		s.refuseBatch(w, r, err)
		return
	}
	hdrs, err := recordHeaders(r.Header)
	if err != nil {
		s.refuseBatch(w, r, err)
		return
	}
	b, err := s.core.AdmitBatch(params.topic)
	if err != nil {
		s.refuseBatch(w, r, err)
		return
	}
	defer b.Release()
	b.Acks, b.Headers = params.acks, hdrs
	if err := s.readBatch(r, b); err != nil {
		s.refuseBatch(w, r, err)
		return
	}
	if err := parseBatch(b.Body(), s.cfg.MaxBatchRecords, len(hdrs), b); err != nil {
		s.failBatch(w, err)
		return
	}
	s.core.CommitBatch(r.Context(), b)
	ans := batchAnswers.Get().(*batchAnswer)
	defer batchAnswers.Put(ans)
	ans.build(b)
	if ans.status == 499 {
		// The caller went away; nobody reads an answer.
		s.metrics.batch(499, proxy.CodeCanceled, b)
		return
	}
	s.metrics.batch(ans.status, ans.code, b)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(ans.body)))
	if ans.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", s.retryAfter)
	}
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
}

// readBatch reads the body of r into b, as readBody reads a record's.
func (s *Server) readBatch(r *http.Request, b *proxy.Batch) error {
	if err := checkLength(r.ContentLength, s.cfg.MaxRequestSizeBytes); err != nil {
		return err
	}
	return b.ReadBody(r.Body)
}

// refuseBatch is refuse for /batch: the connection is closed after the answer
// when the body was not read to its end.
func (s *Server) refuseBatch(w http.ResponseWriter, r *http.Request, err error) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	s.failBatch(w, err)
}

// failBatch writes the error answer of a batch refused as a whole.
func (s *Server) failBatch(w http.ResponseWriter, err error) {
	status, code := Status(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	s.metrics.batch(status, code, nil)
	writeError(w, status, code, err.Error())
}

// batchAnswer is the answer to a batch that went to Kafka.
type batchAnswer struct {
	status int
	code   string // "ok", "partial" or the shared failure's code
	body   []byte
}

var batchAnswers = sync.Pool{New: func() any { return &batchAnswer{} }}

// build writes the answer for b: 200 when Kafka acknowledged every record,
// 207 when it acknowledged some, and when it acknowledged none, the status
// the failures share (503 when Kafka is down, say), or 207 when they differ.
// The body lists every record in order: {"partition":P,"offset":O} or
// {"error":E,"code":C,"status":S}; a batch none of whose records was
// acknowledged also has the first failure's "error" and "code" at the top,
// like every other error answer.
func (a *batchAnswer) build(b *proxy.Batch) {
	n := b.Len()
	a.status, a.code = http.StatusOK, "ok"
	if f := b.Failed(); f > 0 {
		a.status, a.code = http.StatusMultiStatus, "partial"
		if f == n {
			a.status, a.code = sharedStatus(b)
		}
	}
	out := a.body[:0]
	if a.status != http.StatusOK && a.status != http.StatusMultiStatus {
		_, err := b.Result(0)
		out = append(out, `{"error":`...)
		out = appendJSONString(out, err.Error())
		out = append(out, `,"code":"`...)
		out = append(out, a.code...)
		out = append(out, `",`...)
	} else {
		out = append(out, '{')
	}
	out = append(out, `"topic":"`...)
	out = append(out, b.Topic...) // proxy.ValidTopic: nothing to escape
	out = append(out, `","records":[`...)
	var lastErr error
	var lastMsg []byte
	for i := 0; i < n; i++ {
		if i > 0 {
			out = append(out, ',')
		}
		ack, err := b.Result(i)
		if err == nil {
			out = append(out, `{"partition":`...)
			out = strconv.AppendInt(out, int64(ack.Partition), 10)
			out = append(out, `,"offset":`...)
			out = strconv.AppendInt(out, ack.Offset, 10)
			out = append(out, '}')
			continue
		}
		status, code := Status(err)
		out = append(out, `{"error":`...)
		if err != lastErr {
			// Records failed together share their error: quote it once.
			lastErr, lastMsg = err, appendJSONString(lastMsg[:0], err.Error())
		}
		out = append(out, lastMsg...)
		out = append(out, `,"code":"`...)
		out = append(out, code...)
		out = append(out, `","status":`...)
		out = strconv.AppendInt(out, int64(status), 10)
		out = append(out, '}')
	}
	out = append(out, "]}\n"...)
	a.body = out
}

// sharedStatus returns the status and code every failure of b has, or 207 and
// "partial" when they differ; 499 when the caller went away.
func sharedStatus(b *proxy.Batch) (int, string) {
	_, err := b.Result(0)
	status, code := Status(err)
	for i := 0; i < b.Len(); i++ {
		_, err := b.Result(i)
		if errors.Is(err, proxy.ErrCanceled) {
			return 499, proxy.CodeCanceled
		}
		if s, _ := Status(err); s != status {
			status, code = http.StatusMultiStatus, "partial"
		}
	}
	return status, code
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

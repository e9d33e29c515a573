package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// commit handles POST /commit?topic=T&key=K&acks=A: the body becomes the value of
// one record, the request's X-Kafka-Header-* and trace context headers its
// headers (recordHeaders). The record is admitted (slot, health) before a byte of the body is
// read; the answer comes once Kafka acknowledged it or gave a reason not to.
func (s *Server) commit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.refuse(w, r, fmt.Errorf("%w: got %s", ErrMethodNotAllowed, r.Method))
		return
	}
	if !s.core.Authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kproxy"`)
		s.refuse(w, r, proxy.ErrUnauthorized)
		return
	}
	if s.core.Draining() {
		s.refuse(w, r, proxy.ErrShuttingDown)
		return
	}
	params, err := parseCommitQuery(r.URL.RawQuery, s.core.DefaultAcks())
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	hdrs, err := recordHeaders(r.Header)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	rec, err := s.core.Admit(params.topic)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	defer rec.Release()
	rec.Acks, rec.Headers = params.acks, hdrs
	rec.SetKey(params.key)
	if err := s.readBody(r, rec); err != nil {
		s.refuse(w, r, err)
		return
	}
	if s.cfg.ValidateMsgpack {
		if err := envelope.Validate(rec.Value()); err != nil {
			s.fail(w, fmt.Errorf("%w: %v", proxy.ErrInvalidMsgpack, err))
			return
		}
	}
	ack, err := s.core.Commit(r.Context(), rec)
	if err != nil {
		if errors.Is(err, proxy.ErrCanceled) {
			// The caller went away; nobody reads an answer.
			s.metrics.request(499, proxy.CodeCanceled)
			return
		}
		s.fail(w, err)
		return
	}
	s.metrics.ok.Inc()
	writeSuccess(w, ack.Topic, ack.Partition, ack.Offset)
}

// refuse answers a request whose body was not read to its end with err, and has
// its connection closed after the answer: otherwise net/http would read (up to
// 256 KiB of) the body first, waiting for a client that may send it slowly or
// never, which is what refusing early avoids.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
	s.fail(w, err)
}

// readBody reads the body into rec, bounded by max_request_size_bytes. The bound
// holds while reading: a declared length over it is refused before any byte is
// read, and a chunked body is refused at the first byte past it.
func (s *Server) readBody(r *http.Request, rec *proxy.Record) error {
	if err := checkLength(r.ContentLength, s.cfg.MaxRequestSizeBytes); err != nil {
		return err
	}
	return rec.ReadValue(r.Body)
}

// checkLength refuses a declared body length (-1: none declared) above limit
// or of zero, before a byte of the body is read.
func checkLength(n int64, limit int) error {
	if n > int64(limit) {
		return fmt.Errorf("%w: %d bytes, max_request_size_bytes is %d", proxy.ErrBodyTooLarge, n, limit)
	}
	if n == 0 {
		return proxy.ErrEmptyBody
	}
	return nil
}

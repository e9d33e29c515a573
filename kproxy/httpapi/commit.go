package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
)

// commit handles POST /commit?topic=T&key=K&acks=A: the body becomes the value of
// one record. The record is admitted (slot, health) before a byte of the body is
// read; the answer comes once Kafka acknowledged it or gave a reason not to.
func (s *Server) commit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.fail(w, fmt.Errorf("%w: got %s", ErrMethodNotAllowed, r.Method))
		return
	}
	if !s.core.Authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kproxy"`)
		s.fail(w, proxy.ErrUnauthorized)
		return
	}
	if s.core.Draining() {
		s.fail(w, proxy.ErrShuttingDown)
		return
	}
	params, err := parseCommitQuery(r.URL.RawQuery, s.core.DefaultAcks())
	if err != nil {
		s.fail(w, err)
		return
	}
	rec, err := s.core.Admit(params.topic)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer rec.Release()
	rec.Acks = params.acks
	rec.SetKey(params.key)
	if err := s.readBody(w, r, rec); err != nil {
		s.fail(w, err)
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

// readBody reads the body into rec, bounded by max_request_size_bytes. The bound
// holds while reading: a declared length over it is refused before any byte is
// read, and a chunked body is refused at the first byte past it; that connection
// is closed after the answer (net/http reads on for at most 256 KiB or until
// read_timeout_ms, so the client can read the 413).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, rec *proxy.Record) error {
	limit := int64(s.cfg.MaxRequestSizeBytes)
	if r.ContentLength > limit {
		return fmt.Errorf("%w: %d bytes, max_request_size_bytes is %d", proxy.ErrBodyTooLarge, r.ContentLength, limit)
	}
	if r.ContentLength == 0 {
		return proxy.ErrEmptyBody
	}
	err := rec.ReadValue(r.Body)
	if errors.Is(err, proxy.ErrBodyTooLarge) {
		w.Header().Set("Connection", "close")
	}
	return err
}

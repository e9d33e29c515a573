package push

import (
	"errors"
	"strconv"
)

// ErrTimeout is wrapped by the error of an attempt that ran out of its connect,
// write or read timeout. Such attempts are always retryable.
var ErrTimeout = errors.New("timeout")

// ErrAbandoned is wrapped by the error of an attempt given up because its server
// had been silent beyond the stall bound while another server answered (see
// Config.Slow). Such attempts are retried on another server; the silent server
// may still process the request, so the record can arrive twice.
var ErrAbandoned = errors.New("abandoned")

// StatusError is the error of an attempt answered with a status other than 2xx.
type StatusError struct {
	// Code is the HTTP status.
	Code int
	// Body is the start of the response body (at most 256 bytes, non-printable
	// bytes replaced), for the log.
	Body string
}

// Error returns "http status CODE" and the start of the body, if any.
func (e *StatusError) Error() string {
	s := "http status " + strconv.Itoa(e.Code)
	if e.Body != "" {
		s += ": " + strconv.Quote(e.Body)
	}
	return s
}

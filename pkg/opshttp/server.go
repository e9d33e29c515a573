package opshttp

import (
	"net/http"
	"time"
)

// DefaultMaxHeaderBytes is the bound on a request line plus headers that NewServer
// applies when Limits.MaxHeaderBytes is zero: 64 KiB, not net/http's 1 MiB.
const DefaultMaxHeaderBytes = 64 << 10

// Limits bounds what one client may cost a listener: how long it may take to send
// a request, how long the answer may take, how long an idle keep-alive connection
// is kept and how large the headers may be. A zero duration means no limit, as in
// net/http; a zero MaxHeaderBytes means DefaultMaxHeaderBytes.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers, so a client
	// that sends half a request and stalls is disconnected. It also bounds the TLS
	// handshake. NewServer lowers it to ReadTimeout when that is shorter.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading one whole request, headers and body.
	ReadTimeout time.Duration
	// WriteTimeout runs from the end of the request headers to the end of the
	// response.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections that wait longer than this for the
	// next request. Zero means ReadTimeout, as in net/http.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers; larger requests get 431.
	MaxHeaderBytes int
}

// DefaultLimits returns the limits of the operations listeners (ktransfer's
// ops_listen, kmonitor's http_server before its own keys apply): 5s for headers,
// 10s for a whole request, 30s for an answer, 2 minutes idle, 64 KiB of headers.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
	}
}

// NewServer returns an http.Server for h on addr with lim applied; the caller
// serves it (Serve with its own listener, or ListenAndServe) and may set fields
// such as ErrorLog before that. Every daemon's listener is built here, so none is
// left open to slow or oversized requests.
func NewServer(addr string, h http.Handler, lim Limits) *http.Server {
	header := lim.ReadHeaderTimeout
	if lim.ReadTimeout > 0 && (header <= 0 || lim.ReadTimeout < header) {
		// net/http lets the headers take ReadHeaderTimeout even when it is longer
		// than ReadTimeout; the whole request must not outlast ReadTimeout.
		header = lim.ReadTimeout
	}
	maxHeader := lim.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: header,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    maxHeader,
	}
}

package monitor

import (
	"errors"
	"net/http"
)

// Errors of a /delay request; each maps to an HTTP status and machine code in
// classify.
var (
	// ErrBadQuery means the query string is malformed: a semicolon as a
	// separator, a bad escape (400).
	ErrBadQuery = errors.New("malformed query")
	// ErrUnknownCluster means ?cluster= names no configured cluster (400).
	ErrUnknownCluster = errors.New("unknown cluster")
	// ErrUnknownFormat means ?format= is not json, zabbix or zabbix_discovery (400).
	ErrUnknownFormat = errors.New("unknown format")
	// ErrUnknownUnit means ?unit= is not records or seconds (400).
	ErrUnknownUnit = errors.New("unknown unit")
	// ErrMethodNotAllowed means a method other than GET or HEAD was used (405).
	ErrMethodNotAllowed = errors.New("only GET is allowed")
)

// classify maps a request error to its HTTP status and machine code.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, ErrBadQuery):
		return http.StatusBadRequest, "bad_query"
	case errors.Is(err, ErrUnknownCluster):
		return http.StatusBadRequest, "unknown_cluster"
	case errors.Is(err, ErrUnknownFormat):
		return http.StatusBadRequest, "unknown_format"
	case errors.Is(err, ErrUnknownUnit):
		return http.StatusBadRequest, "unknown_unit"
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	}
	return http.StatusInternalServerError, "internal"
}

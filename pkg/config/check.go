package config

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Range records a problem unless lo <= v <= hi.
func (f *File) Range(key string, v, lo, hi int64) {
	if v < lo || v > hi {
		f.Problem(key, v, fmt.Sprintf("is not in %d..%d", lo, hi))
	}
}

// Min records a problem unless v >= lo.
func (f *File) Min(key string, v, lo int64) {
	if v < lo {
		f.Problem(key, v, fmt.Sprintf("is less than %d", lo))
	}
}

// OneOf records a problem unless v is one of choices.
func (f *File) OneOf(key, v string, choices ...string) {
	for _, c := range choices {
		if v == c {
			return
		}
	}
	f.Problem(key, v, "is not one of "+strings.Join(choices, ", "))
}

// NotEmpty records a problem when a required string or list is empty.
func (f *File) NotEmpty(key string, n int) {
	if n == 0 {
		f.Problemf(key, "is required")
	}
}

// HostPort records a problem for every entry of list that is not HOST:PORT, an
// address to connect to: a host (an IPv6 address in brackets) and a port in
// 1..65535.
func (f *File) HostPort(key string, list []string) {
	for _, hp := range list {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			f.Problem(key, hp, "is not HOST:PORT")
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			f.Problem(key, hp, "is not HOST:PORT (the port must be a number in 1..65535)")
		}
	}
}

// Readable records a problem when path is set but cannot be opened.
func (f *File) Readable(key, path string) {
	if path == "" {
		return
	}
	fh, err := os.Open(path)
	if err != nil {
		f.Problem(key, path, "cannot be read: "+err.Error())
		return
	}
	fh.Close()
}

// Regexps compiles every entry of list, recording a problem for each invalid one.
// Patterns are anchored: a pattern must match the whole name.
func (f *File) Regexps(key string, list []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(list))
	for _, p := range list {
		re, err := Pattern(p)
		if err != nil {
			f.Problem(key, p, "is not a valid regular expression: "+err.Error())
			continue
		}
		out = append(out, re)
	}
	return out
}

// Pattern compiles a name pattern of a configuration list; it must match the whole
// name, so "orders" does not match "orders-dlq".
func Pattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + p + ")$")
}

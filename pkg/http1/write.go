package http1

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// AppendStatusLine appends "HTTP/1.minor STATUS Reason\r\n".
func AppendStatusLine(b []byte, minor, status int) []byte {
	b = append(b, "HTTP/1."...)
	b = append(b, byte('0'+minor), ' ')
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	return append(b, "\r\n"...)
}

// AppendRequestLine appends "METHOD target HTTP/1.1\r\n". The caller makes
// sure method is a token and target visible ASCII (IsToken; a client's
// request target is escaped).
func AppendRequestLine[T ~string | ~[]byte](b []byte, method string, target T) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	return append(b, " HTTP/1.1\r\n"...)
}

// AppendField appends "name: value\r\n". The caller makes sure name is a
// token and value a valid field value (IsToken, ValidFieldValue).
func AppendField[V ~string | ~[]byte](b []byte, name string, value V) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// AppendContentLength appends "Content-Length: n\r\n".
func AppendContentLength(b []byte, n int) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n"...)
}

// Clock formats the Date field once a second for every message that asks in
// that second. It is safe for concurrent use; the zero value is ready.
type Clock struct {
	cur atomic.Pointer[clockValue]
}

type clockValue struct {
	sec   int64
	field []byte // "Date: ...\r\n"
}

// AppendDate appends "Date: <now in the HTTP format>\r\n".
func (c *Clock) AppendDate(b []byte) []byte {
	now := time.Now()
	v := c.cur.Load()
	if v == nil || v.sec != now.Unix() {
		f := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
		v = &clockValue{sec: now.Unix(), field: append(f, "\r\n"...)}
		c.cur.Store(v)
	}
	return append(b, v.field...)
}

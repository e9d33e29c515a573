// Package http1 is HTTP/1.1 message framing (RFC 9112) without net/http, for
// the programs of this module that run their own connections because
// net/http costs them too much per message: kproxy's HTTP front (a server),
// ktransfer's pushes and the benchmarks' load generator (clients).
//
// A server parses request heads with their limits (ParseRequest: request line,
// fields, the framing and connection fields) and writes status lines and
// fields (AppendStatusLine, AppendField, Clock). A client writes request heads
// (AppendRequestLine, AppendField, AppendContentLength) and reads response
// heads (ReadResponse: status line, fields, interim answers, whether the
// connection stays). Both read bodies with BodyReader: length-delimited,
// chunked and, for responses, up to the end of the connection. The checks
// (IsToken, ValidFieldValue) and numbers (ParseDecimal) are shared with the
// callers' configuration checks.
//
// The package does no I/O of its own beyond reading from a bufio.Reader,
// allocates nothing per message, and accepts only what it can frame without
// doubt: anything else is an error, which a server can hand to a fuller
// implementation and a client treats as a failed exchange. What it accepts,
// net/http reads the same way; its fuzz targets check that against net/http's
// own reading.
//
// Parsed heads point into the caller's buffer and are valid until it is reused.
// Functions are safe for concurrent use; a Request, Response or BodyReader is
// not.
package http1

package http1

import "testing"

// BenchmarkParseRequest parses the head of a typical /commit request, the
// work of kproxy's loop per request.
func BenchmarkParseRequest(b *testing.B) {
	head := []byte("POST /commit?topic=orders&key=k17&acks=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: loadgen\r\nContent-Type: application/x-msgpack\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nContent-Length: 200\r\n\r\n")
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if _, err := ParseRequest(head, 4096, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// Package wsgatetest is test support for kproxy's WebSocket gateways:
// dialing a gateway or sending it a request by hand, and running the Node.js
// clients of the interop tests (their pinned npm packages installed with npm
// ci into a temporary directory, then node bounded in time and killed with the
// test). Waiting for a condition is testwait's. Only tests import it; no
// binary contains it (testwait's TestNotInBinaries).
package wsgatetest

import (
	"io"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"
)

// Dial opens a WebSocket connection to url with header, closed when the test
// ends; a refused or failed handshake fails the test with the HTTP status.
func Dial(t testing.TB, url string, header http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// HandshakeHeader returns the headers of a WebSocket handshake, for a test
// that sends the upgrade request itself.
func HandshakeHeader() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

// Do sends a request of method with header to url, as a client that does
// not speak WebSocket would, and returns the answer with its body read.
func Do(t testing.TB, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, url, err)
	}
	return resp, body
}

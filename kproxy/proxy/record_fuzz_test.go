package proxy

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/logging"
)

// chunkedReader returns data in pieces of the sizes in steps (cycled, 1 byte
// at least), as a slow client sends a body.
type chunkedReader struct {
	data  []byte
	steps []byte
	i     int
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	n := 1
	if len(r.steps) > 0 {
		n = int(r.steps[r.i%len(r.steps)])*97 + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// eofReader ends chunkedReader's data with io.EOF.
type eofReader struct{ *chunkedReader }

func (r eofReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	return r.chunkedReader.Read(p)
}

// FuzzReadValue reads bodies of any content, arriving in pieces of any sizes,
// under limits of any size: the value is the body exactly when it is 1 to
// max_request_size_bytes long, ErrBodyTooLarge when it is longer, ErrEmptyBody
// when empty; and every byte of body memory is given back on Release.
func FuzzReadValue(f *testing.F) {
	f.Add([]byte("hello"), []byte{0, 3}, uint32(5))
	f.Add([]byte("hello"), []byte{}, uint32(4))
	f.Add(bytes.Repeat([]byte("x"), 70000), []byte{200, 1, 90}, uint32(70000))
	f.Add(bytes.Repeat([]byte("y"), 9000), []byte{7}, uint32(8192))
	f.Add([]byte{}, []byte{1}, uint32(10))
	f.Fuzz(func(t *testing.T, body, steps []byte, limit uint32) {
		max := int(limit%(1<<17)) + 1
		topics, _ := newTopicRules(TopicsConfig{})
		p := &Proxy{cfg: Config{MaxRequestSizeBytes: max}, topics: topics, health: newHealth(nil, logging.Discard())}
		p.mem.limit = 1 << 30
		p.cfg.ReqPoolSize = 1
		r, err := p.Admit("fuzz")
		if err != nil {
			t.Fatal(err)
		}
		err = r.ReadValue(eofReader{&chunkedReader{data: body, steps: steps}})
		switch {
		case len(body) == 0:
			if !errors.Is(err, ErrEmptyBody) {
				t.Fatalf("empty body: got %v, want ErrEmptyBody", err)
			}
		case len(body) > max:
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("%d bytes, limit %d: got %v, want ErrBodyTooLarge", len(body), max, err)
			}
		case err != nil || !bytes.Equal(r.Value(), body):
			t.Fatalf("%d bytes, limit %d: got %d bytes, %v; want the body", len(body), max, len(r.Value()), err)
		}
		if used := p.mem.used.Load(); used < int64(len(r.Value())) {
			t.Fatalf("%d bytes held, %d counted", len(r.Value()), used)
		}
		r.Release()
		if used := p.mem.used.Load(); used != 0 {
			t.Fatalf("after Release: %d bytes of body memory counted, want 0", used)
		}
	})
}

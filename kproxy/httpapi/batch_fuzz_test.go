package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/kproxy/proxy"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/envelope"
	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// sinkRecord is what parseBatch gave for one record.
type sinkRecord struct {
	key, value []byte
	headers    [][2]string
}

// recordingSink keeps what parseBatch adds.
type recordingSink struct {
	grown int
	recs  []sinkRecord
}

func (s *recordingSink) Grow(n int) error { s.grown += n; return nil }
func (s *recordingSink) Add(key, value []byte) error {
	s.recs = append(s.recs, sinkRecord{key: key, value: value})
	return nil
}
func (s *recordingSink) AddHeader(name string, value []byte) error {
	r := &s.recs[len(s.recs)-1]
	r.headers = append(r.headers, [2]string{name, string(value)})
	return nil
}

// refBatch is parseBatch's contract written with the msgpack library's
// decoder: an array of 1..max maps with string field names, each of key,
// value and headers at most once, a value, a key that is a string, binary or
// nil, headers that are nil or a map of string to string or binary, within
// the header rules; no trailing bytes. It returns the raw bytes of each value.
func refBatch(body []byte, max, reqHeaders int) ([]sinkRecord, error) {
	r := bytes.NewReader(body)
	dec := msgpack.NewDecoder(r)
	c, err := dec.PeekCode()
	if err != nil || !(msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32) {
		return nil, errors.New("not an array")
	}
	n, err := dec.DecodeArrayLen()
	if err != nil || n <= 0 || n > max {
		return nil, fmt.Errorf("array of %d: %v", n, err)
	}
	var out []sinkRecord
	for i := 0; i < n; i++ {
		c, err := dec.PeekCode()
		if err != nil || !(msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32) {
			return nil, errors.New("not a map")
		}
		pairs, err := dec.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		var rec sinkRecord
		seen := map[string]bool{}
		for p := 0; p < pairs; p++ {
			if c, err := dec.PeekCode(); err != nil || !msgpcode.IsString(c) {
				return nil, errors.New("field name not a string")
			}
			name, err := dec.DecodeString()
			if err != nil || seen[name] {
				return nil, errors.New("bad or repeated field name")
			}
			seen[name] = true
			switch name {
			case "key":
				c, err := dec.PeekCode()
				if err != nil {
					return nil, err
				}
				switch {
				case c == msgpcode.Nil:
					_ = dec.Skip()
				case msgpcode.IsString(c), msgpcode.IsBin(c):
					if rec.key, err = dec.DecodeBytes(); err != nil {
						return nil, err
					}
				default:
					return nil, errors.New("key of a wrong type")
				}
			case "value":
				raw, err := dec.DecodeRaw()
				if err != nil {
					return nil, err
				}
				rec.value = raw
			case "headers":
				c, err := dec.PeekCode()
				if err != nil {
					return nil, err
				}
				if c == msgpcode.Nil {
					_ = dec.Skip()
					continue
				}
				if !(msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32) {
					return nil, errors.New("headers not a map")
				}
				hn, err := dec.DecodeMapLen()
				if err != nil || reqHeaders+hn > proxy.MaxRecordHeaders {
					return nil, errors.New("too many headers")
				}
				for h := 0; h < hn; h++ {
					if c, err := dec.PeekCode(); err != nil || !msgpcode.IsString(c) {
						return nil, errors.New("header name not a string")
					}
					hname, err := dec.DecodeString()
					if err != nil {
						return nil, err
					}
					c, err := dec.PeekCode()
					if err != nil || !(msgpcode.IsString(c) || msgpcode.IsBin(c)) {
						return nil, errors.New("header value of a wrong type")
					}
					hval, err := dec.DecodeBytes()
					if err != nil {
						return nil, err
					}
					if err := proxy.CheckHeader(hname, hval); err != nil {
						return nil, err
					}
					rec.headers = append(rec.headers, [2]string{hname, string(hval)})
				}
			default:
				return nil, errors.New("unknown field")
			}
		}
		if rec.value == nil {
			return nil, errors.New("no value")
		}
		out = append(out, rec)
	}
	if r.Len() != 0 {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// FuzzBatch checks parseBatch: a body is either rejected as a whole with an
// error of the batch, header or size kind, or every record's value is a slice
// of the body holding exactly the bytes of its element's value, with the key
// and headers of its element; and it agrees with refBatch, the library-based
// reading of the same contract. Values nested beyond envelope.MaxDepth, which
// the library has no limit for, are only checked to be rejected.
func FuzzBatch(f *testing.F) {
	for _, v := range []any{
		[]any{map[string]any{"value": 1}},
		[]any{map[string]any{"key": "k", "value": map[string]any{"a": []any{1, "b"}}, "headers": map[string]any{"traceparent": "00-x", "b": []byte{0xff}}}},
		[]any{map[string]any{"key": []byte{0, 1}, "value": nil}, map[string]any{"key": nil, "value": "s", "headers": nil}},
		[]any{map[string]any{"value": 1, "extra": 2}},
		[]any{map[string]any{"key": 3, "value": 1}},
		[]any{map[string]any{"value": 1, "headers": map[string]any{"a b": "x"}}},
		[]any{map[string]any{"value": 1, "headers": map[string]any{"a": "x\r\ny"}}},
		[]any{},
		map[string]any{"value": 1},
		[]any{1},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(2))
		if len(b) > 1 {
			f.Add(b[:len(b)-1], uint8(2))
		}
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x80}, uint8(0))
	f.Add([]byte{0x91, 0x82, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x01, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x02}, uint8(0))
	f.Fuzz(func(t *testing.T, body []byte, reqHeaders uint8) {
		const max = 8
		req := int(reqHeaders) % (proxy.MaxRecordHeaders + 1)
		var sink recordingSink
		err := parseBatch(body, max, req, &sink)
		if err != nil {
			if !errors.Is(err, proxy.ErrInvalidBatch) && !errors.Is(err, proxy.ErrInvalidHeader) && !errors.Is(err, proxy.ErrBodyTooLarge) {
				t.Fatalf("parseBatch(% x) = %v, want an invalid batch, invalid header or too large error", body, err)
			}
			if errors.Is(err, envelope.ErrTooDeep) {
				return
			}
			if _, rerr := refBatch(body, max, req); rerr == nil && !strings.Contains(err.Error(), "too deep") {
				t.Fatalf("parseBatch(% x) = %v, the reference accepts it", body, err)
			}
			return
		}
		if sink.grown != len(sink.recs) || len(sink.recs) == 0 || len(sink.recs) > max {
			t.Fatalf("parseBatch(% x): %d records after Grow(%d), want 1..%d and equal", body, len(sink.recs), sink.grown, max)
		}
		for i, rec := range sink.recs {
			if !within(body, rec.value) || (len(rec.key) > 0 && !within(body, rec.key)) {
				t.Fatalf("parseBatch(% x): record %d: key or value is not a slice of the body", body, i)
			}
			if err := envelope.Validate(rec.value); err != nil {
				t.Fatalf("parseBatch(% x): record %d: value % x is not one msgpack value: %v", body, i, rec.value, err)
			}
			for _, h := range rec.headers {
				if err := proxy.CheckHeader(h[0], []byte(h[1])); err != nil {
					t.Fatalf("parseBatch(% x): record %d: header %v accepted: %v", body, i, h, err)
				}
			}
			if req+len(rec.headers) > proxy.MaxRecordHeaders {
				t.Fatalf("parseBatch(% x): record %d: %d headers with %d of the request", body, i, len(rec.headers), req)
			}
		}
		ref, rerr := refBatch(body, max, req)
		if rerr != nil {
			t.Fatalf("parseBatch(% x) accepted %d records, the reference refuses: %v", body, len(sink.recs), rerr)
		}
		if len(ref) != len(sink.recs) {
			t.Fatalf("parseBatch(% x): %d records, the reference %d", body, len(sink.recs), len(ref))
		}
		for i := range ref {
			got, want := sink.recs[i], ref[i]
			if !bytes.Equal(got.value, want.value) || !bytes.Equal(got.key, want.key) || fmt.Sprint(got.headers) != fmt.Sprint(want.headers) {
				t.Fatalf("parseBatch(% x): record %d: got %+v, the reference %+v", body, i, got, want)
			}
		}
	})
}

// within reports whether s is a slice of b's backing array inside b.
func within(b, s []byte) bool {
	if len(s) == 0 || len(b) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	at := uintptr(unsafe.Pointer(&s[0]))
	return at >= start && at+uintptr(len(s)) <= start+uintptr(len(b))
}

// FuzzRecordHeaders checks the mapping of request headers to record headers:
// only X-Kafka-Header-NAME (any case), traceparent and tracestate map; what is
// accepted has a lower-case token name of at most proxy.MaxHeaderNameBytes and
// a value without CR, LF or NUL of at most proxy.MaxHeaderValueBytes; the
// mapping stops at proxy.MaxRecordHeaders.
func FuzzRecordHeaders(f *testing.F) {
	for _, s := range [][2]string{
		{"X-Kafka-Header-Request-Id", "r-1"},
		{"x-kafka-header-", "v"},
		{"X-KAFKA-HEADER-A", "v"},
		{"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{"tracestate", "a=b"},
		{"X-Kafka-Header-A", "x\r\nInjected: 1"},
		{"X-Kafka-Header-A B", "v"},
		{"Content-Type", "application/x-msgpack"},
	} {
		f.Add(s[0], s[1], uint8(0))
	}
	f.Fuzz(func(t *testing.T, name, value string, have uint8) {
		prior := make([]kgo.RecordHeader, int(have)%(proxy.MaxRecordHeaders+2))
		out, err := appendRecordHeader(prior, name, value)
		lname := strings.ToLower(name)
		maps := strings.HasPrefix(lname, recordHeaderPrefix) || lname == traceParent || lname == traceState
		if !maps {
			if err != nil || len(out) != len(prior) {
				t.Fatalf("%q: got %d headers, %v; want the header ignored", name, len(out), err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, proxy.ErrInvalidHeader) {
				t.Fatalf("%q: %q: got %v, want ErrInvalidHeader", name, value, err)
			}
			return
		}
		if len(prior) >= proxy.MaxRecordHeaders {
			t.Fatalf("%q: accepted beyond %d headers", name, proxy.MaxRecordHeaders)
		}
		h := out[len(out)-1]
		want := strings.TrimPrefix(lname, recordHeaderPrefix)
		if h.Key != want || string(h.Value) != value {
			t.Fatalf("%q: %q: got %s=%q, want %s=%q", name, value, h.Key, h.Value, want, value)
		}
		if h.Key == "" || len(h.Key) > proxy.MaxHeaderNameBytes || len(h.Value) > proxy.MaxHeaderValueBytes ||
			strings.ContainsAny(string(h.Value), "\r\n\x00") || strings.ToLower(h.Key) != h.Key {
			t.Fatalf("%q: %q: accepted %s=%q, which breaks the rules", name, value, h.Key, h.Value)
		}
		for i := 0; i < len(h.Key); i++ {
			if !http1.IsTokenChar(h.Key[i]) {
				t.Fatalf("%q: accepted a name that is not a token: %q", name, h.Key)
			}
		}
	})
}

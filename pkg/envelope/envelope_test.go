package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// cat joins byte fragments; strings are taken as raw bytes.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = append(b, byte(v))
		case byte:
			b = append(b, v)
		case string:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("cat: unsupported %T", p))
		}
	}
	return b
}

// n returns count bytes of filler.
func n(count int) []byte { return bytes.Repeat([]byte{'x'}, count) }

// formats has one or more complete encodings of every msgpack format.
var formats = []struct {
	name string
	b    []byte
}{
	{"positive fixint 0", cat(0x00)},
	{"positive fixint 127", cat(0x7f)},
	{"negative fixint -32", cat(0xe0)},
	{"negative fixint -1", cat(0xff)},
	{"nil", cat(0xc0)},
	{"false", cat(0xc2)},
	{"true", cat(0xc3)},
	{"uint8", cat(0xcc, 0xff)},
	{"uint16", cat(0xcd, 0x01, 0x00)},
	{"uint32", cat(0xce, 0x00, 0x01, 0x00, 0x00)},
	{"uint64", cat(0xcf, n(8))},
	{"int8", cat(0xd0, 0x80)},
	{"int16", cat(0xd1, 0x80, 0x00)},
	{"int32", cat(0xd2, n(4))},
	{"int64", cat(0xd3, n(8))},
	{"float32", cat(0xca, n(4))},
	{"float64", cat(0xcb, n(8))},
	{"fixstr empty", cat(0xa0)},
	{"fixstr 3", cat(0xa3, "abc")},
	{"fixstr 31", cat(0xbf, n(31))},
	{"str8 empty", cat(0xd9, 0x00)},
	{"str8 3", cat(0xd9, 0x03, "abc")},
	{"str8 255", cat(0xd9, 0xff, n(255))},
	{"str16 empty", cat(0xda, 0x00, 0x00)},
	{"str16 3", cat(0xda, 0x00, 0x03, "abc")},
	{"str16 256", cat(0xda, 0x01, 0x00, n(256))},
	{"str32 empty", cat(0xdb, 0, 0, 0, 0)},
	{"str32 3", cat(0xdb, 0, 0, 0, 3, "abc")},
	{"bin8 empty", cat(0xc4, 0x00)},
	{"bin8 2", cat(0xc4, 0x02, 0x00, 0xff)},
	{"bin16 2", cat(0xc5, 0x00, 0x02, 0x00, 0xff)},
	{"bin32 2", cat(0xc6, 0, 0, 0, 2, 0x00, 0xff)},
	{"fixarray empty", cat(0x90)},
	{"fixarray 3", cat(0x93, 0x01, 0xa1, "a", 0xc0)},
	{"fixarray 15", cat(0x9f, bytes.Repeat([]byte{0xc3}, 15))},
	{"array16 empty", cat(0xdc, 0, 0)},
	{"array16 2", cat(0xdc, 0, 2, 0xc0, 0xc2)},
	{"array32 empty", cat(0xdd, 0, 0, 0, 0)},
	{"array32 1", cat(0xdd, 0, 0, 0, 1, 0xc3)},
	{"fixmap empty", cat(0x80)},
	{"fixmap 1", cat(0x81, 0xa1, "k", 0x01)},
	{"fixmap 15", cat(0x8f, bytes.Repeat([]byte{0x01, 0x02}, 15))},
	{"map16 empty", cat(0xde, 0, 0)},
	{"map16 1", cat(0xde, 0, 1, 0x01, 0x02)},
	{"map32 empty", cat(0xdf, 0, 0, 0, 0)},
	{"map32 1", cat(0xdf, 0, 0, 0, 1, 0xc0, 0xc0)},
	{"fixext1", cat(0xd4, 0x05, 0xaa)},
	{"fixext2", cat(0xd5, 0x05, n(2))},
	{"fixext4", cat(0xd6, 0xff, n(4))},
	{"fixext8", cat(0xd7, 0xff, n(8))},
	{"fixext16", cat(0xd8, 0x80, n(16))},
	{"ext8 empty", cat(0xc7, 0x00, 0x05)},
	{"ext8 3", cat(0xc7, 0x03, 0x05, n(3))},
	{"ext16 3", cat(0xc8, 0x00, 0x03, 0x05, n(3))},
	{"ext32 3", cat(0xc9, 0, 0, 0, 3, 0x05, n(3))},
	{"nested", cat(0x92, 0x81, 0xa1, "a", 0x91, 0xc0, 0xdc, 0, 1, 0x80)},
	{"map with container keys", cat(0x82, 0x91, 0x01, 0x80, 0x80, 0x90)},
}

func TestValidateFormats(t *testing.T) {
	for _, tt := range formats {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.b); err != nil {
				t.Fatalf("Validate(% x) = %v, want nil", tt.b, err)
			}
			// Every proper prefix is a value cut short.
			for i := 1; i < len(tt.b); i++ {
				if err := Validate(tt.b[:i]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("Validate(% x) = %v, want ErrTruncated", tt.b[:i], err)
				}
			}
			if err := Validate(append(bytes.Clone(tt.b), 0xc0)); !errors.Is(err, ErrTrailing) {
				t.Errorf("Validate(value + nil) = %v, want ErrTrailing", err)
			}
			// Inside an array the value must still be skipped exactly.
			inArray := cat(0x93, tt.b, 0xc3, tt.b)
			if err := Validate(inArray); err != nil {
				t.Errorf("Validate([v, true, v]) = %v, want nil", err)
			}
			if err := Validate(inArray[:len(inArray)-1]); !errors.Is(err, ErrTruncated) {
				t.Errorf("Validate([v, true, v] minus last byte) = %v, want ErrTruncated", err)
			}
		})
	}
}

func TestValidateEmpty(t *testing.T) {
	for _, b := range [][]byte{nil, {}} {
		if err := Validate(b); !errors.Is(err, ErrEmpty) {
			t.Errorf("Validate(%#v) = %v, want ErrEmpty", b, err)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrEmpty, "msgpack: empty input"},
		{"uint32 short", cat(0xce, 0, 0), ErrTruncated,
			"msgpack: truncated value at byte 0 (need 2 more bytes)"},
		{"str32 short in array", cat(0x92, 0x01, 0xdb, 0, 0, 0, 10, "a"), ErrTruncated,
			"msgpack: truncated value at byte 2 (need 9 more bytes)"},
		{"missing element", cat(0x92, 0x01), ErrTruncated,
			"msgpack: truncated value at byte 0 (2 array elements declared, need at least 1 more byte)"},
		{"str8 length missing", cat(0x91, 0xd9), ErrTruncated,
			"msgpack: truncated value at byte 1 (need 1 more byte)"},
		{"map missing value", cat(0x81, 0xa1, "k"), ErrTruncated,
			"msgpack: truncated value at byte 3 (need 1 more byte)"},
		{"map missing key and value", cat(0x92, 0x81, 0xc0), ErrTruncated,
			"msgpack: truncated value at byte 1 (1 map pairs declared, need at least 2 more bytes)"},
		{"one trailing byte", cat(0x90, 0x00), ErrTrailing,
			"msgpack: trailing bytes at byte 1 (1 byte after the value)"},
		{"trailing", cat(0xc0, 0xc0, 0xc0), ErrTrailing,
			"msgpack: trailing bytes at byte 1 (2 bytes after the value)"},
		{"reserved top", cat(0xc1), ErrInvalid, "msgpack: invalid type byte 0xc1 at byte 0"},
		{"reserved in array", cat(0x92, 0x01, 0xc1), ErrInvalid, "msgpack: invalid type byte 0xc1 at byte 2"},
		{"reserved map key", cat(0x81, 0xc1, 0x01), ErrInvalid, "msgpack: invalid type byte 0xc1 at byte 1"},
		{"reserved map value", cat(0x81, 0x01, 0xc1), ErrInvalid, "msgpack: invalid type byte 0xc1 at byte 2"},
		{"huge array32", cat(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0), ErrTruncated,
			"msgpack: truncated value at byte 0 (4294967295 array elements declared, need at least 4294967294 more bytes)"},
		{"huge map32", cat(0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0), ErrTruncated,
			"msgpack: truncated value at byte 0 (4294967295 map pairs declared, need at least 8589934588 more bytes)"},
		{"huge str32", cat(0xdb, 0xff, 0xff, 0xff, 0xff, "abc"), ErrTruncated,
			"msgpack: truncated value at byte 0 (need 4294967292 more bytes)"},
		{"huge bin32", cat(0xc6, 0xff, 0xff, 0xff, 0xff), ErrTruncated,
			"msgpack: truncated value at byte 0 (need 4294967295 more bytes)"},
		{"huge ext32", cat(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), ErrTruncated,
			"msgpack: truncated value at byte 0 (need 4294967295 more bytes)"},
		// The inner array could fit on its own, but not together with the
		// element the outer array still expects after it.
		{"count includes siblings", cat(0x92, 0x92, 0xc0, 0xc0), ErrTruncated,
			"msgpack: truncated value at byte 1 (2 array elements declared, need at least 1 more byte)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate(% x) = %v, want %v", tt.in, err, tt.want)
			}
			if err.Error() != tt.msg {
				t.Errorf("got message %q, want %q", err.Error(), tt.msg)
			}
			for _, other := range []error{ErrEmpty, ErrTruncated, ErrTrailing, ErrInvalid, ErrTooDeep} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("got error %v also matching %v, want only %v", err, other, tt.want)
				}
			}
		})
	}
}

// nest wraps inner in depth single-element containers made by wrap.
func nest(depth int, wrap []byte, inner []byte) []byte {
	return append(bytes.Repeat(wrap, depth), inner...)
}

func TestValidateDepth(t *testing.T) {
	arr := []byte{0x91}         // [x]
	mp := []byte{0x81, 0xa0}    // {"": x}
	arr16 := []byte{0xdc, 0, 1} // array16 of one
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"arrays at limit", nest(MaxDepth, arr, []byte{0xc0}), nil},
		{"arrays past limit", nest(MaxDepth+1, arr, []byte{0xc0}), ErrTooDeep},
		{"empty array one past limit", nest(MaxDepth, arr, []byte{0x90}), ErrTooDeep},
		{"empty array at limit", nest(MaxDepth-1, arr, []byte{0x90}), nil},
		{"maps at limit", nest(MaxDepth, mp, []byte{0xc0}), nil},
		{"maps past limit", nest(MaxDepth+1, mp, []byte{0xc0}), ErrTooDeep},
		{"array16 past limit", nest(MaxDepth+1, arr16, []byte{0xc0}), ErrTooDeep},
		{"far past limit", nest(1_000_000, arr, []byte{0xc0}), ErrTooDeep},
		{"far past limit, truncated", nest(1_000_000, arr, nil), ErrTooDeep},
		// Depth is nesting, not the number of containers.
		{"many siblings", cat(0xdc, 0x10, 0x00, bytes.Repeat([]byte{0x91, 0x90}, 4096)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.in)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if err := Validate(nest(MaxDepth+1, arr, []byte{0xc0})); !strings.Contains(err.Error(), fmt.Sprintf("at byte %d", MaxDepth)) {
		t.Errorf("got %q, want it to name byte %d, the first container too deep", err, MaxDepth)
	}
}

// bytesAllocated reports the heap bytes fn allocates over runs calls.
func bytesAllocated(runs int, fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		fn()
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestValidateHugeDeclaredLengths(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"array32", cat(0xdd, 0xff, 0xff, 0xff, 0xff, bytes.Repeat([]byte{0xc0}, 100))},
		{"map32", cat(0xdf, 0xff, 0xff, 0xff, 0xff, bytes.Repeat([]byte{0xc0}, 100))},
		{"array16 of array32", cat(0xdc, 0xff, 0xff, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0)},
		{"nested array32s", bytes.Repeat([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, 100)},
		{"str32", cat(0xdb, 0xff, 0xff, 0xff, 0xff, n(100))},
		{"bin32", cat(0xc6, 0xff, 0xff, 0xff, 0xff, n(100))},
		{"ext32", cat(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, n(100))},
		{"map32 in map value", cat(0x81, 0xa1, "k", 0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.in); !errors.Is(err, ErrTruncated) {
				t.Fatalf("got %v, want ErrTruncated", err)
			}
			// Only the error itself may be allocated: nothing that
			// grows with the declared length.
			const runs = 100
			if got := bytesAllocated(runs, func() { _ = Validate(tt.in) }); got > runs*512 {
				t.Errorf("got %d bytes allocated over %d calls, want at most %d", got, runs, runs*512)
			}
			if _, ok := Method(tt.in); ok {
				t.Errorf("Method = ok, want not ok")
			}
		})
	}
}

// sampleBody is a typical kproxy body of about 200 bytes.
func sampleBody(tb testing.TB) []byte {
	tb.Helper()
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	var buf bytes.Buffer
	enc.Reset(&buf)
	enc.SetSortMapKeys(true)
	err := enc.Encode(map[string]any{
		"topic":  "orders",
		"method": "order.created",
		"key":    "user-1234567",
		"data": map[string]any{
			"order_id": uint64(9876543210),
			"user_id":  1234567,
			"amount":   129.95,
			"currency": "EUR",
			"items":    []any{"sku-1", "sku-22", "sku-333"},
			"paid":     true,
			"note":     "leave at the door, ring twice",
			"ts":       int64(1700000000123),
		},
	})
	if err != nil {
		tb.Fatalf("encode sample body: %v", err)
	}
	return buf.Bytes()
}

func TestValidateZeroAllocs(t *testing.T) {
	body := sampleBody(t)
	if err := Validate(body); err != nil {
		t.Fatalf("Validate(sample body) = %v, want nil", err)
	}
	if got := testing.AllocsPerRun(100, func() { _ = Validate(body) }); got != 0 {
		t.Errorf("got %v allocs per Validate, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = Method(body) }); got > 1 {
		t.Errorf("got %v allocs per Method, want at most 1 (the result)", got)
	}
}

// testExt is a user extension type for RegisterExt.
type testExt struct{ payload []byte }

func (e *testExt) MarshalMsgpack() ([]byte, error) { return e.payload, nil }
func (e *testExt) UnmarshalMsgpack(b []byte) error {
	e.payload = bytes.Clone(b)
	return nil
}

const testExtID = 77

func TestValidateLibraryValues(t *testing.T) {
	msgpack.RegisterExt(testExtID, (*testExt)(nil))
	t.Cleanup(func() { msgpack.UnregisterExt(testExtID) })

	bigMap := map[string]int{}
	for i := 0; i < 70000; i++ {
		bigMap[fmt.Sprint(i)] = i
	}
	values := []struct {
		name string
		v    any
	}{
		{"nil", nil},
		{"bools", []bool{true, false}},
		{"small ints", []int{0, 1, -1, 127, -32, -33, 128, 255, 256}},
		{"int bounds", []int64{math.MinInt64, math.MinInt32, math.MinInt16, math.MinInt8, math.MaxInt8, math.MaxInt16, math.MaxInt32, math.MaxInt64}},
		{"uint bounds", []uint64{0, math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxUint64}},
		{"float32", float32(3.25)},
		{"float64", []float64{0, -1.5, math.Inf(1), math.NaN(), math.MaxFloat64, math.SmallestNonzeroFloat64}},
		{"strings", []string{"", "a", strings.Repeat("s", 31), strings.Repeat("s", 32), strings.Repeat("s", 255), strings.Repeat("s", 256), strings.Repeat("s", 65535), strings.Repeat("s", 65536)}},
		{"unicode", "héllo wörld ✓ 🚀"},
		{"binary", [][]byte{nil, {}, {0}, n(255), n(256), n(65535), n(65536)}},
		{"array 15", make([]int, 15)},
		{"array 16", make([]int, 16)},
		{"array 65536", make([]bool, 65536)},
		{"map 15", map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 10, 11: 11, 12: 12, 13: 13, 14: 14, 15: 15}},
		{"map 70000", bigMap},
		{"nested", map[string]any{"topic": "t", "method": "m", "data": map[string]any{"a": []any{1, "x", []byte{1}, map[string]any{"b": nil}}}}},
		{"struct", struct {
			Topic string
			Data  []any
		}{"t", []any{1.5, "x"}}},
		{"time seconds", time.Unix(1700000000, 0)},
		{"time nanos", time.Unix(1700000000, 123)},
		{"time far", time.Unix(1<<40, 5)},
		{"ext sizes", []*testExt{{n(1)}, {n(2)}, {n(4)}, {n(8)}, {n(16)}, {nil}, {n(3)}, {n(255)}, {n(256)}, {n(65536)}}},
		{"raw", msgpack.RawMessage{0x92, 0xc0, 0xc3}},
	}
	for _, tt := range values {
		t.Run(tt.name, func(t *testing.T) {
			encodings := map[string][]byte{}
			b, err := msgpack.Marshal(tt.v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			encodings["default"] = b
			var buf bytes.Buffer
			enc := msgpack.NewEncoder(&buf)
			enc.UseCompactInts(true)
			enc.UseCompactFloats(true)
			if err := enc.Encode(tt.v); err != nil {
				t.Fatalf("Encode compact: %v", err)
			}
			encodings["compact"] = buf.Bytes()

			for name, b := range encodings {
				if err := Validate(b); err != nil {
					t.Fatalf("%s: Validate = %v, want nil", name, err)
				}
				if err := Validate(append(bytes.Clone(b), 0x00)); !errors.Is(err, ErrTrailing) {
					t.Errorf("%s: Validate(value + 0x00) = %v, want ErrTrailing", name, err)
				}
				for _, cut := range []int{1, len(b) / 2, len(b) - 1} {
					if cut <= 0 || cut >= len(b) {
						continue
					}
					if err := Validate(b[:cut]); !errors.Is(err, ErrTruncated) {
						t.Errorf("%s: Validate(first %d of %d bytes) = %v, want ErrTruncated", name, cut, len(b), err)
					}
				}
			}
		})
	}
}

func TestMethod(t *testing.T) {
	enc := func(v any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		return b
	}
	tests := []struct {
		name   string
		in     []byte
		want   string
		wantOK bool
	}{
		{"typical", enc(map[string]any{"topic": "t", "method": "order.created", "key": "k", "data": map[string]any{"x": 1}}), "order.created", true},
		{"only method", cat(0x81, 0xa6, "method", 0xa3, "get"), "get", true},
		{"empty method", cat(0x81, 0xa6, "method", 0xa0), "", true},
		{"method str8", cat(0x81, 0xa6, "method", 0xd9, 0x03, "get"), "get", true},
		{"method str16", cat(0x81, 0xa6, "method", 0xda, 0x00, 0x03, "get"), "get", true},
		{"method str32", cat(0x81, 0xa6, "method", 0xdb, 0, 0, 0, 3, "get"), "get", true},
		{"key str8", cat(0x81, 0xd9, 0x06, "method", 0xa3, "get"), "get", true},
		{"map16", cat(0xde, 0x00, 0x02, 0xa1, "a", 0x01, 0xa6, "method", 0xa3, "put"), "put", true},
		{"map32", cat(0xdf, 0, 0, 0, 1, 0xa6, "method", 0xa3, "put"), "put", true},
		{"non-string keys first", cat(0x83, 0x01, 0x02, 0x91, 0xc0, 0x80, 0xa6, "method", 0xa1, "m"), "m", true},
		{"last of duplicates", cat(0x82, 0xa6, "method", 0xa1, "a", 0xa6, "method", 0xa1, "b"), "b", true},
		{"long method", enc(map[string]string{"method": strings.Repeat("m", 70000)}), strings.Repeat("m", 70000), true},
		{"nested outer wins", enc(map[string]any{"data": map[string]any{"method": "inner"}, "method": "outer"}), "outer", true},

		{"absent", enc(map[string]any{"topic": "t", "data": "x"}), "", false},
		{"empty map", cat(0x80), "", false},
		{"nested only", enc(map[string]any{"data": map[string]any{"method": "inner"}}), "", false},
		{"nested in array", enc(map[string]any{"data": []any{map[string]any{"method": "inner"}}}), "", false},
		{"method as value not key", cat(0x81, 0xa4, "verb", 0xa6, "method"), "", false},
		{"method int", cat(0x81, 0xa6, "method", 0x01), "", false},
		{"method nil", cat(0x81, 0xa6, "method", 0xc0), "", false},
		{"method bin", cat(0x81, 0xa6, "method", 0xc4, 0x03, "get"), "", false},
		{"method array", cat(0x81, 0xa6, "method", 0x91, 0xa3, "get"), "", false},
		{"key bin", cat(0x81, 0xc4, 0x06, "method", 0xa3, "get"), "", false},
		{"key methods", cat(0x81, 0xa7, "methods", 0xa3, "get"), "", false},
		{"key metho", cat(0x81, 0xa5, "metho", 0xa3, "get"), "", false},
		{"last duplicate not a string", cat(0x82, 0xa6, "method", 0xa1, "a", 0xa6, "method", 0x01), "", false},
		{"array", cat(0x92, 0xa6, "method", 0xa3, "get"), "", false},
		{"string", cat(0xa6, "method"), "", false},
		{"nil", cat(0xc0), "", false},
		{"empty", nil, "", false},
		{"reserved byte", cat(0xc1), "", false},
		{"garbage", []byte("\xde\xad\xbe\xef"), "", false},
		{"truncated method", cat(0x81, 0xa6, "method", 0xa3, "ge"), "", false},
		{"truncated key", cat(0x81, 0xa6, "meth"), "", false},
		{"truncated after method", cat(0x82, 0xa6, "method", 0xa3, "get", 0xa1), "", false},
		{"missing value after method", cat(0x82, 0xa6, "method", 0xa3, "get"), "", false},
		{"trailing bytes", cat(0x81, 0xa6, "method", 0xa3, "get", 0xc0), "", false},
		{"invalid later value", cat(0x82, 0xa6, "method", 0xa3, "get", 0xa1, "x", 0xc1), "", false},
		{"huge map32", cat(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa6, "method", 0xa3, "get"), "", false},
		{"map16 header short", cat(0xde, 0x00), "", false},
		{"map32 header short", cat(0xdf, 0x00, 0x00), "", false},
		{"too deep data", cat(0x82, 0xa6, "method", 0xa3, "get", 0xa4, "data", nest(MaxDepth, []byte{0x91}, []byte{0xc0})), "", false},
		{"deep data at limit", cat(0x82, 0xa6, "method", 0xa3, "get", 0xa4, "data", nest(MaxDepth-1, []byte{0x91}, []byte{0xc0})), "get", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Method(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Method = %.40q, %v; want %.40q, %v", got, ok, tt.want, tt.wantOK)
			}
			// A found method implies a valid body.
			if ok {
				if err := Validate(tt.in); err != nil {
					t.Errorf("Method ok but Validate = %v", err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	body := sampleBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Validate(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLibrarySkip is the same check done with the msgpack library, for
// comparison with BenchmarkValidate.
func BenchmarkLibrarySkip(b *testing.B) {
	body := sampleBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := libValidate(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMethod(b *testing.B) {
	body := sampleBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, ok := Method(body); !ok {
			b.Fatal("no method")
		}
	}
}

func BenchmarkValidateHugeArray(b *testing.B) {
	body := cat(0xdd, 0xff, 0xff, 0xff, 0xff, bytes.Repeat([]byte{0xc0}, 100))
	b.ReportAllocs()
	for b.Loop() {
		_ = Validate(body)
	}
}

func TestWalkPrimitives(t *testing.T) {
	arr := cat(0x92, 0x81, 0xa1, "k", 0xc4, 0x02, "ab", 0xc0)
	n, next, ok := ArrayHeader(arr, 0)
	if !ok || n != 2 || next != 1 {
		t.Fatalf("ArrayHeader: got %d, %d, %v; want 2, 1, true", n, next, ok)
	}
	pairs, kOff, ok := MapHeader(arr, next)
	if !ok || pairs != 1 || kOff != 2 {
		t.Fatalf("MapHeader: got %d, %d, %v; want 1, 2, true", pairs, kOff, ok)
	}
	s, e, isStr, ok := Bytes(arr, kOff)
	if !ok || !isStr || string(arr[s:e]) != "k" {
		t.Fatalf("Bytes(str): got %q str %v ok %v; want \"k\" str", arr[s:e], isStr, ok)
	}
	s, e, isStr, ok = Bytes(arr, e)
	if !ok || isStr || string(arr[s:e]) != "ab" {
		t.Fatalf("Bytes(bin): got %q str %v ok %v; want \"ab\" bin", arr[s:e], isStr, ok)
	}
	if !IsNil(arr, e) || IsNil(arr, e+1) || IsNil(arr, -1) {
		t.Error("IsNil: wrong answer")
	}
	end, err := Next(arr, next)
	if err != nil || end != e {
		t.Fatalf("Next(first element): got %d, %v; want %d", end, err, e)
	}
	if end, err := Next(arr, 0); err != nil || end != len(arr) {
		t.Fatalf("Next(array): got %d, %v; want %d", end, err, len(arr))
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"forged array count", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}},
		{"array16 cut", []byte{0xdc, 0x00}},
		{"not an array", []byte{0x80}},
		{"empty", nil},
	} {
		if _, _, ok := ArrayHeader(tc.b, 0); ok {
			t.Errorf("ArrayHeader(%s): got ok, want not ok", tc.name)
		}
	}
	if _, _, ok := MapHeader([]byte{0x82, 0xc0, 0xc0, 0xc0}, 0); ok {
		t.Error("MapHeader: 2 pairs in 3 bytes accepted")
	}
	if _, _, _, ok := Bytes([]byte{0xc5, 0x00, 0x05, 'a'}, 0); ok {
		t.Error("Bytes: cut bin16 accepted")
	}
	if _, _, _, ok := Bytes([]byte{0x01}, 0); ok {
		t.Error("Bytes: integer accepted")
	}
	if _, err := Next([]byte{0x91}, 0); !errors.Is(err, ErrTruncated) {
		t.Errorf("Next(cut array): got %v, want ErrTruncated", err)
	}
	if _, err := Next([]byte{0xc0}, 1); !errors.Is(err, ErrTruncated) {
		t.Errorf("Next(past the end): got %v, want ErrTruncated", err)
	}
}

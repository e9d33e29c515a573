package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// libValidate is the reference check: the msgpack library skips exactly one
// value and nothing may follow it.
func libValidate(b []byte) error {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	if err := dec.Skip(); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// libMethod is Method's contract implemented with the msgpack library's
// decoder: a map, string keys compared to "method", the last string value
// for that key wins, no trailing bytes.
func libMethod(b []byte) (string, bool) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	c, err := dec.PeekCode()
	// DecodeMapLen also accepts nil and an ext header before the map;
	// Method's contract is a plain map, so check the code first.
	if err != nil || !(msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32) {
		return "", false
	}
	pairs, err := dec.DecodeMapLen()
	if err != nil {
		return "", false
	}
	var method string
	found := false
	for i := 0; i < pairs; i++ {
		isMethod := false
		c, err := dec.PeekCode()
		if err != nil {
			return "", false
		}
		if msgpcode.IsString(c) {
			k, err := dec.DecodeString()
			if err != nil {
				return "", false
			}
			isMethod = k == "method"
		} else if err := dec.Skip(); err != nil {
			return "", false
		}
		if c, err = dec.PeekCode(); err != nil {
			return "", false
		}
		if isMethod && msgpcode.IsString(c) {
			if method, err = dec.DecodeString(); err != nil {
				return "", false
			}
			found = true
			continue
		}
		if isMethod {
			found = false
		}
		if err := dec.Skip(); err != nil {
			return "", false
		}
	}
	if r.Len() != 0 || !found {
		return "", false
	}
	return method, true
}

// addSeeds gives both fuzz targets the same interesting starting points.
func addSeeds(f *testing.F) {
	for _, tt := range formats {
		f.Add(tt.b)
		f.Add(tt.b[:len(tt.b)-1])
	}
	seeds := [][]byte{
		{},
		{0xc1},
		{0xc0, 0xc0},
		{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0},
		{0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0},
		{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
		cat(0x81, 0xa6, "method", 0xa3, "get"),
		cat(0x82, 0xa6, "method", 0xa1, "a", 0xa6, "method", 0x01),
		cat(0x83, 0x01, 0x02, 0x91, 0xc0, 0x80, 0xa6, "method", 0xa1, "m"),
		cat(0x81, 0xa4, "data", 0x81, 0xa6, "method", 0xa1, "x"),
		cat(0xde, 0x00, 0x01, 0xa6, "method", 0xd9, 0x01, "x"),
		nest(MaxDepth, []byte{0x91}, []byte{0xc0}),
		nest(MaxDepth+1, []byte{0x91}, []byte{0xc0}),
		nest(MaxDepth+1, []byte{0x81, 0xa0}, []byte{0xc0}),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	for _, v := range []any{
		map[string]any{"topic": "t", "method": "order.created", "key": "k", "data": map[string]any{"x": 1, "y": []any{1.5, "z", nil, true}}},
		[]any{uint64(1) << 63, int64(-1) << 62, float32(1.5), []byte{1, 2, 3}},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatalf("Marshal: %v", err)
		}
		f.Add(b)
	}
}

var sentinels = []error{ErrEmpty, ErrTruncated, ErrTrailing, ErrInvalid, ErrTooDeep}

// FuzzValidate checks Validate against the msgpack library's Skip.
//
// The one legitimate difference: the library's Skip recurses without a depth
// limit, so it accepts values nested deeper than MaxDepth that Validate
// rejects with ErrTooDeep. Inputs rejected with ErrTooDeep are therefore not
// compared; they are still required to be well-formed up to the point where
// the depth ran out, which the library cannot confirm. Everything else,
// including the reserved byte 0xc1, truncation anywhere and trailing bytes,
// must agree exactly.
func FuzzValidate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Validate(b)
		if err != nil {
			matched := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					matched++
				}
			}
			if matched != 1 {
				t.Fatalf("Validate(% x) = %v, matching %d sentinels, want exactly 1", b, err, matched)
			}
		}
		// Next walks the same value: it ends where the body ends exactly
		// when Validate accepts the body, and what it walks is valid alone.
		if end, nerr := Next(b, 0); nerr == nil {
			if verr := Validate(b[:end]); verr != nil {
				t.Fatalf("Next(% x) = %d but Validate of those bytes = %v", b, end, verr)
			}
			if (end == len(b)) != (err == nil) {
				t.Fatalf("Next(% x) = %d of %d bytes, Validate = %v", b, end, len(b), err)
			}
		} else if err == nil {
			t.Fatalf("Next(% x) = %v, Validate accepts it", b, nerr)
		}
		if errors.Is(err, ErrTooDeep) {
			return
		}
		libErr := libValidate(b)
		if (err == nil) != (libErr == nil) {
			t.Fatalf("Validate(% x) = %v, library = %v; want both nil or both non-nil", b, err, libErr)
		}
		if err == nil {
			// A valid value followed by anything is trailing, and a
			// proper prefix is truncated.
			if err := Validate(append(bytes.Clone(b), 0xc0)); !errors.Is(err, ErrTrailing) {
				t.Fatalf("Validate(% x + c0) = %v, want ErrTrailing", b, err)
			}
			if len(b) > 1 {
				if err := Validate(b[:len(b)-1]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("Validate(% x minus last byte) = %v, want ErrTruncated", b, err)
				}
			}
		}
	})
}

// FuzzMethod checks that Method never panics, agrees with a decoder-based
// implementation of the same contract, and that whatever it finds is
// consistent with Validate.
//
// As in FuzzValidate, inputs Validate rejects with ErrTooDeep are not compared
// with the library, which has no depth limit.
func FuzzMethod(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := Method(b)
		if !ok && m != "" {
			t.Fatalf("Method(% x) = %q, false; want an empty string when not ok", b, m)
		}
		verr := Validate(b)
		if ok {
			if verr != nil {
				t.Fatalf("Method(% x) = %q, true but Validate = %v", b, m, verr)
			}
			if !bytes.Contains(b, []byte(m)) {
				t.Fatalf("Method(% x) = %q, which is not in the input", b, m)
			}
		}
		if !errors.Is(verr, ErrTooDeep) {
			lm, lok := libMethod(b)
			if lm != m || lok != ok {
				t.Fatalf("Method(% x) = %q, %v; library-based = %q, %v", b, m, ok, lm, lok)
			}
		}
		if !ok {
			return
		}
		// The method carried alongside the input, as bytes or as a nested
		// value, is found again, and the nested copy never overrides it.
		wrapped, err := msgpack.Marshal(map[string]any{"data": b, "method": m})
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if got, gok := Method(wrapped); got != m || !gok {
			t.Fatalf("Method(map with bin data) = %q, %v; want %q, true", got, gok, m)
		}
		nested, err := msgpack.Marshal(map[string]any{"data": msgpack.RawMessage(b), "method": "outer:" + m})
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		got, gok := Method(nested)
		switch err := Validate(nested); {
		case err == nil:
			if got != "outer:"+m || !gok {
				t.Fatalf("Method(map with nested data) = %q, %v; want %q, true", got, gok, "outer:"+m)
			}
		case errors.Is(err, ErrTooDeep):
			// b was exactly MaxDepth deep; one more level is too many.
			if gok {
				t.Fatalf("Method(too deep) = %q, true; want false", got)
			}
		default:
			t.Fatalf("Validate(map with nested data) = %v, want nil or ErrTooDeep", err)
		}
	})
}

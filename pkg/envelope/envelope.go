// Package envelope checks and reads the msgpack message convention of the
// services that POST to kproxy: a body is one msgpack value, usually a map
// with keys topic, method, key, data.
//
// The scanner here never decodes: it walks the encoding in place, allocates
// nothing, and never trusts a declared length or element count further than
// the input can back it. All functions are safe for concurrent use.
package envelope

import (
	"encoding/binary"
	"fmt"
)

// MaxDepth is the deepest nesting of arrays and maps Validate and Method
// accept: a top-level array or map is at depth 1, a container inside it at
// depth 2, and so on. Anything deeper fails with ErrTooDeep. The bound keeps
// the scanner's stack use small whatever the input.
const MaxDepth = 512

// methodKey is the map key Method looks for.
const methodKey = "method"

// Validate returns nil if and only if b is exactly one complete, well-formed
// msgpack value with no trailing bytes, nested at most MaxDepth deep.
// Otherwise the error wraps one of ErrEmpty, ErrTruncated, ErrTrailing,
// ErrInvalid or ErrTooDeep and names the byte offset where the problem was
// found. String payloads are not checked for valid UTF-8 and extension
// payloads are not interpreted; msgpack leaves both to the application.
//
// Validate does not allocate unless it returns an error.
func Validate(b []byte) error {
	if len(b) == 0 {
		return ErrEmpty
	}
	end, err := skip(b, 0, 1, 0, 0)
	if err != nil {
		return err
	}
	if end != len(b) {
		return fmt.Errorf("%w at byte %d (%d %s after the value)", ErrTrailing, end, len(b)-end, bytesUnit(len(b)-end))
	}
	return nil
}

// Method returns the "method" field of value and true when value is exactly
// one well-formed msgpack map (as Validate accepts it) with a string key
// "method" whose value is a string. Keys of other types are skipped; a
// "method" only counts at the top level of the map, never inside nested
// values. If the key occurs more than once, the last occurrence decides, as
// with decoders that build a map. In every other case, including malformed
// input, Method returns "", false; it never panics.
//
// Method allocates only the returned string.
func Method(value []byte) (method string, ok bool) {
	if len(value) == 0 {
		return "", false
	}
	c := value[0]
	var pairs uint64
	off := 1
	switch {
	case c >= 0x80 && c <= 0x8f:
		pairs = uint64(c & 0x0f)
	case c == 0xde:
		if len(value) < 3 {
			return "", false
		}
		pairs, off = uint64(binary.BigEndian.Uint16(value[1:])), 3
	case c == 0xdf:
		if len(value) < 5 {
			return "", false
		}
		pairs, off = uint64(binary.BigEndian.Uint32(value[1:])), 5
	default:
		return "", false
	}
	// Every key and every value needs at least one byte.
	if pairs*2 > uint64(len(value)-off) {
		return "", false
	}
	var (
		start, end int
		found      bool
		err        error
	)
	for left := int(pairs) * 2; left > 0; left -= 2 {
		isMethod := false
		if ks, ke, ok := str(value, off); ok {
			isMethod = string(value[ks:ke]) == methodKey
			off = ke
		} else if off, err = skip(value, off, 1, 1, left-1); err != nil {
			return "", false
		}
		if isMethod {
			if vs, ve, ok := str(value, off); ok {
				start, end, found = vs, ve, true
				off = ve
				continue
			}
			found = false
		}
		if off, err = skip(value, off, 1, 1, left-2); err != nil {
			return "", false
		}
	}
	if off != len(value) || !found {
		return "", false
	}
	return string(value[start:end]), true
}

// str reports the payload bounds of the msgpack string at b[off] when there
// is a complete one there (fixstr, str8, str16 or str32).
func str(b []byte, off int) (start, end int, ok bool) {
	if off >= len(b) {
		return 0, 0, false
	}
	rem := len(b) - off
	var n uint64
	hdr := 1
	switch c := b[off]; {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9 && rem >= 2:
		n, hdr = uint64(b[off+1]), 2
	case c == 0xda && rem >= 3:
		n, hdr = uint64(binary.BigEndian.Uint16(b[off+1:])), 3
	case c == 0xdb && rem >= 5:
		n, hdr = uint64(binary.BigEndian.Uint32(b[off+1:])), 5
	default:
		return 0, 0, false
	}
	if n > uint64(rem-hdr) {
		return 0, 0, false
	}
	return off + hdr, off + hdr + int(n), true
}

// skip scans n consecutive values starting at b[off] and returns the offset
// just past them. depth is the number of arrays and maps enclosing these
// values; after is how many more values the enclosing containers still
// expect once these n are done, which lets a declared element count be
// rejected when the remaining input could not possibly hold it (every value
// takes at least one byte).
//
// Recursion happens only for nested containers, so its depth is bounded by
// MaxDepth.
func skip(b []byte, off, n, depth, after int) (int, error) {
	for ; n > 0; n-- {
		if off >= len(b) {
			return off, truncated(off, 1)
		}
		c := b[off]
		if c <= 0x7f || c >= 0xe0 { // positive and negative fixint
			off++
			continue
		}
		var (
			kind  uint8  // kindScalar, kindArray, kindMap or kindInvalid
			size  int    // whole value for fixed-size scalars; header for containers
			width int    // bytes of the big-endian length or count after the type byte
			extra int    // bytes between that length and the payload (the ext type)
			count uint64 // declared elements of an array or pairs of a map
		)
		switch {
		case c <= 0x8f:
			kind, size, count = kindMap, 1, uint64(c&0x0f)
		case c <= 0x9f:
			kind, size, count = kindArray, 1, uint64(c&0x0f)
		case c <= 0xbf:
			size = 1 + int(c&0x1f)
		default:
			f := &wideFormats[c-0xc0]
			if f.kind == kindInvalid {
				return off, fmt.Errorf("%w at byte %d", ErrInvalid, off)
			}
			kind, size, width, extra = f.kind, int(f.size), int(f.width), int(f.extra)
		}
		rem := len(b) - off
		if width > 0 {
			if rem < 1+width {
				return off, truncated(off, 1+width-rem)
			}
			var l uint64
			switch width {
			case 1:
				l = uint64(b[off+1])
			case 2:
				l = uint64(binary.BigEndian.Uint16(b[off+1:]))
			default:
				l = uint64(binary.BigEndian.Uint32(b[off+1:]))
			}
			if kind == kindScalar {
				need := uint64(1+width+extra) + l
				if need > uint64(rem) {
					return off, truncated(off, need-uint64(rem))
				}
				off += int(need)
				continue
			}
			size, count = 1+width, l
		}
		if kind == kindScalar {
			if size > rem {
				return off, truncated(off, size-rem)
			}
			off += size
			continue
		}
		var err error
		if off, err = skipContainer(b, off, size, count, kind, depth, n-1+after); err != nil {
			return off, err
		}
	}
	return off, nil
}

// skipContainer skips the array or map at b[off] whose header of size bytes
// declares count elements (pairs of a map), at depth as skip's values; later
// values are still expected after it.
func skipContainer(b []byte, off, size int, count uint64, kind uint8, depth, later int) (int, error) {
	if depth >= MaxDepth {
		return off, fmt.Errorf("%w at byte %d (limit %d)", ErrTooDeep, off, MaxDepth)
	}
	declared := count
	if kind == kindMap {
		count *= 2
	}
	if count == 0 {
		return off + size, nil
	}
	// The elements and everything still expected after this container need
	// at least one byte each; checking that up front is what keeps a forged
	// count of 2^32-1 from costing more than this comparison.
	if avail := uint64(len(b) - off - size); count+uint64(later) > avail {
		what := "array elements"
		if kind == kindMap {
			what = "map pairs"
		}
		more := count + uint64(later) - avail
		return off, fmt.Errorf("%w at byte %d (%d %s declared, need at least %d more %s)",
			ErrTruncated, off, declared, what, more, bytesUnit(more))
	}
	return skip(b, off+size, int(count), depth+1, later)
}

// format is what a type byte from 0xc0 to 0xdf says about the value's size.
type format struct {
	kind  uint8 // kindScalar, kindArray, kindMap or kindInvalid
	size  uint8 // a fixed-size scalar whole
	width uint8 // bytes of the big-endian length or count after the type byte
	extra uint8 // bytes between that length and the payload (the ext type)
}

// Kinds of value, by what skip does with them.
const (
	kindScalar = iota
	kindArray
	kindMap
	kindInvalid
)

// wideFormats is the msgpack specification's table of the formats whose type
// byte is 0xc0 + i; the fix formats (fixint, fixmap, fixarray, fixstr) take
// the rest of the byte values.
var wideFormats = [0x20]format{
	{size: 1},                   // 0xc0 nil
	{kind: kindInvalid},         // 0xc1 never used
	{size: 1},                   // 0xc2 false
	{size: 1},                   // 0xc3 true
	{width: 1},                  // 0xc4 bin8
	{width: 2},                  // 0xc5 bin16
	{width: 4},                  // 0xc6 bin32
	{width: 1, extra: 1},        // 0xc7 ext8
	{width: 2, extra: 1},        // 0xc8 ext16
	{width: 4, extra: 1},        // 0xc9 ext32
	{size: 5},                   // 0xca float32
	{size: 9},                   // 0xcb float64
	{size: 2},                   // 0xcc uint8
	{size: 3},                   // 0xcd uint16
	{size: 5},                   // 0xce uint32
	{size: 9},                   // 0xcf uint64
	{size: 2},                   // 0xd0 int8
	{size: 3},                   // 0xd1 int16
	{size: 5},                   // 0xd2 int32
	{size: 9},                   // 0xd3 int64
	{size: 3},                   // 0xd4 fixext1
	{size: 4},                   // 0xd5 fixext2
	{size: 6},                   // 0xd6 fixext4
	{size: 10},                  // 0xd7 fixext8
	{size: 18},                  // 0xd8 fixext16
	{width: 1},                  // 0xd9 str8
	{width: 2},                  // 0xda str16
	{width: 4},                  // 0xdb str32
	{kind: kindArray, width: 2}, // 0xdc array16
	{kind: kindArray, width: 4}, // 0xdd array32
	{kind: kindMap, width: 2},   // 0xde map16
	{kind: kindMap, width: 4},   // 0xdf map32
}

// truncated reports a value at off that needs more bytes than the input has.
func truncated[T int | uint64](off int, more T) error {
	return fmt.Errorf("%w at byte %d (need %d more %s)", ErrTruncated, off, more, bytesUnit(more))
}

// bytesUnit is "byte" or "bytes" to go with count.
func bytesUnit[T int | uint64](count T) string {
	if count == 1 {
		return "byte"
	}
	return "bytes"
}

// Next returns the offset just past the one msgpack value that starts at
// b[off], checked as Validate checks a whole body: well-formed, nested at most
// MaxDepth deep counting from that value. Errors name absolute byte offsets in
// b. Next is the step for walking a container value by value (see
// ArrayHeader, MapHeader); it does not allocate unless it returns an error.
func Next(b []byte, off int) (int, error) {
	if off < 0 || off > len(b) {
		return off, truncated(off, 1)
	}
	return skip(b, off, 1, 0, 0)
}

// ArrayHeader reads the header of the array at b[off]: the number of elements
// and the offset of the first. ok is false when there is no complete array
// header there, or when the elements could not fit in the bytes left (each
// takes at least one), so a forged count never reaches the caller.
func ArrayHeader(b []byte, off int) (n, next int, ok bool) {
	return containerHeader(b, off, 0x90, 0xdc, 1)
}

// MapHeader reads the header of the map at b[off]: the number of key/value
// pairs and the offset of the first key. ok is false as for ArrayHeader.
func MapHeader(b []byte, off int) (pairs, next int, ok bool) {
	return containerHeader(b, off, 0x80, 0xde, 2)
}

// containerHeader reads an array (fix 0x90, 16-bit 0xdc) or map (fix 0x80,
// 16-bit 0xde) header; per is the values each counted element holds.
func containerHeader(b []byte, off int, fix, wide byte, per uint64) (n, next int, ok bool) {
	if off < 0 || off >= len(b) {
		return 0, off, false
	}
	c := b[off]
	var count uint64
	switch {
	case c >= fix && c <= fix+0x0f:
		count, next = uint64(c&0x0f), off+1
	case c == wide && len(b)-off >= 3:
		count, next = uint64(binary.BigEndian.Uint16(b[off+1:])), off+3
	case c == wide+1 && len(b)-off >= 5:
		count, next = uint64(binary.BigEndian.Uint32(b[off+1:])), off+5
	default:
		return 0, off, false
	}
	if count*per > uint64(len(b)-next) {
		return 0, off, false
	}
	return int(count), next, true
}

// Bytes reads the str or bin value at b[off]: the bounds of its payload,
// whether it is a str, and ok false when there is no complete str or bin
// there.
func Bytes(b []byte, off int) (start, end int, isStr, ok bool) {
	if off < 0 || off >= len(b) {
		return 0, 0, false, false
	}
	if start, end, ok = str(b, off); ok {
		return start, end, true, true
	}
	rem := len(b) - off
	var n uint64
	hdr := 0
	switch b[off] {
	case 0xc4:
		if rem >= 2 {
			n, hdr = uint64(b[off+1]), 2
		}
	case 0xc5:
		if rem >= 3 {
			n, hdr = uint64(binary.BigEndian.Uint16(b[off+1:])), 3
		}
	case 0xc6:
		if rem >= 5 {
			n, hdr = uint64(binary.BigEndian.Uint32(b[off+1:])), 5
		}
	}
	if hdr == 0 || n > uint64(rem-hdr) {
		return 0, 0, false, false
	}
	return off + hdr, off + hdr + int(n), false, true
}

// IsNil reports whether the value at b[off] is msgpack nil.
func IsNil(b []byte, off int) bool { return off >= 0 && off < len(b) && b[off] == 0xc0 }

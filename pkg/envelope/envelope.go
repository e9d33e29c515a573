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
			size  int    // whole value for fixed-size scalars; header for containers
			width int    // bytes of the big-endian length or count after the type byte
			extra int    // bytes between that length and the payload (the ext type)
			kind  uint8  // 0 scalar, 1 array, 2 map
			count uint64 // declared elements of an array or pairs of a map
		)
		switch {
		case c <= 0x8f:
			kind, size, count = 2, 1, uint64(c&0x0f)
		case c <= 0x9f:
			kind, size, count = 1, 1, uint64(c&0x0f)
		case c <= 0xbf:
			size = 1 + int(c&0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
				size = 1
			case 0xc1:
				return off, fmt.Errorf("%w at byte %d", ErrInvalid, off)
			case 0xc4, 0xd9: // bin8, str8
				width = 1
			case 0xc5, 0xda: // bin16, str16
				width = 2
			case 0xc6, 0xdb: // bin32, str32
				width = 4
			case 0xc7: // ext8
				width, extra = 1, 1
			case 0xc8: // ext16
				width, extra = 2, 1
			case 0xc9: // ext32
				width, extra = 4, 1
			case 0xcc, 0xd0: // uint8, int8
				size = 2
			case 0xcd, 0xd1: // uint16, int16
				size = 3
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				size = 5
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				size = 9
			case 0xd4: // fixext1
				size = 3
			case 0xd5: // fixext2
				size = 4
			case 0xd6: // fixext4
				size = 6
			case 0xd7: // fixext8
				size = 10
			case 0xd8: // fixext16
				size = 18
			case 0xdc: // array16
				kind, width = 1, 2
			case 0xdd: // array32
				kind, width = 1, 4
			case 0xde: // map16
				kind, width = 2, 2
			case 0xdf: // map32
				kind, width = 2, 4
			}
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
			if kind == 0 {
				need := uint64(1+width+extra) + l
				if need > uint64(rem) {
					return off, truncated(off, need-uint64(rem))
				}
				off += int(need)
				continue
			}
			size, count = 1+width, l
		}
		if kind == 0 {
			if size > rem {
				return off, truncated(off, size-rem)
			}
			off += size
			continue
		}

		if depth >= MaxDepth {
			return off, fmt.Errorf("%w at byte %d (limit %d)", ErrTooDeep, off, MaxDepth)
		}
		declared := count
		if kind == 2 {
			count *= 2
		}
		if count == 0 {
			off += size
			continue
		}
		// The elements and everything still expected after this container
		// need at least one byte each; checking that up front is what keeps
		// a forged count of 2^32-1 from costing more than this comparison.
		later := uint64(n - 1 + after)
		if avail := uint64(rem - size); count+later > avail {
			what := "array elements"
			if kind == 2 {
				what = "map pairs"
			}
			more := count + later - avail
			return off, fmt.Errorf("%w at byte %d (%d %s declared, need at least %d more %s)",
				ErrTruncated, off, declared, what, more, bytesUnit(more))
		}
		var err error
		if off, err = skip(b, off+size, int(count), depth+1, n-1+after); err != nil {
			return off, err
		}
	}
	return off, nil
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

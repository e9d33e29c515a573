package loadgen

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Field values of the bodies MsgpackBody builds.
const (
	// BodyTopic is the value of the "topic" field.
	BodyTopic = "loadgen"
	// BodyMethod is the value of the "method" field.
	BodyMethod = "bench"
)

// MsgpackBody returns a msgpack map of exactly size bytes in the message
// convention of the services that POST to kproxy:
// {"topic": BodyTopic, "method": BodyMethod, "key": key, "data": D}. D is
// binary (a short string for the smallest sizes) that starts with seq in
// decimal and ":" and is padded with '.' to reach size. Every length uses the
// shortest msgpack format, except the three sizes a shortest encoding cannot
// hit (the data lengths at the bin 8/16 and bin 16/32 boundaries), which use
// the next longer format; msgpack decoders accept both.
//
// It returns an error wrapping ErrBodySize when size is below MsgpackMinSize(key).
func MsgpackBody(size int, key string, seq uint64) ([]byte, error) {
	minSize := MsgpackMinSize(key)
	if size < minSize {
		return nil, fmt.Errorf("%w: %d bytes, key %q needs at least %d", ErrBodySize, size, key, minSize)
	}
	b := make([]byte, 0, size)
	b = append(b, 0x84) // fixmap, 4 entries
	b = appendStr(b, "topic")
	b = appendStr(b, BodyTopic)
	b = appendStr(b, "method")
	b = appendStr(b, BodyMethod)
	b = appendStr(b, "key")
	b = appendStr(b, key)
	b = appendStr(b, "data")

	rest := size - len(b) // header and payload of data
	var n int
	switch {
	case rest <= 32:
		n = rest - 1
		b = append(b, 0xa0|byte(n)) // fixstr
	case rest <= 0xff+2:
		n = rest - 2
		b = append(b, 0xc4, byte(n)) // bin 8
	case rest <= 0xffff+3:
		n = rest - 3
		b = append(b, 0xc5) // bin 16
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		n = rest - 5
		b = append(b, 0xc6) // bin 32
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	start := len(b)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ':')
	if len(b)-start > n {
		b = b[:start+n]
	}
	for len(b) < size {
		b = append(b, '.')
	}
	return b, nil
}

// MsgpackMinSize returns the smallest size MsgpackBody accepts for key: the
// body with empty data.
func MsgpackMinSize(key string) int {
	return 1 + strSize("topic") + strSize(BodyTopic) + strSize("method") + strSize(BodyMethod) +
		strSize("key") + strSize(key) + strSize("data") + 1
}

func strSize(s string) int {
	switch n := len(s); {
	case n < 32:
		return 1 + n
	case n <= 0xff:
		return 2 + n
	case n <= 0xffff:
		return 3 + n
	default:
		return 5 + n
	}
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= 0xff:
		b = append(b, 0xd9, byte(n))
	case n <= 0xffff:
		b = append(b, 0xda)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0xdb)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

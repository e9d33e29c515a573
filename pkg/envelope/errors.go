package envelope

import "errors"

// Sentinel errors returned (wrapped, with the byte offset) by Validate. Callers
// test for them with errors.Is.
var (
	// ErrEmpty means the input has no bytes at all.
	ErrEmpty = errors.New("msgpack: empty input")

	// ErrTruncated means the input ends inside a value: a header, a payload,
	// or a container whose declared element count cannot fit in the bytes
	// that remain.
	ErrTruncated = errors.New("msgpack: truncated value")

	// ErrTrailing means a complete value is followed by more bytes.
	ErrTrailing = errors.New("msgpack: trailing bytes")

	// ErrInvalid means the input uses the type byte 0xc1, which the msgpack
	// specification reserves and never assigns.
	ErrInvalid = errors.New("msgpack: invalid type byte 0xc1")

	// ErrTooDeep means arrays and maps are nested more than MaxDepth levels.
	ErrTooDeep = errors.New("msgpack: nesting too deep")
)

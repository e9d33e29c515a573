package proxy

import (
	"fmt"
	"strconv"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/http1"
)

// Bounds of record headers, the same behind every door: a record has at most
// MaxRecordHeaders headers, each named by 1..MaxHeaderNameBytes of HTTP token
// characters, with a value of at most MaxHeaderValueBytes. Names are tokens
// and values hold no CR, LF or NUL so that any header can travel on as an
// HTTP header (ktransfer's pushes) without being able to forge another.
const (
	MaxRecordHeaders    = 64
	MaxHeaderNameBytes  = 256
	MaxHeaderValueBytes = 8192
)

// CheckHeader returns an error wrapping ErrInvalidHeader when name or value
// breaks the rules above. It does not allocate unless it returns an error.
func CheckHeader(name string, value []byte) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidHeader)
	}
	if len(name) > MaxHeaderNameBytes {
		return fmt.Errorf("%w: name of %d bytes, at most %d are allowed", ErrInvalidHeader, len(name), MaxHeaderNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if !http1.IsTokenChar(name[i]) {
			return fmt.Errorf("%w: name %s: only letters, digits and !#$%%&'*+-.^_`|~ are allowed", ErrInvalidHeader, strconv.Quote(name))
		}
	}
	if len(value) > MaxHeaderValueBytes {
		return fmt.Errorf("%w %q: value of %d bytes, at most %d are allowed", ErrInvalidHeader, name, len(value), MaxHeaderValueBytes)
	}
	for _, c := range value {
		if c == '\r' || c == '\n' || c == 0 {
			return fmt.Errorf("%w %q: the value holds CR, LF or NUL", ErrInvalidHeader, name)
		}
	}
	return nil
}

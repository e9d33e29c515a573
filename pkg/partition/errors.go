package partition

import "errors"

// ErrUnknown is wrapped by the error Lookup returns for a name it does not
// know; callers test for it with errors.Is.
var ErrUnknown = errors.New("partition: unknown partitioner")

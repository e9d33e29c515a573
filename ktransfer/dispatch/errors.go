package dispatch

import "errors"

// ErrClosed is returned by Submit once the Pool is closing or closed.
var ErrClosed = errors.New("dispatch: pool closed")

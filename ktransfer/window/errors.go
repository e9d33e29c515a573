package window

import "errors"

// ErrClosed is returned by Acquire once the Tracker is closed: the partition
// is being released and no more records may enter its window.
var ErrClosed = errors.New("window: closed")

package loadgen

import "errors"

// ErrBadLoad is wrapped by the error RunHTTP and RunFunc return when the
// worker count, duration or warm-up is out of range or the function is nil.
var ErrBadLoad = errors.New("loadgen: bad load parameters")

// ErrBadTarget is wrapped by the error RunHTTP returns for an HTTPTarget it
// cannot use.
var ErrBadTarget = errors.New("loadgen: bad HTTP target")

// ErrBodySize is wrapped by the error MsgpackBody returns when size is too
// small for the fixed fields.
var ErrBodySize = errors.New("loadgen: msgpack body size too small")

// ErrNoField is wrapped by the error PeakRSS and CurrentRSS return when the
// status file has no such field (a kernel thread, or not Linux procfs).
var ErrNoField = errors.New("loadgen: field not in /proc status")

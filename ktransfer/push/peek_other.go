//go:build !unix

package push

import "syscall"

// peeker cannot look into a socket on this system: only bytes the connection
// has already read are seen (conn.idleState).
type peeker struct{}

func newPeeker(syscall.RawConn) *peeker { return nil }

func (*peeker) state() sockState { return sockUnknown }

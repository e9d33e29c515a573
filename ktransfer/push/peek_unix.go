//go:build unix

package push

import "syscall"

// peeker looks into one connection's socket. Its callback is made once per
// connection, so that a peek does not allocate.
type peeker struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	st  sockState
	buf [1]byte
}

func newPeeker(rc syscall.RawConn) *peeker {
	p := &peeker{rc: rc}
	p.fn = p.peekFD
	return p
}

// state tells, without waiting and without consuming anything, whether bytes
// are waiting in the socket, or its peer closed or reset it. The connection's
// read deadline must not have passed.
func (p *peeker) state() sockState {
	if p == nil {
		return sockUnknown
	}
	p.st = sockUnknown
	if p.rc.Read(p.fn) != nil {
		return sockUnknown
	}
	return p.st
}

func (p *peeker) peekFD(fd uintptr) bool {
	// The socket is non-blocking (Go's poller): EAGAIN means empty.
	n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK)
	for err == syscall.EINTR {
		n, _, err = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK)
	}
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		p.st = sockEmpty
	case err != nil || n == 0:
		p.st = sockClosed
	default:
		p.st = sockData
	}
	return true
}

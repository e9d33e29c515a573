package opshttp

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// CheckListenAddress returns an error when addr is not the syntax of a TCP listen
// address: HOST:PORT or :PORT, the port a decimal number in 0..65535 (0: any
// free port), an IPv6 host in brackets. Whether the host resolves and the port
// is free shows only at Listen.
func CheckListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("is not HOST:PORT (an IPv6 host in brackets, or :PORT for every interface)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("has port %q, not a number in 0..65535", port)
	}
	return nil
}

// Listen opens a TCP listener on addr. When addr is taken by another process
// (EADDRINUSE) and mayMove is true, it listens on a free port of the same host
// instead and reports moved: a daemon whose operations address is only the
// default can then run beside another one on the same host, while an address the
// operator set (mayMove false) is never silently replaced. Any other failure is
// returned as an error naming addr.
func Listen(addr string, mayMove bool) (ln net.Listener, moved bool, err error) {
	ln, err = net.Listen("tcp", addr)
	if err == nil {
		return ln, false, nil
	}
	if !mayMove || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, false, fmt.Errorf("listen on %s: %w", addr, err)
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, false, fmt.Errorf("listen on %s: %w", addr, err)
	}
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, false, fmt.Errorf("listen on %s: %w; on a free port of %q: %w", addr, err, host, err2)
	}
	return ln, true, nil
}

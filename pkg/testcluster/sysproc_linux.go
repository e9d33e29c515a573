package testcluster

import "syscall"

// sysProcAttr puts the server in its own process group, so it can be
// signalled as a whole, and has the kernel kill it if the test binary dies
// without running its cleanups (a panic or a -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

package testproc

import "syscall"

// sysProcAttr puts the child in its own process group, and has the kernel kill it
// should the test binary itself die.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

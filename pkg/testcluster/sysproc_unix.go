//go:build unix && !linux

package testcluster

import "syscall"

// sysProcAttr puts the server in its own process group, so it can be
// signalled as a whole.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

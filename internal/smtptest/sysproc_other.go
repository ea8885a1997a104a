//go:build !linux

package smtptest

import "syscall"

// sysProcAttr puts Postfix's master in its own process group (it ends the
// group when it stops).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) { syscall.Kill(-pid, sig) }

//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts Dovecot in its own process group so Stop can reach
// stragglers.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) { syscall.Kill(-pid, sig) }

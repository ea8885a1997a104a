package testenv

import "syscall"

// sysProcAttr puts Dovecot in its own process group (so Stop can reach
// stragglers) and has the kernel send it SIGTERM if the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) { syscall.Kill(-pid, sig) }

package agenttest

import "syscall"

// sysProcAttr has the kernel kill the agent if the test process dies, so
// that no agent outlives a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

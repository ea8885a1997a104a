//go:build !linux

package agenttest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }

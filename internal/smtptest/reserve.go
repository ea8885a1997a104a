package smtptest

import (
	"net"
	"syscall"
)

// reservePort binds a TCP socket to 127.0.0.1:port without listening on
// it: connections to the port are refused, and the kernel hands the port
// to no one else (no bind to port 0, no outgoing connection's local
// port), so a stopped relay's port stays its own until Start. It returns
// the function that frees it.
func reservePort(port int) (func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// As net.Listen does: the port may still have connections in
	// TIME_WAIT.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	sa := &syscall.SockaddrInet4{Port: port}
	copy(sa.Addr[:], net.IPv4(127, 0, 0, 1).To4())
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return func() { syscall.Close(fd) }, nil
}

package smtptest

import (
	"context"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The front door's port never goes free while the relay lives: a free
// port in the ephemeral range can become, within microseconds, the local
// port of some other test's outgoing connection, and the next bind or
// listen on it fails with "address already in use". So the listener and
// the reservation that stands in for it while the relay is stopped both
// set SO_REUSEPORT, and each is opened before the other is closed: Stop
// reserves, then closes the listener; Start listens, then frees the
// reservation. (A bound socket that does not listen takes no connections:
// the kernel refuses them.)

// listenShared listens on 127.0.0.1:port (0: a free port) with
// SO_REUSEPORT, so that it can be opened beside a reservation.
func listenShared(port int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// reservePort binds a TCP socket to 127.0.0.1:port without listening on
// it: connections to the port are refused, and the kernel hands the port
// to no one else (no bind to port 0, no outgoing connection's local
// port), so a stopped relay's port stays its own until Start. It can be
// taken while listenShared's listener still holds the port. It returns
// the function that frees it.
func reservePort(port int) (func(), error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	// SO_REUSEADDR as net.Listen sets it (the port may still have
	// connections in TIME_WAIT); SO_REUSEPORT to be bound beside the
	// listener (listenShared).
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, opt, 1); err != nil {
			syscall.Close(fd)
			return nil, err
		}
	}
	sa := &syscall.SockaddrInet4{Port: port}
	copy(sa.Addr[:], net.IPv4(127, 0, 0, 1).To4())
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return func() { syscall.Close(fd) }, nil
}

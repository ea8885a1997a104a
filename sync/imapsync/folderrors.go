package imapsync

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// How a folder's error reads in the run's error: one line naming the
// folder (the agent adds the account), with Go's network error texts
// ("use of closed network connection", "read tcp 10.0.0.2:51234->...:
// connection reset by peer") put in words naming the server.

// folderError labels a folder's error with the folder, in readable words.
func folderError(addr, folder string, err error) error {
	return fmt.Errorf("folder %q: %w", folder, readableErr(addr, err))
}

// readableErr rewords the network part of err; errors.Is and errors.As
// still see the original.
func readableErr(addr string, err error) error {
	msg := err.Error()
	var op *net.OpError
	switch {
	case errors.As(err, &op):
		msg = replaceLast(msg, op.Error(), lostWords(addr, op))
	case errors.Is(err, net.ErrClosed):
		msg = replaceLast(msg, net.ErrClosed.Error(), lostWords(addr, err))
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = replaceLast(msg, io.ErrUnexpectedEOF.Error(), fmt.Sprintf("connection to %s closed by the server", addr))
	case errors.Is(err, io.EOF) && strings.HasSuffix(msg, io.EOF.Error()):
		msg = strings.TrimSuffix(msg, io.EOF.Error()) + fmt.Sprintf("connection to %s closed by the server", addr)
	}
	// errConn's own words, when the rest says it better.
	msg = strings.Replace(msg, errConn.Error()+": connection to ", "connection to ", 1)
	if msg == err.Error() {
		return err
	}
	return &rewordedError{msg: msg, err: err}
}

// lostWords says what happened to the connection.
func lostWords(addr string, err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("connection to %s timed out", addr)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Sprintf("connection to %s reset by the server", addr)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection to %s refused", addr)
	}
	return fmt.Sprintf("connection to %s lost", addr)
}

func replaceLast(s, old, new string) string {
	i := strings.LastIndex(s, old)
	if i < 0 {
		return s
	}
	return s[:i] + new + s[i+len(old):]
}

type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }

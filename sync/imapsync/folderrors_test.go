package imapsync

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestReadableErr: Go's network error texts become words naming the
// server; the original error stays reachable.
func TestReadableErr(t *testing.T) {
	const addr = "imap.example.org:993"
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Source: &net.TCPAddr{Port: 51234}, Addr: &net.TCPAddr{Port: 993}, Err: err}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("APPEND: %w", op(net.ErrClosed)), "APPEND: connection to imap.example.org:993 lost"},
		{fmt.Errorf("APPEND: %w", net.ErrClosed), "APPEND: connection to imap.example.org:993 lost"},
		{fmt.Errorf("SELECT Archive: %w", op(&os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET})), "SELECT Archive: connection to imap.example.org:993 reset by the server"},
		{fmt.Errorf("FETCH: %w", op(os.ErrDeadlineExceeded)), "FETCH: connection to imap.example.org:993 timed out"},
		{fmt.Errorf("FETCH: %w", io.ErrUnexpectedEOF), "FETCH: connection to imap.example.org:993 closed by the server"},
		{fmt.Errorf("UID SEARCH: %w", io.EOF), "UID SEARCH: connection to imap.example.org:993 closed by the server"},
		{fmt.Errorf("APPEND: %w: %w", errConn, op(os.ErrDeadlineExceeded)), "APPEND: connection to imap.example.org:993 timed out"},
		{errors.New("CREATE x: imap: NO [CANNOT] no"), "CREATE x: imap: NO [CANNOT] no"},
	} {
		got := readableErr(addr, tc.err)
		if got.Error() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.err, got, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%q: the original error is lost", tc.err)
		}
	}
	if got := folderError(addr, "Archive", fmt.Errorf("APPEND: %w", net.ErrClosed)).Error(); got != `folder "Archive": APPEND: connection to imap.example.org:993 lost` {
		t.Errorf("folderError: %q", got)
	}
}

package nethint

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

type tempErr struct{ temp bool }

func (e tempErr) Error() string   { return "t" }
func (e tempErr) Temporary() bool { return e.temp }

func TestPermanent(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", fmt.Errorf("x: %w", refused), false},
		{"eof", errors.New("EOF"), false},
		{"canceled", context.Canceled, false},
		{"unknown authority", fmt.Errorf("x: %w", x509.UnknownAuthorityError{}), true},
		{"tls port", &SpeaksTLSError{Addr: "a:1"}, true},
		{"marked", &PermanentError{errors.New("wrong password")}, true},
		{"temporary false", fmt.Errorf("login: %w", tempErr{false}), true},
		{"temporary true", tempErr{true}, false},
	} {
		if got := Permanent(c.err); got != c.want {
			t.Errorf("%s: Permanent(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

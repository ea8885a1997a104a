package imapconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/sync/nethint"
)

// TestPermanent: the IMAP connection errors answer nethint.Permanent as
// the agent's backoff needs, also wrapped in the run's error (one account
// among others, several folders joined).
func TestPermanent(t *testing.T) {
	const addr = "imap.example.org:993"
	no := func(code imap.ResponseCode) *imap.Error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: "x"}
	}
	login := func(err error) error { return &ConnError{Addr: addr, Op: "login as u", Err: err, refusal: true} }
	connect := func(err error) error { return &ConnError{Addr: addr, Op: "connect", Err: err} }
	op := func(err error) error { return &net.OpError{Op: "read", Net: "tcp", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"wrong password", login(no(imap.ResponseCodeAuthenticationFailed)), true},
		{"NO to LOGIN without code", login(no("")), true},
		{"BAD to LOGIN", login(&imap.Error{Type: imap.StatusResponseTypeBad, Text: "x"}), true},
		{"LOGIN: privacy required", login(no(imap.ResponseCodePrivacyRequired)), true},
		{"LOGIN: unavailable", login(no(imap.ResponseCodeUnavailable)), false},
		{"LOGIN: in use", login(no(imap.ResponseCodeInUse)), false},
		{"LOGIN: limit", login(no(imap.ResponseCodeLimit)), false},
		{"LOGIN: BYE", login(&imap.Error{Type: imap.StatusResponseTypeBye, Text: "shutting down"}), false},
		{"LOGIN: connection cut", login(io.ErrUnexpectedEOF), false},
		{"STARTTLS refused", &ConnError{Addr: addr, Op: "STARTTLS", Err: &imap.Error{Type: imap.StatusResponseTypeBad, Text: "unknown command"}, refusal: true}, true},
		{"BYE greeting", connect(&imap.Error{Type: imap.StatusResponseTypeBye, Text: "too many connections"}), false},
		{"UNAVAILABLE greeting", connect(no(imap.ResponseCodeUnavailable)), false},
		{"refused", connect(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), false},
		{"unreachable", connect(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ENETUNREACH}), false},
		{"reset", connect(op(syscall.ECONNRESET)), false},
		{"timeout", connect(op(os.ErrDeadlineExceeded)), false},
		{"dns", connect(&net.DNSError{Err: "no such host", Name: "imap.example.org", IsNotFound: true}), false},
		{"eof", connect(io.EOF), false},
		{"unknown authority", connect(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{"wrong host", connect(x509.HostnameError{Host: "imap.example.org", Certificate: &x509.Certificate{}}), true},
		{"expired", connect(x509.CertificateInvalidError{Reason: x509.Expired, Cert: &x509.Certificate{}}), true},
		{"TLS port in plain text", connect(&nethint.SpeaksTLSError{Addr: addr}), true},
		{"unknown tls mode", connect(&ModeError{Mode: "ssl"}), true},
		{"mode alone", &ModeError{Mode: "ssl"}, true},
		{"uploader lost", fmt.Errorf("APPEND: %w: %w", ErrConnLost, io.EOF), false},
		{"uploader BYE", fmt.Errorf("%w: server said BYE going down", ErrConnLost), false},
		{"a folder's NO", fmt.Errorf("folder %q: SELECT: %w", "x", no(imap.ResponseCodeNonExistent)), false},
		{"BYE mid-session", fmt.Errorf("FETCH: %w", io.ErrUnexpectedEOF), false},
		{"wrapped wrong password", fmt.Errorf("account %q: %w", "a", errors.Join(errors.New("x"), login(no(imap.ResponseCodeAuthenticationFailed)))), true},
		{"wrapped refused", fmt.Errorf("account %q: %w", "a", connect(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})), false},
	} {
		if got := nethint.Permanent(tc.err); got != tc.want {
			t.Errorf("%s: Permanent(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestParseTLSMode: the three modes (and "" for implicit) are read once;
// anything else is a permanent configuration error that names the
// choices.
func TestParseTLSMode(t *testing.T) {
	for in, want := range map[string]TLSMode{"": TLSImplicit, "implicit": TLSImplicit, "starttls": TLSStartTLS, "none": TLSNone} {
		if got, err := ParseTLSMode(in); err != nil || got != want {
			t.Errorf("ParseTLSMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"ssl", "STARTTLS", "tls", " none"} {
		_, err := ParseTLSMode(in)
		if err == nil || !nethint.Permanent(err) || err.Error() != fmt.Sprintf("unknown tls mode %q (want implicit, starttls or none)", in) {
			t.Errorf("ParseTLSMode(%q): %v", in, err)
		}
	}
}

package nethint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
)

// Permanent reports whether retrying err later, with the same
// configuration, cannot help: a wrong password, a certificate that does
// not verify, a TLS port spoken to in plain text. Everything else (the
// network down, a connection dropped, a server BYE, a timeout) is
// temporary: the agent backs off and tries again. Cancellation is neither:
// callers check their context first.
//
// An error says what it is by a method anywhere in its chain:
// Permanent() bool, or Temporary() bool (false meaning permanent), as
// imapconn.ConnError and pop3's errors do. This is the one classification
// the agent's backoff uses.
func Permanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var tlsPort *SpeaksTLSError
	if errors.As(err, &tlsPort) || errors.As(err, &certErr) || errors.As(err, &unknownAuth) ||
		errors.As(err, &hostErr) || errors.As(err, &invalid) {
		return true
	}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) {
		return p.Permanent()
	}
	// The net package's Temporary says false for a refused connection or
	// an unreachable network: for the agent those pass.
	var ne net.Error
	if errors.As(err, &ne) {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return !t.Temporary()
	}
	return false
}

// PermanentError marks Err as permanent (see Permanent).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string   { return e.Err.Error() }
func (e *PermanentError) Unwrap() error   { return e.Err }
func (e *PermanentError) Permanent() bool { return true }

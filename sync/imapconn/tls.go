package imapconn

import "fmt"

// TLSMode says how a connection is secured.
type TLSMode string

const (
	// TLSImplicit is TLS from the first byte (port 993). The zero
	// TLSMode means it too.
	TLSImplicit TLSMode = "implicit"
	// TLSStartTLS is plain text upgraded with STARTTLS before login
	// (port 143).
	TLSStartTLS TLSMode = "starttls"
	// TLSNone is no TLS: for loopback and tests.
	TLSNone TLSMode = "none"
)

// ParseTLSMode reads a tls setting: "implicit" (also ""), "starttls" or
// "none". Anything else is a *ModeError, a permanent error.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(s); m {
	case "", TLSImplicit:
		return TLSImplicit, nil
	case TLSStartTLS, TLSNone:
		return m, nil
	}
	return "", &ModeError{Mode: s}
}

// plain reports whether the connection starts in plain text (the greeting
// comes unencrypted), as it does for starttls and none.
func (m TLSMode) plain() bool { return m == TLSStartTLS || m == TLSNone }

// ModeError is an unknown tls setting: a configuration error, permanent
// (see nethint.Permanent).
type ModeError struct{ Mode string }

func (e *ModeError) Error() string {
	return fmt.Sprintf("unknown tls mode %q (want implicit, starttls or none)", e.Mode)
}

// Permanent: the same setting fails the same way.
func (e *ModeError) Permanent() bool { return true }

package imapconn

import (
	"crypto/tls"
	"fmt"
	"net"
)

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

// TLSConfig is the TLS configuration for a connection to addr (host:port),
// the one place it is made: base (nil: the system roots) with at least
// TLS 1.2 and, where base names no server, ServerName the host of addr
// (the name the certificate must carry). base is not modified.
func TLSConfig(addr string, base *tls.Config) *tls.Config {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if base == nil {
		return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	cfg := base.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

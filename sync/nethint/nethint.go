// Package nethint words the network, DNS and TLS errors of a connection to
// a mail server as the one line a user needs, with a hint of what to check
// (the port, the tls setting, ca_file). The sync engines (imapconn for
// IMAP, pop3) share it, so that the same failure reads the same for every
// protocol; they share through it too the one temporary-or-permanent
// classification of errors (Permanent) and the one default TLS
// configuration (TLSConfig).
//
// It holds no state and imports nothing of postfach.
package nethint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Describe returns the line for err when it is one of the failures this
// package knows, and false otherwise (the caller then words it itself).
func Describe(err error) (string, bool) {
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	var invalid x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var tlsPort *SpeaksTLSError
	var noGreeting *NoGreetingError
	switch {
	case errors.As(err, &tlsPort):
		return tlsPort.Error(), true
	case errors.As(err, &noGreeting):
		return noGreeting.Error(), true
	case errors.As(err, &hostErr):
		return "TLS certificate is not valid for this host: " + hostErr.Error(), true
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "TLS certificate has expired or is not yet valid: " + invalid.Error(), true
		}
		return "TLS certificate is invalid: " + invalid.Error(), true
	case errors.As(err, &unknownAuth), errors.As(err, &certErr):
		return "TLS certificate not trusted (signed by an unknown authority; set ca_file to trust it): " + err.Error(), true
	case errors.As(err, &recErr):
		return "server did not answer with TLS (wrong port or tls setting?)", true
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("host name %q not found (is host spelled right?)", dnsErr.Name), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the server running and the port right?)", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "server closed the connection", true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timed out", true
	}
	return "", false
}

// SpeaksTLSError says that a port a client talked plain text to (tls =
// "starttls" or "none") answers with TLS: the server waits for a TLS
// handshake while the client waits for its greeting.
type SpeaksTLSError struct {
	Addr string
}

func (e *SpeaksTLSError) Error() string {
	_, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("no greeting: port %s speaks TLS directly (use tls = \"implicit\", or the server's plain port)", port)
}

// NoGreetingError says that a server accepted the connection (and, with
// implicit TLS, the handshake) but sent no greeting within GreetingWait:
// most often a port of another protocol whose server waits for the
// client to speak first (a web server's), or a firewall that accepts
// connections for nobody. It is temporary: a server that overloaded
// may greet on the next try.
type NoGreetingError struct {
	Addr  string
	After time.Duration
}

func (e *NoGreetingError) Error() string {
	_, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("no greeting: the server accepted the connection but sent nothing for %v (is port %s its IMAP or POP3 port?)", e.After, port)
}

// GreetingWait bounds the wait for a server's greeting once the
// connection is open. Mail servers greet at once; some look the client's
// address up in DNS first, which takes seconds at worst.
var GreetingWait = 20 * time.Second

// WatchGreeting calls cancel with a *NoGreetingError if the returned stop
// is not called within GreetingWait: started when the connection is open,
// stopped when the greeting came.
func WatchGreeting(addr string, cancel context.CancelCauseFunc) (stop func()) {
	wait := GreetingWait
	t := time.AfterFunc(wait, func() { cancel(&NoGreetingError{Addr: addr, After: wait}) })
	return func() { t.Stop() }
}

// ProbeAfter is how long a plain-text dial (tls "starttls" or "none")
// waits for the greeting before it checks, on a second connection,
// whether the port speaks TLS; ProbeWait bounds that check.
var ProbeAfter, ProbeWait = 2 * time.Second, 3 * time.Second

// WatchTLSPort guards a plain-text dial to addr: if the dial has not
// called the returned stop within ProbeAfter and the port answers a TLS
// handshake, cancel is called with a *SpeaksTLSError. A server that is
// only slow to greet is waited for. The probe's connection is closed
// without sending anything over it.
func WatchTLSPort(ctx context.Context, addr string, cancel context.CancelCauseFunc) (stop func()) {
	t := time.AfterFunc(ProbeAfter, func() {
		if SpeaksTLS(ctx, addr) {
			cancel(&SpeaksTLSError{Addr: addr})
		}
	})
	return func() { t.Stop() }
}

// SpeaksTLS reports whether the server at addr answers a TLS handshake.
// The certificate is not checked: the answer only tells whether the port
// speaks TLS.
func SpeaksTLS(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: ProbeWait}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(ProbeWait))
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	err = tc.HandshakeContext(ctx)
	var alert tls.AlertError
	return err == nil || errors.As(err, &alert)
}

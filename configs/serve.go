package configs

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Serve is the [serve] table: postfach's local endpoints for mail clients
// and how they are secured. Every endpoint is off unless its address is
// set ("host:port"; "" is off too): `postfach init` writes a config that
// turns IMAP and POP3 on at 127.0.0.1:1143 and 127.0.0.1:1110, and a
// config without them never opens a port.
//
// An address that is not loopback (127.0.0.0/8, ::1, localhost) needs
// AllowRemote and TLS "starttls" or "implicit": the endpoints serve the
// whole store to whoever logs in.
type Serve struct {
	IMAP       string // listen address of the IMAP endpoint; "" = off (the default)
	POP3       string // listen address of the POP3 endpoint; "" = off (the default)
	Submission string // listen address of the SMTP submission endpoint; "" = off (the default)

	// Username is the local login; "" = the generated one (postfach
	// credentials shows it).
	Username string
	// Password or PasswordCmd (a shell command printing it, first line)
	// is the local password; both "" = the generated one, stored in the
	// store's .postfach directory. Never an upstream account's password.
	Password, PasswordCmd string

	// TLS is "starttls" (the default: offered on a plain connection),
	// "implicit" (TLS from the first byte) or "none" (loopback only).
	TLS string
	// CertFile and KeyFile (PEM, absolute; both or neither) are the
	// endpoints' certificate; "" = a self-signed one for 127.0.0.1, ::1
	// and localhost generated on first run.
	CertFile, KeyFile string
	// AllowRemote lets an endpoint listen on an address that is not
	// loopback (with TLS).
	AllowRemote bool
	// POP3Folder is the local folder the POP3 endpoint serves of each
	// account; "" = a POP3 account's own folder, INBOX for an IMAP
	// account.
	POP3Folder string
}

// Enabled reports whether any endpoint is on.
func (s *Serve) Enabled() bool { return s.IMAP != "" || s.POP3 != "" || s.Submission != "" }

// Secret returns the configured local password: Password, or the first
// line PasswordCmd prints; "" when neither is set (the generated password
// is used).
func (s *Serve) Secret(ctx context.Context) (string, error) {
	if s.Password == "" && s.PasswordCmd == "" {
		return "", nil
	}
	pw, err := secret(ctx, "[serve]", s.Password, "", s.PasswordCmd)
	if err == nil && strings.ContainsFunc(pw, unicode.IsControl) {
		err = fmt.Errorf("[serve]: password_cmd printed a password holding control characters")
	}
	return pw, err
}

// IsLoopback reports whether host (no port) is "localhost" or an address
// in 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool { return isLoopback(host) }

// The example address of each endpoint, for error messages.
var serveExample = map[string]string{"imap": "127.0.0.1:1143", "pop3": "127.0.0.1:1110", "submission": "127.0.0.1:1587"}

func (d *decoder) serve(t *table, accts []Account) Serve {
	s := Serve{
		IMAP:        listenAddr(t, "imap"),
		POP3:        listenAddr(t, "pop3"),
		Submission:  listenAddr(t, "submission"),
		Username:    nonEmpty(t, "username", ""),
		TLS:         oneOf(t, "tls", "starttls", "starttls", "implicit", "none"),
		CertFile:    d.path(t, "cert_file", ""),
		KeyFile:     d.path(t, "key_file", ""),
		AllowRemote: t.boolean("allow_remote", false),
		POP3Folder:  nonEmpty(t, "pop3_folder", ""),
	}
	if strings.ContainsFunc(s.Username, unicode.IsControl) {
		t.errorf("username", "must not hold control characters")
	}
	d.serveSecret(t, &s, accts)
	if msg := checkFolderName(s.POP3Folder); msg != "" {
		t.errorf("pop3_folder", "%s", msg)
	}
	switch {
	case s.CertFile != "" && s.KeyFile == "":
		t.errorf("cert_file", "needs key_file (the certificate's private key, PEM) beside it")
	case s.KeyFile != "" && s.CertFile == "":
		t.errorf("key_file", "needs cert_file (the certificate, PEM) beside it")
	case s.CertFile != "":
		t.note("cert_file", envCheck{certFile: s.CertFile, keyFile: s.KeyFile})
		if s.TLS == "none" {
			d.warnf(t.key("cert_file"), `unused: tls = "none" serves no TLS`)
		}
	}
	for _, e := range []struct{ k, a string }{{"imap", s.IMAP}, {"pop3", s.POP3}, {"submission", s.Submission}} {
		k, a := e.k, e.a
		host, _, err := net.SplitHostPort(a)
		if a == "" || err != nil || isLoopback(host) {
			continue
		}
		switch {
		case !s.AllowRemote:
			t.errorf(k, `%q is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on %q)`, a, serveExample[k])
		case s.TLS == "none":
			t.errorf("tls", `"none" sends passwords and mail in clear text, but %s = %q is not a loopback address: use "starttls" or "implicit"`, k, a)
		}
	}
	t.done()
	return s
}

// serveSecret decodes password and password_cmd (at most one), refusing a
// password that is an account's.
func (d *decoder) serveSecret(t *table, s *Serve, accts []Account) {
	s.Password = nonEmpty(t, "password", "")
	s.PasswordCmd = nonEmpty(t, "password_cmd", "")
	if t.has("password") && t.has("password_cmd") {
		first, second := "password", "password_cmd"
		if t.line(second) < t.line(first) {
			first, second = second, first
		}
		t.errorf(second, "conflicts with %s (line %d): set only one of password or password_cmd", first, t.line(first))
	}
	if strings.ContainsFunc(s.Password, unicode.IsControl) {
		t.errorf("password", "must not hold control characters (a client could not send it)")
	}
	if s.Password == "" {
		return
	}
	for _, a := range accts {
		for _, pw := range []struct{ who, pw string }{{"account " + strconv.Quote(a.Name), a.Password}, {"the smtp server of account " + strconv.Quote(a.Name), smtpPassword(a.SMTP)}} {
			if pw.pw == s.Password {
				t.errorf("password", "is the password of %s: local clients must never learn an upstream password; choose another, or leave it out and postfach generates one", pw.who)
				return
			}
		}
	}
}

func smtpPassword(s *SMTP) string {
	if s == nil {
		return ""
	}
	return s.Password
}

// listenAddr returns the "host:port" address k; "" (the default) is off.
func listenAddr(t *table, k string) string {
	a := t.str(k, "")
	if a == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(a)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 || strings.ContainsAny(host, " \t/") {
		t.errorf(k, "must be \"host:port\" (like %q) or \"\", not %q", serveExample[k], a)
		return ""
	}
	return a
}

// checkKeyPair returns what is wrong with a certificate and key file
// pair, or "".
func checkKeyPair(certFile, keyFile string) string {
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Stat(f); err != nil {
			return strings.TrimPrefix(err.Error(), "stat ")
		}
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return fmt.Sprintf("%s and %s: %s", certFile, keyFile, strings.TrimPrefix(err.Error(), "tls: "))
	}
	return ""
}

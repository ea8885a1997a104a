package pop3

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"

	"github.com/postfach/postfach/sync/auth"
)

// startTLS upgrades the connection with STLS (RFC 2595). It fails with
// ErrNoSTLS when the server does not offer it.
func (c *Client) startTLS() error {
	const cmd = "STLS"
	caps, err := c.Capa()
	if err != nil {
		return err
	}
	if !caps.Has(cmd) {
		return ErrNoSTLS
	}
	if _, err := c.cmd(cmd, cmd); err != nil {
		return err
	}
	// Anything already buffered came before the handshake, in plain text,
	// and would be taken as part of the protected session (CVE-2011-0411
	// style injection).
	if c.br.Buffered() > 0 {
		return c.fail(cmd, protoErr(cmd, "server sent data after the STLS reply, before TLS", ""))
	}
	tc := tls.Client(c.conn, c.opts.TLSConfig)
	if err := handshake(context.Background(), c.state.raw, tc, c.opts.Timeout); err != nil {
		return c.fail(cmd, fmt.Errorf("TLS handshake: %w", err))
	}
	c.setConn(tc)
	c.isTLS = true
	c.caps = nil // RFC 2595: the capabilities must be asked again
	c.log.Debug("pop3 STLS done")
	return nil
}

// User sends USER with the user name; Pass follows it.
func (c *Client) User(name string) error {
	if err := checkArg("USER", "user name", name); err != nil {
		return err
	}
	_, err := c.cmd("USER "+name, "USER "+name)
	return err
}

// Pass sends PASS with the password, after User. Errors show the command as
// "PASS", without the password.
func (c *Client) Pass(password string) error {
	if err := checkArg("PASS", "password", password); err != nil {
		return err
	}
	if _, err := c.cmd("PASS", "PASS "+password); err != nil {
		return err
	}
	c.loggedIn("USER/PASS")
	return nil
}

// APOP logs in with APOP (RFC 1939 section 7): the password never crosses
// the wire, only the MD5 of the greeting's timestamp and the password. It
// fails with ErrNoAPOP when the greeting has no timestamp. MD5 is weak: use
// APOP only where TLS is not available and the server asks for it.
func (c *Client) APOP(name, password string) error {
	if err := checkArg("APOP", "user name", name); err != nil {
		return err
	}
	ts := apopTimestamp(c.greeting)
	if ts == "" {
		return ErrNoAPOP
	}
	sum := md5.Sum([]byte(ts + password))
	if _, err := c.cmd("APOP "+name, "APOP "+name+" "+hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	c.loggedIn("APOP")
	return nil
}

// Login logs in with SASL PLAIN when the server lists it in CAPA, else with
// USER and PASS. It never uses APOP on its own; call APOP for that.
func (c *Client) Login(ctx context.Context, name, password string) error {
	return c.withContext(ctx, func() error {
		caps, err := c.Capa()
		if err != nil {
			return err
		}
		if caps.HasSASL(sasl.Plain) {
			return c.auth(sasl.NewPlainClient("", name, password))
		}
		if err := c.User(name); err != nil {
			return err
		}
		return c.Pass(password)
	})
}

// SignIn logs in with an OAuth2 access token (creds.Token): AUTH
// OAUTHBEARER, or XOAUTH2 when the server lists only that in its CAPA
// SASL line. A token the server refuses (IsAuthError) is fetched again
// and tried once more in the same session before the refusal is final
// (an *auth.RefusedError wrapping the *Error). host and port go into
// OAUTHBEARER's message. With a password instead, it is Login.
func (c *Client) SignIn(ctx context.Context, creds auth.Credentials, host string, port int) error {
	if creds.Token == nil {
		pw := ""
		if creds.Password != nil {
			var err error
			if pw, err = creds.Password(ctx); err != nil {
				return err
			}
		}
		return c.Login(ctx, creds.Username, pw)
	}
	return c.withContext(ctx, func() error {
		caps, err := c.Capa()
		if err != nil {
			return err
		}
		return creds.SignIn(ctx, caps["SASL"], host, port, c.auth, IsAuthError)
	})
}

// Auth logs in with a SASL mechanism (RFC 5034). The initial response goes
// on the AUTH line when it fits in 255 octets, else after the server's first
// challenge.
func (c *Client) Auth(ctx context.Context, mech sasl.Client) error {
	return c.withContext(ctx, func() error { return c.auth(mech) })
}

func (c *Client) auth(mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return fmt.Errorf("pop3: AUTH: %w", err)
	}
	cmd := "AUTH " + name
	if err := checkArg(cmd, "mechanism", name); err != nil {
		return err
	}
	if err := c.check(cmd); err != nil {
		return err
	}
	line := cmd
	if ir != nil {
		enc := encodeSASL(ir)
		if len(line)+1+len(enc)+2 <= maxCommand {
			line += " " + enc
			ir = nil // sent
		}
	}
	if err := c.send(cmd, line); err != nil {
		return err
	}
	for {
		if err := c.flush(cmd); err != nil {
			return err
		}
		line, err := c.readLine(cmd)
		if err != nil {
			return err
		}
		kind, text, err := parseStatus(line)
		switch {
		case err != nil:
			return c.fail(cmd, protoErr(cmd, "malformed status line", line))
		case kind == statusOK:
			c.loggedIn(cmd)
			return nil
		case kind == statusErr:
			return &Error{Command: cmd, Reply: text, Code: responseCode(text)}
		}
		// A challenge.
		if ir != nil && text == "" {
			// The server asks for the initial response (too long for
			// the AUTH line).
			if err := c.send(cmd, encodeSASL(ir)); err != nil {
				return err
			}
			ir = nil
			continue
		}
		chal, derr := base64.StdEncoding.DecodeString(text)
		if derr != nil {
			return c.cancelAuth(cmd, protoErr(cmd, "challenge is not base64", line))
		}
		resp, err := mech.Next(chal)
		if err != nil {
			return c.cancelAuth(cmd, fmt.Errorf("pop3: %s: %w", cmd, err))
		}
		// An empty response is an empty line ("=" is only for an
		// empty initial response: Dovecot refuses it here).
		if err := c.send(cmd, base64.StdEncoding.EncodeToString(resp)); err != nil {
			return err
		}
	}
}

// cancelAuth ends a SASL exchange with "*", reads the server's -ERR and
// returns cause.
func (c *Client) cancelAuth(cmd string, cause error) error {
	if err := c.send(cmd, "*"); err != nil {
		return err
	}
	if err := c.flush(cmd); err != nil {
		return err
	}
	if _, err := c.status(cmd); err == nil || !errors.As(err, new(*Error)) {
		// The server accepted a cancelled exchange, or broke the protocol.
		if err == nil {
			err = protoErr(cmd, "server accepted a cancelled AUTH", "")
		}
		return c.fail(cmd, err)
	}
	var pe *ProtocolError
	if errors.As(cause, &pe) {
		return c.fail(cmd, cause)
	}
	return cause
}

func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// loggedIn notes a successful login: the capabilities may change with it.
func (c *Client) loggedIn(how string) {
	c.caps = nil
	c.log.Debug("pop3 logged in", "method", how)
}

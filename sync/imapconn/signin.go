package imapconn

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/postfach/postfach/sync/auth"
)

// Sign-in. With a password the client says LOGIN; with Endpoint.Token
// (the account's token_cmd) it says AUTHENTICATE OAUTHBEARER, or XOAUTH2
// when the server offers only that, through sync/auth: a token the
// server refuses is fetched again and tried once more on the same
// connection before the refusal is final (auth.Credentials.SignIn).

// signIn logs c in as Dial does.
func (e *Endpoint) signIn(ctx context.Context, c *imapclient.Client) error {
	if e.Token == nil {
		if err := c.Login(e.Username, e.Password).Wait(); err != nil {
			return &ConnError{Addr: e.Addr, Op: "login as " + e.Username, Err: err, refusal: true}
		}
		return nil
	}
	host, port := hostPort(e.Addr)
	mechs := c.Caps().AuthMechanisms()
	slices.Sort(mechs) // a set: in order for the messages
	err := e.credentials().SignIn(ctx, mechs, host, port,
		func(cl sasl.Client) error { return c.Authenticate(nonEmptyResponses{cl}) }, refusedSignIn)
	if err != nil {
		return &ConnError{Addr: e.Addr, Op: "sign-in as " + e.Username, Err: err, refusal: true}
	}
	return nil
}

func (e *Endpoint) credentials() auth.Credentials {
	return auth.Credentials{Username: e.Username, Token: e.Token}
}

// refusedSignIn reports whether err is the server refusing the
// credentials (a NO that will come again: not UNAVAILABLE and the like),
// after which the connection is still usable.
func refusedSignIn(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo && permanentRefusal(ie)
}

// hostPort splits addr for OAUTHBEARER's message.
func hostPort(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// nonEmptyResponses sends %x01 where the mechanism answers with an empty
// response (XOAUTH2's answer to the server's error challenge): go-imap
// writes an empty response as "=", which is only valid as an initial
// response, and Dovecot answers it in a continuation with BAD and closes
// the connection. Whatever follows an error challenge, the server
// refuses the sign-in.
type nonEmptyResponses struct{ sasl.Client }

func (n nonEmptyResponses) Next(challenge []byte) ([]byte, error) {
	resp, err := n.Client.Next(challenge)
	if err == nil && resp != nil && len(resp) == 0 {
		resp = []byte{0x01}
	}
	return resp, err
}

// signIn logs the uploader in with Endpoint.Token (see Endpoint.signIn);
// caps are the server's capabilities before it.
func (u *Uploader) signIn(ctx context.Context, e *Endpoint, caps map[string]bool) error {
	var mechs []string
	for c := range caps {
		if m, ok := strings.CutPrefix(c, "AUTH="); ok {
			mechs = append(mechs, m)
		}
	}
	slices.Sort(mechs)
	host, port := hostPort(e.Addr)
	return e.credentials().SignIn(ctx, mechs, host, port,
		func(cl sasl.Client) error { return u.authenticate(cl, caps[string(imap.CapSASLIR)]) }, refusedSignIn)
}

// authenticate runs AUTHENTICATE with cl: the initial response on the
// command line with SASL-IR, else after the server's empty challenge.
// A refusal is an *imap.Error and leaves the connection usable.
func (u *Uploader) authenticate(cl sasl.Client, saslIR bool) error {
	mech, ir, err := cl.Start()
	if err != nil {
		return err
	}
	// (At login, nothing else is under way on the connection.)
	if err := u.err(); err != nil {
		return err
	}
	u.tag++
	tag := "U" + strconv.Itoa(u.tag)
	timeout := u.wait()
	send := func(line string) error {
		u.conn.SetDeadline(time.Now().Add(timeout))
		u.bw.WriteString(line)
		u.bw.WriteString("\r\n")
		if err := u.bw.Flush(); err != nil {
			return u.fail(fmt.Errorf("%w: %w", ErrConnLost, err))
		}
		return nil
	}
	line := tag + " AUTHENTICATE " + mech
	if ir != nil && saslIR {
		line += " " + encodeIR(ir)
		ir = nil
	}
	if err := send(line); err != nil {
		return err
	}
	for {
		u.conn.SetDeadline(time.Now().Add(timeout))
		line, err := u.readLine()
		if err != nil {
			return u.fail(fmt.Errorf("%w: %w", ErrConnLost, err))
		}
		if chal, ok := strings.CutPrefix(line, "+"); ok {
			resp, err := u.respond(cl, strings.TrimSpace(chal), &ir)
			if err != nil {
				resp = "*" // cancel; the server answers with BAD
			}
			if err := send(resp); err != nil {
				return err
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			if strings.HasPrefix(line, "* BYE") {
				return u.fail(fmt.Errorf("%w: server said %s", ErrConnLost, line[2:]))
			}
			continue // untagged data (CAPABILITY)
		}
		status, text, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(status) {
		case "OK":
			return nil
		case "NO":
			return statusError(imap.StatusResponseTypeNo, text)
		default:
			return statusError(imap.StatusResponseTypeBad, text)
		}
	}
}

// respond is the response line to the challenge chal (base64): the
// initial response *ir if the server asks for it, else the mechanism's.
func (u *Uploader) respond(cl sasl.Client, chal string, ir *[]byte) (string, error) {
	if chal == "" && *ir != nil {
		resp := *ir
		*ir = nil
		return base64.StdEncoding.EncodeToString(resp), nil
	}
	b, err := base64.StdEncoding.DecodeString(chal)
	if err != nil {
		return "", err
	}
	resp, err := cl.Next(b)
	return base64.StdEncoding.EncodeToString(resp), err // empty: an empty line
}

// encodeIR encodes an initial response for the command line (RFC 4959:
// "=" for an empty one).
func encodeIR(ir []byte) string {
	if len(ir) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(ir)
}

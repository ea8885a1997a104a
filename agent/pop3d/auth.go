package pop3d

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// auth answers AUTH (RFC 5034): PLAIN (RFC 4616), with an initial
// response ("=" for an empty one) or after a "+ " continuation; a bare
// AUTH lists the mechanisms.
func (ss *session) auth(c command) error {
	if !ss.loginAllowed() {
		return ss.refuse("log in after STLS")
	}
	if len(c.Args) == 0 {
		ss.bad = 0
		ss.reply("+OK mechanisms follow")
		ss.reply("PLAIN")
		ss.reply(".")
		return nil
	}
	if !strings.EqualFold(c.Args[0], "PLAIN") {
		return ss.refuse("unsupported authentication mechanism")
	}
	if len(c.Args) > 2 {
		return ss.refuse("AUTH takes a mechanism and an initial response")
	}
	var resp string
	if len(c.Args) == 2 {
		resp = c.Args[1]
		if resp == "=" {
			resp = ""
		}
	} else {
		ss.bw.WriteString("+ \r\n")
		if err := ss.bw.Flush(); err != nil {
			return err
		}
		line, err := ss.readLine()
		if err != nil {
			return err
		}
		if line == "*" {
			return ss.refuse("authentication cancelled")
		}
		resp = line
	}
	authzid, authcid, password, ok := decodePlain(resp)
	if !ok {
		return ss.loginFailed("malformed PLAIN response")
	}
	if authzid != "" && authzid != authcid {
		return ss.loginFailed("[AUTH] acting as another user is not supported")
	}
	return ss.login(authcid, password)
}

// decodePlain decodes a PLAIN response: base64 of
// authzid NUL authcid NUL password, authcid not empty.
func decodePlain(resp string) (authzid, authcid, password string, ok bool) {
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "", "", "", false
	}
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", "", "", false
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), true
}

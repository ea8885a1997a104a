package smtptest

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
)

// authServer speaks the server side of Dovecot's authentication protocol
// (version 1.2), enough for Postfix's smtpd_sasl_type = dovecot: PLAIN and
// LOGIN, one user; with a token, XOAUTH2 and OAUTHBEARER (RFC 7628) too.
type authServer struct {
	ln       net.Listener
	user     string
	password string
	token    string // "" = no OAuth mechanisms
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startAuthServer(user, password, token string) (*authServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &authServer{ln: ln, user: user, password: password, token: token, conns: map[net.Conn]bool{}}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns[c] = true
			a.mu.Unlock()
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.serve(c)
				a.mu.Lock()
				delete(a.conns, c)
				a.mu.Unlock()
				c.Close()
			}()
		}
	}()
	return a, nil
}

func (a *authServer) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

func (a *authServer) close() {
	a.ln.Close()
	a.mu.Lock()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// authRequest is one AUTH in progress: LOGIN collects the username first;
// a refused OAuth token gets an error challenge before the FAIL.
type authRequest struct {
	mech     string
	username string
	step     int
	failing  bool
}

func (a *authServer) serve(c net.Conn) {
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n")
	if a.token != "" {
		fmt.Fprintf(w, "MECH\tXOAUTH2\tplaintext\nMECH\tOAUTHBEARER\tplaintext\n")
	}
	fmt.Fprintf(w, "SPID\t%d\nCUID\t1\nCOOKIE\t%032x\nDONE\n", os.Getpid(), 0)
	if w.Flush() != nil {
		return
	}
	reqs := map[string]*authRequest{}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch f[0] {
		case "AUTH":
			if len(f) < 3 {
				return
			}
			id, mech := f[1], strings.ToUpper(f[2])
			var resp *string
			for _, p := range f[3:] {
				if v, ok := strings.CutPrefix(p, "resp="); ok {
					resp = &v
				}
			}
			oauth := mech == "XOAUTH2" || mech == "OAUTHBEARER"
			if mech != "PLAIN" && mech != "LOGIN" && (!oauth || a.token == "") {
				fmt.Fprintf(w, "FAIL\t%s\treason=unsupported mechanism\n", id)
				break
			}
			r := &authRequest{mech: mech}
			reqs[id] = r
			if resp == nil || (mech == "LOGIN" && *resp == "") {
				a.challenge(w, id, r)
				break
			}
			a.step(w, id, r, *resp, reqs)
		case "CONT":
			if len(f) < 2 {
				return
			}
			r := reqs[f[1]]
			if r == nil {
				fmt.Fprintf(w, "FAIL\t%s\treason=unknown request\n", f[1])
				break
			}
			data := ""
			if len(f) > 2 {
				data = f[2]
			}
			a.step(w, f[1], r, data, reqs)
		}
		if w.Flush() != nil {
			return
		}
	}
}

// challenge asks for the next piece of r.
func (a *authServer) challenge(w *bufio.Writer, id string, r *authRequest) {
	prompt := ""
	if r.mech == "LOGIN" {
		prompt = "Username:"
		if r.step > 0 {
			prompt = "Password:"
		}
	}
	fmt.Fprintf(w, "CONT\t%s\t%s\n", id, base64.StdEncoding.EncodeToString([]byte(prompt)))
}

// step takes one client response (base64) for r.
func (a *authServer) step(w *bufio.Writer, id string, r *authRequest, b64 string, reqs map[string]*authRequest) {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		delete(reqs, id)
		fmt.Fprintf(w, "FAIL\t%s\treason=invalid base64\n", id)
		return
	}
	if r.failing { // the client's answer to the error challenge
		delete(reqs, id)
		fmt.Fprintf(w, "FAIL\t%s\tuser=%s\n", id, sanitize(r.username))
		return
	}
	var user, pass string
	switch r.mech {
	case "XOAUTH2", "OAUTHBEARER":
		user, token, ok := parseOAuth(r.mech, data)
		if !ok {
			delete(reqs, id)
			fmt.Fprintf(w, "FAIL\t%s\treason=malformed %s response\n", id, r.mech)
			return
		}
		if user == a.user && subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) == 1 {
			delete(reqs, id)
			fmt.Fprintf(w, "OK\t%s\tuser=%s\n", id, sanitize(user))
			return
		}
		r.failing, r.username = true, user
		challenge := `{"status":"invalid_token","schemes":"bearer","scope":"mail"}`
		fmt.Fprintf(w, "CONT\t%s\t%s\n", id, base64.StdEncoding.EncodeToString([]byte(challenge)))
		return
	case "PLAIN":
		parts := bytes.Split(data, []byte{0})
		if len(parts) != 3 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
			delete(reqs, id)
			fmt.Fprintf(w, "FAIL\t%s\treason=malformed PLAIN response\n", id)
			return
		}
		user, pass = string(parts[1]), string(parts[2])
	case "LOGIN":
		if r.step == 0 {
			r.username = string(data)
			r.step++
			a.challenge(w, id, r)
			return
		}
		user, pass = r.username, string(data)
	}
	delete(reqs, id)
	if user == a.user && subtle.ConstantTimeCompare([]byte(pass), []byte(a.password)) == 1 {
		fmt.Fprintf(w, "OK\t%s\tuser=%s\n", id, sanitize(user))
		return
	}
	fmt.Fprintf(w, "FAIL\t%s\tuser=%s\n", id, sanitize(user))
}

// parseOAuth reads the user and bearer token of an XOAUTH2 response
// ("user=U^Aauth=Bearer T^A^A") or an OAUTHBEARER one (RFC 7628:
// "n,a=U,^A...auth=Bearer T^A^A").
func parseOAuth(mech string, data []byte) (user, token string, ok bool) {
	s := string(data)
	if mech == "OAUTHBEARER" {
		gs2, rest, found := strings.Cut(s, "\x01")
		if !found {
			return "", "", false
		}
		for _, f := range strings.Split(gs2, ",") {
			if v, found := strings.CutPrefix(f, "a="); found {
				user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(v)
			}
		}
		s = rest
	}
	for _, kv := range strings.Split(s, "\x01") {
		if v, found := strings.CutPrefix(kv, "user="); found && mech == "XOAUTH2" {
			user = v
		}
		if v, found := strings.CutPrefix(kv, "auth="); found {
			scheme, t, found := strings.Cut(v, " ")
			if !found || !strings.EqualFold(scheme, "Bearer") {
				return "", "", false
			}
			token, ok = t, true
		}
	}
	return user, token, ok && user != ""
}

// sanitize keeps tabs and line breaks out of a protocol field.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

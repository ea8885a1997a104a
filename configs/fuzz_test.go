package configs

import (
	"errors"
	"net"
	"strings"
	"testing"
)

// FuzzLoad checks that any input gives a config or an ErrorList, never a
// panic, and that every error names the file.
func FuzzLoad(f *testing.F) {
	f.Add(Example)
	f.Add([]byte(account + "port = 0\n[accounts.smtp]\nhost = \"x\"\n[accounts.folder_map]\n\"a.b\" = \"c\"\n"))
	f.Add([]byte("accounts = [{name = \"a\", smtp = {port = \"x\"}}, 1, [2]]\n[serve]\nimap = \"[::1]:x\"\n"))
	f.Add([]byte("[[accounts]]\n[[accounts.smtp]]\n[accounts.\"x.y\"]\nz = 1979-05-27T07:32:00Z\n"))
	f.Add([]byte("[store]\npath = \"~\\u0000\"\n[backup]\nschedule = \"weekly sunday 99:99\"\n"))
	f.Add([]byte(account + "[serve]\nimap = \"0.0.0.0:993\"\npop3 = \"localhost:1110\"\ntls = \"implicit\"\nallow_remote = true\n" +
		"username = \"me\"\npassword = \"p\"\ncert_file = \"c\"\nkey_file = \"k\"\npop3_folder = \"INBOX\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse("fuzz.toml", "/fuzz/fuzz.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			for _, a := range c.Accounts {
				if a.Line < 1 {
					t.Errorf("account %q: line %d", a.Name, a.Line)
				}
			}
			// An endpoint beyond loopback only with allow_remote and TLS.
			for _, addr := range []string{c.Serve.IMAP, c.Serve.POP3, c.Serve.Submission} {
				host, _, err := net.SplitHostPort(addr)
				if addr != "" && (err != nil || !isLoopback(host) && (!c.Serve.AllowRemote || c.Serve.TLS == "none")) {
					t.Errorf("[serve] address %q loaded with allow_remote %v, tls %q", addr, c.Serve.AllowRemote, c.Serve.TLS)
				}
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %v is not a non-empty ErrorList", err)
		}
		for _, e := range list {
			if !strings.HasPrefix(e.Error(), "fuzz.toml") || e.Line < 0 {
				t.Errorf("bad error %q", e.Error())
			}
		}
	})
}

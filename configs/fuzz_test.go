package configs

import (
	"errors"
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

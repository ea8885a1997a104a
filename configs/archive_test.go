package configs

import (
	"strings"
	"testing"
)

// archive = true is read, false is the default, and only IMAP accounts
// take it.
func TestArchive(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	c, errs := load(t, account+"archive = true\n"+strings.Replace(account, `"a"`, `"b"`, 1))
	if errs != nil {
		t.Fatalf("errors:\n%s", strings.Join(errs, "\n"))
	}
	if !c.Accounts[0].Archive || c.Accounts[1].Archive {
		t.Errorf("archive = %v, %v; want true, false", c.Accounts[0].Archive, c.Accounts[1].Archive)
	}
	pop := "[[accounts]]\nname = \"p\"\nkind = \"pop3\"\nhost = \"pop.example.org\"\nusername = \"u\"\npassword = \"p\"\narchive = true\n"
	_, errs = load(t, pop)
	if len(errs) != 1 || !strings.Contains(errs[0], "accounts[1].archive") || !strings.Contains(errs[0], `only valid for kind = "imap"`) {
		t.Errorf("pop3 with archive: %q", errs)
	}
	_, errs = load(t, account+"archive = \"yes\"\n")
	if len(errs) != 1 || !strings.Contains(errs[0], "accounts[1].archive") {
		t.Errorf("archive = \"yes\": %q", errs)
	}
}

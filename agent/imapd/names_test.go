package imapd

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestEndpointAccounts: with several accounts, mailboxes are named
// "<account>/<folder>"; LIST-EXTENDED's selection and return options;
// names beyond ASCII in modified UTF-7.
func TestEndpointAccounts(t *testing.T) {
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	fs := map[string]*index.Folder{}
	for _, name := range []string{"work/INBOX", "work/Sent", "home/INBOX", "home/Lists/Go", "home/Entwürfe"} {
		acct, folder, _ := strings.Cut(name, "/")
		var id index.AccountID
		st.Write(ctx, func(tx *index.Tx) error {
			id, err = tx.EnsureAccount(acct)
			return err
		})
		f, err := st.CreateFolder(ctx, id, folder, nil)
		if err != nil {
			t.Fatal(err)
		}
		fs[name] = f
	}
	if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetSpecialUse(fs["work/Sent"].ID, `\Sent`) }); err != nil {
		t.Fatal(err)
	}
	deliver(t, st, fs["work/Sent"], 5, "Subject: sent\r\n\r\nx\r\n", 0)
	_, addr := startServer(t, st, "work", "home")
	c := dialLogin(t, addr, "c")
	same := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	same("LIST *", c.must(`LIST "" "*"`),
		`* LIST (\Noselect \HasChildren) "/" "home"`,
		`* LIST (\HasNoChildren) "/" "home/Entw&APw-rfe"`,
		`* LIST (\HasNoChildren) "/" "home/INBOX"`,
		`* LIST (\Noselect \HasChildren) "/" "home/Lists"`,
		`* LIST (\HasNoChildren) "/" "home/Lists/Go"`,
		`* LIST (\Noselect \HasChildren) "/" "work"`,
		`* LIST (\HasNoChildren) "/" "work/INBOX"`,
		`* LIST (\HasNoChildren \Sent) "/" "work/Sent"`)
	same("LIST %", c.must("%s", `LIST "" "%"`), `* LIST (\Noselect \HasChildren) "/" "home"`, `* LIST (\Noselect \HasChildren) "/" "work"`)
	same("LIST empty", c.must(`LIST "" ""`), `* LIST (\Noselect) "/" ""`)
	same("LIST (SPECIAL-USE)", c.must(`LIST (SPECIAL-USE) "" "*"`), `* LIST (\HasNoChildren \Sent) "/" "work/Sent"`)
	same("LIST RETURN (STATUS)", c.must("%s", `LIST "" "work/%" RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))`),
		`* LIST (\HasNoChildren \Subscribed) "/" "work/INBOX"`, `* STATUS "work/INBOX" (MESSAGES 0 UNSEEN 0)`,
		`* LIST (\HasNoChildren \Sent \Subscribed) "/" "work/Sent"`, `* STATUS "work/Sent" (MESSAGES 1 UNSEEN 1)`)
	same("LIST with a reference", c.must("%s", `LIST "home/" "%"`),
		`* LIST (\HasNoChildren) "/" "home/Entw&APw-rfe"`, `* LIST (\HasNoChildren) "/" "home/INBOX"`,
		`* LIST (\Noselect \HasChildren) "/" "home/Lists"`)
	if _, st := c.cmd("", "SELECT INBOX"); !strings.HasPrefix(st, "NO") {
		t.Errorf("SELECT INBOX with two accounts: %s", st)
	}
	u := c.must(`SELECT "home/Entw&APw-rfe"`)
	if !slices.Contains(u, "* 0 EXISTS") {
		t.Errorf("SELECT of a UTF-7 name: %q", u)
	}
	if _, st := c.cmd("", `SELECT "home/Entw&APw"`); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO") {
		t.Errorf("SELECT of a name that is no modified UTF-7: %s", st)
	}
	c.must(`CREATE "home/Neu"`)
	if _, st := c.cmd("", `CREATE "Neu"`); !strings.HasPrefix(st, "NO") {
		t.Errorf("CREATE outside the accounts: %s", st)
	}
	if _, st := c.cmd("", `RENAME "home/Neu" "work/Neu"`); !strings.HasPrefix(st, "NO") {
		t.Errorf("RENAME across accounts: %s", st)
	}
	if _, st := c.cmd("", `CREATE "home/INBOX"`); !strings.Contains(st, "ALREADYEXISTS") {
		t.Errorf("CREATE of an existing mailbox: %s", st)
	}
	same("STATUS", c.must(`STATUS "work/Sent" (MESSAGES SIZE UIDNEXT)`), `* STATUS "work/Sent" (MESSAGES 1 UIDNEXT 2 SIZE 20)`)
	same("NAMESPACE", c.must("NAMESPACE"), `* NAMESPACE (("" "/")) NIL NIL`)
}

// TestRenameIntoItself: RENAME of a mailbox to a name below itself is
// refused with a plain NO (a client's mistake, not the server's: no
// [SERVERBUG]), and the mailbox stays.
func TestRenameIntoItself(t *testing.T) {
	st, _ := testStore(t, "INBOX", "Drafts")
	_, addr := startServer(t, st)
	c := dialLogin(t, addr, "c")
	if _, status := c.cmd("", "RENAME Drafts Drafts/Sub"); !strings.HasPrefix(status, "NO ") || strings.Contains(status, "[") {
		t.Errorf("RENAME Drafts Drafts/Sub: %q, want NO without a code", status)
	}
	if u := c.must(`LIST "" "Drafts*"`); !slices.Equal(u, []string{`* LIST (\HasNoChildren) "/" "Drafts"`}) {
		t.Errorf("LIST after the refused RENAME: %q", u)
	}
}

// TestListNonExistent: a hierarchy level that is no folder is \Noselect
// in a basic LIST and \NonExistent in an extended one (RFC 5258 3);
// SUBSCRIBE takes only an existing mailbox, since every folder is
// subscribed unless unsubscribed and a missing one could not be listed.
func TestListNonExistent(t *testing.T) {
	st, _ := testStore(t, "INBOX", "Work/Clients")
	_, addr := startServer(t, st)
	c := dialLogin(t, addr, "c")
	if u := c.must(`LIST "" "Work"`); !slices.Equal(u, []string{`* LIST (\Noselect \HasChildren) "/" "Work"`}) {
		t.Errorf("basic LIST: %q", u)
	}
	for _, cmd := range []string{`LIST (REMOTE) "" "Work"`, `LIST "" "Work" RETURN (CHILDREN)`, `LIST "" ("Work" "INBOX")`} {
		u := c.must("%s", cmd)
		if !slices.Contains(u, `* LIST (\NonExistent \Noselect \HasChildren) "/" "Work"`) {
			t.Errorf("%s: %q, want Work \\NonExistent", cmd, u)
		}
	}
	if _, status := c.cmd("", "SUBSCRIBE Gone"); !strings.HasPrefix(status, "NO [NONEXISTENT]") {
		t.Errorf("SUBSCRIBE Gone: %q, want NO [NONEXISTENT]", status)
	}
	c.must("SUBSCRIBE Work/Clients")
}

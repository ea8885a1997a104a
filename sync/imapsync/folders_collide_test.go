package imapsync_test

// Server folders that would land in one local folder are not synced
// (issue 8, defect 4).

import (
	"context"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapsync"
)

// serverState renders every server folder's messages (UID, flags, bytes).
func (e *env) serverState() string {
	e.t.Helper()
	c := e.d.Client(e.t, testenv.DefaultUser.Name)
	defer c.Logout()
	server, err := mirrortest.ServerFolders(c)
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range sortedKeys(server) {
		for _, m := range server[name] {
			b.WriteString(name + " " + m.Flags.Info() + " " + strings.Join(m.Keywords, ",") + " ")
			b.Write(m.Raw)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// checkCollision asserts the run's error is one line naming the server
// folders and the local folder, and that the Result has it as a folder
// error.
func checkCollision(t *testing.T, res *imapsync.Result, err error, local string, remotes ...string) {
	t.Helper()
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %q, want one line", err)
	}
	for _, r := range remotes {
		if !strings.Contains(err.Error(), `"`+r+`"`) {
			t.Errorf("err = %q does not name server folder %q", err, r)
		}
	}
	if !strings.Contains(err.Error(), `local folder "`+local+`"`) {
		t.Errorf("err = %q does not name local folder %q", err, local)
	}
	found := false
	for _, f := range res.Folders {
		found = found || f.Name == local && f.Err != nil
	}
	if !found {
		t.Errorf("no folder error for %q in %+v", local, res.Folders)
	}
}

// TestFolderCollisionMap: a folder_map target that exists on the server
// too. Neither folder is synced (run after run nothing moves on either
// side), and the rest of the account is.
func TestFolderCollisionMap(t *testing.T) {
	mapped := func(o *imapsync.Options) {
		o.CreateFolders, o.RemoveFolders = true, true
		o.FolderMap = map[string]string{"Sent Items": "Sent"}
	}
	t.Run("from the start", func(t *testing.T) {
		e := newEnv(t)
		e.seedSpread(41, 9, "INBOX", "Sent", "Sent Items")
		e.opts = mapped
		before := e.serverState()
		for range 2 {
			res, _, err := e.trySync(false)
			checkCollision(t, res, err, "Sent", "Sent", "Sent Items")
			if after := e.serverState(); after != before {
				t.Fatalf("the server changed:\n%s\nwas:\n%s", after, before)
			}
			if n := len(e.localMsgs("Sent")); n != 0 {
				t.Errorf("local Sent has %d messages", n)
			}
		}
		if err := sameMsgs("local INBOX", e.serverMsgs("INBOX"), e.localMsgs("INBOX")); err != nil {
			t.Error(err)
		}
	})
	t.Run("after a sync without it", func(t *testing.T) {
		e := newEnv(t)
		e.seedSpread(42, 9, "INBOX", "Sent", "Sent Items")
		e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
		e.sync()
		e.compare()
		before := e.serverState()
		sent, items := e.localMsgs("Sent"), e.localMsgs("Sent Items")
		e.opts = mapped
		for range 2 {
			res, _, err := e.trySync(false)
			checkCollision(t, res, err, "Sent", "Sent", "Sent Items")
			if after := e.serverState(); after != before {
				t.Fatalf("the server changed:\n%s\nwas:\n%s", after, before)
			}
			if err := sameMsgs("local Sent", sent, e.localMsgs("Sent")); err != nil {
				t.Fatal(err)
			}
			if err := sameMsgs("local Sent Items", items, e.localMsgs("Sent Items")); err != nil {
				t.Fatal(err)
			}
		}
		// status shows why Sent is not synced.
		err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
			acct, err := tx.Account("acct")
			if err != nil {
				return err
			}
			f, err := tx.FolderByName(acct, "Sent")
			if err != nil {
				return err
			}
			if !strings.Contains(f.LastError, `"Sent Items"`) {
				t.Errorf("index folder Sent: last error %q", f.LastError)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The rest of the account still syncs.
		e.seedSpread(43, 1, "INBOX")
		e.trySync(false)
		if err := sameMsgs("local INBOX", e.serverMsgs("INBOX"), e.localMsgs("INBOX")); err != nil {
			t.Error(err)
		}
	})
}

// TestFolderCollisionInbox: INBOX is one folder in any case: a folder_map
// target "inbox" collides with it, and a local folder "inbox" is not
// created upstream (it would be INBOX there).
func TestFolderCollisionInbox(t *testing.T) {
	t.Run("folder_map", func(t *testing.T) {
		e := newEnv(t)
		e.seedSpread(44, 4, "INBOX", "Old")
		e.opts = func(o *imapsync.Options) { o.FolderMap = map[string]string{"Old": "inbox"} }
		before := e.serverState()
		res, _, err := e.trySync(false)
		checkCollision(t, res, err, "INBOX", "INBOX", "Old")
		if after := e.serverState(); after != before {
			t.Fatalf("the server changed:\n%s\nwas:\n%s", after, before)
		}
	})
	t.Run("local folder", func(t *testing.T) {
		e := newEnv(t)
		e.opts = func(o *imapsync.Options) { o.CreateFolders = true }
		e.seedSpread(45, 2, "INBOX")
		e.sync()
		e.writeForeign("inbox", "1.M1.host", []byte("Subject: lower\nMessage-ID: <lower@x>\n\nx\n"))
		before := e.serverState()
		inbox := e.localMsgs("INBOX")
		for range 2 {
			_, _, err := e.trySync(false)
			if err == nil || !strings.Contains(err.Error(), `local folder "inbox" is not created upstream`) {
				t.Fatalf("err = %v", err)
			}
			if after := e.serverState(); after != before {
				t.Fatalf("the server changed:\n%s\nwas:\n%s", after, before)
			}
			if err := sameMsgs("local INBOX", inbox, e.localMsgs("INBOX")); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestFolderCollisionLookalike: with '.' as the server's delimiter, "a/b"
// is one folder whose '/' becomes the look-alike U+2215 locally, which a
// real "a∕b" upstream has too. (Dovecot's listescape plugin allows the
// '/'.)
func TestFolderCollisionLookalike(t *testing.T) {
	e := newEnv(t, testenv.WithConfig("namespace inbox {\n  separator = .\n}\nmail_plugins = $mail_plugins listescape"))
	e.opts = func(o *imapsync.Options) { o.CreateFolders, o.RemoveFolders = true, true }
	c := e.d.Client(t, testenv.DefaultUser.Name)
	for _, f := range []string{"a", "a/b", "a\u2215b", "a.c"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", f, err)
		}
	}
	for i, f := range []string{"INBOX", "a/b", "a/b", "a\u2215b", "a\u2215b", "a.c"} {
		raw := []byte("Subject: " + f + "\r\nMessage-ID: <m" + string(rune('0'+i)) + "@x>\r\n\r\nbody\r\n")
		cmd := c.Append(f, int64(len(raw)), nil)
		cmd.Write(raw)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("APPEND %s: %v", f, err)
		}
	}
	before := e.serverState()
	for range 2 {
		res, _, err := e.trySync(false)
		checkCollision(t, res, err, "a\u2215b", "a/b", "a\u2215b")
		if after := e.serverState(); after != before {
			t.Fatalf("the server changed:\n%s\nwas:\n%s", after, before)
		}
		if n := len(e.localMsgs("a\u2215b")); n != 0 {
			t.Errorf("local a\u2215b has %d messages", n)
		}
		if err := sameMsgs("local a/c", e.serverMsgs("a.c"), e.localMsgs("a/c")); err != nil {
			t.Error(err)
		}
	}
}

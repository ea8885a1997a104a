package imapd

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestExpungeArchive: in an account that keeps an archive
// (index.Tx.SetArchive, as the agent records archive = true), an EXPUNGE
// through the endpoint moves the message to .Archive-Deleted/INBOX: the
// client sees it expunged, the file and its row are in the archive view
// (which the endpoint lists and serves like any folder), and the sync
// gets an "expunge" intent for its server copy. An EXPUNGE inside the
// archive view is refused (NO [CANNOT]) and leaves the message there:
// only purge removes it.
func TestExpungeArchive(t *testing.T) {
	st, fs := testStore(t, "INBOX")
	ctx := context.Background()
	if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetArchive(fs["INBOX"].Account, true) }); err != nil {
		t.Fatal(err)
	}
	raw := "From: a@example.org\nSubject: keep me\nMessage-ID: <keep@example.org>\n\nbody\n"
	m := deliver(t, st, fs["INBOX"], 5, raw, maildir.FlagSeen)
	deliver(t, st, fs["INBOX"], 6, "Subject: other\n\nx\n", 0)
	_, addr := startServer(t, st)
	c := dialT(t, addr, "client")
	c.must("STORE 1 +FLAGS.SILENT (\\Deleted)")
	u := c.must("EXPUNGE")
	if len(u) != 1 || u[0] != "* 1 EXPUNGE" {
		t.Errorf("EXPUNGE answered %q", u)
	}

	var view *index.Folder
	var rows []*index.Message
	var intents []index.Intent
	if err := st.Read(ctx, func(tx *index.ReadTx) (err error) {
		if view, err = tx.FolderByName(fs["INBOX"].Account, index.ArchiveFolder("INBOX")); err != nil {
			return err
		}
		if rows, err = tx.Messages(view.ID); err != nil {
			return err
		}
		intents, err = tx.Intents(fs["INBOX"].ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The \Deleted mark stays behind: an archived message is kept, and
	// a restore or an export of it must not carry the mark.
	if len(rows) != 1 || rows[0].ID != m.ID || rows[0].UID != 0 || rows[0].Flags != maildir.FlagSeen {
		t.Fatalf("archive view rows = %+v, want message %d without UID, flags \\Seen only", rows, m.ID)
	}
	d, err := st.Dir(*view)
	if err != nil {
		t.Fatal(err)
	}
	e, err := d.Find(rows[0].Key, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(d.FilePath(e)); err != nil || string(got) != raw {
		t.Errorf("archived file = %q, %v", got, err)
	}
	if e.Flags != maildir.FlagSeen {
		t.Errorf("archived file %s: flags %v, want \\Seen only", e.Name, e.Flags)
	}
	c.must(`EXAMINE "%s"`, index.ArchiveFolder("INBOX"))
	if u := strings.Join(c.must("FETCH 1 (FLAGS)"), "\n"); strings.Contains(u, `\Deleted`) || !strings.Contains(u, `\Seen`) {
		t.Errorf("the archived message's flags through the endpoint: %s", u)
	}
	if len(intents) != 1 || intents[0].Op != index.IntentExpunge || intents[0].Arg != "5/777" {
		t.Errorf("intents = %+v, want one expunge of 5/777", intents)
	}

	// The view is a folder of the endpoint; an EXPUNGE there keeps it.
	if u := strings.Join(c.must(`LIST "" "*"`), "\n"); !strings.Contains(u, index.ArchivePrefix) {
		t.Errorf("LIST does not show the archive view:\n%s", u)
	}
	c.must(`SELECT "%s"`, index.ArchiveFolder("INBOX"))
	c.must("STORE 1 +FLAGS.SILENT (\\Deleted)")
	if u, status := c.cmd("", "EXPUNGE"); len(u) != 0 || !strings.HasPrefix(status, "NO [CANNOT]") || !strings.Contains(status, "postfach purge") {
		t.Errorf("EXPUNGE in the archive view answered %q, %q", u, status)
	}
	if _, err := d.Find(rows[0].Key, ""); err != nil {
		t.Errorf("the archived file went: %v", err)
	}
}

// TestArchiveFolderDeleteRename: DELETE and RENAME through the endpoint
// never take messages out of an archive account. The archive view's
// folders are neither deleted nor renamed, nor renamed into (NO [CANNOT]
// naming postfach purge): they hold the only copies. An ordinary folder
// with messages is not deleted either (NO [CANNOT]): its messages are
// expunged first, which archives them, then the empty folder goes.
func TestArchiveFolderDeleteRename(t *testing.T) {
	st, fs := testStore(t, "INBOX", "Work")
	ctx := context.Background()
	if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetArchive(fs["INBOX"].Account, true) }); err != nil {
		t.Fatal(err)
	}
	const keep, work = "Subject: keep me\n\nbody\n", "Subject: work\n\nbody\n"
	deliver(t, st, fs["INBOX"], 5, keep, maildir.FlagSeen)
	deliver(t, st, fs["Work"], 7, work, maildir.FlagSeen)
	_, addr := startServer(t, st)
	c := dialT(t, addr, "client")
	c.must("SELECT INBOX")
	c.must("STORE 1 +FLAGS.SILENT (\\Deleted)")
	c.must("EXPUNGE")
	c.must("UNSELECT")
	view := index.ArchiveFolder("INBOX")
	cannot := func(what string, wantPurge bool, format string, args ...any) {
		t.Helper()
		u, status := c.cmd("", format, args...)
		if len(u) != 0 || !strings.HasPrefix(status, "NO [CANNOT]") || wantPurge && !strings.Contains(status, "postfach purge") {
			t.Errorf("%s answered %q %q, want NO [CANNOT]", what, u, status)
		}
	}
	cannot("DELETE of the view", true, `DELETE "%s"`, view)
	cannot("RENAME of the view", true, `RENAME "%s" "Saved"`, view)
	cannot("RENAME into the view", true, `RENAME "Work" "%s"`, index.ArchiveFolder("Work2"))
	cannot("DELETE of a folder with messages", false, `DELETE "Work"`)

	// Every message is where it was, file and row.
	body := func(folder string) []string {
		t.Helper()
		var out []string
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			f, err := tx.FolderByName(fs["INBOX"].Account, folder)
			if err != nil {
				return err
			}
			ms, err := tx.Messages(f.ID)
			for _, m := range ms {
				out = append(out, m.Key)
			}
			return err
		}); err != nil {
			t.Fatalf("folder %s: %v", folder, err)
		}
		for _, k := range out {
			f, err := func() (*index.Folder, error) {
				var f *index.Folder
				err := st.Read(ctx, func(tx *index.ReadTx) (err error) {
					f, err = tx.FolderByName(fs["INBOX"].Account, folder)
					return err
				})
				return f, err
			}()
			if err != nil {
				t.Fatal(err)
			}
			d, err := st.Dir(*f)
			if err != nil {
				t.Fatal(err)
			}
			e, err := d.Find(k, "")
			if err != nil {
				t.Fatalf("folder %s: file of %s: %v", folder, k, err)
			}
			raw, err := os.ReadFile(d.FilePath(e))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(raw))
		}
		return out
	}
	if got := body(view); len(got) != 2 || got[1] != keep {
		t.Errorf("archive view holds %q, want the message %q", got, keep)
	}
	if got := body("Work"); len(got) != 2 || got[1] != work {
		t.Errorf("Work holds %q, want the message %q", got, work)
	}

	// Expunged, Work's message is archived; then the empty folder goes.
	c.must("SELECT Work")
	c.must("STORE 1 +FLAGS.SILENT (\\Deleted)")
	c.must("EXPUNGE")
	c.must("UNSELECT")
	c.must(`DELETE "Work"`)
	if got := body(index.ArchiveFolder("Work")); len(got) != 2 || got[1] != work {
		t.Errorf("Work's archive view holds %q, want the message %q", got, work)
	}
}

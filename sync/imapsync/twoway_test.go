package imapsync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

func (e *env) dir(folder string) *maildir.Dir {
	e.t.Helper()
	p, err := maildir.FolderDir(e.root, "acct", folder)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := maildir.Open(p)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) entries(folder string) []maildir.Entry {
	e.t.Helper()
	es, err := e.dir(folder).Scan()
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// writeForeign drops a message into new/ the way an MDA or another mail
// program would: no ,U= tag, no info.
func (e *env) writeForeign(folder, name string, raw []byte) {
	e.t.Helper()
	d := e.dir(folder)
	if err := os.WriteFile(filepath.Join(d.Path, "new", name), raw, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func TestTwoWay(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(3, 120, corpus.Options{Folders: []string{"INBOX", "Archive"}}))
	e.sync()
	e.compare()

	// Local changes, as mutt or notmuch would make them.
	inbox := e.entries("INBOX")
	d := e.dir("INBOX")
	flagged := inbox[0]
	if _, err := d.SetFlags(flagged, flagged.Flags|maildir.FlagFlagged|maildir.FlagAnswered); err != nil {
		t.Fatal(err)
	}
	for _, gone := range inbox[1:3] {
		if err := os.Remove(d.FilePath(gone)); err != nil {
			t.Fatal(err)
		}
	}
	newRaw := []byte("From: me@example.org\nTo: you@example.org\nSubject: written offline\nMessage-ID: <offline-1@example.org>\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n\nHello from the train.\n")
	e.writeForeign("INBOX", "1772445600.M1P1.laptop", newRaw)
	noID := []byte("From: me@example.org\nSubject: no message-id\n\nbody\n")
	e.writeForeign("Archive", "1772445601.M2P1.laptop", noID)

	// A server change at the same time.
	c := e.d.Client(t, testenv.DefaultUser.Name)
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Important"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}

	res, _ := e.sync()
	tot := res.Totals()
	if tot.Uploaded != 2 || tot.ExpungedRemote != 2 || tot.FlagsPushed != 1 || tot.FlagsChanged != 1 {
		t.Errorf("got %+v, want 2 uploaded, 2 deleted upstream, 1 flag pushed, 1 flag pulled", tot)
	}
	server := e.compare()
	found := 0
	for _, m := range server["INBOX"] {
		if bytes.Equal(bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n")), newRaw) {
			found++
		}
	}
	if found != 1 {
		t.Errorf("the offline message is on the server %d times", found)
	}

	// Nothing left to do.
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded+tot.ExpungedRemote+tot.FlagsPushed+tot.New+tot.Expunged+tot.FlagsChanged != 0 {
		t.Errorf("second run did something: %+v", tot)
	}
	e.compare()

	t.Run("lost index with local-only state", func(t *testing.T) {
		// A lost index and a lost UIDVALIDITY file: every message must be
		// matched by content, none uploaded or downloaded again.
		e.store.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(index.DefaultPath(e.root) + suffix)
		}
		for _, f := range []string{"INBOX", "Archive"} {
			os.Remove(filepath.Join(e.dir(f).Path, maildir.UIDValidityFile))
		}
		e.openIndex()
		res, _ := e.sync()
		if tot := res.Totals(); tot.Uploaded != 0 || tot.New != 0 {
			t.Errorf("after losing index and UIDVALIDITY files: %+v; want nothing moved", tot)
		}
		e.compare()
	})

	t.Run("interrupted append is adopted, not repeated", func(t *testing.T) {
		c := e.d.Client(t, testenv.DefaultUser.Name)
		appendRaw := func(raw []byte) {
			crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
			ac := c.Append("INBOX", int64(len(crlf)), nil)
			ac.Write(crlf)
			ac.Close()
			if _, err := ac.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		// 1. A crash after APPEND and before the intent was even read back:
		// the server has the copy, the file has no tag. Content identity
		// adopts it.
		raw1 := []byte("From: me@example.org\nSubject: crash test\nMessage-ID: <crash-1@example.org>\n\nx\n")
		e.writeForeign("INBOX", "1772445700.M3P1.laptop", raw1)
		appendRaw(raw1)
		res, _ := e.sync()
		if tot := res.Totals(); tot.Uploaded != 0 {
			t.Errorf("a message the server already had was uploaded again: %+v", tot)
		}
		e.compare()

		// 2. The journal path: the intent is recorded, the APPEND went
		// through, the row has no UID yet.
		raw2 := bytes.Replace(raw1, []byte("crash-1"), []byte("crash-2"), 1)
		e.writeForeign("INBOX", "1772445800.M4P1.laptop", raw2)
		appendRaw(raw2)
		err := e.store.Write(context.Background(), func(tx *index.Tx) error {
			a, _ := tx.Account("acct")
			f, _ := tx.FolderByName(a, "INBOX")
			nm := &index.NewMessage{}
			nm.Folder, nm.Key, nm.File = f.ID, "1772445800.M4P1.laptop", "new/1772445800.M4P1.laptop"
			nm.Header.MessageID = "crash-2@example.org"
			// As reconcile indexes a new file: with its size and hash.
			nm.Size, nm.SHA256 = int64(len(raw2)), sha256.Sum256(raw2)
			id, err := tx.AddMessage(nm)
			if err != nil {
				return err
			}
			_, err = tx.AddIntent(index.Intent{Account: a, Folder: f.ID, Message: id, Op: "append", Arg: strconv.Itoa(int(f.UIDNext))})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		res, _ = e.sync()
		if tot := res.Totals(); tot.Uploaded != 0 {
			t.Errorf("an interrupted append was uploaded again: %+v", tot)
		}
		e.compare()
	})

	t.Run("deletion safety valve", func(t *testing.T) {
		es := e.entries("Archive")
		d := e.dir("Archive")
		for _, x := range es[:len(es)/2] {
			os.Remove(d.FilePath(x))
		}
		_, _, err := e.trySync(false)
		if !errors.Is(err, imapsync.ErrTooManyDeletes) {
			t.Fatalf("deleting half a folder: err = %v, want ErrTooManyDeletes", err)
		}
		t.Log(err)
		if _, _, err := e.trySync(true); err != nil {
			t.Fatalf("with force: %v", err)
		}
		e.compare()
	})
}

// TestMultiAppend: many new local messages in one folder go up in one
// MULTIAPPEND on the uploader's connection, under a non-ASCII name, with
// their flags, and get their UIDs.
func TestMultiAppend(t *testing.T) {
	e := newEnv(t)
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(5, 10, corpus.Options{Folders: []string{"INBOX", "Entwürfe"}}))
	e.sync()
	d := e.dir("Entwürfe")
	for i := range 12 {
		raw := fmt.Sprintf("From: me@example.org\nSubject: draft %d\nMessage-ID: <draft-%d@example.org>\n\nText %d.\n", i, i, i)
		name := fmt.Sprintf("1772445600.M%dP7.laptop:2,", i)
		if i%3 == 0 {
			name += "S"
		}
		if err := os.WriteFile(filepath.Join(d.Path, "cur", name), []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var trace testenv.Buffer
	e.opts = func(o *imapsync.Options) { o.Endpoint.Debug = &trace }
	res, _ := e.sync()
	if tot := res.Totals(); tot.Uploaded != 12 {
		t.Errorf("uploaded %d, want 12", tot.Uploaded)
	}
	if n := strings.Count(trace.String(), ` APPEND "Entw&APw-rfe" (`); n != 1 {
		t.Errorf("%d MULTIAPPEND commands, want 1", n)
	}
	for _, x := range e.entries("Entwürfe") {
		if x.UID == 0 {
			t.Errorf("%s has no UID", x.Name)
		}
	}
	e.opts = nil
	e.compare()
	if res, _ := e.sync(); res.Totals().Uploaded+res.Totals().New != 0 {
		t.Errorf("the next run moved messages: %+v", res.Totals())
	}
}

// TestRefusedUpload: a message the server will not store (here: too large
// for its limit) is reported, stays local, and does not hold up the rest
// of the folder: the other uploads (a MULTIAPPEND the server refused as a
// whole goes again one message per command) and new mail coming down.
func TestRefusedUpload(t *testing.T) {
	e := newEnv(t, testenv.WithConfig(`
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_rule = *:storage=1G
  quota_vsizes = yes
  quota_max_mail_size = 20k
}
`))
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(6, 5, corpus.Options{Folders: []string{"INBOX"}}))
	e.sync()
	for _, n := range []int{12, 2} {
		for i := range n {
			body := "Small.\n"
			if i == 1 {
				body = strings.Repeat("A line of a large message.\n", 1500) // 40 KB
			}
			raw := fmt.Sprintf("From: me@example.org\nSubject: %d/%d\nMessage-ID: <refused-%d-%d@example.org>\n\n%s", n, i, n, i, body)
			e.writeForeign("INBOX", fmt.Sprintf("1772445600.M%dP%d.laptop", i, n), []byte(raw))
		}
		e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, n, corpus.Options{Folders: []string{"INBOX"}})[n-1:])
		res, _ := e.sync()
		tot := res.Totals()
		if tot.Uploaded != n-1 || tot.Refused != 1 || tot.New != 1 {
			t.Errorf("%d new local messages: %+v; want %d uploaded, 1 refused, 1 new downloaded", n, tot, n-1)
		}
		// The refused message is tried again, and refused again, each run;
		// the folder's status says so, with the server's reason.
		res, _ = e.sync()
		if tot := res.Totals(); tot.Refused != 1 || tot.Uploaded+tot.New != 0 {
			t.Errorf("the next run: %+v; want the refusal again and nothing else", tot)
		}
		if note := e.folderNote("INBOX"); !strings.HasPrefix(note, "1 message refused by the server (kept here, tried again next run): ") ||
			!strings.Contains(note, "NO [LIMIT] Mail size is larger") {
			t.Errorf("INBOX's status says %q; want the refusal and the server's reason", note)
		}
		// Take the large message out, as a user would; the rest agrees.
		for _, x := range e.entries("INBOX") {
			if x.UID == 0 {
				os.Remove(e.dir("INBOX").FilePath(x))
			}
		}
	}
	if res, _ := e.sync(); res.Totals().Refused != 0 {
		t.Errorf("refused after the large message left: %+v", res.Totals())
	}
	if note := e.folderNote("INBOX"); note != "" {
		t.Errorf("INBOX's status still says %q", note)
	}
	e.compare()
}

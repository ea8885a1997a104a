package imapsync_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// One UID belongs to one row of a folder. These tests make two local files
// claim one UID in the ways users, tools and old versions did, and check
// that deleting one of them never deletes the other or the server's
// message, and that a file rewritten under a new key is still the same
// message (not a deletion plus an upload).

// entryByUID returns the INBOX file holding uid.
func (e *env) entryByUID(folder string, uid uint32) maildir.Entry {
	e.t.Helper()
	for _, en := range e.entries(folder) {
		if en.UID == uid {
			return en
		}
	}
	e.t.Fatalf("%s: no file with uid %d", folder, uid)
	return maildir.Entry{}
}

// localCopies counts the local files of folder whose Message-ID is id.
func (e *env) localCopies(folder, id string) int {
	e.t.Helper()
	n := 0
	for _, en := range e.entries(folder) {
		if e.fileMessageID(folder, en) == id {
			n++
		}
	}
	return n
}

// TestDuplicateUIDRowsFromOlderVersion: two syncs of one account racing
// (`postfach sync work work` before it ran each account once) left two
// files and two rows with one UID. The index migration takes the UID from
// both; the next sync gives it back to one copy by content and uploads the
// other; deleting either copy then deletes only that copy.
func TestDuplicateUIDRowsFromOlderVersion(t *testing.T) {
	e := bugEnv(t)
	orig := e.entryByUID("INBOX", 3)
	id := e.fileMessageID("INBOX", orig)

	// The state the race left, in an index of schema 6 (before the UID
	// became unique per folder).
	raw, err := os.ReadFile(e.dir("INBOX").FilePath(orig))
	if err != nil {
		t.Fatal(err)
	}
	dupKey := "1700000000.M1P2_9.racer"
	dupName := dupKey + ",U=3:" + orig.Flags.Info()
	if err := os.WriteFile(filepath.Join(e.dir("INBOX").Path, "cur", dupName), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	e.store.Close()
	db, err := sql.Open("sqlite", index.DefaultPath(e.root))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP INDEX IF EXISTS messages_folder_uid_once`,
		`INSERT INTO messages (folder_id, key, file, uid, local_uid, flags, keywords, synced_flags, synced_kw,
			size, rfc822_size, internal_date, modseq, message_id, date, from_addr, to_addr, cc_addr, subject, sha256)
		 SELECT folder_id, '` + dupKey + `', 'cur/` + dupName + `', uid, local_uid + 1000, flags, keywords, synced_flags, synced_kw,
			size, rfc822_size, internal_date, modseq, message_id, date, from_addr, to_addr, cc_addr, subject, sha256
		 FROM messages WHERE key = '` + orig.Key + `'`,
		`PRAGMA user_version = 6`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	e.openIndex()

	e.sync()
	server := e.compare()
	if got := findServer(server, id); len(got["INBOX"]) != 2 {
		t.Errorf("two local copies of uid 3: server copies %s, want two in INBOX", uidsOf(got))
	}

	// The user deletes one copy (the older one, which held the UID).
	if err := os.Remove(e.dir("INBOX").FilePath(e.entryByKey("INBOX", orig.Key))); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.sync()
	e.compare()
	if got := findServer(e.serverNow(), id); len(got["INBOX"]) != 1 {
		t.Errorf("after deleting one of two copies: server copies %s, want one", uidsOf(got))
	}
	if n := e.localCopies("INBOX", id); n != 1 {
		t.Errorf("after deleting one of two copies: %d local copies, want one", n)
	}
}

func (e *env) entryByKey(folder, key string) maildir.Entry {
	e.t.Helper()
	for _, en := range e.entries(folder) {
		if en.Key == key {
			return en
		}
	}
	e.t.Fatalf("%s: no file with key %s", folder, key)
	return maildir.Entry{}
}

// TestFileRewrittenUnderNewKey: a program rewrote a message file under a
// new name (another key) that keeps the ,U= tag, or without the tag (a mail
// client moved it out of the folder and back). The old row's file is gone,
// but the message is not: nothing may be deleted upstream, nothing uploaded
// again. (Before, the gone row was carried out as a deletion upstream and
// the new file kept or regained the UID, so the next run deleted it
// locally too: the message was lost on both sides.)
func TestFileRewrittenUnderNewKey(t *testing.T) {
	for _, keepTag := range []bool{true, false} {
		name := "without tag"
		if keepTag {
			name = "with tag"
		}
		t.Run(name, func(t *testing.T) {
			e := bugEnv(t)
			before := e.serverNow()
			orig := e.entryByUID("INBOX", 5)
			id := e.fileMessageID("INBOX", orig)
			d := e.dir("INBOX")
			raw, err := os.ReadFile(d.FilePath(orig))
			if err != nil {
				t.Fatal(err)
			}
			newName := "1700000001.M7P7.rewriter:" + orig.Flags.Info()
			if keepTag {
				newName = strings.Replace(newName, ":2,", ",U=5:2,", 1)
			}
			if err := os.WriteFile(filepath.Join(d.Path, "cur", newName), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(d.FilePath(orig)); err != nil {
				t.Fatal(err)
			}
			res, _ := e.sync()
			if tot := res.Totals(); tot.ExpungedRemote != 0 || tot.Uploaded != 0 {
				t.Errorf("rewritten file: %d deleted upstream, %d uploaded; want none", tot.ExpungedRemote, tot.Uploaded)
			}
			e.sync()
			server := e.compare()
			if got := findServer(server, id); len(got["INBOX"]) != 1 || got["INBOX"][0].UID != 5 {
				t.Errorf("rewritten file: server copies %s, want uid 5 only", uidsOf(got))
			}
			if count(server) != count(before) {
				t.Errorf("server has %d messages, had %d", count(server), count(before))
			}
		})
	}
}

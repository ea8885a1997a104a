package index_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

func open(t *testing.T) *index.Store {
	t.Helper()
	st, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newMsg(f index.FolderID, key, subject, body string) *index.NewMessage {
	m := &index.NewMessage{Body: body}
	m.Folder, m.Key, m.File = f, key, "cur/"+key+":2,"
	m.Header = index.Header{Subject: subject, From: "Jürgen Müller <jm@example.de>", MessageID: key + "@x"}
	m.Flags = maildir.FlagSeen
	return m
}

func TestMessagesAndSearch(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	var inbox, other *index.Folder
	err := st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		if inbox, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX"); err != nil {
			return err
		}
		if other, err = tx.EnsureFolder(a, "Archive", "acct/Archive"); err != nil {
			return err
		}
		ids, err := tx.AddMessages([]*index.NewMessage{
			newMsg(inbox.ID, "k1", "Grüße aus München", "the quarterly report is attached"),
			newMsg(inbox.ID, "k2", "Lunch?", "see you at noon"),
			newMsg(other.ID, "k3", "Invoice 2024", "please pay"),
		})
		if err != nil {
			return err
		}
		if len(ids) != 3 || ids[0] == ids[1] {
			t.Errorf("ids %v", ids)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inbox.LocalUIDValidity == other.LocalUIDValidity {
		t.Errorf("two folders share local UIDVALIDITY %d", inbox.LocalUIDValidity)
	}
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		rows, err := tx.Messages(inbox.ID)
		if err != nil {
			return err
		}
		if len(rows) != 2 || rows[0].LocalUID == rows[1].LocalUID || rows[0].LocalUID == 0 {
			t.Errorf("rows %+v", rows)
		}
		// Accents fold: "grusse" and "Grüße" find "Grüße", "munchen" finds "München".
		for q, want := range map[string]int{"munchen": 1, "quarterly": 1, "noon": 1, "juergen": 0, "jurgen": 3, "pay invoice": 1,
			"grusse": 1, "Grüße": 1, "GRÜSSE": 1, "gruße": 1} {
			hits, err := tx.Search(q, 10)
			if err != nil {
				t.Errorf("search %q: %v", q, err)
				continue
			}
			if len(hits) != want {
				t.Errorf("search %q: %d hits, want %d", q, len(hits), want)
			}
		}
		if _, err := tx.Search(`"unbalanced`, 10); err == nil || err.Error() != `search: at column 1: missing closing '"'` {
			t.Errorf(`search "unbalanced: %v, want the syntax error`, err)
		}
		up, pending, err := tx.SyncCounts(inbox.ID)
		if err != nil || up != 0 || pending != 2 {
			t.Errorf("SyncCounts = %d, %d, %v; want 0 upstream, 2 pending", up, pending, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleting removes the full-text entry too.
	err = st.Write(ctx, func(tx *index.Tx) error {
		rows, _ := tx.Messages(other.ID)
		return tx.DeleteMessage(rows[0].ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Read(ctx, func(tx *index.ReadTx) error {
		if hits, _ := tx.Search("invoice", 10); len(hits) != 0 {
			t.Errorf("deleted message still found")
		}
		return nil
	})
}

func TestDryRunRollsBack(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	dry := st.DryRun()
	var acct index.AccountID
	err := dry.Write(ctx, func(tx *index.Tx) error {
		var err error
		acct, err = tx.EnsureAccount("ghost")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The view's later transactions see its earlier ones: a folder of
	// the account it created can be created (a fresh store's dry run).
	err = dry.Write(ctx, func(tx *index.Tx) error {
		_, err := tx.EnsureFolder(acct, "INBOX", "acct/INBOX")
		return err
	})
	if err != nil {
		t.Fatalf("a folder of the dry run's account: %v", err)
	}
	if err := dry.Read(ctx, func(tx *index.ReadTx) error {
		_, err := tx.Account("ghost")
		return err
	}); err != nil {
		t.Errorf("the dry-run view does not see its own write: %v", err)
	}
	if err := dry.Discard(); err != nil {
		t.Fatal(err)
	}
	st.Read(ctx, func(tx *index.ReadTx) error {
		if _, err := tx.Account("ghost"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("dry-run write persisted: %v", err)
		}
		return nil
	})
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	st, err := index.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st.Write(ctx, func(tx *index.Tx) error {
		a, _ := tx.EnsureAccount("a")
		f, _ := tx.EnsureFolder(a, "INBOX", "a/INBOX")
		return tx.SetRemoteState(f.ID, 7, 100, 55)
	})
	st.Close()
	st, err = index.Open(path) // migrations must be idempotent
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Read(ctx, func(tx *index.ReadTx) error {
		a, _ := tx.Account("a")
		f, err := tx.FolderByName(a, "INBOX")
		if err != nil || f.UIDValidity != 7 || f.UIDNext != 100 || f.HighestModSeq != 55 {
			t.Errorf("folder after reopen: %+v, %v", f, err)
		}
		return nil
	})
}

func TestParseHeaderMalformed(t *testing.T) {
	h := index.ParseHeader([]byte("Subject: =?UTF-8?B?R3LDvMOfZQ==?=\nFrom: broken <<<\nDate: not a date\nMessage-ID: <a@b>\n\n"))
	if h.Subject != "Grüße" || h.MessageID != "a@b" || !h.Date.IsZero() {
		t.Errorf("got %+v", h)
	}
	if h := index.ParseHeader([]byte("\x00\xff garbage")); h.Subject != "" {
		t.Errorf("garbage parsed to %+v", h)
	}
	_ = time.Now
}

// TestIndexPending: text deferred at store time is found once IndexPending
// has run, also when the file was renamed (flags changed) meanwhile.
func TestIndexPending(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	root := t.TempDir()
	dir, err := maildir.Open(filepath.Join(root, "a", "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir.Path, "cur", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("k1:2,", "Subject: one\n\nzeppelin over the lake\n")
	write("k2:2,S", "Subject: two\n\nsubmarine below\n") // renamed after storing (was k2:2,)
	err = st.Write(ctx, func(tx *index.Tx) error {
		a, _ := tx.EnsureAccount("a")
		f, _ := tx.EnsureFolder(a, "INBOX", "a/INBOX")
		m1, m2 := newMsg(f.ID, "k1", "one", ""), newMsg(f.ID, "k2", "two", "")
		m1.DeferText, m2.DeferText = true, true
		m2.File = "cur/k2:2,"
		_, err := tx.AddMessages([]*index.NewMessage{m1, m2})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		var n int
		st.Read(ctx, func(tx *index.ReadTx) error {
			hits, err := tx.Search(q, 10)
			if err != nil {
				t.Fatal(err)
			}
			n = len(hits)
			return nil
		})
		return n
	}
	if count("zeppelin") != 0 {
		t.Fatal("text indexed before IndexPending")
	}
	n, err := st.IndexPending(ctx, root, nil)
	if err != nil || n != 2 {
		t.Fatalf("IndexPending = %d, %v", n, err)
	}
	if count("zeppelin") != 1 || count("submarine") != 1 || count("one") != 1 {
		t.Errorf("after IndexPending: zeppelin %d, submarine %d, one %d", count("zeppelin"), count("submarine"), count("one"))
	}
	st.Read(ctx, func(tx *index.ReadTx) error {
		if p, _ := tx.PendingText(); p != 0 {
			t.Errorf("%d still pending", p)
		}
		return nil
	})
}

func TestFileRows(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	var f *index.Folder
	keys := []string{"1772445600.M1P1.host", "odd key\twith\ntab and newline", "ünïcödé 12 34", "", "x"}
	err := st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		if f, err = tx.EnsureFolder(a, "INBOX", "acct/INBOX"); err != nil {
			return err
		}
		var ms []*index.NewMessage
		for i, k := range keys {
			m := newMsg(f.ID, k, "s", "")
			m.UID = uint32(i * 1000)
			ms = append(ms, m)
		}
		_, err = tx.AddMessages(ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var rows []*index.Message
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		rows, err = tx.FileRows(f.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(keys) {
		t.Fatalf("%d rows, want %d", len(rows), len(keys))
	}
	for _, m := range rows {
		i := slices.Index(keys, m.Key)
		if i < 0 || m.File != "cur/"+m.Key+":2," || m.UID != uint32(i*1000) || !m.Partial || m.ID == 0 || m.Folder != f.ID {
			t.Errorf("row %+v", m)
		}
	}
	// Fill loads the rest in place.
	if err := st.Read(ctx, func(tx *index.ReadTx) error { return tx.Fill(rows) }); err != nil {
		t.Fatal(err)
	}
	for _, m := range rows {
		if m.Partial || m.Flags != maildir.FlagSeen || m.Header.MessageID != m.Key+"@x" {
			t.Errorf("filled row %+v", m)
		}
	}
	// Pending: not upstream (UID 0) or flags not synced.
	err = st.Write(ctx, func(tx *index.Tx) error {
		for _, m := range rows {
			if err := tx.SetSyncedFlags(m.ID, m.Flags, m.Keywords); err != nil {
				return err
			}
		}
		m := rows[slices.IndexFunc(rows, func(m *index.Message) bool { return m.Key == keys[3] })]
		return tx.SetFileFlags(m.ID, f.ID, m.File, 0, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		pending, err := tx.PendingRows(f.ID)
		var got []string
		for _, m := range pending {
			got = append(got, m.Key)
		}
		slices.Sort(got)
		want := []string{keys[0], keys[3]} // UID 0; flags changed
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("pending %q, want %q", got, want)
		}
		up, n, err2 := tx.SyncCounts(f.ID)
		if up != 4 || n != 2 {
			t.Errorf("SyncCounts = %d upstream, %d pending; want 4, 2", up, n)
		}
		some, err3 := tx.Unuploaded(f.ID)
		none, err4 := tx.Unuploaded(f.ID + 1)
		if !some || none {
			t.Errorf("Unuploaded = %v, and %v for an empty folder; want true, false", some, none)
		}
		return errors.Join(err, err2, err3, err4)
	})
	if err != nil {
		t.Fatal(err)
	}
	// An empty folder.
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		rows, err := tx.FileRows(f.ID + 1)
		if len(rows) != 0 {
			t.Errorf("empty folder: %v", rows)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSetFileKeepsFlagChange: a ,U= tag set on a file whose flags another
// program changed meanwhile must not record the new name beside the old
// flags (the scan compares names: the change would be hidden for good).
func TestSetFileKeepsFlagChange(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	var id index.MessageID
	var folder index.FolderID
	err := st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		f, err := tx.EnsureFolder(a, "INBOX", "acct/INBOX")
		if err != nil {
			return err
		}
		folder = f.ID
		m := newMsg(f.ID, "k1", "s", "b")
		m.File = "cur/k1:2,RS"
		m.Flags = maildir.FlagAnswered | maildir.FlagSeen
		id, err = tx.AddMessage(m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ set, want string }{
		{"cur/k1,U=7:2,F", "cur/k1:2,RS"},      // other flags: the old name stays
		{"cur/k1,U=7:2,RS", "cur/k1,U=7:2,RS"}, // the same flags: taken
		{"new/k1,U=7", "new/k1,U=7"},           // new/: no flags in the name
	} {
		if err := st.Write(ctx, func(tx *index.Tx) error { return tx.SetFile(id, c.set) }); err != nil {
			t.Fatal(err)
		}
		var got string
		st.Read(ctx, func(tx *index.ReadTx) error {
			m, err := tx.MessageByKey(folder, "k1")
			if err == nil {
				got = m.File
			}
			return err
		})
		if got != c.want {
			t.Errorf("SetFile(%q): file = %q, want %q", c.set, got, c.want)
		}
	}
}

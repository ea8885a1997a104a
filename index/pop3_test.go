package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openAt creates a database at path with the migrations up to version
// applied, as an older postfach left it.
func openAt(t *testing.T, path string, version int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(migrations, "sql/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, name := range names {
		n, _ := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0])
		if n > version {
			break
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
	return db
}

// Version 6 forgets the identities of messages deleted on the server, and
// records the size of the others from their message rows.
func TestMigratePOP3Identities(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	db := openAt(t, path, 5)
	for _, q := range []string{
		`INSERT INTO accounts(id, name) VALUES(1, 'pop')`,
		`INSERT INTO folders(id, account_id, name, path, local_uidvalidity) VALUES(1, 1, 'INBOX', 'pop/INBOX', 1)`,
		`INSERT INTO messages(id, folder_id, key, file, local_uid, size, rfc822_size, modseq, sha256)
			VALUES(7, 1, 'k7', 'cur/k7:2,', 1, 90, 100, 1, x'00')`,
		`INSERT INTO pop3_uidls(account_id, uidl, message_id, stored_at, deleted_at) VALUES
			(1, 'kept', 7, 1000, 0), (1, 'deleted', 7, 1000, 2000), (1, 'no-row', NULL, 1000, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got map[string]POP3UIDL
	err = st.Read(context.Background(), func(tx *ReadTx) error {
		got, err = tx.POP3UIDLs(1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]POP3UIDL{
		"kept":   {MessageID: 7, StoredAt: time.Unix(1000, 0), RFC822Size: 100},
		"no-row": {StoredAt: time.Unix(1000, 0)},
	}
	if len(got) != len(want) {
		t.Fatalf("identities %+v, want %+v", got, want)
	}
	for id, w := range want {
		g := got[id]
		if g.MessageID != w.MessageID || !g.StoredAt.Equal(w.StoredAt) || g.RFC822Size != w.RFC822Size || g.HeaderSHA256 != nil {
			t.Errorf("identity %q: %+v, want %+v", id, g, w)
		}
	}
}

// AddPOP3UIDL records an identity and re-points it; ForgetPOP3UIDLs
// removes it; POP3Copy finds the row only in the account's folders.
func TestPOP3Identities(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var acct, other AccountID
	var ids []MessageID
	err = st.Write(ctx, func(tx *Tx) error {
		var err error
		if acct, err = tx.EnsureAccount("pop"); err != nil {
			return err
		}
		if other, err = tx.EnsureAccount("other"); err != nil {
			return err
		}
		f, err := tx.EnsureFolder(acct, "INBOX", "pop/INBOX")
		if err != nil {
			return err
		}
		m1, m2 := &NewMessage{}, &NewMessage{}
		m1.Folder, m1.Key, m1.File, m1.RFC822Size = f.ID, "k1", "cur/k1", 10
		m2.Folder, m2.Key, m2.File, m2.RFC822Size = f.ID, "k2", "cur/k2", 20
		if ids, err = tx.AddMessages([]*NewMessage{m1, m2}); err != nil {
			return err
		}
		h := make([]byte, 32)
		if err := tx.AddPOP3UIDL(acct, "1", POP3UIDL{MessageID: ids[0], StoredAt: time.Unix(100, 0), RFC822Size: 10, HeaderSHA256: h}); err != nil {
			return err
		}
		if err := tx.AddPOP3UIDL(acct, "2", POP3UIDL{MessageID: ids[0], StoredAt: time.Unix(100, 0), RFC822Size: 10}); err != nil {
			return err
		}
		// UIDL 1 now names another message: all it recorded is replaced.
		if err := tx.AddPOP3UIDL(acct, "1", POP3UIDL{MessageID: ids[1], StoredAt: time.Unix(200, 0), RFC822Size: 20}); err != nil {
			return err
		}
		return tx.ForgetPOP3UIDLs(acct, []string{"2", "unknown"})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Read(ctx, func(tx *ReadTx) error {
		got, err := tx.POP3UIDLs(acct)
		if err != nil {
			return err
		}
		if u := got["1"]; len(got) != 1 || u.MessageID != ids[1] || u.StoredAt.Unix() != 200 || u.RFC822Size != 20 || u.HeaderSHA256 != nil {
			t.Errorf("identities %+v", got)
		}
		m, f, err := tx.POP3Copy(acct, ids[1])
		if err != nil || m.Key != "k2" || f.Path != "pop/INBOX" {
			t.Errorf("POP3Copy = %+v, %+v, %v", m, f, err)
		}
		if _, _, err := tx.POP3Copy(other, ids[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("POP3Copy of another account's row: %v", err)
		}
		if _, _, err := tx.POP3Copy(acct, 999); !errors.Is(err, ErrNotFound) {
			t.Errorf("POP3Copy of a missing row: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/postfach/postfach/index"
)

// Open records each known account's archive setting in the index (the
// local IMAP endpoint's EXPUNGE reads it there), on and off again.
func TestOpenRecordsArchive(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	open := func(archive bool) (*Agent, index.AccountID) {
		t.Helper()
		doc := fmt.Sprintf("[store]\npath = %q\n\n[[accounts]]\nname = \"work\"\nkind = \"imap\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\narchive = %v\n",
			store, archive)
		a := openConfig(t, dir, doc)
		var id index.AccountID
		if err := a.Index().Write(context.Background(), func(tx *index.Tx) (err error) {
			id, err = tx.EnsureAccount("work")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return a, id
	}
	on := func(a *Agent, id index.AccountID) bool {
		t.Helper()
		var v bool
		if err := a.Index().Read(context.Background(), func(tx *index.ReadTx) (err error) {
			v, err = tx.ArchiveOn(id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, id := open(true) // the account row is made after this Open
	if on(a, id) {
		t.Error("archive on before any Open knew the account")
	}
	a.Close()
	a, id = open(true)
	if !on(a, id) {
		t.Error("archive = true not recorded")
	}
	a.Close()
	a, id = open(false)
	if on(a, id) {
		t.Error("archive = false not recorded")
	}
	a.Close()
}

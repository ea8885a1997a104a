package index_test

import (
	"context"

	"github.com/postfach/postfach/index"
)

// write runs fn in one write transaction of the store, failing the test
// on an error.
func (fs *fileStore) write(fn func(tx *index.Tx) error) {
	fs.t.Helper()
	if err := fs.st.Write(context.Background(), fn); err != nil {
		fs.t.Fatal(err)
	}
}

// folder returns the account's folder name, made if need be.
func (fs *fileStore) folder(name string) *index.Folder {
	fs.t.Helper()
	var f *index.Folder
	fs.write(func(tx *index.Tx) error {
		rel, err := index.FolderPath("acct", name)
		if err == nil {
			f, err = tx.EnsureFolder(fs.f.Account, name, rel)
		}
		return err
	})
	return f
}

// rows returns the folder's rows (FileRowList).
func (fs *fileStore) rows(f index.FolderID) []index.FileRow {
	fs.t.Helper()
	var rs []index.FileRow
	if err := fs.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		rs, err = tx.FileRowList(f)
		return err
	}); err != nil {
		fs.t.Fatal(err)
	}
	return rs
}

// image builds an image of the folder's rows as they are now, at its
// local MODSEQ (as recordRowImages does).
func (fs *fileStore) image(f index.FolderID) *index.RowImage {
	fs.t.Helper()
	var b index.RowImageBuilder
	var modseq uint64
	if err := fs.st.Read(context.Background(), func(tx *index.ReadTx) error {
		rs, err := tx.FileRowList(f)
		b.Add(rs)
		if err == nil {
			modseq, err = tx.LocalModSeq(f)
		}
		return err
	}); err != nil {
		fs.t.Fatal(err)
	}
	return b.Image(modseq)
}

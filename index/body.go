package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/postfach/postfach/maildir"
)

// Body is a message's file, open for reading. Close it.
type Body struct {
	f       *os.File
	Size    int64     // bytes on disk (LF line ends)
	ModTime time.Time // the file's modification time
}

func (b *Body) Read(p []byte) (int, error) { return b.f.Read(p) }

// Close closes the file.
func (b *Body) Close() error { return b.f.Close() }

// OpenBody opens the file of message id. Callers never build a message's
// path: the row holds the Maildir key and the last known file name, and a
// file renamed since (a flag change by a mail reader) is found by its key
// (maildir.Dir.Find). An error wraps ErrNotFound when there is no such
// row, fs.ErrNotExist when the file is gone.
func (s *Store) OpenBody(ctx context.Context, id MessageID) (*Body, error) {
	var f Folder
	var m Message
	err := s.Read(ctx, func(tx *ReadTx) error {
		err := tx.queryRow(`SELECT m.key, m.file, f.id, f.name, f.path FROM messages m JOIN folders f ON f.id = m.folder_id
			WHERE m.id=?`, id).Scan(&m.Key, &m.File, &f.ID, &f.Name, &f.Path)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("index: message %d: %w", id, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.OpenMessage(&f, &m)
}

// OpenMessage is OpenBody of a row the caller holds (its Key and File),
// in folder f.
func (s *Store) OpenMessage(f *Folder, m *Message) (*Body, error) {
	d, err := s.Dir(*f)
	if err != nil {
		return nil, err
	}
	return openFile(d, m.Key, m.File)
}

// openFile opens the file with the given key in d, trying its last known
// name file ("cur/<name>" or "new/<name>") first.
func openFile(d *maildir.Dir, key, file string) (*Body, error) {
	var fh *os.File
	err := fs.ErrNotExist
	if p, ok := filePath(d, file); ok {
		fh, err = os.Open(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		// Renamed since (flags changed): look it up by key.
		_, name := path.Split(file)
		var e maildir.Entry
		if e, err = d.Find(key, name); err == nil {
			fh, err = os.Open(d.FilePath(e))
		}
	}
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	return &Body{f: fh, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// filePath is the path in d of a row's last known file name file
// ("cur/<name>" or "new/<name>"); false for any other.
func filePath(d *maildir.Dir, file string) (string, bool) {
	sub, name := path.Split(file)
	if sub != "cur/" && sub != "new/" {
		return "", false
	}
	return d.FilePath(maildir.Entry{Sub: sub[:3], Name: name}), true
}

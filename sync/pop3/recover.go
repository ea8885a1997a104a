package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// recover resolves the pending downloads: a file that reached cur/ or new/
// is indexed (with its UIDL, as if the batch had finished); a file that did
// not is forgotten (it is in tmp/, if anywhere, and CleanOwnTmp removes it).
func (f *fetcher) recover(ctx context.Context) error {
	var pend []index.POP3Pending
	err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		pend, err = tx.POP3PendingList(f.acct)
		return err
	})
	if err != nil || len(pend) == 0 {
		return err
	}
	synced := map[index.FolderID]bool{}
	for _, p := range pend {
		var folder *index.Folder
		err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			folder, err = tx.Folder(p.Folder)
			return err
		})
		if err != nil {
			return err
		}
		dir := &maildir.Dir{Path: filepath.Join(f.o.Root, filepath.FromSlash(folder.Path))}
		ent, err := dir.Find(p.Key, "")
		if errors.Is(err, fs.ErrNotExist) {
			f.log.Debug("dropping a pending download that never reached the folder", "uidl", p.UIDL)
			err = f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DonePOP3Pending(f.acct, p.UIDL) })
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		// The file's contents were made durable before its rename; its name
		// may not be yet. Sync the directory before a row points at it.
		if !synced[p.Folder] {
			if err := dir.SyncDir(); err != nil {
				return err
			}
			synced[p.Folder] = true
		}
		m, hdrHash, err := readStored(dir.FilePath(ent))
		if err != nil {
			return err
		}
		m.Folder, m.Key, m.File = p.Folder, ent.Key, ent.Sub+"/"+ent.Name
		m.Flags, m.SyncedFlags = ent.Flags, ent.Flags
		m.RFC822Size = p.RFC822Size
		err = f.o.Index.Write(ctx, func(tx *index.Tx) error {
			id, err := tx.MessageIDByKey(p.Folder, ent.Key)
			if errors.Is(err, index.ErrNotFound) {
				id, err = tx.AddMessage(m)
			}
			if err != nil {
				return err
			}
			u := index.POP3UIDL{MessageID: id, StoredAt: timeNow(), RFC822Size: p.RFC822Size, HeaderSHA256: hdrHash[:]}
			if err := tx.AddPOP3UIDL(f.acct, p.UIDL, u); err != nil {
				return err
			}
			return tx.DonePOP3Pending(f.acct, p.UIDL)
		})
		if err != nil {
			return err
		}
		f.res.Recovered++
		f.log.Info("indexed a message an interrupted run had stored", "uidl", p.UIDL, "key", ent.Key)
	}
	return nil
}

// readStored reads a message file back for its index row and its header
// hash (headerHasher).
func readStored(path string) (*index.NewMessage, [32]byte, error) {
	var hdrHash [32]byte
	fh, err := os.Open(path)
	if err != nil {
		return nil, hdrHash, err
	}
	defer fh.Close()
	h := sha256.New()
	hh := newHeaderHasher(false)
	size, err := io.Copy(io.MultiWriter(h, hh), fh)
	if err != nil {
		return nil, hdrHash, err
	}
	hdrHash = hh.Sum()
	m := &index.NewMessage{}
	m.Size = size
	h.Sum(m.SHA256[:0])
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return nil, hdrHash, err
	}
	hdr := make([]byte, maildir.MaxHeader)
	n, err := io.ReadFull(fh, hdr)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, hdrHash, err
	}
	hdr = hdr[:n]
	if i := bytes.Index(hdr, []byte("\n\n")); i >= 0 {
		hdr = hdr[:i+2]
	}
	m.Header = index.ParseHeader(hdr)
	m.InternalDate = internalDate(hdr, m.Header)
	m.DeferText = true // full text: index.IndexPending
	return m, hdrHash, nil
}

// internalDate is the date a message arrived: the date of its topmost
// Received field, else its Date field, else now.
func internalDate(hdr []byte, h index.Header) time.Time {
	th, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	if rcv := th.Get("Received"); rcv != "" {
		if i := strings.LastIndexByte(rcv, ';'); i >= 0 {
			s := strings.Join(strings.Fields(rcv[i+1:]), " ")
			if t, err := mail.ParseDate(s); err == nil {
				return t
			}
		}
	}
	if !h.Date.IsZero() {
		return h.Date
	}
	return time.Now()
}

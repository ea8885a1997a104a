package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// mboxWork is the directory inside an mbox export, while it is written,
// that holds the index copy it is read from (removed before the manifest
// is written).
const mboxWork = ".postfach-work"

// mboxFolder is a folder of the index copy an mbox export reads.
type mboxFolder struct {
	account string
	folder  *index.Folder
}

// mboxPath returns the path of the mbox of folder of account in an
// export: <account>/<Folder>.mbox, both encoded as the store encodes
// them (maildir.EncodeName, maildir.EncodeFolder).
func mboxPath(account, folder string) string {
	return maildir.EncodeName(account) + "/" + maildir.EncodeFolder(folder) + mboxSuffix
}

// takeMbox writes the snapshot as an mbox export: one mbox per folder of
// the index as of one instant (an index copy, as for a directory
// snapshot, read folder by folder), the manifest last.
func (b *run) takeMbox(ctx context.Context) error {
	if err := os.Mkdir(b.snap, 0o700); err != nil {
		return err
	}
	h, err := openFS(b.snap)
	if err != nil {
		return err
	}
	defer h.close()
	b.fs = h
	work := filepath.Join(b.snap, mboxWork)
	if err := os.Mkdir(work, 0o700); err != nil {
		return err
	}
	dbPath := filepath.Join(work, "index.db")
	if err := b.Store.SnapshotInto(ctx, dbPath); err != nil {
		return err
	}
	cp, err := index.Open(dbPath)
	if err != nil {
		return err
	}
	err = b.mboxes(ctx, cp)
	if cerr := cp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := h.sync(); err != nil {
		return err
	}
	return writeManifest(b.snap, b.entries)
}

// mboxes writes the mbox of every folder of the index copy cp.
func (b *run) mboxes(ctx context.Context, cp *index.Store) error {
	var folders []mboxFolder
	total := 0
	err := cp.Read(ctx, func(tx *index.ReadTx) error {
		accts, err := tx.Accounts()
		if err != nil {
			return err
		}
		for _, a := range accts {
			fs, err := tx.Folders(a.ID)
			if err != nil {
				return err
			}
			for _, f := range fs {
				folders = append(folders, mboxFolder{account: a.Name, folder: f})
			}
		}
		return tx.StoredFiles(func(f index.StoredFile) error {
			if !f.Outbox {
				total++
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if testHookCopied != nil {
		testHookCopied()
	}
	for _, f := range folders {
		if err := b.mbox(ctx, cp, f, total); err != nil {
			return err
		}
	}
	return nil
}

// mbox writes the mbox of folder f, its messages in the order of the
// index (upstream UID, then row id).
func (b *run) mbox(ctx context.Context, cp *index.Store, f mboxFolder, total int) error {
	var msgs []*index.Message
	err := cp.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		msgs, err = tx.Messages(f.folder.ID)
		return err
	})
	if err != nil {
		return err
	}
	rel := mboxPath(f.account, f.folder.Name)
	if !validPath(rel) {
		return fmt.Errorf("folder %q of account %q has no safe mbox name", f.folder.Name, f.account)
	}
	dst := filepath.Join(b.snap, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, sum)}
	w := bufio.NewWriterSize(cw, 256<<10)
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		sf := index.StoredFile{ID: int64(m.ID), Dir: f.folder.Path, Key: m.Key, File: m.File, Size: m.Size, SHA256: m.SHA256[:]}
		msgRel, err := filePath(sf)
		if err != nil {
			return err
		}
		raw, err := b.readLive(ctx, sf)
		if errors.Is(err, fs.ErrNotExist) {
			b.res.Dropped = append(b.res.Dropped, msgRel)
			continue
		}
		if err != nil {
			return err
		}
		if s := sha256.Sum256(raw); s != m.SHA256 || int64(len(raw)) != m.Size {
			b.res.Mismatched = append(b.res.Mismatched, msgRel)
		}
		if err := writeMboxMessage(w, raw, m.Flags, m.Keywords, m.InternalDate); err != nil {
			return err
		}
		b.res.Files++
		b.res.Copied++
		b.res.CopiedBytes += int64(len(raw))
		if b.Progress != nil {
			b.Progress(b.res.Files, total, b.res.CopiedBytes)
		}
	}
	err = w.Flush()
	if err == nil && b.fs.perFile() {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	e := Entry{Path: rel, Size: cw.n}
	sum.Sum(e.SHA256[:0])
	b.entries = append(b.entries, e)
	return nil
}

// readLive reads the whole live file of row f (see openLive).
func (b *run) readLive(ctx context.Context, f index.StoredFile) ([]byte, error) {
	src, err := b.openLive(ctx, f)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return io.ReadAll(src)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// isMboxExport reports whether the manifest es is an mbox export's: it
// lists mbox files only (a directory snapshot's lists its index).
func isMboxExport(es []Entry) bool {
	for _, e := range es {
		if !strings.HasSuffix(e.Path, mboxSuffix) {
			return false
		}
	}
	return true
}

// checkMboxes reads every mbox of an export in dir whose file is as its
// manifest es says (not in bad) and names each message whose content is
// not what its X-Postfach-Export header says, and each mbox that does
// not read as one.
func checkMboxes(ctx context.Context, dir string, es []Entry, bad map[string]bool, r *Report) error {
	for _, e := range es {
		if bad[e.Path] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if err != nil {
			r.add(e.Path, "unreadable: %v", errors.Unwrap(err))
			continue
		}
		mr := newMboxReader(f)
		for {
			m, err := mr.next(io.Discard)
			if err == io.EOF {
				break
			}
			if err != nil {
				r.add(e.Path, "%v", err)
				break
			}
			if m.Ours && m.Sum != m.SHA256 {
				r.add(e.Path, "the message at line %d differs from its %s header (SHA-256 %s, the header says %s)", m.Line, exportHeader, short(m.Sum[:]), short(m.SHA256[:]))
			}
		}
		f.Close()
	}
	return nil
}

// mboxFolderOf returns the account and folder of the mbox at rel in an
// export (mboxPath reversed); ok false when rel is no such path.
func mboxFolderOf(rel string) (account, folder string, ok bool) {
	a, rest, found := strings.Cut(rel, "/")
	if !found || !strings.HasSuffix(rest, mboxSuffix) {
		return "", "", false
	}
	account, err := maildir.DecodeName(a)
	if err != nil {
		return "", "", false
	}
	folder, err = maildir.DecodeFolder(strings.TrimSuffix(rest, mboxSuffix))
	if err != nil || path.Clean(rest) != rest {
		return "", "", false
	}
	return account, folder, true
}

package backup

import (
	"archive/tar"
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
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/postfach/postfach/index"
)

// takeTar writes the snapshot as one tar.zst file: the content of a
// directory snapshot (directories, marker files, message and outbox
// files, the index copy, the manifest last), streamed one file at a
// time into <name>.tar.zst.part, which is fsynced and renamed to
// <name>.tar.zst only when complete. The index copy is taken into
// <name>.tar.zst.work/ and removed after.
func (b *run) takeTar(ctx context.Context) (err error) {
	stemPath := strings.TrimSuffix(b.snap, tarSuffix)
	part, work := stemPath+tarPartSuffix, stemPath+tarWorkSuffix
	defer os.RemoveAll(work)
	defer func() {
		if err != nil {
			os.Remove(part)
		}
	}()
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
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		cp.CloseSnapshot()
		return err
	}
	defer f.Close()
	zw, err := zstd.NewWriter(f, zstd.WithEncoderConcurrency(2))
	if err != nil {
		cp.CloseSnapshot()
		return err
	}
	a := &tarOut{tw: tar.NewWriter(zw), dirs: map[string]bool{}, mtime: time.Now()}
	err = b.tarContent(ctx, cp, a)
	if cerr := cp.CloseSnapshot(); err == nil {
		err = cerr
	}
	if err != nil {
		zw.Close()
		return err
	}
	for _, f := range b.dropped {
		b.res.Dropped = append(b.res.Dropped, f.Path())
	}
	for _, p := range []string{dbPath + "-wal", dbPath + "-shm", dbPath + "-journal"} {
		os.Remove(p)
	}
	if err := a.fileAt(dbPath, ".postfach/index.db", &b.entries); err != nil {
		zw.Close()
		return err
	}
	if err := a.bytes(ManifestName, manifestBytes(b.entries)); err != nil {
		zw.Close()
		return err
	}
	err = a.tw.Close()
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, b.snap)
	}
	if err == nil {
		err = syncDir(filepath.Dir(b.snap))
	}
	return err
}

// tarContent writes the folders, marker files and row files of the
// index copy cp into a, and drops from cp the rows whose file is gone.
func (b *run) tarContent(ctx context.Context, cp *index.Store, a *tarOut) error {
	p, err := planOf(ctx, cp)
	if err != nil {
		return err
	}
	if testHookCopied != nil {
		testHookCopied()
	}
	for _, d := range p.dirs {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := a.dir(path.Join(d, sub)); err != nil {
				return err
			}
		}
	}
	for _, m := range p.markers {
		src, err := os.Open(filepath.Join(b.root, filepath.FromSlash(m)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = a.file(src, m, &b.entries)
		src.Close()
		if err != nil {
			return err
		}
	}
	for i, f := range p.files {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filePath(f)
		if err != nil {
			return err
		}
		src, err := b.openLive(ctx, f)
		if errors.Is(err, fs.ErrNotExist) {
			b.dropped = append(b.dropped, f)
			continue
		}
		if err != nil {
			return err
		}
		err = a.file(src, rel, &b.entries)
		src.Close()
		if err != nil {
			return err
		}
		e := b.entries[len(b.entries)-1]
		if f.SHA256 != nil && (string(e.SHA256[:]) != string(f.SHA256) || e.Size != f.Size) {
			b.res.Mismatched = append(b.res.Mismatched, rel)
		}
		b.res.Files++
		b.res.Copied++
		b.res.CopiedBytes += e.Size
		if b.Progress != nil {
			b.Progress(i+1, len(p.files), b.res.CopiedBytes)
		}
	}
	if len(b.dropped) == 0 {
		return nil
	}
	return cp.Write(ctx, func(tx *index.Tx) error {
		for _, f := range b.dropped {
			if err := tx.DropStored(f); err != nil {
				return err
			}
		}
		return nil
	})
}

// tarOut writes the entries of a snapshot's tar stream.
type tarOut struct {
	tw    *tar.Writer
	dirs  map[string]bool // written already
	mtime time.Time       // of the directories and the manifest
}

// dir writes a directory entry for rel and each of its parents not
// written yet.
func (a *tarOut) dir(rel string) error {
	if rel == "." || rel == "/" || a.dirs[rel] {
		return nil
	}
	if err := a.dir(path.Dir(rel)); err != nil {
		return err
	}
	a.dirs[rel] = true
	return a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o700, ModTime: a.mtime.Truncate(time.Second)})
}

// file writes the open file src as the regular file rel, hashing it, and
// appends its manifest entry to es.
func (a *tarOut) file(src *os.File, rel string, es *[]Entry) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if err := a.dir(path.Dir(rel)); err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o600, Size: st.Size(), ModTime: st.ModTime().Truncate(time.Second)}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	buf := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(a.tw, h), onlyReader{io.LimitReader(src, st.Size())}, *buf)
	bufPool.Put(buf)
	if err != nil {
		return err
	}
	if n != st.Size() {
		return fmt.Errorf("%s: changed while it was read (%d bytes of %d)", rel, n, st.Size())
	}
	e := Entry{Path: rel, Size: n}
	h.Sum(e.SHA256[:0])
	*es = append(*es, e)
	return nil
}

// fileAt is file for the file at p.
func (a *tarOut) fileAt(p, rel string, es *[]Entry) error {
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	return a.file(src, rel, es)
}

// bytes writes data as the regular file rel.
func (a *tarOut) bytes(rel string, data []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o600, Size: int64(len(data)), ModTime: a.mtime.Truncate(time.Second)}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := a.tw.Write(data)
	return err
}

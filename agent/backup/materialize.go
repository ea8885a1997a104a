package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// Materialize returns a snapshot directory for path, in the layout
// backup writes (.postfach/index.db + <account>/<Folder>/{cur,new}/...):
// path itself when it is a snapshot directory; for a .tar.zst file or
// an mbox export (a file or a directory of them), an unpacked copy
// made below tmp (the caller removes tmp). It never writes inside path.
//
// The free space below tmp is checked first: a snapshot is unpacked
// there whole (a tar.zst needs the sizes its tar headers give, read in a
// first pass; an mbox export about its mboxes' size).
//
// A tar.zst is unpacked file by file, refusing any entry that is not a
// directory or a regular file or whose path would leave the copy, and
// the copy is checked against the archive's manifest and its index (any
// difference is an error). An mbox export is imported into a new store
// (index.OpenStore, deliveries through the store's door with each
// message's flags, keywords and internal date), its mbox files checked
// against its manifest when it has one, and each message against its
// X-Postfach-Export header. Either copy gets a manifest of its own.
func Materialize(ctx context.Context, path, tmp string) (dir string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("materialize: %w", err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, ".postfach", "index.db")); err == nil {
			return path, nil
		}
		if dir, err = importMboxes(ctx, path, tmp); err != nil {
			return "", fmt.Errorf("materialize %s: %w", path, err)
		}
		return dir, nil
	}
	switch {
	case strings.HasSuffix(path, tarSuffix):
		dir, err = unpackTar(ctx, path, tmp)
	case strings.HasSuffix(path, mboxSuffix):
		dir, err = importMboxes(ctx, path, tmp)
	default:
		err = errors.New("not a snapshot directory, a .tar.zst or an mbox export")
	}
	if err != nil {
		return "", fmt.Errorf("materialize %s: %w", path, err)
	}
	return dir, nil
}

// unpackTar unpacks the tar.zst at p into a new directory below tmp and
// checks it.
func unpackTar(ctx context.Context, p, tmp string) (string, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", err
	}
	need, err := tarSize(ctx, p)
	if err != nil {
		return "", err
	}
	if err := checkRoom(tmp, need); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(tmp, "snapshot-")
	if err != nil {
		return "", err
	}
	r := &Report{}
	s, err := scanTar(ctx, p, unpacker{root: dir}, r, nil)
	if err == nil {
		err = s.check(r, filepath.Join(dir, ".postfach", "index.db"))
	}
	if err == nil && len(r.Differences) > 0 {
		r.sort()
		err = fmt.Errorf("%d differences from its manifest (postfach verify names them), the first: %s", len(r.Differences), r.Differences[0])
	}
	if err == nil {
		err = writeManifest(dir, mustParse(s.manifest))
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// freeSpace returns the bytes free on the filesystem of a directory
// (fsFree; tests replace it).
var freeSpace = fsFree

// checkRoom fails when the filesystem of dir (often a tmpfs: $TMPDIR)
// has less than need bytes free: a snapshot is unpacked there whole.
// When the free space cannot be learnt, it does not fail.
func checkRoom(dir string, need int64) error {
	free, err := freeSpace(dir)
	if err != nil || need < 0 || uint64(need) <= free {
		return nil
	}
	return fmt.Errorf("not enough room in %s to unpack it: it needs %s, %s free there (point TMPDIR at a filesystem with room)", dir, mib(uint64(need)), mib(free))
}

// mib is n bytes in KiB, MiB or GiB.
func mib(n uint64) string {
	switch {
	case n < 1<<20:
		return fmt.Sprintf("%d KiB", (n+1<<10-1)>>10)
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func mustParse(m []byte) []Entry {
	es, _ := parseManifest(m) // checked by tarScan.check
	return es
}

// unpacker writes an archive's directories and files below root: new
// files only (O_EXCL, never through a symbolic link); scanTar has checked
// each path.
type unpacker struct{ root string }

func (u unpacker) dir(rel string) error {
	return os.MkdirAll(filepath.Join(u.root, filepath.FromSlash(rel)), 0o700)
}

func (u unpacker) file(rel string) (io.WriteCloser, error) {
	p := filepath.Join(u.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
}

// mboxFile is an mbox to import, and the folder it goes to.
type mboxFile struct {
	path            string
	rel             string // in the export, '/'-separated
	account, folder string
	want            *Entry // its manifest entry, if any
}

// importMboxes imports the mbox export at p (a directory, or one mbox
// file) into a new store below tmp.
func importMboxes(ctx context.Context, p, tmp string) (string, error) {
	files, err := mboxFiles(p)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", err
	}
	var need int64
	for _, f := range files {
		if st, err := os.Stat(f.path); err == nil {
			need += st.Size()
		}
	}
	if err := checkRoom(tmp, need); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(tmp, "snapshot-")
	if err != nil {
		return "", err
	}
	if err := importInto(ctx, dir, files); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// mboxFiles lists the mboxes of the export at p: those its manifest
// lists (a directory with one), the *.mbox files below it (one
// without), or p itself. The folder of each is its path in the export
// (<account>/<Folder>.mbox); a file found elsewhere goes to the folder
// of its name in the account "mbox".
func mboxFiles(p string) ([]mboxFile, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		name := strings.TrimSuffix(filepath.Base(p), mboxSuffix)
		return []mboxFile{{path: p, rel: filepath.Base(p), account: "mbox", folder: name}}, nil
	}
	var out []mboxFile
	add := func(rel string, want *Entry) error {
		f := mboxFile{path: filepath.Join(p, filepath.FromSlash(rel)), rel: rel, want: want}
		var ok bool
		if f.account, f.folder, ok = mboxFolderOf(rel); !ok {
			if want != nil {
				return fmt.Errorf("%s: not <account>/<Folder>.mbox", rel)
			}
			f.account, f.folder = "mbox", strings.TrimSuffix(strings.ReplaceAll(rel, "/", "."), mboxSuffix)
		}
		out = append(out, f)
		return nil
	}
	es, err := readManifest(p)
	switch {
	case err == nil:
		if !isMboxExport(es) {
			return nil, errors.New("its manifest lists files that are not mboxes")
		}
		for i := range es {
			if err := add(es[i].Path, &es[i]); err != nil {
				return nil, err
			}
		}
	case errors.Is(err, errNoManifest):
		// Ours without its manifest: a backup that did not finish.
		_, werr := os.Lstat(filepath.Join(p, mboxWork))
		if s, ok := parseSnapshotName(filepath.Base(p), true); werr == nil || ok && s.Format == FormatMbox {
			return nil, errors.New("an incomplete mbox export (no " + ManifestName + ")")
		}
		err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() || !strings.HasSuffix(q, mboxSuffix) {
				return err
			}
			rel, _ := filepath.Rel(p, q)
			return add(filepath.ToSlash(rel), nil)
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no mbox files in it")
	}
	return out, nil
}

// importBatch is how many messages one delivery into the new store takes.
const importBatch = 256

// importInto makes a store at root holding the messages of files.
func importInto(ctx context.Context, root string, files []mboxFile) (err error) {
	st, err := index.OpenStore(root)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.CloseSnapshot(); err == nil {
			err = cerr
		}
		if err == nil {
			err = manifestOf(root)
		}
	}()
	for _, mf := range files {
		if err := importMbox(ctx, st, root, mf); err != nil {
			return fmt.Errorf("%s: %w", mf.rel, err)
		}
	}
	return nil
}

// importMbox delivers the messages of one mbox into its folder of st.
func importMbox(ctx context.Context, st *index.Store, root string, mf mboxFile) error {
	rel, err := index.FolderPath(mf.account, mf.folder)
	if err != nil {
		return err
	}
	var f *index.Folder
	err = st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount(mf.account)
		if err != nil {
			return err
		}
		f, err = tx.EnsureFolder(a, mf.folder, rel)
		return err
	})
	if err != nil {
		return err
	}
	if err := maildir.MarkAccount(root, mf.account); err != nil {
		return err
	}
	d, err := st.Dir(*f)
	if err != nil {
		return err
	}
	if _, err := maildir.Open(d.Path); err != nil {
		return err
	}
	in, err := os.Open(mf.path)
	if err != nil {
		return err
	}
	defer in.Close()
	sum := sha256.New()
	cr := &countReader{r: io.TeeReader(in, sum)}
	mr := newMboxReader(cr)
	var batch []*index.Arrival
	defer func() {
		for _, a := range batch {
			a.File.Abort()
		}
	}()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := st.Deliver(ctx, &index.Batch{Arrivals: batch})
		batch = batch[:0]
		return err
	}
	for {
		if ok, err := mr.more(); err != nil {
			return err
		} else if !ok {
			break
		}
		a, err := arrival(d, f, mr)
		if err != nil {
			return err
		}
		batch = append(batch, a)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if w := mf.want; w != nil {
		var got [32]byte
		sum.Sum(got[:0])
		if cr.n != w.Size || got != w.SHA256 {
			return fmt.Errorf("differs from the export's manifest (size %d, SHA-256 %s; the manifest says %d, %s)", cr.n, short(got[:]), w.Size, short(w.SHA256[:]))
		}
	}
	return nil
}

// arrival streams the next message of mr into a new delivery of folder
// f (Maildir d), checking it against its X-Postfach-Export header.
func arrival(d *maildir.Dir, f *index.Folder, mr *mboxReader) (*index.Arrival, error) {
	dlv, err := d.NewDelivery()
	if err != nil {
		return nil, err
	}
	wire := maildir.NewCRLFWriter(io.Discard)
	m, err := mr.next(io.MultiWriter(dlv, wire))
	if err == nil && m.Ours && m.Sum != m.SHA256 {
		err = fmt.Errorf("the message at line %d differs from its %s header", m.Line, exportHeader)
	}
	if err == nil {
		err = dlv.Close()
	}
	if err != nil {
		dlv.Abort()
		return nil, err
	}
	a := &index.Arrival{Folder: f, File: dlv}
	a.Row.DeferText = true
	a.Row.Flags, a.Row.Keywords = m.Flags, m.Keywords
	a.Row.InternalDate = m.Date
	a.Row.RFC822Size = wire.N()
	a.Row.Header = index.ParseHeader(dlv.Header())
	return a, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// manifestOf writes the manifest of the snapshot directory dir, made
// here: every file in it.
func manifestOf(dir string) error {
	var es []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == ManifestName {
			return nil
		}
		e, err := hashFile(p, rel)
		es = append(es, e)
		return err
	})
	if err != nil {
		return err
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Path < es[j].Path })
	return writeManifest(dir, es)
}

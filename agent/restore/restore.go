// Package restore puts the messages of a backup snapshot (agent/backup)
// back: straight into an IMAP account (ToIMAP, through sync/migrate), or
// into the local store through the store's door (ToStore), from where the
// sync uploads them. Both are idempotent by content identity and resumable
// after a kill -9: every run recomputes what the destination lacks from
// what it holds, so a rerun copies nothing twice.
//
// # The snapshot, read-only
//
// A snapshot's files never change (postfach verify checks them against
// its MANIFEST), but opening an SQLite index writes beside it (-wal and
// -shm files, a schema migration). Open therefore works on a view in a
// temporary directory of the caller's:
//
//	<tmp>/view/.postfach/index.db   a copy of the snapshot's index (its SHA-256 checked against the MANIFEST)
//	<tmp>/view/<account>            a symbolic link to <snapshot>/<account>, for each account directory
//
// The view is a store root (index.OpenStore) whose message files are the
// snapshot's own, read through the links and never written.
//
// # Which folders
//
// Every folder of every account in the snapshot, or those Select picks
// from --folder arguments: "ACCOUNT:FOLDER" names one folder of one
// account; "FOLDER" that folder in every account of the snapshot that has
// it (a name holding ':' is first tried as ACCOUNT:FOLDER, for an account
// of the snapshot, then as a folder name).
//
// # Into an IMAP account (ToIMAP)
//
// One sync/migrate.Run per account of the snapshot, with the view as its
// store: MULTIAPPEND where offered, flags, keywords and internal dates,
// identity by Message-ID and RFC822.SIZE (internal date and size without
// Message-ID), verification of the destination afterwards (see
// sync/migrate). Folders keep their names on the destination; several
// accounts of the snapshot with a folder of the same name restore into
// that one folder (a message they share is there once). With a
// destination folder (--to ACCOUNT:FOLDER): a whole snapshot restores
// below it (FOLDER/INBOX, FOLDER/Sent, ...); picked folders (--folder)
// restore into it.
//
// The archive view of an `archive = true` account, the local-only folders
// ".Archive-Deleted/<Folder>" (messages deleted upstream, kept locally),
// restores on an IMAP server as "Archive-Deleted/<Folder>": a name
// without the leading dot, which servers whose hierarchy delimiter is '.'
// would refuse, and apart from <Folder> itself, so that mail deleted on
// purpose does not come back into the folder it was deleted from. To put
// it back there, pick it and name the destination folder:
// --folder ACCOUNT:.Archive-Deleted/INBOX --to DEST:INBOX.
//
// # Into the local store (ToStore)
//
// Each folder of the snapshot restores into the same account and folder of
// the live store (created if missing), through index.Store.Deliver: files
// durable first, rows after, as new local messages (UID 0) with the
// snapshot's flags, keywords and internal date, which the account's next
// sync uploads (its re-match by content finds those the server still has:
// nothing is uploaded twice). A message is present when the folder holds a
// file with the same bytes (SHA-256): the snapshot's row records it, the
// live rows record theirs; a file a kill -9 left renamed into the folder
// without its row (Deliver's one window) is indexed first, as the sync
// would index it (index.Store.FileMessages), with the snapshot message's
// keywords and internal date, so a rerun finds it. Messages are delivered
// in batches (one fsync sequence each); a delivered file's modification
// time is its internal date, as the engines leave theirs. A snapshot file
// whose bytes differ from its row's SHA-256 is damaged: it is not
// delivered, its folder's report names it (Failed, Missing) and the rest
// goes on; a failure of the store itself (a full disk) ends the run. The caller holds the store's sync
// lock: no sync, and no postfach run, writes the store meanwhile.
package restore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/postfach/postfach/index"
)

// manifestName is the snapshot's manifest (backup.ManifestName).
const manifestName = "MANIFEST"

// indexRel is the index's path in a snapshot, as the manifest names it.
const indexRel = ".postfach/index.db"

// Snapshot is a snapshot opened for restoring: a read-only view of it (see
// the package documentation).
type Snapshot struct {
	Dir   string       // the snapshot directory
	Root  string       // the view's store root
	Index *index.Store // the view's index (opened with index.OpenStore(Root))
}

// Open opens the snapshot in dir through a view made below tmp (which the
// caller removes after Close). With complete, dir must hold a MANIFEST (a
// snapshot backup finished writing); when it has one, the index's copy
// must match the manifest's SHA-256 and size.
func Open(ctx context.Context, dir, tmp string, complete bool) (*Snapshot, error) {
	src := filepath.Join(dir, filepath.FromSlash(indexRel))
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("%s is not a postfach snapshot: no %s", dir, indexRel)
	}
	want, hasManifest, err := manifestEntry(dir, indexRel)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	if complete && !hasManifest {
		return nil, fmt.Errorf("snapshot %s has no %s: it is incomplete (a backup that did not finish)", dir, manifestName)
	}
	root := filepath.Join(tmp, "view")
	if err := os.MkdirAll(filepath.Join(root, ".postfach"), 0o700); err != nil {
		return nil, err
	}
	got, err := copyFile(filepath.Join(root, filepath.FromSlash(indexRel)), src)
	if err != nil {
		return nil, fmt.Errorf("copying the snapshot's index: %w", err)
	}
	if hasManifest && got != want {
		return nil, fmt.Errorf("snapshot %s: %s differs from its %s (postfach verify %s names the damage)", dir, indexRel, manifestName, dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(root, e.Name())); err != nil {
			return nil, err
		}
	}
	st, err := index.OpenStore(root)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	return &Snapshot{Dir: dir, Root: root, Index: st}, nil
}

// Close closes the view's index.
func (s *Snapshot) Close() error { return s.Index.Close() }

// manifestSum is a file's size and SHA-256, as a manifest line gives them.
type manifestSum struct {
	size int64
	sum  [32]byte
}

// copyFile copies src to a new file dst (0600) and returns what it copied.
func copyFile(dst, src string) (manifestSum, error) {
	in, err := os.Open(src)
	if err != nil {
		return manifestSum{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return manifestSum{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	got := manifestSum{size: n}
	h.Sum(got.sum[:0])
	return got, err
}

// manifestEntry finds rel's line in the snapshot's MANIFEST ("<sha256
// hex> <size> <path as a Go quoted string>", see agent/backup); ok is
// false when the snapshot has no MANIFEST. A MANIFEST without the line is
// an error.
func manifestEntry(dir, rel string) (manifestSum, bool, error) {
	f, err := os.Open(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return manifestSum{}, false, nil
	}
	if err != nil {
		return manifestSum{}, false, err
	}
	defer f.Close()
	suffix := " " + strconv.Quote(rel)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l, ok := strings.CutSuffix(sc.Text(), suffix)
		if !ok {
			continue
		}
		hexSum, size, ok := strings.Cut(l, " ")
		var e manifestSum
		n, err := strconv.ParseInt(size, 10, 64)
		if b, herr := hex.DecodeString(hexSum); !ok || err != nil || herr != nil || len(b) != 32 {
			return manifestSum{}, true, fmt.Errorf("%s: malformed line for %s", manifestName, rel)
		} else {
			copy(e.sum[:], b)
		}
		e.size = n
		return e, true, nil
	}
	if err := sc.Err(); err != nil {
		return manifestSum{}, true, err
	}
	return manifestSum{}, true, fmt.Errorf("%s does not list %s", manifestName, rel)
}

// Folder is a folder of the snapshot.
type Folder struct {
	Account  string
	Name     string
	Messages int
}

// String is "account:folder".
func (f Folder) String() string { return f.Account + ":" + f.Name }

// Folders lists the snapshot's folders, by account and name.
func (s *Snapshot) Folders(ctx context.Context) ([]Folder, error) {
	var out []Folder
	err := s.Index.Read(ctx, func(tx *index.ReadTx) error {
		accts, err := tx.Accounts()
		if err != nil {
			return err
		}
		for _, a := range accts {
			fs, err := tx.FolderCounts(a.ID)
			if err != nil {
				return err
			}
			for _, f := range fs {
				out = append(out, Folder{Account: a.Name, Name: f.Name, Messages: f.Messages})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Account != out[j].Account {
			return out[i].Account < out[j].Account
		}
		return out[i].Name < out[j].Name
	})
	return out, err
}

// Select picks the snapshot's folders that args name (see the package
// documentation, Which folders); no args: every folder. Each argument
// must name at least one folder.
func (s *Snapshot) Select(ctx context.Context, args []string) ([]Folder, error) {
	all, err := s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return all, nil
	}
	accounts := map[string]bool{}
	for _, f := range all {
		accounts[f.Account] = true
	}
	picked := map[Folder]bool{}
	for _, arg := range args {
		n := 0
		pick := func(acct, name string) {
			for _, f := range all {
				if (acct == "" || f.Account == acct) && sameFolder(f.Name, name) && !picked[f] {
					picked[f] = true
					n++
				}
			}
		}
		for i := range len(arg) {
			if arg[i] == ':' && accounts[arg[:i]] && i+1 < len(arg) {
				pick(arg[:i], arg[i+1:])
			}
		}
		if n == 0 {
			pick("", arg)
		}
		if n == 0 {
			return nil, fmt.Errorf("--folder %s: the snapshot has no such folder (%s)", arg, folderList(all))
		}
	}
	var out []Folder
	for _, f := range all {
		if picked[f] {
			out = append(out, f)
		}
	}
	return out, nil
}

// sameFolder compares folder names, INBOX in any case.
func sameFolder(a, b string) bool {
	return a == b || strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX")
}

// folderList names some of the snapshot's folders, for an error.
func folderList(all []Folder) string {
	if len(all) == 0 {
		return "it has none"
	}
	var names []string
	for i, f := range all {
		if i == 8 {
			names = append(names, fmt.Sprintf("and %d more", len(all)-i))
			break
		}
		names = append(names, f.String())
	}
	return "it has " + strings.Join(names, ", ")
}

// byAccount groups folders by account, in order.
func byAccount(fs []Folder) (accounts []string, folders map[string][]string) {
	folders = map[string][]string{}
	for _, f := range fs {
		if _, ok := folders[f.Account]; !ok {
			accounts = append(accounts, f.Account)
		}
		folders[f.Account] = append(folders[f.Account], f.Name)
	}
	return accounts, folders
}

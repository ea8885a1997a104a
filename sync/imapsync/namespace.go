package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// The personal namespace prefix an account's local folder names are made
// under (see FolderNames) is recorded in the account's directory, in
// NamespaceFile, as a Go-quoted string on one line. It is the account's,
// not the server's: once recorded, a server that starts announcing another
// prefix changes nothing locally. Which prefix a run uses:
//
//  1. Options.NamespacePrefix (namespace_prefix in the config), if set;
//  2. else the recorded one;
//  3. else, for an account the index already knows folders of (synced
//     before prefixes were recorded, or the record is lost), the one its
//     names were made under: of "" and the server's, the one under which
//     most of them are the names of listed server folders (guessPrefix);
//  4. else the server's (NAMESPACE), for a new account.
//
// When the prefix used differs from the recorded (or guessed) one,
// the local folders are renamed first, each to the name its server folder
// has under the new prefix (Maildir directory and index row: INBOX/Archive
// becomes Archive), so that nothing is deleted or created again on either
// side; a local folder already holding a new name stops the account with
// one line saying which. Only then is the new prefix recorded: a crash in
// between does the rest on the next run.

// NamespaceFile is the file in an account's directory that records the
// namespace prefix its local folder names were made under.
const NamespaceFile = ".postfach-namespace"

// serverNamespace asks the server for its personal namespace: the prefix
// and delimiter of the first one. A server without NAMESPACE has none.
func serverNamespace(c *imapclient.Client) (prefix string, delim rune, err error) {
	if !c.Caps().Has(imap.CapNamespace) && !c.Caps().Has(imap.CapIMAP4rev2) {
		return "", 0, nil
	}
	ns, err := c.Namespace().Wait()
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return "", 0, nil
	} else if err != nil {
		return "", 0, fmt.Errorf("NAMESPACE: %w", err)
	}
	if len(ns.Personal) == 0 {
		return "", 0, nil
	}
	return ns.Personal[0].Prefix, ns.Personal[0].Delim, nil
}

// ServerNamespace is serverNamespace for other packages: the prefix and
// delimiter of the server's first personal namespace; "" and 0 when the
// server has no NAMESPACE (or refuses it).
func ServerNamespace(c *imapclient.Client) (prefix string, delim rune, err error) {
	return serverNamespace(c)
}

// readNamespace returns the recorded prefix; ok is false when none is.
func readNamespace(accountDir string) (prefix string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(accountDir, NamespaceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	prefix, err = strconv.Unquote(strings.TrimSpace(string(b)))
	if err != nil {
		return "", false, fmt.Errorf("%s: not a quoted namespace prefix: %q", filepath.Join(accountDir, NamespaceFile), b)
	}
	return prefix, true, nil
}

// writeNamespace records prefix, durably.
func writeNamespace(accountDir, prefix string) error {
	path := filepath.Join(accountDir, NamespaceFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Quote(prefix)+"\n"), 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = errors.Join(f.Sync(), f.Close())
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(accountDir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// nsChoice is the namespace prefix a run uses, and what it changes.
type nsChoice struct {
	names  FolderNames // the run's names
	old    FolderNames // the names the local folders have now
	known  []*index.Folder
	record bool // the prefix is to be recorded
}

// namespace decides the run's folder names (see above) for the server's
// delimiter delim (from the LIST). It changes nothing: see applyNamespace.
func (s *syncer) namespace(ctx context.Context, c *imapclient.Client, acct index.AccountID, listed []remoteFolder, delim rune) (*nsChoice, error) {
	o := &s.opts
	accountDir := filepath.Join(o.Root, maildir.EncodeName(o.Account))
	recorded, haveRecord, err := readNamespace(accountDir)
	if err != nil {
		return nil, err
	}
	ch := &nsChoice{}
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		ch.known, err = tx.Folders(acct)
		return err
	}); err != nil {
		return nil, err
	}
	// The server is asked only when its answer counts: a new account, the
	// first run of one synced before prefixes were recorded, or a LIST
	// that told no delimiter. A run otherwise costs no round trip more.
	var srvPrefix string
	if delim == 0 || !haveRecord && o.NamespacePrefix == nil {
		var srvDelim rune
		if srvPrefix, srvDelim, err = serverNamespace(c); err != nil {
			return nil, err
		}
		if delim == 0 {
			delim = srvDelim
		}
	}
	if !haveRecord && len(ch.known) > 0 {
		// Synced before prefixes were recorded, or the record is lost:
		// the prefix the index's names were made under.
		cands := []string{"", srvPrefix}
		if o.NamespacePrefix != nil {
			cands = append(cands, *o.NamespacePrefix)
		}
		recorded = guessPrefix(cands, delim, o.FolderMap, ch.known, listed)
	}
	use := srvPrefix
	switch {
	case o.NamespacePrefix != nil:
		use = *o.NamespacePrefix
	case haveRecord:
		use = recorded
	case len(ch.known) > 0:
		use = recorded
		if newFolderNames(delim, srvPrefix, nil).Prefix != newFolderNames(delim, recorded, nil).Prefix {
			s.log.Info("the server's personal namespace prefix is not the one this account's local folder names "+
				"were made under; set namespace_prefix to change them", "server", srvPrefix, "in_use", recorded)
		}
	}
	ch.names = newFolderNames(delim, use, o.FolderMap)
	ch.old = newFolderNames(delim, recorded, o.FolderMap)
	if !haveRecord && len(ch.known) == 0 {
		ch.old = ch.names // a new account: nothing to rename
	}
	ch.record = !haveRecord || recorded != ch.names.Prefix
	return ch, nil
}

// guessPrefix returns the candidate prefix under which most of the known
// folders' names are the local names of listed server folders; of equals
// (an account of INBOX alone is the same under any), the last: the
// server's, or the configured one.
func guessPrefix(cands []string, delim rune, fmap map[string]string, known []*index.Folder, listed []remoteFolder) string {
	best, bestN := "", -1
	for _, p := range cands {
		names := newFolderNames(delim, p, fmap)
		local := make(map[string]bool, len(listed))
		for _, rf := range listed {
			local[names.Local(rf.Remote)] = true
		}
		n := 0
		for _, f := range known {
			if local[f.Name] {
				n++
			}
		}
		if n >= bestN {
			best, bestN = p, n
		}
	}
	return best
}

// applyNamespace renames the local folders when the prefix changes, or
// in a dry run lists what it would rename and reports pending (the run
// then stops at the folder level), and records the prefix.
func (s *syncer) applyNamespace(ctx context.Context, ch *nsChoice) (pending bool, err error) {
	o := &s.opts
	if ch.old.Prefix != ch.names.Prefix {
		if pending, err = s.renameForPrefix(ctx, ch.known, ch.old, ch.names); err != nil || pending {
			return pending, err
		}
	}
	if o.DryRun || !ch.record {
		return false, nil
	}
	accountDir := filepath.Join(o.Root, maildir.EncodeName(o.Account))
	if err := os.MkdirAll(accountDir, 0o700); err != nil {
		return false, err
	}
	if err := writeNamespace(accountDir, ch.names.Prefix); err != nil {
		return false, fmt.Errorf("recording the namespace prefix: %w", err)
	}
	return false, nil
}

// prefixRename is one local folder renamed for a new namespace prefix.
type prefixRename struct {
	f        *index.Folder // nil: a local folder the index does not know
	name, to string
	from, at string // Maildir paths, old and new
}

// renameForPrefix renames the local folders (those the index knows, and
// new ones not synced yet) from their names under old to their names
// under names (see above). In a dry run it lists the renames and reports
// pending.
func (s *syncer) renameForPrefix(ctx context.Context, known []*index.Folder, old, names FolderNames) (pending bool, err error) {
	o := &s.opts
	byName := map[string]*index.Folder{}
	for _, f := range known {
		byName[f.Name] = f
	}
	all := slices.Collect(maps.Keys(byName))
	accountDir := filepath.Join(o.Root, maildir.EncodeName(o.Account))
	if err := maildir.WalkFolders(accountDir, func(name string, _ *maildir.Dir) error {
		if byName[name] == nil {
			all = append(all, name)
		}
		return nil
	}); err != nil {
		return false, err
	}
	slices.Sort(all) // parents first
	var renames []prefixRename
	for _, name := range all {
		to := names.Local(old.Remote(name))
		if to == name {
			continue
		}
		r := prefixRename{f: byName[name], name: name, to: to}
		if r.from, err = maildir.FolderDir(o.Root, o.Account, name); err != nil {
			return false, err
		}
		if r.at, err = maildir.FolderDir(o.Root, o.Account, to); err != nil {
			return false, err
		}
		_, errOld := os.Stat(filepath.Join(r.from, "cur"))
		_, errNew := os.Stat(filepath.Join(r.at, "cur"))
		// A folder at the new name is this one moved there already (an
		// interrupted run), or another: then nothing is renamed.
		movedBefore := false
		if r.f != nil && errOld != nil && errNew == nil {
			uv, _ := (&maildir.Dir{Path: r.at}).UIDValidity()
			movedBefore = uv == r.f.UIDValidity
		}
		if byName[to] != nil || errNew == nil && !movedBefore {
			return false, fmt.Errorf("the namespace prefix changes from %q to %q, which renames local folder %q to %q: "+
				"a local folder %q exists already; rename or remove it, or set namespace_prefix = %q",
				old.Prefix, names.Prefix, name, to, to, old.Prefix)
		}
		renames = append(renames, r)
	}
	var done []prefixRename // directories moved, with what was below them
	for _, r := range renames {
		line := fmt.Sprintf("rename local folder %q to %q (namespace prefix %q, was %q)", r.name, r.to, names.Prefix, old.Prefix)
		if o.DryRun {
			s.actions = append(s.actions, "would "+line)
			continue
		}
		s.actions = append(s.actions, line)
		s.log.Info(line)
		from := r.from
		for _, d := range done { // where a move above took it
			if rest, ok := strings.CutPrefix(from, d.from+string(filepath.Separator)); ok {
				from = filepath.Join(d.at, rest)
			}
		}
		if _, err := os.Stat(filepath.Join(from, "cur")); err != nil || from == r.at {
			continue // moved already
		}
		if err := os.MkdirAll(filepath.Dir(r.at), 0o700); err != nil {
			return false, err
		}
		if err := os.Rename(from, r.at); err != nil {
			return false, err
		}
		done = append(done, prefixRename{from: from, at: r.at})
	}
	if o.DryRun {
		return len(renames) > 0, nil
	}
	return false, o.Index.Write(ctx, func(tx *index.Tx) error {
		for _, r := range renames {
			if r.f == nil {
				continue
			}
			rel, err := filepath.Rel(o.Root, r.at)
			if err != nil {
				return err
			}
			if err := tx.RenameFolder(r.f.ID, r.to, rel); err != nil {
				return err
			}
		}
		return nil
	})
}

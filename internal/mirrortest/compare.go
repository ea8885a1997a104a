// Package mirrortest checks a local store against an IMAP server: the
// invariant every sync test asserts. It is test harness code.
package mirrortest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// ServerMessage is one message as the server has it.
type ServerMessage struct {
	UID      uint32
	Flags    maildir.Flags
	Keywords []string
	Raw      []byte // CRLF
}

// ServerFolders fetches every folder of the account with every message's
// UID, flags and body. Folder names are '/'-separated UTF-8.
func ServerFolders(c *imapclient.Client) (map[string][]ServerMessage, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, err
	}
	out := map[string][]ServerMessage{}
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		name := l.Mailbox
		if l.Delim != '/' && l.Delim != 0 {
			name = strings.ReplaceAll(name, string(l.Delim), "/")
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("select %s: %w", l.Mailbox, err)
		}
		msgs := []ServerMessage{}
		if sel.NumMessages > 0 {
			section := &imap.FetchItemBodySection{Peek: true}
			all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}
			bufs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			if err != nil {
				return nil, fmt.Errorf("fetch %s: %w", l.Mailbox, err)
			}
			for _, b := range bufs {
				f, kw := maildir.FlagsFromIMAP(b.Flags)
				sort.Strings(kw)
				msgs = append(msgs, ServerMessage{UID: uint32(b.UID), Flags: f, Keywords: kw, Raw: b.FindBodySection(section)})
			}
		}
		out[name] = msgs
	}
	return out, nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// Compare checks that the local store mirrors the server for one account:
// the same folders; per folder, one file per server message whose bytes are
// the server's with CRLF turned into LF and whose name carries the server
// UID and flags; one index row per file with matching UID, flags and
// keywords; nothing left in tmp/. It returns every difference found.
func Compare(ctx context.Context, server map[string][]ServerMessage, root, account string, st *index.Store) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }

	local := map[string]bool{}
	err := maildir.WalkFolders(filepath.Join(root, maildir.EncodeName(account)), func(folder string, d *maildir.Dir) error {
		local[folder] = true
		return nil
	})
	if err != nil {
		return []string{err.Error()}
	}
	var rowsByFolder map[string][]*index.Message
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account(account)
		if err != nil {
			return err
		}
		folders, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		rowsByFolder = map[string][]*index.Message{}
		for _, f := range folders {
			rows, err := tx.Messages(f.ID)
			if err != nil {
				return err
			}
			rowsByFolder[f.Name] = rows
		}
		return nil
	})
	if err != nil {
		return []string{err.Error()}
	}
	for name := range server {
		if !local[name] {
			add("folder %q: on the server, not local", name)
		}
	}
	for name, msgs := range server {
		if !local[name] {
			continue
		}
		path, err := maildir.FolderDir(root, account, name)
		if err != nil {
			add("folder %q: %v", name, err)
			continue
		}
		d, err := maildir.Open(path)
		if err != nil {
			add("folder %q: %v", name, err)
			continue
		}
		if tmp, _ := os.ReadDir(filepath.Join(path, "tmp")); len(tmp) > 0 {
			add("folder %q: %d files left in tmp/", name, len(tmp))
		}
		entries, err := d.Scan()
		if err != nil {
			add("folder %q: scan: %v", name, err)
			continue
		}
		byUID := map[uint32][]maildir.Entry{}
		for _, e := range entries {
			byUID[e.UID] = append(byUID[e.UID], e)
		}
		if len(entries) != len(msgs) {
			add("folder %q: %d files, server has %d messages", name, len(entries), len(msgs))
		}
		for _, m := range msgs {
			es := byUID[m.UID]
			if len(es) != 1 {
				add("folder %q uid %d: %d local files", name, m.UID, len(es))
				continue
			}
			e := es[0]
			if e.Flags&^maildir.FlagPassed != m.Flags&^maildir.FlagPassed {
				add("folder %q uid %d: local flags %q, server %q", name, m.UID, e.Flags.Info(), m.Flags.Info())
			}
			got, err := os.ReadFile(d.FilePath(e))
			if err != nil {
				add("folder %q uid %d: %v", name, m.UID, err)
				continue
			}
			want := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
			if !bytes.Equal(got, want) {
				add("folder %q uid %d: content differs (local %d bytes, server %d)", name, m.UID, len(got), len(want))
			}
		}
		rows := rowsByFolder[name]
		if len(rows) != len(entries) {
			add("folder %q: %d index rows, %d files", name, len(rows), len(entries))
		}
		files := map[string]maildir.Entry{}
		for _, e := range entries {
			files[e.Key] = e
		}
		srv := map[uint32]ServerMessage{}
		for _, m := range msgs {
			srv[m.UID] = m
		}
		for _, r := range rows {
			e, ok := files[r.Key]
			if !ok {
				add("folder %q: row %s has no file", name, r.Key)
				continue
			}
			if r.UID != e.UID || r.Flags != e.Flags || r.File != e.Sub+"/"+e.Name {
				add("folder %q: row %s (uid %d flags %q file %s) disagrees with file %s", name, r.Key, r.UID, r.Flags.Info(), r.File, e.Name)
			}
			if m, ok := srv[r.UID]; ok && strings.Join(m.Keywords, " ") != strings.Join(r.Keywords, " ") {
				add("folder %q uid %d: keywords %v, server %v", name, r.UID, r.Keywords, m.Keywords)
			}
		}
	}
	sort.Strings(diffs)
	return diffs
}

// Package mirrortest checks a local store against an IMAP server: the
// invariant every sync test asserts. It is test harness code.
//
// Compare looks in both directions: every server message is in its local
// folder once, and every local folder, file and index row is accounted
// for by the server; flags are compared whole, $Forwarded (the Maildir P
// flag) included.
package mirrortest

import (
	"context"
	"fmt"
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
	return ServerFoldersUnder(c, "")
}

// ServerFoldersUnder is ServerFolders for a server whose personal
// namespace has a prefix ("INBOX."): a folder below it is named without
// it (INBOX.Lists.golang is "Lists/golang"); INBOX stays "INBOX".
func ServerFoldersUnder(c *imapclient.Client, prefix string) (map[string][]ServerMessage, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, err
	}
	out := map[string][]ServerMessage{}
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		name := l.Mailbox
		if prefix != "" && len(name) > len(prefix) && strings.HasPrefix(name, prefix) {
			name = name[len(prefix):]
		}
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

// Compare checks that the local store mirrors the server for one account,
// both ways:
//
//   - the same folders: none on the server only, none local only, and no
//     index folder (with or without rows) that is on neither side;
//   - per folder, one file per server message, named with the server's
//     UID and flags (all of them: $Forwarded is the P flag), whose bytes
//     are the server's with CRLF turned into LF; no file without a server
//     message (no UID, or a UID the server does not have);
//   - one index row per file and one file per row, the row agreeing with
//     the file (UID, flags, file name, size, SHA-256) and with the server
//     (keywords, RFC822.SIZE, and the merge base: the synced flags and
//     keywords are the server's);
//   - nothing left in tmp/.
//
// It returns every difference found, sorted.
func Compare(ctx context.Context, server map[string][]ServerMessage, root, account string, st *index.Store) []string {
	c := &comparison{root: root, account: account}
	local := map[string]bool{}
	err := maildir.WalkFolders(filepath.Join(root, maildir.EncodeName(account)), func(folder string, d *maildir.Dir) error {
		local[folder] = true
		return nil
	})
	if err != nil {
		return []string{err.Error()}
	}
	rows, err := indexRows(ctx, st, account)
	if err != nil {
		return []string{err.Error()}
	}
	names := map[string]bool{}
	for n := range server {
		names[n] = true
	}
	for n := range local {
		names[n] = true
	}
	for n := range rows {
		names[n] = true
	}
	for name := range names {
		msgs, onServer := server[name]
		folderRows, inIndex := rows[name]
		switch {
		case onServer && local[name]:
			c.folder(name, msgs, folderRows)
		case onServer:
			c.add("folder %q: on the server (%d messages), not local", name, len(msgs))
		case local[name]:
			n := c.countFiles(name)
			c.add("folder %q: local only (%d message files), not on the server", name, n)
		}
		if inIndex && !onServer {
			c.add("folder %q: in the index (%d rows), not on the server", name, len(folderRows))
		}
	}
	sort.Strings(c.diffs)
	return c.diffs
}

// indexRows reads every folder of the account in the index with its rows,
// by folder name. An account the index does not know has none.
func indexRows(ctx context.Context, st *index.Store, account string) (map[string][]*index.Message, error) {
	out := map[string][]*index.Message{}
	err := st.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account(account)
		if err == index.ErrNotFound {
			return nil
		} else if err != nil {
			return err
		}
		folders, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		for _, f := range folders {
			rows, err := tx.Messages(f.ID)
			if err != nil {
				return err
			}
			out[f.Name] = rows
		}
		return nil
	})
	return out, err
}

type comparison struct {
	root, account string
	diffs         []string
}

func (c *comparison) add(format string, args ...any) {
	c.diffs = append(c.diffs, fmt.Sprintf(format, args...))
}

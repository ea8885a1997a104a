package mirrortest

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// folder compares one folder that is on the server and local: server
// messages against files, files against the server, rows against files
// and the server.
func (c *comparison) folder(name string, msgs []ServerMessage, rows []*index.Message) {
	path, err := maildir.FolderDir(c.root, c.account, name)
	if err != nil {
		c.add("folder %q: %v", name, err)
		return
	}
	d, err := maildir.Open(path)
	if err != nil {
		c.add("folder %q: %v", name, err)
		return
	}
	if tmp, _ := os.ReadDir(filepath.Join(path, "tmp")); len(tmp) > 0 {
		var names []string
		for i, de := range tmp {
			if i == 3 {
				names = append(names, "...")
				break
			}
			names = append(names, de.Name())
		}
		c.add("folder %q: %d files left in tmp/ (%s)", name, len(tmp), strings.Join(names, ", "))
	}
	entries, err := d.Scan()
	if err != nil {
		c.add("folder %q: scan: %v", name, err)
		return
	}
	srv := make(map[uint32]ServerMessage, len(msgs))
	for _, m := range msgs {
		srv[m.UID] = m
	}
	byUID := map[uint32][]maildir.Entry{}
	sums := map[string][32]byte{} // file key -> SHA-256 of the file
	sizes := map[string]int64{}
	for _, e := range entries {
		byUID[e.UID] = append(byUID[e.UID], e)
		if _, ok := srv[e.UID]; !ok || e.UID == 0 {
			c.add("folder %q: file %s/%s: not on the server (uid %d)", name, e.Sub, e.Name, e.UID)
		}
	}
	// Server -> local.
	for _, m := range msgs {
		es := byUID[m.UID]
		if len(es) != 1 {
			c.add("folder %q uid %d: %d local files, want 1", name, m.UID, len(es))
			continue
		}
		e := es[0]
		if e.Flags != m.Flags {
			c.add("folder %q uid %d: local flags %q, server %q", name, m.UID, e.Flags.Info(), m.Flags.Info())
		}
		got, err := os.ReadFile(d.FilePath(e))
		if err != nil {
			c.add("folder %q uid %d: %v", name, m.UID, err)
			continue
		}
		sums[e.Key], sizes[e.Key] = sha256.Sum256(got), int64(len(got))
		want := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		if !bytes.Equal(got, want) {
			c.add("folder %q uid %d: content differs (local %d bytes, server %d)", name, m.UID, len(got), len(want))
		}
	}
	c.rows(name, rows, entries, srv, sums, sizes)
}

// rows compares a folder's index rows with its files (by key) and with the
// server (by UID).
func (c *comparison) rows(name string, rows []*index.Message, entries []maildir.Entry, srv map[uint32]ServerMessage,
	sums map[string][32]byte, sizes map[string]int64) {
	files := make(map[string]maildir.Entry, len(entries))
	for _, e := range entries {
		files[e.Key] = e
	}
	seen := make(map[string]bool, len(rows))
	for _, r := range rows {
		if seen[r.Key] {
			c.add("folder %q: two index rows for key %s", name, r.Key)
		}
		seen[r.Key] = true
		e, ok := files[r.Key]
		if !ok {
			c.add("folder %q: row %s (uid %d) has no file", name, r.Key, r.UID)
			continue
		}
		if r.UID != e.UID || r.Flags != e.Flags || r.File != e.Sub+"/"+e.Name {
			c.add("folder %q: row %s (uid %d flags %q file %s) disagrees with file %s", name, r.Key, r.UID, r.Flags.Info(), r.File, e.Name)
		}
		if sum, ok := sums[r.Key]; ok && (sum != r.SHA256 || sizes[r.Key] != r.Size) {
			c.add("folder %q uid %d: row says %d bytes, SHA-256 %x; the file has %d bytes, %x",
				name, r.UID, r.Size, r.SHA256[:4], sizes[r.Key], sum[:4])
		}
		m, ok := srv[r.UID]
		if !ok {
			continue // reported for its file
		}
		if strings.Join(m.Keywords, " ") != strings.Join(r.Keywords, " ") {
			c.add("folder %q uid %d: keywords %v, server %v", name, r.UID, r.Keywords, m.Keywords)
		}
		if r.SyncedFlags != m.Flags || strings.Join(r.SyncedKeywords, " ") != strings.Join(m.Keywords, " ") {
			c.add("folder %q uid %d: synced state %q %v, server %q %v", name, r.UID, r.SyncedFlags.Info(), r.SyncedKeywords,
				m.Flags.Info(), m.Keywords)
		}
		if r.RFC822Size != 0 && r.RFC822Size != int64(len(m.Raw)) {
			c.add("folder %q uid %d: row says RFC822.SIZE %d, the server's message has %d bytes", name, r.UID, r.RFC822Size, len(m.Raw))
		}
	}
	for _, e := range entries {
		if !seen[e.Key] {
			c.add("folder %q: file %s/%s has no index row", name, e.Sub, e.Name)
		}
	}
}

// countFiles counts the message files of a local folder.
func (c *comparison) countFiles(name string) int {
	path, err := maildir.FolderDir(c.root, c.account, name)
	if err != nil {
		return 0
	}
	entries, _ := (&maildir.Dir{Path: path}).Scan()
	return len(entries)
}

package main

import (
	"cmp"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
)

// countMaildir counts the message files below root: every file in a cur/ or
// new/ directory, by the Maildir folder that holds it, and of those the ones
// whose info part (after ":2,") carries the S (seen) flag.
func countMaildir(root string) (inventory, error) {
	inv := inventory{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		dir := filepath.Dir(path)
		if b := filepath.Base(dir); b != "cur" && b != "new" {
			return nil
		}
		folder, err := filepath.Rel(root, filepath.Dir(dir))
		if err != nil {
			return err
		}
		fc := inv[folder]
		fc.Messages++
		name := d.Name()
		if i := strings.LastIndex(name, ":2,"); i >= 0 && strings.ContainsRune(name[i+3:], 'S') {
			fc.Seen++
		}
		inv[folder] = fc
		return nil
	})
	return inv, err
}

// compareCounts checks that a local Maildir (folders named by directory)
// holds what the server holds (folders named by IMAP name). The names differ
// by peer (encodings, INBOX placement), so it compares the totals and the
// sorted list of the non-empty folders' counts.
func compareCounts(local, server inventory) error {
	lt, st := local.total(), server.total()
	if lt != st {
		return fmt.Errorf("holds %d messages (%d seen), the server %d (%d seen); folders: local %s, server %s",
			lt.Messages, lt.Seen, st.Messages, st.Seen, local, server)
	}
	if l, s := countList(local), countList(server); !slices.Equal(l, s) {
		return fmt.Errorf("folder counts differ: local %s, server %s", local, server)
	}
	return nil
}

func countList(inv inventory) []folderCount {
	var out []folderCount
	for _, fc := range inv {
		if fc.Messages > 0 {
			out = append(out, fc)
		}
	}
	slices.SortFunc(out, func(a, b folderCount) int {
		return cmp.Or(cmp.Compare(a.Messages, b.Messages), cmp.Compare(a.Seen, b.Seen))
	})
	return out
}

func (inv inventory) String() string {
	names := make([]string, 0, len(inv))
	for n := range inv {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d/%d", n, inv[n].Messages, inv[n].Seen)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

package backup

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// plan is what a snapshot holds besides the index: its Maildirs (each
// with cur/, new/ and tmp/), the marker files that may be in them, and
// the files the rows of the index copy name.
type plan struct {
	dirs    []string // sorted
	markers []string // '/'-separated paths relative to the store root
	files   []index.StoredFile
}

// planOf reads the plan of a snapshot from its index copy cp.
func planOf(ctx context.Context, cp *index.Store) (*plan, error) {
	folders := map[string]bool{}
	var files []index.StoredFile
	err := cp.Read(ctx, func(tx *index.ReadTx) error {
		if err := folderPaths(tx, folders); err != nil {
			return err
		}
		return tx.StoredFiles(func(f index.StoredFile) error {
			files = append(files, f)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return makePlan(folders, files)
}

// planOfCopy reads the plan of a snapshot from its index copy at dbPath,
// opened read-only (see index.ReadSnapshot): cheaper than opening it as
// a store, which a directory snapshot does only when it must drop rows.
func planOfCopy(dbPath string) (*plan, error) {
	paths, err := index.ReadSnapshotFolders(dbPath)
	if err != nil {
		return nil, err
	}
	folders := map[string]bool{}
	for _, p := range paths {
		folders[p] = true
	}
	var files []index.StoredFile
	err = index.ReadSnapshot(dbPath, func(f index.StoredFile) error {
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return makePlan(folders, files)
}

// makePlan makes the plan of a snapshot whose index has the folder rows
// of the Maildirs in folders and whose rows name files.
func makePlan(folders map[string]bool, files []index.StoredFile) (*plan, error) {
	p := &plan{files: files}
	dirs := map[string]bool{index.OutboxPath: true}
	accounts := map[string]bool{}
	for d := range folders {
		dirs[d] = true
		if a, _, ok := strings.Cut(d, "/"); ok && d != index.OutboxPath {
			accounts[a] = true
		}
	}
	for _, f := range files {
		dirs[f.Dir] = true
	}
	for d := range dirs {
		if !validRel(d) {
			return nil, fmt.Errorf("the index names a folder outside the store: %q", d)
		}
		p.dirs = append(p.dirs, d)
		p.markers = append(p.markers, path.Join(d, ".postfach-uidvalidity"))
	}
	for a := range accounts {
		p.markers = append(p.markers, path.Join(a, maildir.AccountMarker))
	}
	sort.Strings(p.dirs)
	sort.Strings(p.markers)
	return p, nil
}

// validRel reports whether a folder path from the index stays inside the
// store (the index is ours, but a snapshot must never write elsewhere).
func validRel(p string) bool { return validPath(p) }

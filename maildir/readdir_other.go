//go:build !linux

package maildir

import (
	"io"
	"os"
)

// readDir calls fn with the name of each entry of the directory dir and
// whether it is a directory, in directory order, reading a chunk at a
// time: a large folder's listing is held once, as Entries, not also as a
// slice of all its fs.DirEntries.
func readDir(dir string, fn func(name string, isDir bool)) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(1024)
		for _, de := range ents {
			fn(de.Name(), de.IsDir())
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkList lists a folder of 25,000 files in cur/, as the prescan
// does each folder that changed.
func BenchmarkList(b *testing.B) {
	root := b.TempDir()
	for _, s := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, s), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	const n = 25000
	for i := range n {
		name := fmt.Sprintf("1796600%05d.M%dP1234Q%d.laptop,U=%d:2,S", i, i*7, i, i+1)
		if err := os.WriteFile(filepath.Join(root, "cur", name), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	d := &Dir{Path: root}
	b.ReportAllocs()
	for b.Loop() {
		l, err := d.List()
		if err != nil || len(l.Cur) != n {
			b.Fatal(len(l.Cur), err)
		}
	}
}

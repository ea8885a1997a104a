package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ManifestName is the manifest's file name in a snapshot.
const ManifestName = "MANIFEST"

const manifestHeader = "postfach-backup-manifest 1\n"

// Entry is one file of a snapshot as its manifest lists it.
type Entry struct {
	Path   string // relative to the snapshot, '/'-separated
	Size   int64
	SHA256 [32]byte
}

// writeManifest writes the manifest of the snapshot in dir, durably and
// atomically (a temporary file, fsynced, renamed into place, the
// directory fsynced): a snapshot without one is incomplete.
//
// Format (text, one line per file, sorted by path):
//
//	postfach-backup-manifest 1
//	<sha256 hex> <size> <path as a Go quoted string>
//	...
//	end <number of files> <sha256 hex of every byte before this line>
func writeManifest(dir string, es []Entry) error {
	if err := stageManifest(dir, es, true); err != nil {
		return err
	}
	return placeManifest(dir)
}

// stageManifest writes the manifest of the snapshot in dir to its
// temporary file (fsynced when sync is set: the caller that leaves it
// unset makes it durable itself, with the rest of the snapshot, before
// placeManifest).
func stageManifest(dir string, es []Entry, sync bool) error {
	tmp := filepath.Join(dir, ManifestName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(manifestBytes(es))
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// placeManifest renames the durable temporary manifest of the snapshot
// in dir into place and fsyncs the directory: the snapshot is complete.
func placeManifest(dir string) error {
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// manifestBytes returns the manifest of es (sorting es by path).
func manifestBytes(es []Entry) []byte {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	b := make([]byte, 0, len(manifestHeader)+len(es)*(64+12+len(`""`)+80)+100)
	b = append(b, manifestHeader...)
	for _, e := range es {
		b = hex.AppendEncode(b, e.SHA256[:])
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.Size, 10)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, e.Path)
		b = append(b, '\n')
	}
	sum := sha256.Sum256(b)
	return fmt.Appendf(b, "end %d %x\n", len(es), sum)
}

// errNoManifest: the snapshot is incomplete (or not a snapshot).
var errNoManifest = errors.New("no " + ManifestName + ": an incomplete snapshot")

// readManifest reads and checks the manifest of the snapshot in dir.
func readManifest(dir string) ([]Entry, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoManifest
	}
	if err != nil {
		return nil, err
	}
	return parseManifest(data)
}

func parseManifest(data []byte) ([]Entry, error) {
	bad := func(line int, what string) error {
		return fmt.Errorf("%s line %d: %s", ManifestName, line, what)
	}
	if !bytes.HasPrefix(data, []byte(manifestHeader)) {
		return nil, bad(1, "not a postfach backup manifest (version 1)")
	}
	body := data
	if i := bytes.LastIndex(data[:len(data)-1], []byte("\nend ")); i >= 0 {
		body = data[:i+1]
	} else {
		return nil, fmt.Errorf("%s: no end line: the manifest is cut short", ManifestName)
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")[1:]
	var es []Entry
	for i, l := range lines {
		n := i + 2
		sp1 := strings.IndexByte(l, ' ')
		if sp1 != 64 {
			return nil, bad(n, "malformed")
		}
		rest := l[sp1+1:]
		sp2 := strings.IndexByte(rest, ' ')
		if sp2 < 0 {
			return nil, bad(n, "malformed")
		}
		var e Entry
		if _, err := hex.Decode(e.SHA256[:], []byte(l[:64])); err != nil {
			return nil, bad(n, "malformed SHA-256")
		}
		size, err := strconv.ParseInt(rest[:sp2], 10, 64)
		if err != nil || size < 0 {
			return nil, bad(n, "malformed size")
		}
		e.Size = size
		if e.Path, err = strconv.Unquote(rest[sp2+1:]); err != nil || !validPath(e.Path) {
			return nil, bad(n, "malformed path")
		}
		es = append(es, e)
	}
	trailer := strings.TrimSuffix(string(data[len(body):]), "\n")
	var count int
	var sumHex string
	if _, err := fmt.Sscanf(trailer, "end %d %s", &count, &sumHex); err != nil || strings.Contains(trailer, "\n") {
		return nil, bad(len(lines)+2, "malformed end line")
	}
	sum := sha256.Sum256(body)
	if count != len(es) || sumHex != hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("%s: damaged: its end line does not match its %d lines", ManifestName, len(es))
	}
	return es, nil
}

// validPath reports whether p is a clean relative path inside a snapshot.
func validPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || p == ManifestName {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return !strings.ContainsRune(p, 0)
}

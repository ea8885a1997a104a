package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

const hexDigits = "0123456789ABCDEF"

// encodeComponent encodes one path component; see the package doc.
func encodeComponent(s string) string {
	if s == "" {
		return "%"
	}
	reserved := strings.EqualFold(s, "cur") || strings.EqualFold(s, "new") || strings.EqualFold(s, "tmp")
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i := 0; i < len(s); {
		c := s[i]
		size := 1
		esc := false
		switch {
		case c == '%', c == '/', c == '\\', c < 0x20, c == 0x7f:
			esc = true
		case c >= utf8.RuneSelf:
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			esc = r == utf8.RuneError && size == 1
		case i == 0 && (c == '.' || reserved):
			esc = true
		case i == len(s)-1 && c == ' ':
			esc = true
		}
		if esc {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// decodeComponent reverses the %XX escapes of one component. It does not
// check that s is canonical; callers compare with the re-encoding.
func decodeComponent(s string) (string, error) {
	if s == "%" {
		return "", nil
	}
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("maildir: bad escape in %q", s)
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("maildir: bad escape in %q", s)
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// EncodeName encodes a single name, such as an account name, as one path
// component: like one component of EncodeFolder, with '/' escaped as %2F too.
func EncodeName(name string) string { return encodeComponent(name) }

// DecodeName reverses EncodeName. It fails on anything EncodeName does not
// produce.
func DecodeName(comp string) (string, error) {
	name, err := decodeComponent(comp)
	if err != nil {
		return "", err
	}
	if encodeComponent(name) != comp {
		return "", fmt.Errorf("maildir: %q is not an encoded name", comp)
	}
	return name, nil
}

// EncodeFolder turns a UTF-8 folder name with '/' separators into a relative
// path ('/'-separated) that is safe to join under an account directory: no
// component is empty, ".", "..", starts with '.', is cur/new/tmp in any case,
// holds NUL or '\\', or ends in a space. See the package doc for the escapes.
// DecodeFolder(EncodeFolder(x)) == x for every string x.
func EncodeFolder(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = encodeComponent(p)
	}
	return strings.Join(parts, "/")
}

// DecodeFolder reverses EncodeFolder. rel may use the OS path separator. It
// fails on anything EncodeFolder does not produce (bad or needless escapes, a
// raw ".", a leading '/', ...), so that a folder has exactly one directory.
func DecodeFolder(rel string) (string, error) {
	rel = filepath.ToSlash(rel)
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		d, err := decodeComponent(p)
		if err != nil {
			return "", err
		}
		parts[i] = d
	}
	name := strings.Join(parts, "/")
	if EncodeFolder(name) != rel {
		return "", fmt.Errorf("maildir: %q is not an encoded folder name", rel)
	}
	return name, nil
}

// FolderDir returns the directory of folder in account under the store root:
// filepath.Join(root, EncodeName(account), EncodeFolder(folder)). It checks
// that the result lies inside root/account; empty names are errors.
func FolderDir(root, account, folder string) (string, error) {
	if account == "" || folder == "" {
		return "", fmt.Errorf("maildir: empty account or folder name (%q, %q)", account, folder)
	}
	root = filepath.Clean(root)
	acct := filepath.Join(root, EncodeName(account))
	p := filepath.Join(acct, filepath.FromSlash(EncodeFolder(folder)))
	for _, base := range []string{root, acct} {
		rel, err := filepath.Rel(base, p)
		if err != nil || rel == "." || !filepath.IsLocal(rel) {
			return "", fmt.Errorf("maildir: folder %q of account %q escapes %s", folder, account, root)
		}
	}
	return p, nil
}

// AccountMarker is the name of the file postfach writes into an account's
// directory (<root>/<account>/) before it stores mail there: the directory
// is postfach's, not another program's Maildir, even when the index is lost.
const AccountMarker = ".postfach-account"

// OpenAccount starts a run that writes the account's mail below root: it
// opens the root's Syncer (before anything is written; Close it when the
// run is over) and marks the account's directory (MarkAccount).
func OpenAccount(root, account string) (*Syncer, error) {
	s, err := OpenSyncer(root)
	if err != nil {
		return nil, err
	}
	if err := MarkAccount(root, account); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// MarkAccount creates the account's directory below root, if needed, and
// its AccountMarker, durably.
func MarkAccount(root, account string) error {
	dir := filepath.Join(root, EncodeName(account))
	path := filepath.Join(dir, AccountMarker)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if err := os.WriteFile(path, []byte(account+"\n"), 0o600); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return syncDir(dir)
}

// WalkFolders calls fn for every Maildir (a directory with a cur/
// subdirectory) below accountDir, in lexical order of the encoded names,
// parents before their subfolders, with the decoded folder name
// ('/'-separated). It skips cur/, new/, tmp/, names starting with '.',
// symbolic links and directories whose names are not canonical encodings
// (see DecodeFolder) together with everything below them. If fn returns
// filepath.SkipDir, the folder's subfolders are skipped; any other error stops
// the walk and is returned. A missing accountDir has no folders.
func WalkFolders(accountDir string, fn func(folder string, d *Dir) error) error {
	return walkFolders(accountDir, "", true, fn)
}

func walkFolders(dir, prefix string, top bool, fn func(string, *Dir) error) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a missing account, or a folder removed while we walk
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || n[0] == '.' || n == "cur" || n == "new" || n == "tmp" {
			continue
		}
		comp, err := DecodeName(n)
		if err != nil || strings.Contains(comp, "/") {
			continue
		}
		folder := comp
		if !top {
			folder = prefix + "/" + comp
		}
		p := filepath.Join(dir, n)
		if st, err := os.Stat(filepath.Join(p, "cur")); err == nil && st.IsDir() {
			if err := fn(folder, &Dir{Path: p}); err != nil {
				if err == filepath.SkipDir {
					continue
				}
				return err
			}
		}
		if err := walkFolders(p, folder, false, fn); err != nil {
			return err
		}
	}
	return nil
}

package testenv

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// fileSeq numbers the files of all MaildirWriters of the process, so that
// their names sort in write order.
var fileSeq atomic.Int64

// MaildirWriter writes messages straight into a Dovecot Maildir++ tree, the
// way Dovecot itself would store them:
//
//   - INBOX is the root; folder "A/B" is the directory ".A.B" with each
//     component in modified UTF-7 ("Entwürfe" -> ".Entw&APw-rfe");
//   - each message goes to tmp/, then is renamed into cur/ as
//     "<secs>.M<n>P<pid>Q<n>.testenv,S=<size>,W=<vsize>:2,<flags>", with LF
//     line ends (Dovecot's mail_save_crlf = no), S= the file size and W= the
//     size with CRLF (Dovecot trusts both);
//   - system flags are the letters D F R S T, keywords the letters a..z
//     listed in the folder's dovecot-keywords file;
//   - the file's mtime is the internal date;
//   - when the Maildir belongs to another user (root running the tests),
//     files and directories are chowned to it.
//
// File names sort in write order (also across writers of one process), so
// Dovecot assigns UIDs in that order on its next sync. Folder names must not contain '.' (the Maildir++
// separator). Not safe for concurrent use.
type MaildirWriter struct {
	root     string
	uid, gid int
	chown    bool
	secs     int64
	pid      int
	folders  map[string]*mdFolder
}

type mdFolder struct {
	dir      string
	keywords []string // index = letter - 'a'
}

// NewMaildirWriter writes below root (a Maildir++ root: INBOX). When uid is
// not -1 and differs from the process's, files are chowned to uid:gid.
func NewMaildirWriter(root string, uid, gid int) *MaildirWriter {
	return &MaildirWriter{
		root:    root,
		uid:     uid,
		gid:     gid,
		chown:   uid >= 0 && uid != os.Geteuid(),
		secs:    time.Now().Unix(),
		pid:     os.Getpid(),
		folders: map[string]*mdFolder{},
	}
}

// Write stores m in its folder, creating the folder if needed.
func (w *MaildirWriter) Write(m corpus.Message) error {
	f, err := w.folder(m.Folder)
	if err != nil {
		return err
	}
	info, err := w.info(f, m.Flags)
	if err != nil {
		return err
	}
	body := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
	vsize := len(body) + bytes.Count(body, []byte("\n"))
	n := fileSeq.Add(1)
	base := fmt.Sprintf("%d.M%dP%dQ%d.testenv,S=%d,W=%d", w.secs, n, w.pid, n, len(body), vsize)
	tmp := filepath.Join(f.dir, "tmp", base)
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return err
	}
	if err := w.own(tmp); err != nil {
		return err
	}
	if !m.Date.IsZero() {
		if err := os.Chtimes(tmp, m.Date, m.Date); err != nil {
			return err
		}
	}
	return os.Rename(tmp, filepath.Join(f.dir, "cur", base+":2,"+info))
}

// folder returns the directory of name, creating it as Dovecot would.
func (w *MaildirWriter) folder(name string) (*mdFolder, error) {
	if strings.EqualFold(name, "INBOX") || name == "" {
		name = "INBOX"
	}
	if f, ok := w.folders[name]; ok {
		return f, nil
	}
	dir, err := maildirFolderPath(w.root, name)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if err := w.own(p); err != nil {
			return nil, err
		}
	}
	if dir != w.root {
		p := filepath.Join(dir, "maildirfolder")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return nil, err
		}
		if err := w.own(p); err != nil {
			return nil, err
		}
	}
	f := &mdFolder{dir: dir}
	if err := f.readKeywords(); err != nil {
		return nil, err
	}
	w.folders[name] = f
	return f, nil
}

// info is the flag part of a file name after ":2,": letters in ASCII order.
func (w *MaildirWriter) info(f *mdFolder, flags []imap.Flag) (string, error) {
	var letters []byte
	for _, fl := range flags {
		switch strings.ToLower(string(fl)) {
		case `\seen`:
			letters = append(letters, 'S')
		case `\answered`:
			letters = append(letters, 'R')
		case `\flagged`:
			letters = append(letters, 'F')
		case `\deleted`:
			letters = append(letters, 'T')
		case `\draft`:
			letters = append(letters, 'D')
		case `\recent`:
		default:
			if strings.HasPrefix(string(fl), `\`) {
				return "", fmt.Errorf("testenv: unknown system flag %s", fl)
			}
			i := slices.Index(f.keywords, string(fl))
			if i < 0 {
				if len(f.keywords) == 26 {
					return "", fmt.Errorf("testenv: more than 26 keywords in %s", f.dir)
				}
				f.keywords = append(f.keywords, string(fl))
				i = len(f.keywords) - 1
				if err := w.writeKeywords(f); err != nil {
					return "", err
				}
			}
			letters = append(letters, byte('a'+i))
		}
	}
	slices.Sort(letters)
	return string(slices.Compact(letters)), nil
}

// readKeywords loads Dovecot's dovecot-keywords ("<index> <name>" lines).
func (f *mdFolder) readKeywords() error {
	data, err := os.ReadFile(filepath.Join(f.dir, "dovecot-keywords"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		idx, name, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i >= 26 {
			continue
		}
		for len(f.keywords) <= i {
			f.keywords = append(f.keywords, "")
		}
		f.keywords[i] = name
	}
	return nil
}

func (w *MaildirWriter) writeKeywords(f *mdFolder) error {
	var b strings.Builder
	for i, k := range f.keywords {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	path := filepath.Join(f.dir, "dovecot-keywords")
	tmp := filepath.Join(f.dir, "tmp", "dovecot-keywords.testenv")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if err := w.own(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (w *MaildirWriter) own(path string) error {
	if !w.chown {
		return nil
	}
	return os.Lchown(path, w.uid, w.gid)
}

// maildirFolderPath maps a '/'-separated folder name to its Maildir++
// directory below root.
func maildirFolderPath(root, name string) (string, error) {
	if name == "INBOX" {
		return root, nil
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, ".\x00") || p == "~" {
			return "", fmt.Errorf("testenv: folder %q cannot be stored in Maildir++", name)
		}
		parts[i] = encodeMUTF7(p)
	}
	return filepath.Join(root, "."+strings.Join(parts, ".")), nil
}

// mutf7 is the base64 alphabet of modified UTF-7 (RFC 3501 5.1.3).
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMUTF7 encodes s in IMAP's modified UTF-7.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(u))
		for _, c := range u {
			buf = append(buf, byte(c>>8), byte(c))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}

// DecodeMUTF7 decodes an IMAP mailbox name in modified UTF-7 (RFC 3501,
// section 5.1.3): printable ASCII, "&-" for '&', and "&<modified base64 of
// UTF-16BE>-" for the rest.
func DecodeMUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("byte %#x in %q", c, s)
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", fmt.Errorf("unterminated & in %q", s)
		}
		enc := s[i+1 : i+1+j]
		i += j + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(enc, ",", "/"))
		if err != nil || len(raw)%2 != 0 {
			return "", fmt.Errorf("bad &%s- in %q", enc, s)
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		b.WriteString(string(utf16.Decode(units)))
	}
	return b.String(), nil
}

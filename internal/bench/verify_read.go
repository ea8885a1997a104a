package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// lfWriter writes what it is given with every CRLF turned into LF (a lone
// CR stays), as postfach and the peers store a message, and counts what it
// writes. Call flush after the last Write: a CR at the end of one Write may
// be the start of a CRLF.
type lfWriter struct {
	w  io.Writer
	cr bool // the last byte given was a CR, not written yet
	n  int64
}

func (l *lfWriter) Write(p []byte) (int, error) {
	total := len(p)
	if l.cr && len(p) > 0 {
		l.cr = false
		if p[0] != '\n' {
			if err := l.emit([]byte{'\r'}); err != nil {
				return 0, err
			}
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			if err := l.emit(p); err != nil {
				return 0, err
			}
			break
		}
		if err := l.emit(p[:i]); err != nil {
			return 0, err
		}
		switch {
		case i+1 == len(p):
			l.cr = true
			p = nil
		case p[i+1] == '\n':
			p = p[i+1:] // drop the CR, the LF follows
		default:
			if err := l.emit(p[i : i+1]); err != nil {
				return 0, err
			}
			p = p[i+1:]
		}
	}
	return total, nil
}

func (l *lfWriter) flush() error {
	if l.cr {
		l.cr = false
		return l.emit([]byte{'\r'})
	}
	return nil
}

func (l *lfWriter) emit(p []byte) error {
	n, err := l.w.Write(p)
	l.n += int64(n)
	return err
}

// readOpts say how a message's bytes are read.
type readOpts struct {
	crlf bool // CRLF line ends, hashed as LF (a server's message)
	// dropTUID leaves out one header line "X-TUID: ...": mbsync adds it to
	// every message it copies (it finds the copy by it) and keeps it.
	dropTUID bool
}

// maxHeader bounds the header readMessage keeps in memory; the rest of a
// longer header is hashed like the body, and the Message-ID must be in the
// first maxHeader bytes.
const maxHeader = 1 << 20

// readers are readMessage's buffers, reused from message to message.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// readMessage reads one message from r to its end, hashing it (see
// readOpts) and reading the Message-ID from its header. id is "" when the
// header has none or cannot be read (why in bad); err is an error of r.
// Only the header is held in memory; the body streams through the hash.
func readMessage(r io.Reader, o readOpts) (id string, sum digest, size int64, bad string, err error) {
	h := sha256.New()
	lf := &lfWriter{w: h}
	var sink io.Writer = lf
	var plain *countingHash
	if !o.crlf {
		plain = &countingHash{Hash: h}
		sink = plain
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	var hdr bytes.Buffer
	dropped := false
	for hdr.Len() <= maxHeader {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			hdr.Write(line) // a long line; the rest follows
			continue
		}
		if o.dropTUID && !dropped && bytes.HasPrefix(line, []byte("X-TUID: ")) {
			dropped = true
			continue
		}
		hdr.Write(line)
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", sum, 0, "", err
		}
		if string(line) == "\n" || string(line) == "\r\n" {
			break // the end of the header
		}
	}
	sink.Write(hdr.Bytes())
	if _, err := io.Copy(sink, br); err != nil { // the body
		return "", sum, 0, "", err
	}
	if err := lf.flush(); err != nil {
		return "", sum, 0, "", err
	}
	size = lf.n
	if plain != nil {
		size = plain.n
	}
	h.Sum(sum[:0])
	msg, herr := mail.ReadMessage(&hdr)
	switch {
	case herr != nil:
		bad = "header unreadable: " + herr.Error()
	default:
		id = strings.Trim(msg.Header.Get("Message-Id"), "<> \t")
		if id == "" {
			bad = "no Message-ID"
		}
	}
	return id, sum, size, bad, nil
}

// countingHash is a hash that counts the bytes written to it.
type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.Hash.Write(p)
}

// snapshot reads the account: every selectable folder, and of every message
// its UID, flags, keywords, Message-ID and digest. The bodies are streamed
// (FETCH BODY.PEEK[], one message at a time) and hashed as they arrive,
// with one X-TUID header line left out if dropTUID. Messages the server
// holds twice, or without a Message-ID, go into d.
func (s *dovecotServer) snapshot(d *diffs, dropTUID bool) (mirror, error) {
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer logout(c)
	names, err := folders(c)
	if err != nil {
		return nil, err
	}
	m := mirror{}
	for _, name := range names {
		msgs := map[string]mirrorMsg{}
		m[name] = msgs
		sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("EXAMINE %s: %w", name, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			if err := readServerMessage(d, name, msgs, msg, dropTUID); err != nil {
				cmd.Close()
				return nil, fmt.Errorf("FETCH %s: %w", name, err)
			}
		}
		if err := cmd.Close(); err != nil {
			return nil, fmt.Errorf("FETCH %s: %w", name, err)
		}
	}
	return m, nil
}

func readServerMessage(d *diffs, folder string, msgs map[string]mirrorMsg, msg *imapclient.FetchMessageData, dropTUID bool) error {
	var mm mirrorMsg
	var id, bad string
	body := false
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			mm.UID = it.UID
		case imapclient.FetchItemDataFlags:
			mm.Flags, mm.Keywords = splitFlags(it.Flags)
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			var err error
			if id, mm.Sum, mm.Size, bad, err = readMessage(it.Literal, readOpts{crlf: true, dropTUID: dropTUID}); err != nil {
				return fmt.Errorf("message %d: %w", msg.SeqNum, err)
			}
			body = true
		}
	}
	switch {
	case !body:
		d.add("%s: UID %d: the server sent no body", folder, mm.UID)
	case id == "":
		d.add("%s: UID %d: %s", folder, mm.UID, bad)
	default:
		add(d, folder, msgs, id, mm)
	}
	return nil
}

// add puts a message into a folder's messages, or into d when the folder
// holds its Message-ID already.
func add(d *diffs, folder string, msgs map[string]mirrorMsg, id string, mm mirrorMsg) {
	if prev, ok := msgs[id]; ok {
		d.add("%s: <%s> twice:%s and%s", folder, id, prev.where(), mm.where())
		return
	}
	msgs[id] = mm
}

// scanOpts say how scanMaildir reads a tool's Maildir.
type scanOpts struct {
	// folderOf names the IMAP folder of a directory (replica.Folder).
	folderOf func(rel string) (string, error)
	// keywords, when not nil, are the tool's keywords by file path
	// (keywordKeeper); every file must have an entry.
	keywords map[string]string
	// dropTUID: the tool adds an X-TUID header line (readOpts).
	dropTUID bool
}

// localScan is what scanMaildir read.
type localScan struct {
	m    mirror
	dirs map[string]string // IMAP folder name -> its directory
}

// scanMaildir reads the Maildir tree below root: every directory holding
// cur/, new/ or tmp/ is a folder, named by folderOf (its path relative to
// root, "." for root, '/' separated); every file in cur/ and new/ (names
// starting with '.' are not messages) is a message, hashed as it is on
// disk, its flags the letters of its name's info. Directories folderOf does
// not name, two directories for one folder, files left in tmp/, files
// without Message-ID or keywords entry and a Message-ID twice in one folder
// go into d.
func scanMaildir(root string, o scanOpts, d *diffs) (*localScan, error) {
	s := &localScan{m: mirror{}, dirs: map[string]string{}}
	names := map[string]string{} // directory -> folder name
	folder := func(dir string) (string, error) {
		if name, ok := names[dir]; ok {
			return name, nil
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return "", err
		}
		rel = filepath.ToSlash(rel)
		name, err := o.folderOf(rel)
		if err != nil {
			d.add("directory %s: %v", dir, err)
			name = "(directory " + rel + ")"
		} else if other, ok := s.dirs[name]; ok {
			d.add("folder %s: two directories, %s and %s", name, other, dir)
			name = "(directory " + rel + ")"
		} else {
			s.dirs[name] = dir
		}
		names[dir] = name
		s.m[name] = map[string]mirrorMsg{}
		return name, nil
	}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if path != root && isSubdir(e.Name()) {
				_, err := folder(filepath.Dir(path))
				return err
			}
			return nil
		}
		sub := filepath.Base(filepath.Dir(path))
		if !isSubdir(sub) || strings.HasPrefix(e.Name(), ".") {
			return nil // the tools' state files, or not a message
		}
		name, err := folder(filepath.Dir(filepath.Dir(path)))
		if err != nil {
			return err
		}
		if sub == "tmp" {
			d.add("%s: %s left in tmp/", name, path)
			return nil
		}
		if !e.Type().IsRegular() {
			d.add("%s: %s is not a regular file", name, path)
			return nil
		}
		return s.readFile(d, name, path, o)
	})
	return s, err
}

func isSubdir(name string) bool { return name == "cur" || name == "new" || name == "tmp" }

func (s *localScan) readFile(d *diffs, folder, path string, o scanOpts) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	id, sum, size, bad, err := readMessage(f, readOpts{dropTUID: o.dropTUID})
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if id == "" {
		d.add("%s: %s: %s", folder, path, bad)
		return nil
	}
	mm := mirrorMsg{Sum: sum, Size: size, Flags: nameLetters(filepath.Base(path)), Path: path}
	if o.keywords != nil {
		kw, ok := o.keywords[path]
		if !ok {
			d.add("%s: <%s> has no row in the tool's index (%s)", folder, id, path)
		}
		mm.Keywords = kw
	}
	add(d, folder, s.m[folder], id, mm)
	return nil
}

// verifyServer reads the account and compares it, keywords included, with
// want, and Dovecot's own counts (STATUS MESSAGES UNSEEN) with want's. It
// returns what it read. dropTUID: see readOpts (an account mbsync uploads
// to).
func verifyServer(s *dovecotServer, want mirror, dropTUID bool) (mirror, error) {
	var d diffs
	got, err := s.snapshot(&d, dropTUID)
	if err != nil {
		return nil, fmt.Errorf("the server account %s: %w", s.user, err)
	}
	diffMirror(&d, want, got, true)
	if err := d.err(); err != nil {
		return nil, fmt.Errorf("the server account %s: %w", s.user, err)
	}
	inv, err := s.inventory()
	if err != nil {
		return nil, err
	}
	if wantInv := want.inventory(); !maps.Equal(inv, wantInv) {
		return nil, fmt.Errorf("the server account %s: STATUS says %s, want %s", s.user, inv, wantInv)
	}
	return got, nil
}

// verifyReplica reads rp's Maildir and compares it with want; keywords too
// when withKeywords is set and rp keeps them (see keywordKeeper). It returns
// what it read.
func verifyReplica(ctx context.Context, rp replica, want mirror, withKeywords bool) (*localScan, error) {
	root := rp.Maildir()
	o := scanOpts{folderOf: rp.Folder, dropTUID: addsTUID(rp)}
	kk, keeps := rp.(keywordKeeper)
	keeps = keeps && withKeywords
	if keeps {
		var err error
		if o.keywords, err = kk.Keywords(ctx); err != nil {
			return nil, fmt.Errorf("Maildir %s: %w", root, err)
		}
	}
	var d diffs
	scan, err := scanMaildir(root, o, &d)
	if err != nil {
		return nil, fmt.Errorf("Maildir %s: %w", root, err)
	}
	diffMirror(&d, want, scan.m, keeps)
	if err := d.err(); err != nil {
		return nil, fmt.Errorf("Maildir %s: %w", root, err)
	}
	return scan, nil
}

func (inv inventory) String() string {
	parts := make([]string, 0, len(inv))
	for _, n := range slices.Sorted(maps.Keys(inv)) {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", n, inv[n].Messages, inv[n].Seen))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

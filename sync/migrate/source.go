package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// srcMsg is one source message: an index row of the source account with
// what the migration needs of it.
type srcMsg struct {
	store  *index.Store
	f      *index.Folder
	folder string // source folder (postfach name)
	key    string
	file   string // "cur/<name>" or "new/<name>" as recorded
	msgID  string // Message-ID header, without angle brackets
	id     string // idKey
	size   int64  // RFC822.SIZE as recorded, or the CRLF size of the file when unknown
	known  bool   // size is the recorded RFC822.SIZE (not taken from the file)
	crlf   int64  // CRLF size of the file; 0 until computed
	date   time.Time
	flags  maildir.Flags
	kw     []string
}

// open opens the message file (index.Store.OpenMessage: by its recorded
// name, else by its key, for a mail client may have renamed it for a flag
// change).
func (s *srcMsg) open() (*index.Body, error) {
	return s.store.OpenMessage(s.f, &index.Message{Key: s.key, File: s.file})
}

// crlfSize returns (and remembers) the size of the file with CRLF line
// ends: the size of the APPEND literal.
func (s *srcMsg) crlfSize() (int64, error) {
	if s.crlf > 0 {
		return s.crlf, nil
	}
	f, err := s.open()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := maildir.CRLFSize(f)
	if err != nil {
		return 0, err
	}
	s.crlf = n
	return n, nil
}

// damage returns an error when the stored file is shorter, in wire form,
// than the size the source server gave for the message: a download cut
// short (postfach before issue 8 committed such files) or a file changed
// on disk. Such a file is never copied nor taken as the message (see the
// package documentation, Identity). A file that cannot be read is not
// judged here: reading it fails where it is used.
func (s *srcMsg) damage() error {
	if !s.known {
		return nil
	}
	n, err := s.crlfSize()
	if err != nil || n >= s.size {
		return nil
	}
	id := s.msgID
	if id == "" {
		id = "without Message-ID, dated " + s.date.UTC().Format(time.RFC3339)
	} else {
		id = "<" + id + ">"
	}
	return &damagedError{Folder: s.folder, File: s.file, MessageID: id, Stored: n, Source: s.size}
}

// damagedError is a source message whose stored copy is shorter than the
// source server said: it is not copied.
type damagedError struct {
	Folder, File   string // source folder, and the file as the index records it
	MessageID      string // "<id>", or a description of a message without one
	Stored, Source int64  // CRLF size of the stored file; the source's RFC822.SIZE
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("message %s (%s/%s): the stored copy has %d bytes, the source server said %d: "+
		"damaged (a download cut short?), not copied", e.MessageID, e.Folder, e.File, e.Stored, e.Source)
}

// imapFlags returns the flags and keywords to APPEND with.
func (s *srcMsg) imapFlags() []imap.Flag {
	flags := s.flags.IMAP()
	for _, k := range s.kw {
		flags = append(flags, imap.Flag(k))
	}
	return flags
}

// loadSource reads the source account's folders from the index and groups
// them by destination folder, in the order of the destination names.
func loadSource(ctx context.Context, o *Options) ([]*folderJob, error) {
	var jobs []*folderJob
	byDest := map[string]*folderJob{}
	err := o.Index.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account(o.Source)
		if errors.Is(err, index.ErrNotFound) {
			return fmt.Errorf("account %q has nothing in the store", o.Source)
		}
		if err != nil {
			return err
		}
		folders, err := tx.Folders(acct)
		if err != nil {
			return err
		}
		byName := map[string]*index.Folder{}
		for _, f := range folders {
			byName[f.Name] = f
		}
		names := o.Folders
		if names == nil {
			for _, f := range folders {
				names = append(names, f.Name)
			}
		}
		for src := range o.Map {
			if !slices.Contains(names, src) {
				return fmt.Errorf("--map %s=%s: the migration has no source folder %q", src, o.Map[src], src)
			}
		}
		for _, name := range names {
			f := byName[name]
			if f == nil {
				return fmt.Errorf("account %q has no folder %q in the store", o.Source, name)
			}
			dest := name
			if d, ok := o.Map[name]; ok {
				dest = d
			}
			if dest == "" {
				return fmt.Errorf("source folder %q: empty destination folder name", name)
			}
			if strings.EqualFold(dest, "INBOX") {
				dest = "INBOX"
			}
			j := byDest[dest]
			if j == nil {
				j = &folderJob{dest: dest}
				byDest[dest] = j
				jobs = append(jobs, j)
			}
			j.sources = append(j.sources, name)
			rows, err := tx.Messages(f.ID)
			if err != nil {
				return err
			}
			for _, m := range rows {
				j.msgs = append(j.msgs, newSrcMsg(o.Index, f, m))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Sizes and dates the index does not know come from the files.
	for _, j := range jobs {
		for _, s := range j.msgs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if s.date.IsZero() {
				if b, err := s.open(); err == nil {
					s.date = b.ModTime
					b.Close()
				}
			}
			s.id = idKey(s.msgID, s.date)
			if s.size == 0 {
				n, err := s.crlfSize()
				if err != nil {
					return nil, fmt.Errorf("source folder %s: %w", j.sources[0], err)
				}
				s.size = n
			}
		}
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].dest < jobs[b].dest })
	return jobs, nil
}

// newSrcMsg makes a source message of an index row. The internal date is
// the row's (the source's INTERNALDATE; for POP3 the Received or Date
// header, see sync/pop3), else the Date header; when both are unknown
// loadSource takes the file's modification time (and sets the identity).
func newSrcMsg(st *index.Store, f *index.Folder, m *index.Message) *srcMsg {
	s := &srcMsg{store: st, f: f, folder: f.Name, key: m.Key, file: m.File, msgID: m.Header.MessageID,
		size: m.RFC822Size, known: m.RFC822Size > 0, flags: m.Flags, kw: m.Keywords}
	s.date = m.InternalDate
	if s.date.IsZero() {
		s.date = m.Header.Date
	}
	return s
}

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

// srcRec is one source message as planning and verifying need it: the
// index row, the identity, what Differ compares, and sizes; no strings,
// about 64 bytes. What copying needs besides (the file, the keywords) is
// read from the index a batch at a time, as srcMsg, when it is needed.
type srcRec struct {
	row   index.MessageID
	id    idHash
	size  int64  // RFC822.SIZE as recorded, or the CRLF size of the file when unknown
	crlf  int64  // CRLF size of the file; 0 until computed
	date  int64  // internal date, unix seconds (when dated)
	kw    uint64 // kwHash of the keywords
	fi    int32  // the source folder: folderJob.folders[fi]
	flags maildir.Flags
	known bool // size is the recorded RFC822.SIZE (not taken from the file)
	dated bool // the internal date is known
}

// time returns the internal date; zero when unknown.
func (s *srcRec) time() time.Time {
	if !s.dated {
		return time.Time{}
	}
	return time.Unix(s.date, 0)
}

// unix is the internal date as same compares it.
func (s *srcRec) unix() int64 { return s.time().Unix() }

// srcMsg is a source message about to be checked or copied: its srcRec
// and what the index row says besides. A row gone from the index since
// loadSource (gone) cannot be opened.
type srcMsg struct {
	*srcRec
	store *index.Store
	f     *index.Folder
	key   string
	file  string // "cur/<name>" or "new/<name>" as recorded
	msgID string // Message-ID header, without angle brackets
	kws   []string
	gone  bool
}

// detailBatch is how many rows srcMsgs reads per query.
const detailBatch = 500

// srcMsgs reads from the index what checking and copying the source
// messages recs[i] for i in idx need besides their srcRec, in idx's order.
func (j *folderJob) srcMsgs(ctx context.Context, o *Options, idx []int32) ([]srcMsg, error) {
	out := make([]srcMsg, len(idx))
	rows := make([]index.Message, len(idx))
	ptrs := make([]*index.Message, len(idx))
	for k, i := range idx {
		rows[k] = index.Message{ID: j.recs[i].row, Partial: true}
		ptrs[k] = &rows[k]
	}
	if err := o.Index.Read(ctx, func(tx *index.ReadTx) error { return tx.Fill(ptrs) }); err != nil {
		return nil, err
	}
	for k, i := range idx {
		r := &j.recs[i]
		m := &rows[k]
		out[k] = srcMsg{srcRec: r, store: o.Index, f: j.folders[r.fi], key: m.Key, file: m.File,
			msgID: m.Header.MessageID, kws: m.Keywords, gone: m.Partial}
	}
	return out, nil
}

// open opens the message file (index.Store.OpenMessage: by its recorded
// name, else by its key, for a mail client may have renamed it for a flag
// change).
func (s *srcMsg) open() (*index.Body, error) {
	if s.gone {
		return nil, fmt.Errorf("message %d: its index row is gone", s.row)
	}
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
		id = "without Message-ID, dated " + s.time().UTC().Format(time.RFC3339)
	} else {
		id = "<" + id + ">"
	}
	return &damagedError{Folder: s.f.Name, File: s.file, MessageID: id, Stored: n, Source: s.size}
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
	for _, k := range s.kws {
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
		folders, err := tx.FolderCounts(acct)
		if err != nil {
			return err
		}
		byName := map[string]*index.FolderCount{}
		for i := range folders {
			byName[folders[i].Name] = &folders[i]
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
			if err := j.addFolder(ctx, tx, o.Index, &f.Folder, f.Messages); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].dest < jobs[b].dest })
	return jobs, nil
}

// addFolder adds a source folder's messages to the job, one row at a time.
// The internal date is the row's (the source's INTERNALDATE; for POP3 the
// Received or Date header, see sync/pop3), else the Date header, else the
// file's modification time; a size the index does not know is the file's
// CRLF size.
func (j *folderJob) addFolder(ctx context.Context, tx *index.ReadTx, st *index.Store, f *index.Folder, count int) error {
	j.sources = append(j.sources, f.Name)
	j.folders = append(j.folders, f)
	j.recs = slices.Grow(j.recs, count)
	fi := int32(len(j.folders) - 1)
	return tx.EachRow(f.ID, func(m *index.Message) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := srcRec{row: m.ID, size: m.RFC822Size, known: m.RFC822Size > 0, flags: m.Flags,
			kw: kwHash(m.Keywords), fi: fi}
		date := m.InternalDate
		if date.IsZero() {
			date = m.Header.Date
		}
		s := srcMsg{srcRec: &r, store: st, f: f, key: m.Key, file: m.File}
		if date.IsZero() {
			if b, err := s.open(); err == nil {
				date = b.ModTime
				b.Close()
			}
		}
		if !date.IsZero() {
			r.date, r.dated = date.Unix(), true
		}
		r.id = hashID(m.Header.MessageID, date)
		if r.size == 0 {
			n, err := s.crlfSize()
			if err != nil {
				return fmt.Errorf("source folder %s: %w", j.sources[0], err)
			}
			r.size = n
		}
		j.recs = append(j.recs, r)
		return nil
	})
}

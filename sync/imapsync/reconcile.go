package imapsync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sync"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// reconciled is the index's view of a folder after comparing it with the
// Maildir on disk.
type reconciled struct {
	rows        []*index.Message // rows whose file exists
	gone        []*index.Message // rows whose file is gone (deleted by the user or another program)
	added       []*index.Message // rows created from files on disk (crash leftovers, lost index, other programs)
	entries     map[string]maildir.Entry
	flagChanged int // files renamed by another program
}

// reconcile compares the folder's Maildir with its index rows and fixes the
// index: unknown files get rows (their ,U= tag is used only if trustTags),
// and renamed files update flags. Rows without a file are returned in gone:
// what that means (a deletion to push, or a message to fetch again) is the
// plan's decision.
//
// entries is the folder's listing when the caller has one from this run
// (nil: read it now).
func reconcile(ctx context.Context, store *index.Store, f *index.Folder, dir *maildir.Dir, trustTags bool, entries []maildir.Entry) (*reconciled, error) {
	var err error
	if entries == nil {
		if entries, err = dir.Scan(); err != nil {
			return nil, err
		}
	}
	var rows []*index.Message
	if err := store.Read(ctx, func(tx *index.ReadTx) error {
		rows, err = tx.SyncRows(f.ID)
		return err
	}); err != nil {
		return nil, err
	}
	rec := &reconciled{entries: make(map[string]maildir.Entry, len(entries))}
	byKey := make(map[string]*index.Message, len(rows))
	for _, m := range rows {
		byKey[m.Key] = m
	}
	type fileChange struct {
		m     *index.Message
		e     maildir.Entry
		flags bool
	}
	var changes []fileChange
	var orphans []maildir.Entry
	for _, e := range entries {
		if _, dup := rec.entries[e.Key]; dup {
			continue // two files with one key: keep the first, leave the other alone
		}
		rec.entries[e.Key] = e
		m, ok := byKey[e.Key]
		if !ok {
			orphans = append(orphans, e)
			continue
		}
		file := e.Sub + "/" + e.Name
		if file != m.File {
			changes = append(changes, fileChange{m: m, e: e, flags: e.Flags != m.Flags})
		}
	}
	for _, m := range rows {
		if _, ok := rec.entries[m.Key]; ok {
			rec.rows = append(rec.rows, m)
		} else {
			rec.gone = append(rec.gone, m)
		}
	}
	added, err := indexFiles(dir, orphans, trustTags)
	if err != nil {
		return nil, err
	}
	if len(changes)+len(added) == 0 {
		return rec, nil
	}
	err = store.Write(ctx, func(tx *index.Tx) error {
		for _, c := range changes {
			if err := tx.SetFile(c.m.ID, c.e.Sub+"/"+c.e.Name); err != nil {
				return err
			}
			c.m.File = c.e.Sub + "/" + c.e.Name
			if c.flags {
				if err := tx.SetFlags(c.m.ID, f.ID, c.e.Flags, c.m.Keywords); err != nil {
					return err
				}
				c.m.Flags = c.e.Flags
				rec.flagChanged++
			}
		}
		for _, nm := range added {
			nm.Folder = f.ID
		}
		_, err := tx.AddMessages(added)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, nm := range added {
		m := nm.Message
		rec.rows = append(rec.rows, &m)
		rec.added = append(rec.added, &m)
	}
	return rec, nil
}

// indexFiles reads message files the index does not know, in parallel.
func indexFiles(dir *maildir.Dir, entries []maildir.Entry, trustTags bool) ([]*index.NewMessage, error) {
	out := make([]*index.NewMessage, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = indexFile(dir, entries[i], trustTags)
			}
		}()
	}
	for i := range entries {
		next <- i
	}
	close(next)
	wg.Wait()
	var res []*index.NewMessage
	for i, m := range out {
		if errs[i] != nil {
			if os.IsNotExist(errs[i]) {
				continue // removed meanwhile
			}
			return nil, errs[i]
		}
		res = append(res, m)
	}
	return res, nil
}

// indexFile builds the row for one message file already on disk.
func indexFile(dir *maildir.Dir, e maildir.Entry, trustTags bool) (*index.NewMessage, error) {
	p := dir.FilePath(e)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	var hdr bytes.Buffer
	bareLF := int64(0) // LFs without a CR before them: each becomes CRLF upstream
	prevCR := false
	inHeader := true
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			h.Write(line)
			if line[len(line)-1] == '\n' {
				if !(len(line) >= 2 && line[len(line)-2] == '\r') && !(len(line) == 1 && prevCR) {
					bareLF++
				}
			}
			prevCR = line[len(line)-1] == '\r'
			if inHeader && hdr.Len() < 64<<10 {
				hdr.Write(line)
				if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
					inHeader = false
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
	}
	m := &index.NewMessage{}
	m.Key = e.Key
	m.File = path.Join(e.Sub, e.Name)
	if trustTags {
		m.UID = e.UID
	}
	m.Flags, m.SyncedFlags = e.Flags, e.Flags
	m.Size = st.Size()
	m.RFC822Size = st.Size() + bareLF // as sent with CRLF line ends
	m.InternalDate = st.ModTime()
	m.Header = index.ParseHeader(hdr.Bytes())
	copy(m.SHA256[:], h.Sum(nil))
	m.DeferText = true // full text: index.IndexPending
	return m, nil
}

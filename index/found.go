package index

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sync"

	"github.com/postfach/postfach/maildir"
)

// Found is a message file found on disk that IndexFile indexes.
type Found struct {
	Folder *Folder
	Entry  maildir.Entry // as the folder's Scan or Find returned it
	// TrustUID makes the ,U= tag of the file's name the row's UID;
	// otherwise the row has none (a local message, to be uploaded).
	TrustUID bool
	// RFC822Size is the message's upstream size when known; 0 takes the
	// file's size with CRLF line ends.
	RFC822Size int64
	// Tee, if set, receives the file's bytes as they are read.
	Tee io.Writer
	// With, if set, runs in the transaction that adds the row (or finds
	// it), with its id: extra rows that must commit with it.
	With func(tx *Tx, id MessageID) error
}

// IndexFile gives a message file found on disk its row: it reads the file
// (see FileMessages for what the row holds), syncs its folder's
// directories (its name may not be durable yet) and, in one Write, adds
// the row unless the folder has one with the file's key already, and runs
// With. It returns the row's id.
func (s *Store) IndexFile(ctx context.Context, fd Found) (MessageID, error) {
	d, err := s.Dir(*fd.Folder)
	if err != nil {
		return 0, err
	}
	m, err := readFound(d, fd.Entry, fd.TrustUID, fd.Tee)
	if err != nil {
		return 0, err
	}
	m.Folder = fd.Folder.ID
	if fd.RFC822Size != 0 {
		m.RFC822Size = fd.RFC822Size
	}
	if s.dry == nil {
		if err := d.SyncDir(); err != nil {
			return 0, err
		}
	}
	var id MessageID
	err = s.Write(ctx, func(tx *Tx) error {
		var err error
		id, err = tx.MessageIDByKey(m.Folder, m.Key)
		if errors.Is(err, ErrNotFound) {
			id, err = tx.AddMessage(m)
		}
		if err == nil && fd.With != nil {
			err = fd.With(tx, id)
		}
		return err
	})
	return id, err
}

// FileMessages reads message files of folder f that the index does not
// know, in parallel, and returns their rows, not yet added (the caller
// adds them in its own transaction). A file removed meanwhile is left out.
//
// A row holds the entry's key, file name and flags (also as the merge
// base), the ,U= tag's UID if trustUID, the file's size, its size with
// CRLF line ends as the upstream size, its modification time as the
// internal date (the engines give their files the message's internal
// date), the parsed header (at most 64 KiB of it) and the SHA-256 of the
// file; the full text is deferred (IndexPending).
func (s *Store) FileMessages(f *Folder, es []maildir.Entry, trustUID bool) ([]*NewMessage, error) {
	d, err := s.Dir(*f)
	if err != nil {
		return nil, err
	}
	out := make([]*NewMessage, len(es))
	errs := make([]error, len(es))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = readFound(d, es[i], trustUID, nil)
			}
		}()
	}
	for i := range es {
		next <- i
	}
	close(next)
	wg.Wait()
	var res []*NewMessage
	for i, m := range out {
		if errs[i] != nil {
			if errors.Is(errs[i], fs.ErrNotExist) {
				continue // removed meanwhile
			}
			return nil, errs[i]
		}
		m.Folder = f.ID
		res = append(res, m)
	}
	return res, nil
}

// fileReaders recycles the buffers for reading message files.
var fileReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// readFound builds the row of one message file already on disk (see
// FileMessages); tee, if not nil, gets the file's bytes.
func readFound(dir *maildir.Dir, e maildir.Entry, trustUID bool, tee io.Writer) (*NewMessage, error) {
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
	br := fileReaders.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() { br.Reset(nil); fileReaders.Put(br) }()
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			h.Write(line)
			if tee != nil {
				tee.Write(line)
			}
			if line[len(line)-1] == '\n' {
				if !(len(line) >= 2 && line[len(line)-2] == '\r') && !(len(line) == 1 && prevCR) {
					bareLF++
				}
			}
			prevCR = line[len(line)-1] == '\r'
			if inHeader && hdr.Len() < maildir.MaxHeader {
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
	m := &NewMessage{}
	m.Key = e.Key
	m.File = path.Join(e.Sub, e.Name)
	if trustUID {
		m.UID = e.UID
	}
	m.Flags, m.SyncedFlags = e.Flags, e.Flags
	m.Size = st.Size()
	m.RFC822Size = st.Size() + bareLF // as sent with CRLF line ends
	m.InternalDate = st.ModTime()
	m.Header = ParseHeader(hdr.Bytes())
	copy(m.SHA256[:], h.Sum(nil))
	m.DeferText = true // full text: IndexPending
	return m, nil
}

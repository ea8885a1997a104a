package maildir

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// MaxHeader is the most Delivery.Header keeps.
const MaxHeader = 64 << 10

const bufSize = 32 << 10

// writers recycles the deliveries' buffers: a sync writes many small
// messages, and a fresh 32 KiB buffer for each is most of its garbage.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}

func getWriter(f *os.File) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(f)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// ReadFrom writes all that r yields, as Write does; io.Copy uses it. It
// reads into the delivery's buffer (buffer) and converts it in place
// (writeOwned), with no copy.
func (w *Delivery) ReadFrom(r io.Reader) (int64, error) {
	if err := w.writable(); err != nil {
		return 0, err
	}
	b := w.buffer()
	var n int64
	for {
		k, err := r.Read(b)
		if k > 0 {
			if werr := w.writeOwned(b[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Delivery is a message being written to tmp/. It converts CRLF to LF as the
// bytes stream through, hashes and counts what reaches the disk, and keeps
// the header for parsing; its memory use does not grow with the message.
// A Delivery is not safe for concurrent use.
type Delivery struct {
	dir  *Dir
	key  string
	path string // tmp/<key>
	f    *os.File
	bw   *bufio.Writer
	h    hash.Hash
	// scratch is the buffer of Write and ReadFrom (see buffer), where
	// they convert what they are given or read.
	scratch *[]byte

	size    int64
	cr      bool   // the last byte given to Write was a '\r', not written yet
	hdr     []byte // the header so far
	hdrDone bool
	bol     bool // the last byte written was '\n' (or none was written)
	sum     [32]byte

	closed bool // Close has run
	done   bool // committed or aborted: the tmp file is no longer ours
	// synced: DeliverSync made the contents durable and nothing was
	// written since (Syncer.Sync skips it).
	synced bool
	err    error
	ahead  *aheadSync // SyncAhead's fsync, until a sync or Abort waits for it
}

// aheadSync is an fsync SyncAhead started: err is set before done closes.
type aheadSync struct {
	done chan struct{}
	err  error
}

// aheadSlots bounds the fsyncs SyncAhead keeps in flight, all deliveries
// together (as syncEach does for one batch).
var aheadSlots = make(chan struct{}, syncParallel)

// NewDelivery creates tmp/<key> with a fresh key and returns it open for
// writing.
func (d *Dir) NewDelivery() (*Delivery, error) {
	return d.newDelivery(newKey(), os.O_EXCL)
}

// NewDeliveryKey is NewDelivery with the caller's key (see Entry.Key:
// not empty, no '/', ',' or ':', not starting with '.'), for a message
// that must have the same name at each try, so that a retry finds what
// an earlier try renamed into the folder. A tmp/<key> an earlier try
// left is replaced.
func (d *Dir) NewDeliveryKey(key string) (*Delivery, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("maildir: new delivery: bad key %q", key)
	}
	return d.newDelivery(key, os.O_TRUNC)
}

// newDelivery creates tmp/<key>, opened with mode (O_EXCL or O_TRUNC)
// besides O_WRONLY|O_CREATE.
func (d *Dir) newDelivery(key string, mode int) (*Delivery, error) {
	path := filepath.Join(d.Path, "tmp", key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|mode, 0o600)
	if err != nil {
		return nil, fmt.Errorf("maildir: new delivery: %w", err)
	}
	return &Delivery{
		dir: d, key: key, path: path, f: f,
		bw:  getWriter(f),
		h:   sha256.New(),
		bol: true,
	}, nil
}

var crByte = []byte{'\r'}

// Write writes p, turning each CRLF into LF, also when the CR ends one Write
// and the LF starts the next; a CR not followed by LF is kept. It returns
// len(p) on success. p is copied, a buffer at a time, into the delivery's
// buffer and converted there (writeOwned): p itself is not changed.
func (w *Delivery) Write(p []byte) (int, error) {
	n := len(p)
	if err := w.writable(); err != nil || n == 0 {
		return 0, err
	}
	b := w.buffer()
	for len(p) > 0 {
		k := copy(b, p)
		if err := w.writeOwned(b[:k]); err != nil {
			return 0, err
		}
		p = p[k:]
	}
	return n, nil
}

// writable returns why nothing more can be written, if so.
func (w *Delivery) writable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("maildir: write to closed delivery: %w", os.ErrClosed)
	}
	return nil
}

// writeOwned writes b as Write does, converting it in place: b is the
// caller's own buffer, which this leaves changed. What reaches the file
// goes to emit in one piece, not a piece per line (for a message with
// CRLF line ends, the hash and the writer were called twice a line, which
// cost more than the hashing itself).
func (w *Delivery) writeOwned(b []byte) error {
	if err := w.writable(); err != nil {
		return err
	}
	w.synced = false
	if w.cr && len(b) > 0 {
		w.cr = false
		if b[0] != '\n' {
			w.emit(crByte) // a lone CR, kept; before an LF it is dropped (CRLF → LF)
		}
	}
	j := 0 // b[:j] is converted; j <= i, so the copies only move bytes down
	for i := 0; i < len(b); {
		k := bytes.IndexByte(b[i:], '\r')
		if k < 0 {
			j += copy(b[j:], b[i:])
			break
		}
		j += copy(b[j:], b[i:i+k])
		i += k
		switch {
		case i+1 == len(b): // held until the next byte tells
			w.cr = true
			i++
		case b[i+1] == '\n':
			b[j] = '\n'
			j, i = j+1, i+2
		default:
			b[j] = '\r'
			j, i = j+1, i+1
		}
	}
	w.emit(b[:j])
	return w.err
}

// emit writes b, already converted, to the file, the hash and the header.
func (w *Delivery) emit(b []byte) {
	if len(b) == 0 || w.err != nil {
		return
	}
	if !w.hdrDone {
		w.captureHeader(b)
	}
	w.h.Write(b)
	w.size += int64(len(b))
	if _, err := w.bw.Write(b); err != nil {
		w.err = fileError("write", w.path, err)
	}
}

// captureHeader appends the part of b that belongs to the header: up to and
// including the first empty line, at most MaxHeader bytes in all.
func (w *Delivery) captureHeader(b []byte) {
	end := len(b)
	for i, c := range b {
		if c == '\n' {
			if w.bol {
				end = i + 1
				w.hdrDone = true
				break
			}
			w.bol = true
		} else {
			w.bol = false
		}
	}
	if room := MaxHeader - len(w.hdr); end >= room {
		end = room
		w.hdrDone = true
	}
	if need := len(w.hdr) + end; need > cap(w.hdr) {
		// Grow by doubling, from 4 KiB, but never beyond MaxHeader.
		n := min(max(need, 2*cap(w.hdr), 4<<10), MaxHeader)
		w.hdr = append(make([]byte, 0, n), w.hdr...)
	}
	w.hdr = append(w.hdr, b[:end]...)
}

// Header returns the message header as written so far: the bytes up to and
// including the first empty line, or the first MaxHeader bytes if there is
// no empty line before that (or all bytes, for a short message without
// one). The caller must not modify it. After Commit it is nil.
func (w *Delivery) Header() []byte { return w.hdr }

// Key returns the key of the message; it stays its key after Commit.
func (w *Delivery) Key() string { return w.key }

// Path returns the tmp/ file's path, valid until Commit or Abort. Use it to
// read the message back (e.g. for indexing) after Close.
func (w *Delivery) Path() string { return w.path }

// Size returns the number of bytes written to the file, after CRLF
// conversion; final after Close.
func (w *Delivery) Size() int64 { return w.size }

// Sum returns the SHA-256 of the bytes written to the file, after CRLF
// conversion; final after Close.
func (w *Delivery) Sum() [32]byte {
	if w.closed {
		return w.sum
	}
	var s [32]byte
	w.h.Sum(s[:0])
	return s
}

// Close writes a pending CR, flushes and closes the file. It does not fsync:
// use Syncer.Sync or DeliverSync before Commit. Closing twice is harmless.
func (w *Delivery) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.cr {
		w.cr = false
		w.synced = false
		w.emit(crByte)
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.err = fileError("write", w.path, err)
		}
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fileError("close", w.path, err)
	}
	w.h.Sum(w.sum[:0])
	putWriter(w.bw)
	w.bw = nil
	w.putScratch()
	return w.err
}

// buffer returns the delivery's buffer for Write and ReadFrom, taken from
// copyBufs the first time and kept until Close (a caller may write a line
// at a time: a buffer per call made a 31 MiB mbox import grow the heap by
// 18 MiB under the race detector, whose pool drops Puts).
func (w *Delivery) buffer() []byte {
	if w.scratch == nil {
		w.scratch = copyBufs.Get().(*[]byte)
	}
	return *w.scratch
}

// putScratch gives the delivery's buffer back, if it took one.
func (w *Delivery) putScratch() {
	if w.scratch != nil {
		copyBufs.Put(w.scratch)
		w.scratch = nil
	}
}

// SyncAhead starts making the closed delivery's contents durable (an
// fsync of its file) in the background, and returns at once: the sync of
// its batch (Syncer.Sync, DeliverSync), which waits for that fsync
// instead of making its own, then finds the file's data on the disk
// already instead of waiting for all of the batch's at its end. For a
// batch too small for syncfs, whose files are being written one after
// the other as they arrive (an incremental run's downloads): the fsyncs
// go on while the next messages stream in. An error of that fsync fails
// the batch's sync. It does nothing before Close or after an error, and
// is not for a delivery that is used by another goroutine meanwhile
// (like every method of Delivery).
func (w *Delivery) SyncAhead() {
	if !w.closed || w.done || w.err != nil || w.synced || w.ahead != nil {
		return
	}
	a := &aheadSync{done: make(chan struct{})}
	w.ahead = a
	path := w.path
	go func() {
		aheadSlots <- struct{}{}
		a.err = syncPath(path)
		<-aheadSlots
		close(a.done)
	}()
}

// awaitAhead waits for SyncAhead's fsync, if one was started, and takes
// its outcome: the delivery is synced, or err is why not. (A writeback
// error is reported to the descriptor that fsync opened, and perhaps to
// no later one: the error is the batch's, not to be tried again.)
func (w *Delivery) awaitAhead() error {
	a := w.ahead
	if a == nil {
		return nil
	}
	<-a.done
	w.ahead = nil
	if a.err != nil {
		return a.err
	}
	w.synced = true
	return nil
}

// Abort closes the delivery and removes its tmp file. After Commit it does
// nothing, so `defer w.Abort()` is the usual cleanup.
func (w *Delivery) Abort() {
	if w.done {
		return
	}
	_ = w.awaitAhead() // its fsync has the file open
	w.done = true
	if !w.closed {
		w.closed = true
		_ = w.f.Close()
		putWriter(w.bw)
		w.bw = nil
		w.putScratch()
	}
	_ = os.Remove(w.path)
}

// syncFile fsyncs w's file, flushing first if it is still open; a file
// SyncAhead is syncing is waited for instead.
func (w *Delivery) syncFile() error {
	if w.ahead != nil {
		return w.awaitAhead()
	}
	if !w.closed {
		if err := w.bw.Flush(); err != nil {
			return err
		}
		if err := w.f.Sync(); err != nil {
			return err
		}
		w.synced = true
		return nil
	}
	return syncPath(w.path)
}

// syncPath fsyncs the closed file at path: opened again for it; only this
// package opens files in tmp/, so no one has heard of a writeback error
// of it meanwhile, and the fsync reports it.
func syncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DeliverSync makes the contents of w durable with one fsync of its file: for
// a single delivery, where a Syncer's syncfs would be too broad (it writes
// back every dirty page of the file system, other programs' too). Call it
// after Close (or before: it flushes) and before Commit. Called before
// Close, it fsyncs the descriptor the delivery was written through, which
// hears of every writeback error of the file, and a Syncer's Sync then
// skips the delivery (unless something was written after it).
func (d *Dir) DeliverSync(w *Delivery) error {
	if w.done {
		return errors.New("maildir: sync: delivery already committed or aborted")
	}
	if err := w.syncFile(); err != nil {
		return fmt.Errorf("maildir: sync %s: %w", w.path, err)
	}
	return nil
}

// fileError is err of op on path, with the path said once (an
// *os.PathError names it already).
func fileError(op, path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("maildir: %w", err)
	}
	return fmt.Errorf("maildir: %s %s: %w", op, path, err)
}

// Commit moves the delivery from tmp/ into d and returns the file's path
// relative to d ("cur/<name>" or "new/<name>"). A message with the Seen
// flag goes to cur/<key>[,U=<uid>]:2,<flags>; an unread one goes to new/,
// as mbsync, offlineimap and Dovecot deliver it, where mail readers show
// it as new and notifiers see it: new/<key>[,U=<uid>], without info as the
// Maildir convention has it, or with ":2,<flags>" when it has other flags
// (which a bare name would lose). A reader that shows it moves it to cur/
// (Scan, Find and renames handle either place). Commit closes w if still
// open. It never replaces a file: if the name exists, it fails with an
// error wrapping fs.ErrExist and leaves the tmp file for Abort. Commit does
// not fsync: make the contents durable first (Syncer.Sync, DeliverSync) and
// the name afterwards (SyncDir).
func (d *Dir) Commit(w *Delivery, uid uint32, flags Flags) (file string, err error) {
	if w.done {
		return "", errors.New("maildir: commit: delivery already committed or aborted")
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	sub, name := "cur", formatName(w.key, uid, flags)
	if flags&FlagSeen == 0 {
		sub = "new"
		if flags == 0 {
			name = rename(w.key, uid, 0, false)
		}
	}
	if err := renameNoReplace(w.path, filepath.Join(d.Path, sub, name)); err != nil {
		return "", fmt.Errorf("maildir: commit: %w", err)
	}
	w.done = true
	w.hdr = nil // up to MaxHeader: not kept for as long as the caller keeps w
	return sub + "/" + name, nil
}

// linkRename moves src to dst unless dst exists, by link and unlink. On file
// systems without hard links it checks and renames, which races only with a
// file of the same key, and keys are unique.
func linkRename(src, dst string) error {
	if err := os.Link(src, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if _, serr := os.Lstat(dst); serr == nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return serr
		}
		return os.Rename(src, dst)
	}
	// The message is in place; a failed unlink only leaves a second name in
	// tmp/, which CleanTmp removes.
	_ = os.Remove(src)
	return nil
}

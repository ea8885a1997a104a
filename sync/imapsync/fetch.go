package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// delivered is a message written to tmp/, waiting for the committer.
type delivered struct {
	job      *folderJob
	dlv      *maildir.Delivery
	uid      uint32
	flags    maildir.Flags
	keywords []string
	idate    time.Time
	rfcSize  int64
	header   index.Header
}

// fetch downloads one chunk of new messages, streaming each body into a
// tmp/ file, and hands them to the committer. A message whose body the
// server announces larger than it may be (see bodyLimit) is not stored and
// is reported as the folder's error at the end of the run; the connection
// it was coming on is given up and the rest of the chunk is fetched on a
// new one.
func (w *worker) fetch(ctx context.Context, j *folderJob, uids []uint32) error {
	for len(uids) > 0 {
		rest, err := w.fetchSome(ctx, j, uids)
		if err != nil {
			return err
		}
		uids = rest
	}
	return nil
}

// fetchSome is one FETCH of uids. After a refused body it returns the UIDs
// still to fetch, on a new connection it has made the worker's.
func (w *worker) fetchSome(ctx context.Context, j *folderJob, uids []uint32) (rest []uint32, err error) {
	if err := w.selectFolder(j); err != nil {
		return nil, fmt.Errorf("SELECT: %w", err)
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	opts := &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}
	w.s.commit.fetchStarted()
	defer w.s.commit.fetchDone()
	cmd := w.c.Fetch(imap.UIDSetNum(set...), opts)
	got := map[uint32]bool{}
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		d, err := readMessage(j, msg)
		var tooBig *bodyTooLargeError
		if errors.As(err, &tooBig) && tooBig.uid != 0 {
			j.refuse(err)
			got[tooBig.uid] = true
			if !tooBig.unread {
				continue // read whole and dropped: the connection is fine
			}
			return w.replaceConn(ctx, cmd, err, uids, got)
		}
		if err != nil {
			// The response is half read: the connection cannot be used
			// again.
			return nil, abortFetch(w.c, cmd, err)
		}
		if d == nil {
			continue
		}
		got[d.uid] = true
		j.acquire(1)
		if !w.s.commit.give(ctx, d) {
			d.dlv.Abort()
			j.release()
			return nil, abortFetch(w.c, cmd, ctx.Err())
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("FETCH: %w", err)
	}
	return nil, nil
}

// replaceConn gives up the worker's connection, on which the refused body
// err is still coming, dials a new one (closed when ctx ends) and returns
// the UIDs of uids not yet handled (got).
func (w *worker) replaceConn(ctx context.Context, cmd *imapclient.FetchCommand, err error, uids []uint32, got map[uint32]bool) ([]uint32, error) {
	abortFetch(w.c, cmd, err)
	w.c, w.selected = nil, ""
	var rest []uint32
	for _, u := range uids {
		if !got[u] {
			rest = append(rest, u)
		}
	}
	// Even with nothing left, the caller (the plan fetches a few itself
	// and goes on) needs a connection that works.
	c, derr := w.s.opts.Endpoint.DialRetry(ctx, w.s.opts.DialAttempts, w.s.log.Warn)
	if derr != nil {
		return nil, derr
	}
	context.AfterFunc(ctx, func() { go c.Close() }) // see abortFetch
	w.c = c
	return rest, nil
}

// abortFetch gives up a connection whose FETCH cmd was left half read and
// returns err marked as a connection failure, so the worker dials again.
//
// go-imap's Client.Close closes the socket and then waits for its reader
// goroutine, which may be blocked handing over a literal nobody reads (it
// waits until the literal is read to its end) or a response nobody takes:
// a Close alone never returns, and both goroutines stay behind (a deadlock
// seen on SIGTERM mid-download). So the close is started first (the socket
// is closed at once), and then the command is read to its end: the rest of
// a literal reads as an error from the closed socket, which releases the
// reader, which then fails, ends the command and exits; Close then
// returns. Nothing stays behind.
//
// One exception: after a literal ended in a read error (errShortBody), the
// reader goroutine is released already and reads the connection on its
// own; reading the command here as well would race with it on go-imap's
// buffer. Then the command is read only once the reader has exited.
func abortFetch(c *imapclient.Client, cmd *imapclient.FetchCommand, err error) error {
	go c.Close()
	if errors.Is(err, errShortBody) {
		go func() {
			<-c.Closed()
			cmd.Close()
		}()
	} else {
		cmd.Close()
	}
	return &abortedError{err}
}

// abort closes a connection whose command was left half read and returns
// err marked as a connection failure. It does not wait for the close (see
// abortFetch); use abortFetch where a FETCH command is at hand.
func abort(c *imapclient.Client, err error) error {
	go c.Close()
	return &abortedError{err}
}

// abortedError is err, which left its connection half read: it counts as
// a connection failure (errConn) whatever its cause (the server, or the
// local store while a body streamed in), and reads as err alone.
type abortedError struct{ err error }

func (e *abortedError) Error() string   { return e.err.Error() }
func (e *abortedError) Unwrap() []error { return []error{e.err, errConn} }

// readMessage consumes one FETCH response. It returns nil (and no error)
// for a response without body or UID, e.g. a flag update.
//
// The body is complete only if it has all the bytes its literal announced
// ({n}): go-imap's literal reader simply ends early, without an error,
// when the connection dies in the middle of it (see readLiteral). A short
// body is an error and nothing is stored for it, so the next run fetches
// the message again.
//
// RFC822.SIZE is not the measure of completeness: servers such as
// Exchange report it inexactly, so a complete literal of another size is
// logged and kept. The row records the server's RFC822.SIZE all the same,
// because the identity rules (rematch, verifyTags, recoverAppends) compare
// rows with what the server reports, and an inexact server reports the
// same inexact size every time. But a literal larger than RFC822.SIZE
// allows (bodyLimit) or than Options.MaxSize is a *bodyTooLargeError:
// checked before a byte of it is written when the size came first (as
// servers send it), else once both are known; nothing is stored.
func readMessage(j *folderJob, msg *imapclient.FetchMessageData) (*delivered, error) {
	d := &delivered{job: j}
	var litSize int64 = -1 // the body literal's size, once read whole
	sized := false         // RFC822.SIZE came
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			d.uid = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			d.flags, d.keywords = maildir.FlagsFromIMAP(it.Flags)
		case imapclient.FetchItemDataInternalDate:
			d.idate = it.Time
		case imapclient.FetchItemDataRFC822Size:
			d.rfcSize, sized = it.Size, true
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue // NIL: no body
			}
			if d.dlv != nil {
				io.Copy(io.Discard, it.Literal)
				continue
			}
			if err := checkBodySize(d.uid, it.Literal.Size(), d.rfcSize, sized, j.s.opts.MaxSize); err != nil {
				err.unread = true
				return nil, err
			}
			dlv, err := j.dir.NewDelivery()
			if err != nil {
				return nil, err
			}
			if err := readLiteral(dlv, it.Literal); err != nil {
				dlv.Abort()
				if d.uid != 0 {
					err = fmt.Errorf("UID %d: %w", d.uid, err)
				}
				return nil, err
			}
			if err := dlv.Close(); err != nil {
				dlv.Abort()
				return nil, fmt.Errorf("storing message: %w", err)
			}
			d.dlv = dlv
			litSize = it.Literal.Size()
		}
	}
	if d.dlv == nil || d.uid == 0 {
		if d.dlv != nil {
			d.dlv.Abort()
		}
		return nil, nil
	}
	if err := checkBodySize(d.uid, litSize, d.rfcSize, sized, j.s.opts.MaxSize); err != nil {
		d.dlv.Abort() // RFC822.SIZE came after the body
		return nil, err
	}
	if sized && d.rfcSize != litSize {
		j.s.log.Warn("the server's RFC822.SIZE differs from the size of the message it sent; stored as sent",
			"folder", j.rf.Local, "uid", d.uid, "rfc822_size", d.rfcSize, "sent", litSize)
	}
	d.header = index.ParseHeader(d.dlv.Header())
	if !d.idate.IsZero() {
		os.Chtimes(d.dlv.Path(), d.idate, d.idate)
	}
	return d, nil
}

// bodyLimit is the largest body accepted for a message whose RFC822.SIZE
// is announced: that plus a slack of 10%, at least 64 KiB. Servers such as
// Exchange report RFC822.SIZE a little off (line ends, headers added on
// the way out); a body beyond the slack is not that, and is refused
// rather than written until the disk is full.
func bodyLimit(announced int64) int64 {
	return announced + max(64<<10, announced/10)
}

// checkBodySize refuses a body of size bytes (its literal's announced size)
// above bodyLimit of the message's RFC822.SIZE (if sized) or above maxSize
// (if > 0).
func checkBodySize(uid uint32, size, rfcSize int64, sized bool, maxSize int64) *bodyTooLargeError {
	switch {
	case maxSize > 0 && size > maxSize:
		return &bodyTooLargeError{uid: uid, size: size, why: fmt.Sprintf("above max_size (%d bytes)", maxSize)}
	case sized && size > bodyLimit(rfcSize):
		return &bodyTooLargeError{uid: uid, size: size,
			why: fmt.Sprintf("more than its RFC822.SIZE of %d bytes allows (%d with slack)", rfcSize, bodyLimit(rfcSize))}
	}
	return nil
}

// bodyTooLargeError is a message body refused for its size: not stored
// (not even in part), reported as the folder's error, tried again next
// run. unread: its literal was not read (the connection must be given up).
type bodyTooLargeError struct {
	uid    uint32
	size   int64
	why    string
	unread bool
}

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("UID %d: the server sends a body of %d bytes, %s: not stored", e.uid, e.size, e.why)
}

// errShortBody marks a body that ended before the size its literal
// announced: the connection died in the middle of it.
var errShortBody = errors.New("message body cut short")

// readLiteral copies a FETCH body literal to w and checks that all of it
// came: exactly the size the literal announced. A literal that ends early
// is errShortBody (the caller's abort marks it a connection failure); a
// failure of w is a local one.
func readLiteral(w io.Writer, lit imap.LiteralReader) error {
	r := &literalCounter{r: lit}
	_, err := io.Copy(w, r) // w's ReadFrom, where it has one (Delivery)
	switch {
	case r.err != nil:
		return fmt.Errorf("%w after %d of %d bytes: %w", errShortBody, r.n, lit.Size(), r.err)
	case err != nil:
		return fmt.Errorf("storing message: %w", err)
	case r.n != lit.Size():
		return fmt.Errorf("%w after %d of %d bytes (the connection ended)", errShortBody, r.n, lit.Size())
	}
	return nil
}

// literalCounter counts what a literal yields and keeps its read error, so
// that readLiteral tells the connection's failures from the writer's.
type literalCounter struct {
	r   io.Reader
	n   int64
	err error
}

func (c *literalCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// AbortFetch gives up c, whose FETCH cmd was left half read (after an
// error of CollectMessage, say), without leaving go-imap's goroutines
// behind (see abortFetch), and returns err.
func AbortFetch(c *imapclient.Client, cmd *imapclient.FetchCommand, err error) error {
	abortFetch(c, cmd, err)
	return err
}

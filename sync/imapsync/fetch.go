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
// tmp/ file, and hands them to the committer.
func (w *worker) fetch(ctx context.Context, j *folderJob, uids []uint32) error {
	if err := w.selectFolder(j); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	opts := &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}
	cmd := w.c.Fetch(imap.UIDSetNum(set...), opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		d, err := readMessage(j, msg)
		if err != nil {
			// The response is half read: the connection cannot be used
			// again (draining the command would race with go-imap's reader).
			return abort(w.c, err)
		}
		if d == nil {
			continue
		}
		j.acquire(1)
		select {
		case w.s.commit.in <- d:
		case <-ctx.Done():
			d.dlv.Abort()
			j.release()
			return abort(w.c, ctx.Err())
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("FETCH: %w", err)
	}
	return nil
}

// abort closes a connection whose command was left half read and returns
// err marked as a connection failure, so the worker dials again.
//
// It does not wait for the close: go-imap's Client.Close waits for its
// reader goroutine, which may itself wait for this goroutine to read a
// literal it handed over (a deadlock seen on SIGTERM mid-download), and
// draining the response instead races with that reader. The socket is
// closed at once; the reader goroutine of an aborted connection is left
// behind, which a one-shot run does not notice.
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
// same inexact size every time.
func readMessage(j *folderJob, msg *imapclient.FetchMessageData) (*delivered, error) {
	d := &delivered{job: j}
	var litSize int64 = -1 // the body literal's size, once read whole
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
			d.rfcSize = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue // NIL: no body
			}
			if d.dlv != nil {
				io.Copy(io.Discard, it.Literal)
				continue
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
	if d.rfcSize != 0 && d.rfcSize != litSize {
		j.s.log.Warn("the server's RFC822.SIZE differs from the size of the message it sent; stored as sent",
			"folder", j.rf.Local, "uid", d.uid, "rfc822_size", d.rfcSize, "sent", litSize)
	}
	d.header = index.ParseHeader(d.dlv.Header())
	if !d.idate.IsZero() {
		os.Chtimes(d.dlv.Path(), d.idate, d.idate)
	}
	return d, nil
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
